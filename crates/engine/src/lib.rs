//! The Crossfire engine: stories, personas, prompt templates, the language-model interface
//! and its OpenAI-compatible client, the debate, the judge and the claim check.
//!
//! It knows nothing of HTTP servers or databases (docs/architecture.md). It reports progress as
//! [`event::Event`]s to an [`event::EventSink`]: the command line renders them, and the HTTP
//! service batches, stores and streams them.

pub mod cache;
pub mod calibrate;
pub mod card;
pub mod claims;
pub mod config;
pub mod debate;
pub mod era;
pub mod event;
pub mod fairness;
pub mod id;
pub mod judge;
pub mod likelihood;
pub mod llm;
pub mod location;
pub mod markdown;
pub mod motion;
pub mod names;
pub mod persona;
pub mod perspective;
pub mod probe;
pub mod prompts;
pub mod screen;
mod speech;
pub mod story;
pub mod transcript;

pub use speech::sentence_end;

/// Hex SHA-256 of some bytes: the version of a persona, the hash of a story or template set.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}
