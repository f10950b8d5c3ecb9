//! The `embedded` backend (docs/configuration.md): a llama-architecture GGUF model run in-process on the
//! CPU — by default SmolLM2-135M-Instruct, fetched by `crossfire model fetch`.
//!
//! Layers, bottom up: [`gguf`] reads the file, [`quant`] holds the quantized weights and
//! their kernels, [`transformer`] is the network (with [`attention`] and the element-wise
//! [`vector`] maths), [`tokenizer`] and [`chat`] turn messages
//! into ids, [`sampler`] and [`grammar`] choose tokens, [`scheduler`] runs many generations
//! in shared forward passes, and [`EmbeddedModel`] serves them to the async engine from a
//! dedicated thread.

pub mod attention;
pub mod bench;
pub mod chat;
pub mod config;
pub mod cpu;
pub mod fetch;
pub mod gguf;
pub mod grammar;
pub mod kv;
pub mod model;
pub mod prompt_cache;
pub mod quant;
pub mod sampler;
pub mod scheduler;
pub mod service;
pub mod team;
pub mod tokenizer;
pub mod transformer;
pub mod vector;

pub use config::EmbeddedConfig;
pub use model::{EmbeddedError, Model};
pub use service::EmbeddedModel;
