//! Language models: one interface, [`LanguageModel`], that every backend serves; the
//! OpenAI-compatible client ([`openai`]), its SSE decoder and the retry policy live here, the
//! embedded model in its own crate.

pub mod endpoint;
mod json_string;
pub mod openai;
pub mod retry;
pub mod sse;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::Serialize;

crate::named_enum! {
    /// Who speaks a chat message.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    pub enum Role("chat role") {
        System = "system",
        User = "user",
        Assistant = "assistant",
    }
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Message {
    pub fn new(role: Role, content: impl Into<String>) -> Message {
        Message {
            role,
            content: content.into(),
        }
    }
}

/// A JSON schema the reply must follow.
#[derive(Debug, Clone)]
pub struct JsonSchema {
    name: String,
    schema: serde_json::Value,
    /// The schema as JSON text, written once: each judge call sends it.
    text: Box<serde_json::value::RawValue>,
}

impl JsonSchema {
    /// A schema named `name` (as `json_schema.name` sends it).
    pub fn new(name: impl Into<String>, schema: serde_json::Value) -> JsonSchema {
        let text = serde_json::value::to_raw_value(&schema)
            .unwrap_or_else(|_| serde_json::value::RawValue::NULL.to_owned());
        JsonSchema {
            name: name.into(),
            schema,
            text,
        }
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The schema, as a JSON value (the embedded model compiles it to a grammar).
    pub fn schema(&self) -> &serde_json::Value {
        &self.schema
    }

    /// The schema as JSON text.
    pub fn text(&self) -> &serde_json::value::RawValue {
        &self.text
    }
}

impl PartialEq for JsonSchema {
    fn eq(&self, other: &JsonSchema) -> bool {
        self.name == other.name && self.schema == other.schema
    }
}

/// How a request asks for structured output. Servers differ: OpenAI, vLLM and Ollama take
/// `json_schema`; llama-cpp-python's server refuses it but constrains `json_object` to a
/// `schema` given beside it.
#[derive(Debug, Clone, PartialEq)]
pub enum ResponseFormat {
    /// `{"type": "json_schema", "json_schema": {"name", "schema", "strict": true}}`
    JsonSchema(Arc<JsonSchema>),
    /// `{"type": "json_object", "schema": …}`
    JsonObject(Arc<JsonSchema>),
}

/// One chat-completion call.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    pub messages: Vec<Message>,
    pub max_tokens: u32,
    pub temperature: f32,
    pub seed: Option<u64>,
    pub response_format: Option<ResponseFormat>,
    /// Stream tokens as they come (debaters), or take the whole reply at once (the judge).
    pub stream: bool,
    /// Ask for each token's log-probability and this many most likely alternatives.
    pub top_logprobs: Option<u8>,
    /// The reply ends before any of these (at most four, as OpenAI takes).
    pub stop: Vec<String>,
    /// The reply so far, for the model to go on from rather than start again (only to a
    /// model that [`LanguageModel::continues_replies`]); `max_tokens` counts its tokens.
    pub continue_reply: Option<String>,
    /// A reader waits for this call's first sentence (a debate's first speech, a
    /// perspective): a backend that schedules its calls (the embedded model) writes that
    /// sentence before it fills other prompts.
    pub reader_waiting: bool,
}

impl ChatRequest {
    /// Whether `reply` says nothing: an empty reply to a fresh request is a failure to
    /// retry, but a reply gone on from ([`ChatRequest::continue_reply`]) may end where it
    /// stood, and asking again with the same seed would only say so again.
    pub fn is_empty_reply(&self, reply: &str) -> bool {
        reply.trim().is_empty() && self.continue_reply.is_none()
    }
}

/// Tokens a call or a debate consumed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, other: Usage) {
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
    }
}

/// Why a model stopped writing: the `finish_reason` of the OpenAI wire format.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// It ended its answer, or met a stop sequence.
    Stop,
    /// It reached `max_tokens`.
    Length,
    ContentFilter,
    ToolCalls,
    /// Anything else a server says, kept as written.
    #[serde(untagged)]
    Other(String),
}

impl From<&str> for FinishReason {
    fn from(reason: &str) -> FinishReason {
        use serde::Deserialize;
        use serde::de::IntoDeserializer;
        let wire: serde::de::value::StrDeserializer<'_, serde::de::value::Error> =
            reason.into_deserializer();
        FinishReason::deserialize(wire).unwrap_or_else(|_| FinishReason::Other(reason.into()))
    }
}

/// A finished call.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub text: String,
    pub usage: Usage,
    /// Text pieces streamed (a token count when the server reports no usage).
    pub chunks: u64,
    pub finish_reason: Option<FinishReason>,
    /// Per token, when asked for and the backend gives them.
    pub logprobs: Option<Vec<TokenLogprobs>>,
}

/// One generated token and the most likely tokens at its place.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprobs {
    pub token: String,
    /// Alternatives (the token itself among them, usually) with their log-probabilities.
    pub top: Vec<(String, f32)>,
}

/// How likely a model finds a text as its reply: the sum of its tokens' log-probabilities.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Likelihood {
    pub logprob: f64,
    pub tokens: usize,
}

/// Where a streaming call reports its progress.
pub trait TokenSink: Send + Sync {
    /// A piece of generated text.
    fn token(&self, text: &str);
    /// The call is being retried: the text sent so far must be dropped.
    fn restart(&self, reason: &str);
}

/// A sink that ignores everything, for calls nobody watches.
pub struct NoSink;

impl TokenSink for NoSink {
    fn token(&self, _: &str) {}
    fn restart(&self, _: &str) {}
}

/// Why a model call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LlmError {
    #[error("cannot reach the model at {url}: {detail}")]
    Connect { url: String, detail: String },
    #[error("the model at {url} answered {status}: {message}")]
    Status {
        url: String,
        status: u16,
        message: String,
        retry_after: Option<Duration>,
    },
    #[error("the model did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the model's stream broke off: {0}")]
    StreamCut(String),
    #[error("the model reported an error: {message}")]
    Remote { message: String, retryable: bool },
    #[error("unreadable answer from the model: {0}")]
    Protocol(String),
    #[error("the model returned no text")]
    Empty,
    /// The endpoint aborted this stream for another request (it is now called one at a time).
    #[error("{0} aborted the stream when another request arrived")]
    Overtaken(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{last} (gave up after {attempts} attempts)")]
    Exhausted { attempts: u32, last: Box<LlmError> },
}

impl LlmError {
    /// Whether trying the same call again may succeed.
    pub fn is_retryable(&self) -> bool {
        if self.rejects_response_format() || self.rejects("logprobs") {
            return false; // the same request will be refused again, whatever the status says
        }
        match self {
            LlmError::Connect { .. }
            | LlmError::Timeout(_)
            | LlmError::StreamCut(_)
            | LlmError::Empty
            | LlmError::Overtaken(_) => true,
            LlmError::Status { status, .. } => *status == 408 || *status == 429 || *status >= 500,
            LlmError::Remote { retryable, .. } => *retryable,
            LlmError::Protocol(_) | LlmError::Unavailable(_) | LlmError::Exhausted { .. } => false,
        }
    }

    /// Whether the server refused the request's `response_format` (servers without structured
    /// output answer 400, 422, or — llama-cpp-python — 500 with a validation error).
    pub fn rejects_response_format(&self) -> bool {
        self.rejects("response_format")
    }

    /// Whether the server refused the request because of one of its fields (`logprobs`,
    /// `response_format`): 400, 422, or 500 with a validation error naming it.
    pub fn rejects(&self, field: &str) -> bool {
        match self {
            LlmError::Status {
                status, message, ..
            } => matches!(status, 400 | 422 | 500) && message.contains(field),
            LlmError::Exhausted { last, .. } => last.rejects(field),
            _ => false,
        }
    }

    /// How long the server asked us to wait before trying again.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            LlmError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// A chat model, whatever runs it.
pub trait LanguageModel: Send + Sync {
    /// The model's name, recorded in results.
    fn name(&self) -> &str;

    /// Runs one call, streaming pieces of text into `sink` when the request asks to stream.
    fn complete<'a>(
        &'a self,
        request: &'a ChatRequest,
        sink: &'a dyn TokenSink,
    ) -> BoxFuture<'a, Result<Completion, LlmError>>;

    /// Whether the model's endpoint was found to abort concurrent streams, and so takes one
    /// call at a time.
    fn serial(&self) -> bool {
        false
    }

    /// Whether the model can go on from a reply begun earlier
    /// ([`ChatRequest::continue_reply`]): a backend that builds its own prompts can; an
    /// OpenAI-compatible endpoint has no portable way to.
    fn continues_replies(&self) -> bool {
        false
    }

    /// Whether [`LanguageModel::likelihood`] works: a backend that runs the model itself
    /// can read its probabilities; a chat endpoint cannot.
    fn scores_text(&self) -> bool {
        false
    }

    /// Computes ahead what the chats `prompts` begin with in common, so calls that begin so
    /// start from it; returns how many tokens of it the backend now holds. A backend that
    /// keeps prompts (the embedded model) can; a chat endpoint is not paid to guess: 0.
    fn prefill_shared<'a>(
        &'a self,
        _prompts: &'a [Vec<Message>],
    ) -> BoxFuture<'a, Result<usize, LlmError>> {
        Box::pin(async { Ok(0) })
    }

    /// How likely the model finds `reply` as its answer to `messages`, read token by token
    /// (teacher forcing), without generating anything.
    fn likelihood<'a>(
        &'a self,
        _messages: &'a [Message],
        _reply: &'a str,
    ) -> BoxFuture<'a, Result<Likelihood, LlmError>> {
        Box::pin(async {
            Err(LlmError::Unavailable(format!(
                "{} cannot score a text's likelihood",
                self.name()
            )))
        })
    }
}

impl<M: LanguageModel + ?Sized> LanguageModel for Arc<M> {
    fn name(&self) -> &str {
        (**self).name()
    }

    fn serial(&self) -> bool {
        (**self).serial()
    }

    fn scores_text(&self) -> bool {
        (**self).scores_text()
    }

    fn continues_replies(&self) -> bool {
        (**self).continues_replies()
    }

    fn likelihood<'a>(
        &'a self,
        messages: &'a [Message],
        reply: &'a str,
    ) -> BoxFuture<'a, Result<Likelihood, LlmError>> {
        (**self).likelihood(messages, reply)
    }

    fn prefill_shared<'a>(
        &'a self,
        prompts: &'a [Vec<Message>],
    ) -> BoxFuture<'a, Result<usize, LlmError>> {
        (**self).prefill_shared(prompts)
    }

    fn complete<'a>(
        &'a self,
        request: &'a ChatRequest,
        sink: &'a dyn TokenSink,
    ) -> BoxFuture<'a, Result<Completion, LlmError>> {
        (**self).complete(request, sink)
    }
}
