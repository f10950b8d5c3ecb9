//! Configuration, read once into one typed [`Config`], in layers: the file
//! (`--config`/`CROSSFIRE_CONFIG`), then `CROSSFIRE_*` environment variables, then the
//! command-line flags; each layer sets only the keys it names, and defaults fill the rest
//! (docs/configuration.md).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crossfire_embedded::EmbeddedConfig;
use crossfire_engine::config::{Backend, Library, LlmConfig, Secret};
use crossfire_engine::screen::endpoint::{
    DEFAULT_OPENAI_MODEL, DEFAULT_TIMEOUT, ModerationBackend, ModerationConfig, OnError,
};
use crossfire_server::config::ServerConfig;

/// Everything Crossfire reads at start-up.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub llm: LlmConfig,
    pub judge: LlmConfig,
    pub library: Library,
    /// Whether personas of living people may be used (they are then labelled).
    pub allow_living_personas: bool,
    pub embedded: EmbeddedConfig,
    pub server: ServerConfig,
    /// The moderation endpoint asked in addition to the policy; `None` when no base URL is
    /// configured.
    pub moderation: Option<ModerationConfig>,
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
    /// The value is not shown when the variable holds a secret.
    #[error("{name}={}: {message}", shown.as_deref().unwrap_or("***"))]
    Env {
        name: String,
        shown: Option<String>,
        message: String,
    },
    #[error("{key}: {message}")]
    Invalid { key: &'static str, message: String },
}

/// Declares a layer's section: every key optional, unknown keys refused, and `merge` taking
/// the keys a later layer sets.
macro_rules! section {
    ($name:ident { $($key:ident: $ty:ty,)* }) => {
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct $name {
            $($key: Option<$ty>,)*
        }

        impl $name {
            fn merge(&mut self, over: $name) {
                $(if over.$key.is_some() {
                    self.$key = over.$key;
                })*
            }
        }
    };
}

section!(LlmLayer {
    backend: Backend,
    base_url: String,
    model: String,
    api_key: Secret,
    timeout_s: f64,
    hedge_after_s: f64,
    max_in_flight: usize,
    max_retries: u32,
    retry_base_ms: u64,
    max_tokens: u32,
    temperature: f32,
    brief_prompts: bool,
});

section!(PathsLayer {
    personas_dir: PathBuf,
    prompts_dir: PathBuf,
    stories_dir: PathBuf,
    policy_dir: PathBuf,
});

section!(EmbeddedLayer {
    model_path: PathBuf,
    threads: usize,
    max_streams: usize,
    queue: usize,
    prompt_cache_mb: usize,
    disk_cache_mb: u64,
    disk_cache_dir: PathBuf,
});

section!(ServerLayer {
    addr: String,
    database_url: String,
    debates_per_day: u32,
    perspectives_per_day: u32,
    signups_per_hour: u32,
    daily_token_budget: u64,
    client_ip_header: String,
    cors_origins: Vec<String>,
    watch_files: bool,
    instance: String,
    run_lease_s: usize,
});

section!(ModerationLayer {
    backend: ModerationBackend,
    base_url: String,
    model: String,
    api_key: Secret,
    timeout_s: f64,
    on_error: OnError,
});

section!(LimitsLayer {
    story_max_bytes: usize,
    allow_living_personas: bool,
});

/// One layer of configuration: the file's shape, and what the environment or flags set.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Layer {
    #[serde(default)]
    llm: LlmLayer,
    #[serde(default)]
    judge: LlmLayer,
    #[serde(default)]
    paths: PathsLayer,
    #[serde(default)]
    embedded: EmbeddedLayer,
    #[serde(default)]
    server: ServerLayer,
    #[serde(default)]
    limits: LimitsLayer,
    #[serde(default)]
    moderation: ModerationLayer,
}

impl Layer {
    fn merge(&mut self, over: Layer) {
        self.llm.merge(over.llm);
        self.judge.merge(over.judge);
        self.paths.merge(over.paths);
        self.embedded.merge(over.embedded);
        self.server.merge(over.server);
        self.limits.merge(over.limits);
        self.moderation.merge(over.moderation);
    }

    fn from_file(path: &Path) -> Result<Layer, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| {
            let at = e.span().map_or(0, |s| s.start);
            let (line, column) = crossfire_engine::location::line_col(&text, at);
            ConfigError::Parse {
                path: path.to_path_buf(),
                line,
                column,
                message: e.message().trim().replace('\n', " "),
            }
        })
    }

    fn from_env(env: impl Fn(&str) -> Option<String>) -> Result<Layer, ConfigError> {
        let mut layer = Layer::default();
        for (name, set) in ENV {
            let Some(raw) = env(name).filter(|v| !v.trim().is_empty()) else {
                continue;
            };
            set(&mut layer, &raw).map_err(|message| ConfigError::Env {
                name: name.to_string(),
                shown: (!name.ends_with("_API_KEY")).then(|| format!("{raw:?}")),
                message,
            })?;
        }
        Ok(layer)
    }

    fn from_flags(flags: &Overrides) -> Layer {
        Layer {
            paths: PathsLayer {
                personas_dir: flags.personas_dir.clone(),
                prompts_dir: flags.prompts_dir.clone(),
                stories_dir: flags.stories_dir.clone(),
                policy_dir: None,
            },
            ..Layer::default()
        }
    }
}

/// A value an environment variable can hold.
trait EnvValue: Sized {
    fn parse_env(raw: &str) -> Result<Self, String>;
}

macro_rules! env_value_from_str {
    ($($ty:ty),*) => {
        $(impl EnvValue for $ty {
            fn parse_env(raw: &str) -> Result<$ty, String> {
                raw.trim().parse().map_err(|e| format!("{e}"))
            }
        })*
    };
}

env_value_from_str!(f64, u32, u64, usize, bool, Backend, ModerationBackend);

impl EnvValue for String {
    fn parse_env(raw: &str) -> Result<String, String> {
        Ok(raw.trim().to_string())
    }
}

impl EnvValue for PathBuf {
    fn parse_env(raw: &str) -> Result<PathBuf, String> {
        Ok(PathBuf::from(raw))
    }
}

impl EnvValue for Secret {
    fn parse_env(raw: &str) -> Result<Secret, String> {
        Ok(Secret::new(raw.trim()))
    }
}

/// A comma-separated list.
impl EnvValue for Vec<String> {
    fn parse_env(raw: &str) -> Result<Vec<String>, String> {
        Ok(raw
            .split(',')
            .map(|o| o.trim().to_string())
            .filter(|o| !o.is_empty())
            .collect())
    }
}

fn set<T: EnvValue>(slot: &mut Option<T>, raw: &str) -> Result<(), String> {
    *slot = Some(T::parse_env(raw)?);
    Ok(())
}

type Setter = fn(&mut Layer, &str) -> Result<(), String>;

/// Every environment variable, and the key it sets.
const ENV: &[(&str, Setter)] = &[
    ("CROSSFIRE_LLM_BACKEND", |l, v| set(&mut l.llm.backend, v)),
    ("CROSSFIRE_LLM_BASE_URL", |l, v| set(&mut l.llm.base_url, v)),
    ("CROSSFIRE_LLM_MODEL", |l, v| set(&mut l.llm.model, v)),
    ("CROSSFIRE_LLM_API_KEY", |l, v| set(&mut l.llm.api_key, v)),
    ("CROSSFIRE_LLM_TIMEOUT_S", |l, v| {
        set(&mut l.llm.timeout_s, v)
    }),
    ("CROSSFIRE_JUDGE_BASE_URL", |l, v| {
        set(&mut l.judge.base_url, v)
    }),
    ("CROSSFIRE_JUDGE_MODEL", |l, v| set(&mut l.judge.model, v)),
    ("CROSSFIRE_JUDGE_API_KEY", |l, v| {
        set(&mut l.judge.api_key, v)
    }),
    ("CROSSFIRE_MODERATION_BACKEND", |l, v| {
        set(&mut l.moderation.backend, v)
    }),
    ("CROSSFIRE_MODERATION_BASE_URL", |l, v| {
        set(&mut l.moderation.base_url, v)
    }),
    ("CROSSFIRE_MODERATION_MODEL", |l, v| {
        set(&mut l.moderation.model, v)
    }),
    ("CROSSFIRE_MODERATION_API_KEY", |l, v| {
        set(&mut l.moderation.api_key, v)
    }),
    ("CROSSFIRE_PERSONAS_DIR", |l, v| {
        set(&mut l.paths.personas_dir, v)
    }),
    ("CROSSFIRE_PROMPTS_DIR", |l, v| {
        set(&mut l.paths.prompts_dir, v)
    }),
    ("CROSSFIRE_STORIES_DIR", |l, v| {
        set(&mut l.paths.stories_dir, v)
    }),
    ("CROSSFIRE_POLICY_DIR", |l, v| {
        set(&mut l.paths.policy_dir, v)
    }),
    ("CROSSFIRE_MODEL_PATH", |l, v| {
        set(&mut l.embedded.model_path, v)
    }),
    ("CROSSFIRE_EMBEDDED_THREADS", |l, v| {
        set(&mut l.embedded.threads, v)
    }),
    ("CROSSFIRE_DATABASE_URL", |l, v| {
        set(&mut l.server.database_url, v)
    }),
    ("CROSSFIRE_ADDR", |l, v| set(&mut l.server.addr, v)),
    ("CROSSFIRE_DEBATES_PER_DAY", |l, v| {
        set(&mut l.server.debates_per_day, v)
    }),
    ("CROSSFIRE_PERSPECTIVES_PER_DAY", |l, v| {
        set(&mut l.server.perspectives_per_day, v)
    }),
    ("CROSSFIRE_SIGNUPS_PER_HOUR", |l, v| {
        set(&mut l.server.signups_per_hour, v)
    }),
    ("CROSSFIRE_DAILY_TOKEN_BUDGET", |l, v| {
        set(&mut l.server.daily_token_budget, v)
    }),
    ("CROSSFIRE_CLIENT_IP_HEADER", |l, v| {
        set(&mut l.server.client_ip_header, v)
    }),
    ("CROSSFIRE_CORS_ORIGINS", |l, v| {
        set(&mut l.server.cors_origins, v)
    }),
    ("CROSSFIRE_WATCH_FILES", |l, v| {
        set(&mut l.server.watch_files, v)
    }),
    ("CROSSFIRE_INSTANCE", |l, v| set(&mut l.server.instance, v)),
    ("CROSSFIRE_RUN_LEASE_S", |l, v| {
        set(&mut l.server.run_lease_s, v)
    }),
];

/// Overrides given on the command line; they win over file and environment.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub personas_dir: Option<PathBuf>,
    pub prompts_dir: Option<PathBuf>,
    pub stories_dir: Option<PathBuf>,
}

impl Config {
    /// Reads the configuration: the file at `path` (if any), the environment through `env`,
    /// then `flags`. `env` is a parameter so tests need not touch the process environment.
    pub fn load(
        path: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
        flags: &Overrides,
    ) -> Result<Config, ConfigError> {
        let mut layer = match path {
            Some(path) => Layer::from_file(path)?,
            None => Layer::default(),
        };
        layer.merge(Layer::from_env(env)?);
        layer.merge(Layer::from_flags(flags));
        Config::resolve(layer)
    }

    /// Reads the configuration of this process: `--config`/`CROSSFIRE_CONFIG`, the real
    /// environment, and the command-line flags.
    pub fn from_env(path: Option<&Path>, flags: &Overrides) -> Result<Config, ConfigError> {
        let env_path = std::env::var_os("CROSSFIRE_CONFIG").map(PathBuf::from);
        let path = path.map(Path::to_path_buf).or(env_path);
        Config::load(path.as_deref(), |name| std::env::var(name).ok(), flags)
    }

    /// Fills in the defaults and checks every value, a section at a time; the first bad
    /// value found is the error.
    fn resolve(layer: Layer) -> Result<Config, ConfigError> {
        let Layer {
            llm,
            judge,
            paths,
            embedded,
            server,
            limits,
            moderation,
        } = layer;
        let brief_set_for_debaters = llm.brief_prompts;
        let llm = resolve_llm(llm)?;
        let judge = resolve_judge(judge, &llm, brief_set_for_debaters)?;
        check_base_urls(&llm, &judge)?;
        let embedded = resolve_embedded(embedded)?;
        let server = resolve_server(server)?;
        let library = resolve_library(paths, limits.story_max_bytes)?;
        let moderation = resolve_moderation(moderation)?;
        Ok(Config {
            llm,
            judge,
            library,
            allow_living_personas: limits.allow_living_personas.unwrap_or(false),
            embedded,
            server,
            moderation,
        })
    }
}

/// `[llm]`, the debaters' model: the embedded backend unless a base URL is given.
fn resolve_llm(llm: LlmLayer) -> Result<LlmConfig, ConfigError> {
    let backend = llm.backend.unwrap_or(if llm.base_url.is_some() {
        Backend::Openai
    } else {
        Backend::Embedded
    });
    let timeout_s = positive_seconds("llm.timeout_s", llm.timeout_s.unwrap_or(120.0))?;
    Ok(LlmConfig {
        backend,
        base_url: llm.base_url,
        model: llm.model.unwrap_or_else(|| match backend {
            Backend::Embedded => "SmolLM2-135M-Instruct".to_string(),
            Backend::Openai => "gpt-4o-mini".to_string(),
        }),
        api_key: llm.api_key,
        timeout: Duration::from_secs_f64(timeout_s),
        hedge_after: hedge_after("llm.hedge_after_s", llm.hedge_after_s.unwrap_or(0.0))?,
        max_in_flight: at_least_one("llm.max_in_flight", llm.max_in_flight.unwrap_or(8))?,
        max_retries: llm.max_retries.unwrap_or(4),
        retry_base: Duration::from_millis(llm.retry_base_ms.unwrap_or(500)),
        // Short speeches where a small CPU model writes them.
        max_tokens: llm.max_tokens.unwrap_or(match backend {
            Backend::Embedded => 160,
            Backend::Openai => 400,
        }),
        temperature: temperature("llm.temperature", llm.temperature.unwrap_or(0.8))?,
        brief_prompts: llm.brief_prompts.unwrap_or(backend == Backend::Embedded),
    })
}

/// `[judge]`: inherits the debaters' endpoint, key and limits (`llm`) unless told otherwise;
/// `brief_set_for_debaters` is `[llm] brief_prompts` as the layers set it, not its default.
fn resolve_judge(
    judge: LlmLayer,
    llm: &LlmConfig,
    brief_set_for_debaters: Option<bool>,
) -> Result<LlmConfig, ConfigError> {
    let judge_base_url = judge.base_url.or(llm.base_url.clone());
    let judge_backend = judge.backend.unwrap_or(if judge_base_url.is_some() {
        Backend::Openai
    } else {
        llm.backend
    });
    Ok(LlmConfig {
        backend: judge_backend,
        base_url: judge_base_url,
        model: judge.model.unwrap_or_else(|| llm.model.clone()),
        api_key: judge.api_key.or(llm.api_key.clone()),
        timeout: match judge.timeout_s {
            Some(s) => Duration::from_secs_f64(positive_seconds("judge.timeout_s", s)?),
            None => llm.timeout,
        },
        hedge_after: match judge.hedge_after_s {
            Some(s) => hedge_after("judge.hedge_after_s", s)?,
            None => llm.hedge_after,
        },
        max_in_flight: at_least_one(
            "judge.max_in_flight",
            judge.max_in_flight.unwrap_or(llm.max_in_flight),
        )?,
        max_retries: judge.max_retries.unwrap_or(llm.max_retries),
        retry_base: judge
            .retry_base_ms
            .map_or(llm.retry_base, Duration::from_millis),
        // The embedded model fits the verdict into max_tokens (counting a byte a token, the
        // shortest full verdict is about 420), so a tighter budget gives shorter reasons.
        max_tokens: judge.max_tokens.unwrap_or(match judge_backend {
            Backend::Embedded => 560,
            Backend::Openai => 700,
        }),
        temperature: temperature("judge.temperature", judge.temperature.unwrap_or(0.0))?,
        // As set for the judge, else as set for the debaters, else by its own backend.
        brief_prompts: judge
            .brief_prompts
            .or(brief_set_for_debaters)
            .unwrap_or(judge_backend == Backend::Embedded),
    })
}

/// Both roles' endpoints: the openai backend needs one, and it must be an http(s) URL.
fn check_base_urls(llm: &LlmConfig, judge: &LlmConfig) -> Result<(), ConfigError> {
    for (key, role) in [("llm.base_url", llm), ("judge.base_url", judge)] {
        match (&role.base_url, role.backend) {
            (None, Backend::Openai) => {
                return Err(ConfigError::Invalid {
                    key,
                    message: "the openai backend needs a base URL \
                              (CROSSFIRE_LLM_BASE_URL or [llm] base_url)"
                        .to_string(),
                });
            }
            (Some(url), _) if !(url.starts_with("http://") || url.starts_with("https://")) => {
                return Err(ConfigError::Invalid {
                    key,
                    message: format!("`{url}` is not an http:// or https:// URL"),
                });
            }
            _ => {}
        }
    }
    Ok(())
}

/// `[embedded]`, the in-process model.
fn resolve_embedded(embedded: EmbeddedLayer) -> Result<EmbeddedConfig, ConfigError> {
    let defaults = EmbeddedConfig::default();
    Ok(EmbeddedConfig {
        model_path: embedded.model_path.unwrap_or(defaults.model_path),
        threads: at_least_one(
            "embedded.threads",
            embedded.threads.unwrap_or(defaults.threads),
        )?,
        max_streams: at_least_one(
            "embedded.max_streams",
            embedded.max_streams.unwrap_or(defaults.max_streams),
        )?,
        queue: embedded.queue.unwrap_or(defaults.queue),
        prompt_cache_mb: embedded.prompt_cache_mb.unwrap_or(defaults.prompt_cache_mb),
        disk_cache_mb: embedded.disk_cache_mb.unwrap_or(defaults.disk_cache_mb),
        disk_cache_dir: embedded.disk_cache_dir.unwrap_or(defaults.disk_cache_dir),
    })
}

/// `[server]`, the HTTP service.
fn resolve_server(server: ServerLayer) -> Result<ServerConfig, ConfigError> {
    let defaults = ServerConfig::default();
    Ok(ServerConfig {
        addr: server.addr.unwrap_or(defaults.addr),
        database_url: server.database_url.unwrap_or(defaults.database_url),
        debates_per_day: server.debates_per_day.unwrap_or(defaults.debates_per_day),
        perspectives_per_day: server
            .perspectives_per_day
            .unwrap_or(defaults.perspectives_per_day),
        signups_per_hour: server.signups_per_hour.unwrap_or(defaults.signups_per_hour),
        daily_token_budget: server
            .daily_token_budget
            .unwrap_or(defaults.daily_token_budget),
        client_ip_header: server
            .client_ip_header
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .or(defaults.client_ip_header),
        cors_origins: server.cors_origins.unwrap_or(defaults.cors_origins),
        watch_files: server.watch_files.unwrap_or(defaults.watch_files),
        instance: server.instance.or(defaults.instance),
        run_lease: match server.run_lease_s {
            Some(s) => Duration::from_secs(at_least_one("server.run_lease_s", s)? as u64),
            None => defaults.run_lease,
        },
    })
}

/// `[paths]` and `[limits] story_max_bytes`: where the library's files are, and how large a
/// story may be.
fn resolve_library(
    paths: PathsLayer,
    story_max_bytes: Option<usize>,
) -> Result<Library, ConfigError> {
    Ok(Library {
        personas_dir: paths.personas_dir.unwrap_or_else(|| "personas".into()),
        prompts_dir: paths.prompts_dir.unwrap_or_else(|| "prompts".into()),
        stories_dir: paths.stories_dir.unwrap_or_else(|| "stories".into()),
        policy_dir: paths.policy_dir.unwrap_or_else(|| "policy".into()),
        story_max_bytes: at_least_one(
            "limits.story_max_bytes",
            story_max_bytes.unwrap_or(crossfire_engine::story::DEFAULT_MAX_BYTES),
        )?,
    })
}

/// `[moderation]`, the endpoint asked in addition to the policy: none without a base URL;
/// the `openai` backend unless another is set, its model `omni-moderation-latest` unless
/// named; the `guard` backend needs its model named.
fn resolve_moderation(
    moderation: ModerationLayer,
) -> Result<Option<ModerationConfig>, ConfigError> {
    let Some(base_url) = moderation.base_url else {
        return Ok(None);
    };
    if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
        return Err(ConfigError::Invalid {
            key: "moderation.base_url",
            message: format!("`{base_url}` is not an http:// or https:// URL"),
        });
    }
    let backend = moderation.backend.unwrap_or_default();
    let model = match (moderation.model.filter(|m| !m.trim().is_empty()), backend) {
        (Some(model), _) => model,
        (None, ModerationBackend::Openai) => DEFAULT_OPENAI_MODEL.to_string(),
        (None, ModerationBackend::Guard) => {
            return Err(ConfigError::Invalid {
                key: "moderation.model",
                message: "the guard backend needs a model \
                          (CROSSFIRE_MODERATION_MODEL or [moderation] model)"
                    .to_string(),
            });
        }
    };
    let timeout_s = positive_seconds(
        "moderation.timeout_s",
        moderation
            .timeout_s
            .unwrap_or(DEFAULT_TIMEOUT.as_secs_f64()),
    )?;
    Ok(Some(ModerationConfig {
        backend,
        base_url,
        model,
        api_key: moderation.api_key,
        timeout: Duration::from_secs_f64(timeout_s),
        on_error: moderation.on_error.unwrap_or_default(),
    }))
}

/// Seconds for a timeout: positive, and at most a day (a deadline that far off is a typo, and
/// one past what a clock can add would panic).
fn positive_seconds(key: &'static str, seconds: f64) -> Result<f64, ConfigError> {
    if seconds.is_finite() && seconds > 0.0 && seconds <= 86_400.0 {
        Ok(seconds)
    } else {
        Err(ConfigError::Invalid {
            key,
            message: format!("must be a positive number of seconds, at most 86400, not {seconds}"),
        })
    }
}

/// `hedge_after_s`: seconds, or 0 for never.
fn hedge_after(key: &'static str, seconds: f64) -> Result<Option<Duration>, ConfigError> {
    if seconds == 0.0 {
        return Ok(None);
    }
    positive_seconds(key, seconds)
        .map(|s| Some(Duration::from_secs_f64(s)))
        .map_err(|_| ConfigError::Invalid {
            key,
            message: format!(
                "must be a positive number of seconds (at most 86400) or 0 (never), not {seconds}"
            ),
        })
}

fn at_least_one(key: &'static str, n: usize) -> Result<usize, ConfigError> {
    if n >= 1 {
        Ok(n)
    } else {
        Err(ConfigError::Invalid {
            key,
            message: "must be at least 1".to_string(),
        })
    }
}

fn temperature(key: &'static str, t: f32) -> Result<f32, ConfigError> {
    if (0.0..=2.0).contains(&t) {
        Ok(t)
    } else {
        Err(ConfigError::Invalid {
            key,
            message: format!("must be between 0 and 2, not {t}"),
        })
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

    fn file(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("crossfire-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
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
    fn the_judge_follows_the_debaters_brief_prompts_when_set() {
        let path = file("brief.toml", "[llm]\nbrief_prompts = true\n");
        let config = load(&[("CROSSFIRE_LLM_BASE_URL", "http://a/v1")], Some(&path)).unwrap();
        assert!(config.llm.brief_prompts && config.judge.brief_prompts);
    }

    #[test]
    fn environment_configures_debaters_and_judge_separately() {
        let config = load(
            &[
                ("CROSSFIRE_LLM_BASE_URL", "http://a/v1"),
                ("CROSSFIRE_LLM_MODEL", "m1"),
                ("CROSSFIRE_LLM_API_KEY", "key-a"),
                ("CROSSFIRE_JUDGE_BASE_URL", "http://b/v1"),
                ("CROSSFIRE_JUDGE_MODEL", "m2"),
                ("CROSSFIRE_JUDGE_API_KEY", "key-b"),
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
        assert_eq!(
            config.llm.api_key.as_ref().map(Secret::expose),
            Some("key-a")
        );
        assert_eq!(
            config.judge.api_key.as_ref().map(Secret::expose),
            Some("key-b")
        );
    }

    #[test]
    fn the_judge_inherits_the_debaters_key() {
        let config = load(
            &[
                ("CROSSFIRE_LLM_BASE_URL", "http://a/v1"),
                ("CROSSFIRE_LLM_API_KEY", "key-a"),
            ],
            None,
        )
        .unwrap();
        assert_eq!(
            config.judge.api_key.as_ref().map(Secret::expose),
            Some("key-a")
        );
    }

    #[test]
    fn hedging_is_off_unless_set_and_the_judge_inherits_it() {
        let config = load(&[("CROSSFIRE_LLM_BASE_URL", "http://a/v1")], None).unwrap();
        assert_eq!(
            (config.llm.hedge_after, config.judge.hedge_after),
            (None, None)
        );
        let path = file("hedge.toml", "[llm]\nhedge_after_s = 2.5\n");
        let config = load(&[], Some(&path)).unwrap();
        let after = Some(Duration::from_millis(2500));
        assert_eq!(
            (config.llm.hedge_after, config.judge.hedge_after),
            (after, after)
        );
        let path = file(
            "hedge.toml",
            "[llm]\nhedge_after_s = 2.5\n[judge]\nhedge_after_s = 0\n",
        );
        assert_eq!(load(&[], Some(&path)).unwrap().judge.hedge_after, None);
    }

    #[test]
    fn api_keys_never_print() {
        let config = load(
            &[
                ("CROSSFIRE_LLM_BASE_URL", "http://a/v1"),
                ("CROSSFIRE_LLM_API_KEY", "sk-very-secret"),
            ],
            None,
        )
        .unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("sk-very-secret"), "{shown}");
        assert!(shown.contains("Secret(***)"), "{shown}");
    }

    #[test]
    fn no_moderation_endpoint_without_a_base_url() {
        assert_eq!(load(&[], None).unwrap().moderation, None);
        let path = file(
            "moderation-no-url.toml",
            "[moderation]\nbackend = \"guard\"\n",
        );
        assert_eq!(load(&[], Some(&path)).unwrap().moderation, None);
    }

    #[test]
    fn a_moderation_url_in_the_environment_selects_openai() {
        let config = load(
            &[
                ("CROSSFIRE_MODERATION_BASE_URL", "https://api.openai.com/v1"),
                ("CROSSFIRE_MODERATION_API_KEY", "sk-mod"),
            ],
            None,
        )
        .unwrap();
        let moderation = config.moderation.unwrap();
        assert_eq!(moderation.backend, ModerationBackend::Openai);
        assert_eq!(moderation.base_url, "https://api.openai.com/v1");
        assert_eq!(moderation.model, "omni-moderation-latest");
        assert_eq!(moderation.timeout, Duration::from_secs(5));
        assert_eq!(moderation.on_error, OnError::Refuse);
        assert_eq!(
            moderation.api_key.as_ref().map(Secret::expose),
            Some("sk-mod")
        );
        assert_eq!(config.llm.api_key, None, "the key is the endpoint's own");
    }

    #[test]
    fn a_guard_moderation_endpoint_from_file_and_environment() {
        let path = file(
            "moderation-guard.toml",
            "[moderation]\nbackend = \"openai\"\nmodel = \"llama-guard3:8b\"\ntimeout_s = 2.5\non_error = \"allow\"\n",
        );
        let config = load(
            &[
                ("CROSSFIRE_MODERATION_BASE_URL", "http://guard:8000/v1"),
                ("CROSSFIRE_MODERATION_BACKEND", "guard"),
            ],
            Some(&path),
        )
        .unwrap();
        let moderation = config.moderation.unwrap();
        assert_eq!(
            moderation.backend,
            ModerationBackend::Guard,
            "environment over file"
        );
        assert_eq!(moderation.model, "llama-guard3:8b");
        assert_eq!(moderation.timeout, Duration::from_millis(2500));
        assert_eq!(moderation.on_error, OnError::Allow);
        assert_eq!(moderation.api_key, None);
    }

    #[test]
    fn a_guard_moderation_endpoint_needs_a_model() {
        let err = load(
            &[
                ("CROSSFIRE_MODERATION_BASE_URL", "http://guard:8000/v1"),
                ("CROSSFIRE_MODERATION_BACKEND", "guard"),
            ],
            None,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "moderation.model: the guard backend needs a model \
             (CROSSFIRE_MODERATION_MODEL or [moderation] model)"
        );
        let err = load(&[("CROSSFIRE_MODERATION_BACKEND", "llama")], None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "CROSSFIRE_MODERATION_BACKEND=\"llama\": expected `openai` or `guard`"
        );
    }

    #[test]
    fn the_moderation_key_never_prints() {
        let config = load(
            &[
                ("CROSSFIRE_MODERATION_BASE_URL", "https://api.openai.com/v1"),
                ("CROSSFIRE_MODERATION_API_KEY", "sk-mod-very-secret"),
            ],
            None,
        )
        .unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("sk-mod-very-secret"), "{shown}");
        assert!(shown.contains("Secret(***)"), "{shown}");
    }

    #[test]
    fn bad_environment_values_name_the_variable() {
        let err = load(&[("CROSSFIRE_LLM_TIMEOUT_S", "soon")], None).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("CROSSFIRE_LLM_TIMEOUT_S=\"soon\""),
            "{err}"
        );
        let err = load(&[("CROSSFIRE_LLM_BACKEND", "gpu")], None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "CROSSFIRE_LLM_BACKEND=\"gpu\": expected `openai` or `embedded`"
        );
    }

    #[test]
    fn bad_values_name_the_key() {
        let cases = [
            (
                "[llm]\ntimeout_s = -1\n",
                "llm.timeout_s: must be a positive",
            ),
            (
                "[llm]\ntemperature = 9.0\n",
                "llm.temperature: must be between 0 and 2",
            ),
            (
                "[embedded]\nthreads = 0\n",
                "embedded.threads: must be at least 1",
            ),
            (
                "[llm]\nbase_url = \"localhost:1\"\n",
                "llm.base_url: `localhost:1` is not",
            ),
            (
                "[llm]\ntimeout_s = 1e30\n",
                "llm.timeout_s: must be a positive number of seconds, at most 86400",
            ),
            (
                "[llm]\nhedge_after_s = -2\n",
                "llm.hedge_after_s: must be a positive number of seconds (at most 86400) or 0",
            ),
            (
                "[judge]\nmax_in_flight = 0\n",
                "judge.max_in_flight: must be at least 1",
            ),
            (
                "[server]\nrun_lease_s = 0\n",
                "server.run_lease_s: must be at least 1",
            ),
            (
                "[moderation]\nbase_url = \"localhost:1\"\n",
                "moderation.base_url: `localhost:1` is not",
            ),
            (
                "[moderation]\nbase_url = \"http://m/v1\"\ntimeout_s = 0\n",
                "moderation.timeout_s: must be a positive",
            ),
        ];
        for (text, expected) in cases {
            let path = file("bad.toml", text);
            let err = load(&[], Some(&path)).unwrap_err().to_string();
            assert!(err.starts_with(expected), "{text:?}: {err}");
        }
    }

    #[test]
    fn the_example_file_is_valid() {
        let config = load(&[], Some(Path::new("crossfire.example.toml"))).unwrap();
        assert_eq!(config.llm.backend, Backend::Openai);
        assert_eq!(config.judge.base_url, config.llm.base_url);
        assert_eq!(config.judge.temperature, 0.0);
    }

    #[test]
    fn layers_apply_in_order_file_environment_flags() {
        let path = file(
            "layers.toml",
            "[llm]\nbase_url = \"http://x/v1\"\ntimeout_s = 5\n[paths]\nstories_dir = \"from-file\"\npersonas_dir = \"p-file\"\n",
        );
        let vars = [
            ("CROSSFIRE_STORIES_DIR", "from-env"),
            ("CROSSFIRE_LLM_TIMEOUT_S", "9"),
        ];
        let flags = Overrides {
            stories_dir: Some("from-flag".into()),
            ..Overrides::default()
        };
        let config = Config::load(
            Some(&path),
            |name| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            },
            &flags,
        )
        .unwrap();
        assert_eq!(
            config.llm.timeout,
            Duration::from_secs(9),
            "environment over file"
        );
        assert_eq!(
            config.library.stories_dir,
            PathBuf::from("from-flag"),
            "flags over all"
        );
        assert_eq!(
            config.library.personas_dir,
            PathBuf::from("p-file"),
            "file over default"
        );
        assert_eq!(
            config.library.prompts_dir,
            PathBuf::from("prompts"),
            "default"
        );
    }

    #[test]
    fn file_keys_are_strict_and_located() {
        let path = file(
            "crossfire.toml",
            "[llm]\nbase_url = \"http://x/v1\"\ntimeout = 5\n",
        );
        let err = load(&[], Some(&path)).unwrap_err().to_string();
        assert!(
            err.contains("crossfire.toml:3:1: unknown field `timeout`"),
            "{err}"
        );
    }
}
