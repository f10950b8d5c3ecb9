//! The embedded backend's settings: which model file, and how much of the machine it may use.

use std::path::PathBuf;

/// The embedded backend: which model file, and how much of the machine it may use.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddedConfig {
    pub model_path: PathBuf,
    /// Threads of the forward pass (default: every core). Fewer leave room for the rest of
    /// the process: spinning threads on a busy core collapse throughput.
    pub threads: usize,
    /// Generations decoded together in one forward pass.
    pub max_streams: usize,
    /// Generations allowed to wait for a stream slot; more are refused at once.
    pub queue: usize,
}

impl Default for EmbeddedConfig {
    /// The default model where `crossfire model fetch` puts it, on every core.
    fn default() -> EmbeddedConfig {
        EmbeddedConfig {
            model_path: crate::fetch::default_path(),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_streams: 4,
            queue: 64,
        }
    }
}
