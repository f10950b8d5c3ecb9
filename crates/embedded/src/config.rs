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
    /// Memory for finished calls' prompt prefixes, kept for calls that begin the same way
    /// (MiB; least recently used out).
    pub prompt_cache_mb: usize,
    /// Prompt prefixes two calls shared, saved for later processes (MiB on disk; 0: none).
    pub disk_cache_mb: u64,
    pub disk_cache_dir: PathBuf,
}

impl Default for EmbeddedConfig {
    /// The default model where `crossfire model fetch` puts it, on every core.
    fn default() -> EmbeddedConfig {
        EmbeddedConfig {
            model_path: crate::fetch::default_path(),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_streams: 4,
            queue: 64,
            prompt_cache_mb: 256,
            disk_cache_mb: 1024,
            disk_cache_dir: crossfire_engine::config::cache_dir().join("prompt-cache"),
        }
    }
}
