//! The engine's integration tests, one binary (as ripgrep's): each module a part of the
//! engine driven through its public API, most against the fake OpenAI-compatible server of
//! `crossfire-testkit`.

mod calibrate;
mod cards;
mod claims;
mod debate;
mod endpoint;
mod files;
mod fuzz;
mod judging;
mod moderation;
mod output_screening;
mod probe;
mod screening;
mod sse;
