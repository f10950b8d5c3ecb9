//! The moderation endpoint: a second opinion on what the editors' policy let through.
//!
//! The policy's rules ([`super::Policy`]) are fast, explainable and editable, but they only
//! know the words and frames the editors wrote down; a trained classifier catches what no rule
//! foresaw. A deployment may therefore name one moderation endpoint, asked in addition to the
//! policy: OpenAI's `POST /moderations` ([`OpenAiModeration`]), or a guard model such as Llama
//! Guard 3 behind any OpenAI-compatible `POST /chat/completions` ([`GuardModeration`]). Both
//! answer in the policy's own category ids ([`CATEGORIES`], else [`OTHER`]), so a finding of
//! the endpoint reads like a finding of the rules.
//!
//! The calls are short JSON requests with one deadline each; any failure — no connection, an
//! error status, no answer in time, an answer that cannot be read — is one error,
//! [`ModerationError::Unavailable`], and the deployment's [`OnError`] says what becomes of the
//! texts then. The API key is a [`Secret`]: it is sent as `Authorization: Bearer` and never
//! appears in an error, a log or a `Debug`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::config::Secret;
use crate::llm::openai::{error_chain, snippet};

/// The model asked when the `openai` backend names none.
pub const DEFAULT_OPENAI_MODEL: &str = "omni-moderation-latest";

/// The deadline of each request when none is configured.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The category ids an endpoint's findings are mapped to — the policy's (`policy/*.toml`) —
/// in the order that decides between several: self-harm first, so that a reader in distress is
/// shown the helpline, then the gravest harms.
pub const CATEGORIES: &[&str] = &[
    "self_harm",
    "sexual_minors",
    "violence_incitement",
    "hate",
    "harassment_threats",
    "weapons_illicit",
    "defamation_private",
];

/// The category of a flagged text whose categories are none of [`CATEGORIES`].
pub const OTHER: &str = "other";

/// How many texts the guard backend asks about at once (one request each).
const GUARD_CONCURRENCY: usize = 8;

/// `max_tokens` of a guard request: `unsafe` and a few codes.
const GUARD_MAX_TOKENS: u32 = 20;

/// Which wire format the moderation endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModerationBackend {
    /// OpenAI's `POST {base_url}/moderations`, every text of a batch in one request.
    #[default]
    Openai,
    /// A guard model (Llama Guard 3) behind an OpenAI-compatible
    /// `POST {base_url}/chat/completions`, one request per text.
    Guard,
}

impl ModerationBackend {
    /// The backend's name in configuration: `openai` or `guard`.
    pub fn as_str(self) -> &'static str {
        match self {
            ModerationBackend::Openai => "openai",
            ModerationBackend::Guard => "guard",
        }
    }
}

impl std::str::FromStr for ModerationBackend {
    type Err = String;

    fn from_str(s: &str) -> Result<ModerationBackend, String> {
        match s.trim() {
            "openai" => Ok(ModerationBackend::Openai),
            "guard" => Ok(ModerationBackend::Guard),
            _ => Err("expected `openai` or `guard`".to_string()),
        }
    }
}

/// What becomes of texts the endpoint could not classify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Refuse them: nothing unscreened is shown (the default).
    #[default]
    Refuse,
    /// Let them through on the policy's verdict alone.
    Allow,
}

impl OnError {
    /// The setting's name in configuration: `refuse` or `allow`.
    pub fn as_str(self) -> &'static str {
        match self {
            OnError::Refuse => "refuse",
            OnError::Allow => "allow",
        }
    }
}

impl std::str::FromStr for OnError {
    type Err = String;

    fn from_str(s: &str) -> Result<OnError, String> {
        match s.trim() {
            "refuse" => Ok(OnError::Refuse),
            "allow" => Ok(OnError::Allow),
            _ => Err("expected `refuse` or `allow`".to_string()),
        }
    }
}

/// The moderation endpoint as the composition root hands it over. Its `Debug` shows no key
/// ([`Secret`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ModerationConfig {
    pub backend: ModerationBackend,
    /// The API's root, e.g. `https://api.openai.com/v1`; a trailing `/` is dropped.
    pub base_url: String,
    /// `omni-moderation-latest`, or the guard model's name on its server.
    pub model: String,
    /// Sent as `Authorization: Bearer <key>` when set.
    pub api_key: Option<Secret>,
    /// The deadline of each request, from sending it to reading the whole answer.
    pub timeout: Duration,
    /// What the caller does with texts when the endpoint fails (the clients only report it).
    pub on_error: OnError,
}

/// Why the endpoint could not classify a batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModerationError {
    /// No connection, an error status, no answer within the deadline, or an answer that
    /// cannot be read. `endpoint` is the base URL without credentials or query; neither field
    /// ever holds the API key.
    #[error("the moderation endpoint {endpoint} is unavailable: {detail}")]
    Unavailable { endpoint: String, detail: String },
}

/// A moderation endpoint, whichever its wire format.
pub trait Moderation: Send + Sync {
    /// Classifies `texts`: one entry per text, in order; `None` when the text is not flagged,
    /// else the id of its category ([`CATEGORIES`], or [`OTHER`]). One failure fails the batch.
    fn classify<'a>(
        &'a self,
        texts: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Option<String>>, ModerationError>>;

    /// The model asked, for logs and editors.
    fn name(&self) -> &str;
}

/// The client of the configured endpoint.
pub fn moderation(config: &ModerationConfig) -> Arc<dyn Moderation> {
    match config.backend {
        ModerationBackend::Openai => Arc::new(OpenAiModeration::new(config)),
        ModerationBackend::Guard => Arc::new(GuardModeration::new(config)),
    }
}

/// OpenAI's moderation API: `POST {base_url}/moderations` with `{"model", "input": [texts]}`,
/// one request per batch; its categories mapped to ours.
pub struct OpenAiModeration {
    caller: Caller,
    model: String,
}

impl OpenAiModeration {
    /// A client of `config`'s endpoint. A base URL that cannot be parsed is reported by each
    /// call, as [`ModerationError::Unavailable`].
    pub fn new(config: &ModerationConfig) -> OpenAiModeration {
        OpenAiModeration {
            caller: Caller::new(config, "moderations"),
            model: config.model.clone(),
        }
    }

    async fn classify_all(&self, texts: &[String]) -> Result<Vec<Option<String>>, ModerationError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let reply: WireModerations = self
            .caller
            .post(&ModerationRequest {
                model: &self.model,
                input: texts,
            })
            .await?;
        if let Some(error) = reply.error {
            return Err(self
                .caller
                .unavailable(format!("it reported an error: {}", error_text(&error))));
        }
        let results = reply.results.unwrap_or_default();
        if results.len() != texts.len() {
            return Err(self.caller.unavailable(format!(
                "expected {} results (one per text), got {}",
                texts.len(),
                results.len()
            )));
        }
        Ok(results.iter().map(openai_verdict).collect())
    }
}

/// A guard model (Llama Guard 3) behind an OpenAI-compatible chat endpoint: each text is the
/// user message of one non-streamed `POST {base_url}/chat/completions` at temperature 0 (the
/// model's chat template, on the server, asks the question), answered `safe` or
/// `unsafe\nS1,S10`; the hazard codes are mapped to our categories.
pub struct GuardModeration {
    caller: Caller,
    model: String,
}

impl GuardModeration {
    /// A client of `config`'s endpoint. A base URL that cannot be parsed is reported by each
    /// call, as [`ModerationError::Unavailable`].
    pub fn new(config: &ModerationConfig) -> GuardModeration {
        GuardModeration {
            caller: Caller::new(config, "chat/completions"),
            model: config.model.clone(),
        }
    }

    async fn classify_all(&self, texts: &[String]) -> Result<Vec<Option<String>>, ModerationError> {
        // Up to GUARD_CONCURRENCY requests at once, answers kept in the texts' order; the
        // first failure ends the batch.
        // (The calls are collected first: a closure in the stream's type would make the
        // future not `Send` for the compiler's higher-ranked lifetime check.)
        let calls: Vec<_> = texts.iter().map(|text| self.classify_one(text)).collect();
        futures::stream::iter(calls)
            .buffered(GUARD_CONCURRENCY)
            .try_collect()
            .await
    }

    async fn classify_one(&self, text: &str) -> Result<Option<String>, ModerationError> {
        let reply: WireCompletion = self
            .caller
            .post(&GuardRequest {
                model: &self.model,
                messages: [GuardMessage {
                    role: "user",
                    content: text,
                }],
                temperature: 0.0,
                max_tokens: GUARD_MAX_TOKENS,
                stream: false,
            })
            .await?;
        if let Some(error) = reply.error {
            return Err(self
                .caller
                .unavailable(format!("it reported an error: {}", error_text(&error))));
        }
        let content = reply
            .choices
            .into_iter()
            .next()
            .and_then(|choice| choice.message.content)
            .ok_or_else(|| self.caller.unavailable("it answered no text".to_string()))?;
        parse_guard(&content)
            .map(|category| category.map(str::to_string))
            .map_err(|detail| self.caller.unavailable(detail))
    }
}

/// The `Moderation` and `Debug` of a client: its own `classify_all`, and its model's name;
/// `Debug` shows the endpoint without credentials, never the key.
macro_rules! moderation_client {
    ($($client:ident),+) => {$(
        impl Moderation for $client {
            fn classify<'a>(
                &'a self,
                texts: &'a [String],
            ) -> BoxFuture<'a, Result<Vec<Option<String>>, ModerationError>> {
                Box::pin(self.classify_all(texts))
            }

            fn name(&self) -> &str {
                &self.model
            }
        }

        impl fmt::Debug for $client {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($client))
                    .field("endpoint", &self.caller.endpoint)
                    .field("model", &self.model)
                    .finish_non_exhaustive()
            }
        }
    )+};
}

moderation_client!(OpenAiModeration, GuardModeration);

/// Our category for one of OpenAI's moderation categories, if it is one of ours.
fn openai_category(name: &str) -> Option<&'static str> {
    Some(match name {
        "hate" | "hate/threatening" => "hate",
        "harassment" | "harassment/threatening" => "harassment_threats",
        "violence" | "violence/graphic" => "violence_incitement",
        "self-harm" | "self-harm/intent" | "self-harm/instructions" => "self_harm",
        "sexual" | "sexual/minors" => "sexual_minors",
        "illicit" | "illicit/violent" => "weapons_illicit",
        _ => return None,
    })
}

/// Our category for one of Llama Guard 3's hazard codes (`S1`…`S14`), if it is one of ours.
fn guard_category(code: &str) -> Option<&'static str> {
    Some(match code.to_ascii_uppercase().as_str() {
        "S1" => "violence_incitement",
        "S2" | "S9" => "weapons_illicit",
        "S3" | "S4" | "S12" => "sexual_minors",
        "S5" => "defamation_private",
        "S7" => "harassment_threats",
        "S10" => "hate",
        "S11" => "self_harm",
        _ => return None,
    })
}

/// Of a flagged text's categories, the one that comes first in [`CATEGORIES`]; [`OTHER`] when
/// none is ours.
fn first_category(categories: impl IntoIterator<Item = Option<&'static str>>) -> &'static str {
    categories
        .into_iter()
        .flatten()
        .min_by_key(|id| CATEGORIES.iter().position(|c| c == id))
        .unwrap_or(OTHER)
}

/// One text's result from `/moderations`. `flagged` decides (when absent: whether any category
/// is true); the category is chosen among the true ones.
fn openai_verdict(result: &WireResult) -> Option<String> {
    let named: Vec<&str> = result
        .categories
        .iter()
        .filter(|(_, value)| value.as_bool() == Some(true))
        .map(|(name, _)| name.as_str())
        .collect();
    let flagged = result.flagged.unwrap_or(!named.is_empty());
    flagged.then(|| first_category(named.into_iter().map(openai_category)).to_string())
}

/// A guard model's answer: `safe`, or `unsafe` and its hazard codes (`unsafe\nS1,S10`), in
/// any case and spacing; anything else is unreadable.
fn parse_guard(answer: &str) -> Result<Option<&'static str>, String> {
    let mut words = answer
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty());
    match words.next().map(str::to_ascii_lowercase).as_deref() {
        Some("safe") => Ok(None),
        Some("unsafe") => Ok(Some(first_category(words.map(guard_category)))),
        _ => Err(format!(
            "unreadable answer from the guard model (neither `safe` nor `unsafe`): {}",
            snippet(answer)
        )),
    }
}

/// The HTTP side both backends share: one client, one URL, the key and the deadline.
struct Caller {
    /// The client and the URL called, or why they could not be made (told at each call).
    target: Result<(reqwest::Client, reqwest::Url), String>,
    /// The base URL as errors show it: no credentials, no query.
    endpoint: String,
    api_key: Option<Secret>,
    timeout: Duration,
    /// What an error must never show: the key, a password in the URL.
    secrets: Vec<String>,
}

impl Caller {
    fn new(config: &ModerationConfig, path: &str) -> Caller {
        let base = config.base_url.trim().trim_end_matches('/');
        // One TLS provider (ring) for the whole process; a second install is a harmless no-op.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let target = reqwest::Url::parse(&format!("{base}/{path}"))
            .map_err(|e| format!("bad base URL: {e}"))
            .and_then(|url| {
                reqwest::Client::builder()
                    .connect_timeout(config.timeout.min(Duration::from_secs(10)))
                    .build()
                    .map(|http| (http, url))
                    .map_err(|e| format!("cannot build the HTTP client: {}", error_chain(&e)))
            });
        let api_key = config
            .api_key
            .clone()
            .filter(|key| !key.expose().is_empty());
        let mut secrets: Vec<String> = api_key.iter().map(|k| k.expose().to_string()).collect();
        if let Ok((_, url)) = &target
            && let Some(password) = url.password().filter(|p| !p.is_empty())
        {
            secrets.push(password.to_string());
        }
        Caller {
            target,
            endpoint: without_credentials(base),
            api_key,
            timeout: config.timeout,
            secrets,
        }
    }

    /// POSTs `body` as JSON and reads the answer as `T`, all within the deadline.
    async fn post<T: DeserializeOwned>(&self, body: &impl Serialize) -> Result<T, ModerationError> {
        let (http, url) = self
            .target
            .as_ref()
            .map_err(|detail| self.unavailable(detail.clone()))?;
        let body = serde_json::to_vec(body)
            .map_err(|e| self.unavailable(format!("cannot encode the request: {e}")))?;
        let exchange = async {
            let mut request = http
                .post(url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
            if let Some(key) = &self.api_key {
                request = request.bearer_auth(key.expose());
            }
            let response = request.send().await.map_err(transport_error)?;
            let status = response.status();
            let bytes = response.bytes().await.map_err(transport_error)?;
            if !status.is_success() {
                return Err(format!(
                    "it answered {status}: {}",
                    snippet(&String::from_utf8_lossy(&bytes))
                ));
            }
            serde_json::from_slice::<T>(&bytes).map_err(|e| {
                format!(
                    "unreadable answer ({e}): {}",
                    snippet(&String::from_utf8_lossy(&bytes))
                )
            })
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(detail)) => Err(self.unavailable(detail)),
            Err(_) => Err(self.unavailable(format!("no answer within {:?}", self.timeout))),
        }
    }

    /// The error for `detail`, with every secret in it masked (a server may echo the request).
    fn unavailable(&self, mut detail: String) -> ModerationError {
        for secret in &self.secrets {
            detail = detail.replace(secret.as_str(), "***");
        }
        ModerationError::Unavailable {
            endpoint: self.endpoint.clone(),
            detail,
        }
    }
}

/// A transport failure, without the URL reqwest would add (it may carry credentials).
fn transport_error(e: reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "the request failed"
    };
    format!("{what}: {}", error_chain(&e.without_url()))
}

/// `url` without user, password, query or fragment, and without a trailing `/`.
fn without_credentials(url: &str) -> String {
    // (`user:pw@host` parses too, as a URL of scheme `user` with no host.)
    if let Some(mut parsed) = reqwest::Url::parse(url).ok().filter(|u| u.has_host()) {
        let _ = parsed.set_username("");
        let _ = parsed.set_password(None);
        parsed.set_query(None);
        parsed.set_fragment(None);
        return parsed.as_str().trim_end_matches('/').to_string();
    }
    // Not a URL: cut what would be user information or a query all the same.
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), url),
    };
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    format!("{scheme}{host}{path}")
}

/// The message of an `error` member: `{"message": …}` or a string.
fn error_text(error: &serde_json::Value) -> String {
    match error {
        serde_json::Value::String(s) => snippet(s),
        other => match other.get("message").and_then(|m| m.as_str()) {
            Some(message) => snippet(message),
            None => snippet(&other.to_string()),
        },
    }
}

/// `POST /moderations` as sent.
#[derive(Serialize)]
struct ModerationRequest<'a> {
    model: &'a str,
    input: &'a [String],
}

/// `/moderations`' answer, read leniently: unknown members (`id`, `model`,
/// `category_scores`, `category_applied_input_types`, …) are ignored.
#[derive(Deserialize)]
struct WireModerations {
    #[serde(default)]
    results: Option<Vec<WireResult>>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct WireResult {
    #[serde(default)]
    flagged: Option<bool>,
    /// Category names to booleans; a value that is not `true` (false, null) is not a finding.
    #[serde(default)]
    categories: BTreeMap<String, serde_json::Value>,
}

/// A guard request: `POST /chat/completions`, not streamed.
#[derive(Serialize)]
struct GuardRequest<'a> {
    model: &'a str,
    messages: [GuardMessage<'a>; 1],
    temperature: f32,
    max_tokens: u32,
    stream: bool,
}

#[derive(Serialize)]
struct GuardMessage<'a> {
    role: &'a str,
    content: &'a str,
}

/// A chat completion, read leniently.
#[derive(Deserialize)]
struct WireCompletion {
    #[serde(default)]
    choices: Vec<WireChoice>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct WireChoice {
    #[serde(default)]
    message: WireMessage,
}

#[derive(Deserialize, Default)]
struct WireMessage {
    #[serde(default)]
    content: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_answers_are_read_leniently() {
        assert_eq!(parse_guard("safe"), Ok(None));
        assert_eq!(parse_guard("\n\nsafe\n"), Ok(None));
        assert_eq!(parse_guard(" Safe "), Ok(None));
        assert_eq!(parse_guard("unsafe\nS10"), Ok(Some("hate")));
        assert_eq!(parse_guard(" unsafe\nS10\n"), Ok(Some("hate")));
        assert_eq!(parse_guard("unsafe\ns11"), Ok(Some("self_harm")));
        // Several codes: the first of CATEGORIES wins, whatever their order.
        assert_eq!(
            parse_guard("unsafe\nS10, S1"),
            Ok(Some("violence_incitement"))
        );
        assert_eq!(parse_guard("unsafe\nS1,S11"), Ok(Some("self_harm")));
        assert_eq!(parse_guard("unsafe\nS6"), Ok(Some(OTHER)));
        assert_eq!(parse_guard("unsafe"), Ok(Some(OTHER)));
        assert!(parse_guard("").is_err());
        assert!(parse_guard("I cannot help with that.").is_err());
        assert!(parse_guard("safety first").is_err());
    }

    #[test]
    fn credentials_and_queries_never_reach_the_endpoint_shown() {
        assert_eq!(
            without_credentials("https://user:pw@mod.example/v1/?key=k#x"),
            "https://mod.example/v1"
        );
        assert_eq!(
            without_credentials("http://127.0.0.1:8080/v1"),
            "http://127.0.0.1:8080/v1"
        );
        assert_eq!(
            without_credentials("user:pw@[bad/v1?key=k"),
            "[bad/v1",
            "not a URL"
        );
        assert_eq!(without_credentials("ht!tp://u:p@host/x"), "ht!tp://host/x");
    }

    #[test]
    fn an_openai_result_takes_flagged_and_the_true_categories() {
        let result =
            |json: serde_json::Value| -> WireResult { serde_json::from_value(json).unwrap() };
        assert_eq!(
            openai_verdict(&result(serde_json::json!({
                "flagged": true,
                "categories": {"harassment": true, "hate": true, "sexual": false, "violence": null},
            }))),
            Some("hate".to_string())
        );
        assert_eq!(
            openai_verdict(&result(serde_json::json!({
                "flagged": true,
                "categories": {"elections": true, "hate": false},
            }))),
            Some(OTHER.to_string())
        );
        assert_eq!(
            openai_verdict(&result(
                serde_json::json!({"flagged": false, "categories": {}})
            )),
            None
        );
        assert_eq!(
            openai_verdict(&result(
                serde_json::json!({"categories": {"illicit/violent": true}})
            )),
            Some("weapons_illicit".to_string()),
            "no `flagged`: the categories decide"
        );
    }
}
