//! The embedded model's integration tests, one binary: the real model against llama.cpp's
//! reference outputs ([`model`]), and bounded fuzzing of what it reads from outside
//! ([`fuzz`]).

mod fuzz;
mod model;
