//! The engine's settings as the composition root hands them over: one language-model
//! endpoint per role, and where the editors' files live. Reading them from files and the
//! environment is the binary's job (docs/configuration.md).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// Which language-model backend serves a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Any OpenAI-compatible `POST {base_url}/chat/completions`.
    Openai,
    /// A small model run in-process on the CPU.
    Embedded,
}

impl std::str::FromStr for Backend {
    type Err = String;

    fn from_str(s: &str) -> Result<Backend, String> {
        match s.trim() {
            "openai" => Ok(Backend::Openai),
            "embedded" => Ok(Backend::Embedded),
            _ => Err("expected `openai` or `embedded`".to_string()),
        }
    }
}

/// A secret (an API key): its `Debug` and `Display` never show it, so it cannot reach a log
/// by accident; [`Secret::expose`] is the one way to read it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// One language-model endpoint: the debaters' or the judge's.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmConfig {
    pub backend: Backend,
    pub base_url: Option<String>,
    pub model: String,
    pub api_key: Option<Secret>,
    /// Time allowed for the response to start and for each gap in a stream.
    pub timeout: Duration,
    /// With no response begun after this long, the request is sent again beside the first,
    /// and whichever answers first is read; `None`: never.
    pub hedge_after: Option<Duration>,
    /// Calls in flight at once to this endpoint.
    pub max_in_flight: usize,
    /// Attempts after the first, for connect errors, 429, 5xx, timeouts and cut streams.
    pub max_retries: u32,
    /// First backoff delay; it doubles with each retry (with jitter), up to 20 s.
    pub retry_base: Duration,
    /// `max_tokens` of each call.
    pub max_tokens: u32,
    pub temperature: f32,
    /// Short prompts: the story's title, summary, overview and indicators only, and shorter
    /// portraits. On by default for the embedded backend, whose small model reads a long
    /// context slowly and loses the thread in it.
    pub brief_prompts: bool,
}

/// Where the editors' files live (stories, personas, templates, the screening policy), and how
/// large a story file may be.
#[derive(Debug, Clone, PartialEq)]
pub struct Library {
    pub personas_dir: PathBuf,
    pub prompts_dir: PathBuf,
    pub stories_dir: PathBuf,
    /// The screening policy's files (`policy/*.toml`).
    pub policy_dir: PathBuf,
    pub story_max_bytes: usize,
}

/// Crossfire's cache folder: `$XDG_CACHE_HOME/crossfire`, else `~/.cache/crossfire`. The
/// embedded model and the judges' calibrations live there.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"))
        .join("crossfire")
}
