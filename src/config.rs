//! Configuration: `crossfire.toml`, then `CROSSFIRE_*` environment variables, then command-line
//! flags, read once into one typed [`Config`] (SPEC §7).

use std::path::{Path, PathBuf};
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

/// One language-model endpoint: the debaters' or the judge's.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmConfig {
    pub backend: Backend,
    pub base_url: Option<String>,
    pub model: String,
    pub api_key: Option<String>,
    /// Time allowed for the response to start and for each gap in a stream.
    pub timeout: Duration,
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

/// Where the editable files live.
#[derive(Debug, Clone, PartialEq)]
pub struct Paths {
    pub personas_dir: PathBuf,
    pub prompts_dir: PathBuf,
    pub stories_dir: PathBuf,
}

/// Everything Crossfire reads at start-up.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub llm: LlmConfig,
    pub judge: LlmConfig,
    pub paths: Paths,
    pub embedded: EmbeddedConfig,
    pub database_url: String,
    pub addr: String,
    pub debates_per_day: u32,
    pub perspectives_per_day: u32,
    /// Origins allowed to call the API from a browser (CORS); none by default.
    pub cors_origins: Vec<String>,
    pub story_max_bytes: usize,
    /// Whether personas of living people may be used (they are then labelled).
    pub allow_living_personas: bool,
}

/// Why the configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: {message}", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{name}={value:?}: {message}")]
    Env {
        name: String,
        value: String,
        message: String,
    },
    #[error("{0}")]
    Invalid(String),
}

/// The file's shape: every key optional, unknown keys refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    llm: FileLlm,
    #[serde(default)]
    judge: FileLlm,
    #[serde(default)]
    paths: FilePaths,
    #[serde(default)]
    embedded: FileEmbedded,
    #[serde(default)]
    server: FileServer,
    #[serde(default)]
    limits: FileLimits,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLlm {
    backend: Option<Backend>,
    base_url: Option<String>,
    model: Option<String>,
    api_key: Option<String>,
    timeout_s: Option<f64>,
    max_in_flight: Option<usize>,
    max_retries: Option<u32>,
    retry_base_ms: Option<u64>,
    max_tokens: Option<u32>,
    temperature: Option<f32>,
    brief_prompts: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePaths {
    personas_dir: Option<PathBuf>,
    prompts_dir: Option<PathBuf>,
    stories_dir: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEmbedded {
    model_path: Option<PathBuf>,
    threads: Option<usize>,
    max_streams: Option<usize>,
    queue: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileServer {
    addr: Option<String>,
    database_url: Option<String>,
    debates_per_day: Option<u32>,
    perspectives_per_day: Option<u32>,
    cors_origins: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLimits {
    story_max_bytes: Option<usize>,
    allow_living_personas: Option<bool>,
}

/// Overrides given on the command line; they win over file and environment.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub personas_dir: Option<PathBuf>,
    pub prompts_dir: Option<PathBuf>,
    pub stories_dir: Option<PathBuf>,
}

impl Config {
    /// Reads the configuration: the file at `path` (if any), the environment through `env`,
    /// then `overrides`. `env` is a parameter so tests need not touch the process environment.
    pub fn load(
        path: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        let file = match path {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let get = |name: &str| env(name).filter(|v| !v.trim().is_empty());

        let llm_base_url = get("CROSSFIRE_LLM_BASE_URL").or(file.llm.base_url.clone());
        let backend = match get("CROSSFIRE_LLM_BACKEND") {
            Some(v) => parse_backend("CROSSFIRE_LLM_BACKEND", &v)?,
            None => file.llm.backend.unwrap_or(if llm_base_url.is_some() {
                Backend::Openai
            } else {
                Backend::Embedded
            }),
        };
        let timeout_s = match get("CROSSFIRE_LLM_TIMEOUT_S") {
            Some(v) => parse_env::<f64>("CROSSFIRE_LLM_TIMEOUT_S", &v)?,
            None => file.llm.timeout_s.unwrap_or(120.0),
        };
        if !(timeout_s.is_finite() && timeout_s > 0.0) {
            return Err(ConfigError::Invalid(format!(
                "llm timeout must be a positive number of seconds, not {timeout_s}"
            )));
        }
        let llm = LlmConfig {
            backend,
            base_url: llm_base_url,
            model: get("CROSSFIRE_LLM_MODEL")
                .or(file.llm.model.clone())
                .unwrap_or_else(|| match backend {
                    Backend::Embedded => "SmolLM2-135M-Instruct".to_string(),
                    Backend::Openai => "gpt-4o-mini".to_string(),
                }),
            api_key: get("CROSSFIRE_LLM_API_KEY").or(file.llm.api_key.clone()),
            timeout: Duration::from_secs_f64(timeout_s),
            max_in_flight: file.llm.max_in_flight.unwrap_or(8).max(1),
            max_retries: file.llm.max_retries.unwrap_or(4),
            retry_base: Duration::from_millis(file.llm.retry_base_ms.unwrap_or(500)),
            // Short speeches where a small CPU model writes them.
            max_tokens: file.llm.max_tokens.unwrap_or(match backend {
                Backend::Embedded => 160,
                Backend::Openai => 400,
            }),
            temperature: file.llm.temperature.unwrap_or(0.8),
            brief_prompts: file
                .llm
                .brief_prompts
                .unwrap_or(backend == Backend::Embedded),
        };
        // The judge inherits the debaters' endpoint unless told otherwise.
        let judge_base_url = get("CROSSFIRE_JUDGE_BASE_URL")
            .or(file.judge.base_url)
            .or(llm.base_url.clone());
        let judge_backend = file.judge.backend.unwrap_or(if judge_base_url.is_some() {
            Backend::Openai
        } else {
            llm.backend
        });
        let judge = LlmConfig {
            backend: judge_backend,
            base_url: judge_base_url,
            model: get("CROSSFIRE_JUDGE_MODEL")
                .or(file.judge.model)
                .unwrap_or_else(|| llm.model.clone()),
            api_key: file.judge.api_key.or(llm.api_key.clone()),
            timeout: file
                .judge
                .timeout_s
                .map_or(llm.timeout, Duration::from_secs_f64),
            max_in_flight: file.judge.max_in_flight.unwrap_or(llm.max_in_flight).max(1),
            max_retries: file.judge.max_retries.unwrap_or(llm.max_retries),
            retry_base: file
                .judge
                .retry_base_ms
                .map_or(llm.retry_base, Duration::from_millis),
            // The embedded model fits the verdict into max_tokens (counting a byte a token, the
            // shortest full verdict is about 420), so a tighter budget gives shorter reasons.
            max_tokens: file.judge.max_tokens.unwrap_or(match judge_backend {
                Backend::Embedded => 560,
                Backend::Openai => 700,
            }),
            temperature: file.judge.temperature.unwrap_or(0.0),
            brief_prompts: file
                .judge
                .brief_prompts
                .or(file.llm.brief_prompts)
                .unwrap_or(judge_backend == Backend::Embedded),
        };
        for role in [&llm, &judge] {
            if role.backend == Backend::Openai && role.base_url.is_none() {
                return Err(ConfigError::Invalid(
                    "the openai backend needs a base URL (CROSSFIRE_LLM_BASE_URL or [llm] base_url)"
                        .to_string(),
                ));
            }
        }

        let dir = |over: &Option<PathBuf>, var: &str, file: Option<PathBuf>, default: &str| {
            over.clone()
                .or_else(|| get(var).map(PathBuf::from))
                .or(file)
                .unwrap_or_else(|| PathBuf::from(default))
        };
        let paths = Paths {
            personas_dir: dir(
                &overrides.personas_dir,
                "CROSSFIRE_PERSONAS_DIR",
                file.paths.personas_dir,
                "personas",
            ),
            prompts_dir: dir(
                &overrides.prompts_dir,
                "CROSSFIRE_PROMPTS_DIR",
                file.paths.prompts_dir,
                "prompts",
            ),
            stories_dir: dir(
                &overrides.stories_dir,
                "CROSSFIRE_STORIES_DIR",
                file.paths.stories_dir,
                "stories",
            ),
        };

        let per_day = |var: &str, file: Option<u32>, default: u32| match get(var) {
            Some(v) => parse_env::<u32>(var, &v),
            None => Ok(file.unwrap_or(default)),
        };
        Ok(Config {
            llm,
            judge,
            paths,
            embedded: EmbeddedConfig {
                model_path: get("CROSSFIRE_MODEL_PATH")
                    .map(PathBuf::from)
                    .or(file.embedded.model_path)
                    .unwrap_or_else(crate::embedded::fetch::default_path),
                threads: match get("CROSSFIRE_EMBEDDED_THREADS") {
                    Some(v) => parse_env::<usize>("CROSSFIRE_EMBEDDED_THREADS", &v)?,
                    None => file.embedded.threads.unwrap_or_else(|| {
                        std::thread::available_parallelism().map_or(1, |n| n.get())
                    }),
                }
                .max(1),
                max_streams: file.embedded.max_streams.unwrap_or(4).max(1),
                queue: file.embedded.queue.unwrap_or(64),
            },
            database_url: get("CROSSFIRE_DATABASE_URL")
                .or(file.server.database_url)
                .unwrap_or_else(|| "sqlite://crossfire.db".to_string()),
            addr: get("CROSSFIRE_ADDR")
                .or(file.server.addr)
                .unwrap_or_else(|| "127.0.0.1:8080".to_string()),
            debates_per_day: per_day("CROSSFIRE_DEBATES_PER_DAY", file.server.debates_per_day, 20)?,
            perspectives_per_day: per_day(
                "CROSSFIRE_PERSPECTIVES_PER_DAY",
                file.server.perspectives_per_day,
                50,
            )?,
            cors_origins: match get("CROSSFIRE_CORS_ORIGINS") {
                Some(list) => list
                    .split(',')
                    .map(|o| o.trim().to_string())
                    .filter(|o| !o.is_empty())
                    .collect(),
                None => file.server.cors_origins.unwrap_or_default(),
            },
            story_max_bytes: file
                .limits
                .story_max_bytes
                .unwrap_or(crate::story::DEFAULT_MAX_BYTES),
            allow_living_personas: file.limits.allow_living_personas.unwrap_or(false),
        })
    }

    /// Reads the configuration of this process: `--config`/`CROSSFIRE_CONFIG`, the real
    /// environment, and the command-line overrides.
    pub fn from_env(path: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let env_path = std::env::var_os("CROSSFIRE_CONFIG").map(PathBuf::from);
        let path = path.map(Path::to_path_buf).or(env_path);
        Config::load(path.as_deref(), |name| std::env::var(name).ok(), overrides)
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| {
        let (line, column) = crate::location::line_col(&text, e.span().map_or(0, |s| s.start));
        ConfigError::Parse {
            path: path.to_path_buf(),
            line,
            column,
            message: e.message().trim().replace('\n', " "),
        }
    })
}

fn parse_env<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    value.trim().parse().map_err(|e: T::Err| ConfigError::Env {
        name: name.to_string(),
        value: value.to_string(),
        message: e.to_string(),
    })
}

fn parse_backend(name: &str, value: &str) -> Result<Backend, ConfigError> {
    match value.trim() {
        "openai" => Ok(Backend::Openai),
        "embedded" => Ok(Backend::Embedded),
        _ => Err(ConfigError::Env {
            name: name.to_string(),
            value: value.to_string(),
            message: "expected `openai` or `embedded`".to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(vars: &[(&str, &str)], file: Option<&Path>) -> Result<Config, ConfigError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load(
            file,
            |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()),
            &Overrides::default(),
        )
    }

    #[test]
    fn no_endpoint_means_embedded() {
        let config = load(&[], None).unwrap();
        assert_eq!(config.llm.backend, Backend::Embedded);
        assert_eq!(config.judge.backend, Backend::Embedded);
        assert!(config.llm.brief_prompts && config.judge.brief_prompts);
    }

    #[test]
    fn an_endpoint_judge_asks_for_full_verdicts() {
        // Embedded debaters, a judge behind an endpoint: only the debaters get brief prompts.
        let config = load(&[("CROSSFIRE_JUDGE_BASE_URL", "http://b/v1")], None).unwrap();
        assert_eq!(config.judge.backend, Backend::Openai);
        assert!(config.llm.brief_prompts && !config.judge.brief_prompts);
    }

    #[test]
    fn environment_configures_debaters_and_judge_separately() {
        let config = load(
            &[
                ("CROSSFIRE_LLM_BASE_URL", "http://a/v1"),
                ("CROSSFIRE_LLM_MODEL", "m1"),
                ("CROSSFIRE_JUDGE_BASE_URL", "http://b/v1"),
                ("CROSSFIRE_JUDGE_MODEL", "m2"),
                ("CROSSFIRE_LLM_TIMEOUT_S", "7"),
            ],
            None,
        )
        .unwrap();
        assert_eq!(config.llm.backend, Backend::Openai);
        assert_eq!(config.llm.base_url.as_deref(), Some("http://a/v1"));
        assert_eq!(config.judge.base_url.as_deref(), Some("http://b/v1"));
        assert_eq!(config.judge.model, "m2");
        assert_eq!(config.llm.timeout, Duration::from_secs(7));
    }

    #[test]
    fn bad_environment_values_name_the_variable() {
        let err = load(&[("CROSSFIRE_LLM_TIMEOUT_S", "soon")], None).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("CROSSFIRE_LLM_TIMEOUT_S=\"soon\""),
            "{err}"
        );
    }

    #[test]
    fn the_example_file_is_valid() {
        let config = load(&[], Some(Path::new("crossfire.example.toml"))).unwrap();
        assert_eq!(config.llm.backend, Backend::Openai);
        assert_eq!(config.judge.base_url, config.llm.base_url);
        assert_eq!(config.judge.temperature, 0.0);
    }

    #[test]
    fn file_keys_are_strict_and_located() {
        let dir = std::env::temp_dir().join(format!("crossfire-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("crossfire.toml");
        std::fs::write(&path, "[llm]\nbase_url = \"http://x/v1\"\ntimeout = 5\n").unwrap();
        let err = load(&[], Some(&path)).unwrap_err().to_string();
        assert!(
            err.contains("crossfire.toml:3:1: unknown field `timeout`"),
            "{err}"
        );
        std::fs::write(&path, "[llm]\nbase_url = \"http://x/v1\"\ntimeout_s = 5\n").unwrap();
        let config = load(&[("CROSSFIRE_LLM_TIMEOUT_S", "9")], Some(&path)).unwrap();
        assert_eq!(
            config.llm.timeout,
            Duration::from_secs(9),
            "environment wins over file"
        );
    }
}
