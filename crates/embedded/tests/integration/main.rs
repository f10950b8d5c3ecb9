//! The embedded model's integration tests, one binary: the real model against llama.cpp's
//! reference outputs ([`model`]), its prompt cache on disk ([`prompt_cache`]), and bounded fuzzing of what it reads from outside
//! ([`fuzz`]).

mod fuzz;
mod model;
mod prompt_cache;
