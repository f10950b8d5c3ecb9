//! The `openai` backend: any OpenAI-compatible `POST {base_url}/chat/completions`, streamed
//! over SSE or not, written leniently because servers differ (empty `usage: {}`, role-only
//! first deltas, `reasoning_content`, error frames inside a 200 stream, JSON error bodies).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::endpoint::{Call, Endpoint, endpoint};
use super::json_string;
use super::sse::SseDecoder;
use super::{
    ChatRequest, Completion, FinishReason, LanguageModel, LlmError, ResponseFormat, TokenLogprobs,
    TokenSink, Usage,
};
use crate::config::{LlmConfig, Secret};

/// A client for one OpenAI-compatible endpoint.
pub struct OpenAiClient {
    http: reqwest::Client,
    /// Parsed once: parsing it for every call showed in profiles.
    url: reqwest::Url,
    model: String,
    api_key: Option<Secret>,
    timeout: Duration,
    /// With no response begun after this long, the same request is sent again beside it.
    hedge_after: Option<Duration>,
    /// Bounds the calls in flight to this endpoint.
    in_flight: Arc<Semaphore>,
    /// What the process knows of the endpoint's concurrency (shared by URL).
    endpoint: Arc<Endpoint>,
}

impl OpenAiClient {
    pub fn new(config: &LlmConfig) -> Result<OpenAiClient, LlmError> {
        let base = config
            .base_url
            .as_deref()
            .ok_or_else(|| LlmError::Unavailable("no base URL for the openai backend".into()))?;
        // One TLS provider (ring) for the whole process; a second install is a harmless no-op.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| LlmError::Unavailable(format!("cannot build the HTTP client: {e}")))?;
        let url = chat_url(base)?;
        Ok(OpenAiClient {
            http,
            endpoint: endpoint(url.as_str()),
            url,
            model: config.model.clone(),
            api_key: config.api_key.clone(),
            timeout: config.timeout,
            hedge_after: config.hedge_after.filter(|after| *after < config.timeout),
            in_flight: Arc::new(Semaphore::new(config.max_in_flight)),
        })
    }

    /// The request body. serde_json writes the settings; the messages, nearly all of the
    /// bytes, are written by [`json_string`], which escapes them several times faster.
    fn body(&self, request: &ChatRequest) -> Result<Vec<u8>, LlmError> {
        let settings = serde_json::to_vec(&self.settings(request))
            .map_err(|e| LlmError::Protocol(format!("cannot encode the request: {e}")))?;
        let size: usize = request.messages.iter().map(|m| m.content.len() + 40).sum();
        let mut body = Vec::with_capacity(size + settings.len() + 16);
        body.extend_from_slice(b"{\"messages\":[");
        for (i, message) in request.messages.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(b"{\"role\":\"");
            body.extend_from_slice(message.role.as_str().as_bytes());
            body.extend_from_slice(b"\",\"content\":");
            json_string::write(&mut body, &message.content);
            body.push(b'}');
        }
        body.push(b']');
        // The settings are an object that starts `{"model":`; their members follow.
        body.push(b',');
        body.extend_from_slice(settings.get(1..).unwrap_or_default());
        Ok(body)
    }

    /// Every member of the request but its messages.
    fn settings<'a>(&'a self, request: &'a ChatRequest) -> WireSettings<'a> {
        WireSettings {
            model: &self.model,
            max_tokens: request.max_tokens,
            temperature: request.temperature,
            stream: request.stream,
            stream_options: request.stream.then_some(StreamOptions {
                include_usage: true,
            }),
            seed: request.seed,
            response_format: request.response_format.as_ref().map(|format| match format {
                ResponseFormat::JsonSchema(f) => WireFormat::JsonSchema {
                    json_schema: WireSchema {
                        name: f.name(),
                        schema: f.text(),
                        strict: true,
                    },
                },
                ResponseFormat::JsonObject(f) => WireFormat::JsonObject { schema: f.text() },
            }),
            logprobs: request.top_logprobs.is_some(),
            top_logprobs: request.top_logprobs,
            stop: &request.stop,
        }
    }

    /// Whether the endpoint takes one call at a time, having aborted concurrent streams.
    pub fn is_serial(&self) -> bool {
        self.endpoint.is_serial()
    }

    async fn call(
        &self,
        request: &ChatRequest,
        sink: &dyn TokenSink,
    ) -> Result<Completion, LlmError> {
        let _permit = self
            .in_flight
            .acquire()
            .await
            .map_err(|_| LlmError::Unavailable("client closed".into()))?;
        let call = self.endpoint.begin().await;
        let result = self.send(request, &call.watch(sink), &call).await;
        call.observe(result)
    }

    /// The endpoint's concurrency, shared by every client of its URL.
    pub fn endpoint(&self) -> &Arc<Endpoint> {
        &self.endpoint
    }

    async fn send(
        &self,
        request: &ChatRequest,
        sink: &dyn TokenSink,
        call: &Call<'_>,
    ) -> Result<Completion, LlmError> {
        let body = self.body(request)?;
        let mut builder = self
            .http
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(key) = &self.api_key {
            builder = builder.bearer_auth(key.expose());
        }
        let response = self.respond(builder, call).await?;
        let status = response.status();
        if !status.is_success() {
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(|s| Duration::from_secs_f64(s.min(300.0)));
            let body = tokio::time::timeout(self.timeout, response.text())
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            return Err(LlmError::Status {
                url: self.url.to_string(),
                status: status.as_u16(),
                message: error_message(status, &body),
                retry_after,
            });
        }
        call.accepted();
        if request.stream {
            self.read_stream(response, sink).await
        } else {
            let body = tokio::time::timeout(self.timeout, response.bytes())
                .await
                .map_err(|_| LlmError::Timeout(self.timeout))?
                .map_err(|e| self.transport_error(e))?;
            parse_completion(&body)
        }
    }

    /// Sends the request and waits for its response to begin. A call that has heard nothing
    /// after `hedge_after` sends the same request again beside the first and takes whichever
    /// answers first, dropping the other (its connection closed): a request lost in a hung
    /// backend then costs `hedge_after`, not the whole timeout. Not while the endpoint takes
    /// calls one at a time, where a second request would abort the first.
    async fn respond(
        &self,
        builder: reqwest::RequestBuilder,
        call: &Call<'_>,
    ) -> Result<reqwest::Response, LlmError> {
        let deadline = Instant::now() + self.timeout;
        let hedge = match self.hedge_after {
            Some(after) if !call.is_alone() => builder.try_clone().map(|again| (after, again)),
            _ => None,
        };
        let answer = match hedge {
            None => tokio::time::timeout_at(deadline, builder.send()).await,
            Some((after, again)) => {
                let mut first = Box::pin(builder.send());
                match tokio::time::timeout(after, &mut first).await {
                    Ok(answer) => Ok(answer),
                    Err(_) => {
                        call.hedged();
                        let second = Box::pin(again.send());
                        tokio::time::timeout_at(deadline, first_answer(first, second)).await
                    }
                }
            }
        };
        answer
            .map_err(|_| LlmError::Timeout(self.timeout))?
            .map_err(|e| self.transport_error(e))
    }

    async fn read_stream(
        &self,
        response: reqwest::Response,
        sink: &dyn TokenSink,
    ) -> Result<Completion, LlmError> {
        let mut stream = response.bytes_stream();
        let mut state = StreamState::default();
        // The timeout is for silence. One timer for the whole stream, moved on only when it
        // fires, costs far less than a new timer for every chunk.
        let mut heard = Instant::now();
        let silence = tokio::time::sleep(self.timeout);
        tokio::pin!(silence);
        loop {
            let next = tokio::select! {
                biased;
                next = stream.next() => next,
                () = &mut silence => {
                    if heard.elapsed() >= self.timeout {
                        return Err(LlmError::Timeout(self.timeout));
                    }
                    silence.as_mut().reset(heard + self.timeout);
                    continue;
                }
            };
            heard = Instant::now();
            let chunk = match next {
                None => break,
                Some(Err(e)) => return Err(LlmError::StreamCut(e.to_string())),
                Some(Ok(chunk)) => chunk,
            };
            if state.push(&chunk, sink)? {
                return Ok(state.finish());
            }
        }
        state.end(sink)
    }

    fn transport_error(&self, e: reqwest::Error) -> LlmError {
        if e.is_timeout() {
            LlmError::Timeout(self.timeout)
        } else if e.is_connect() || e.is_request() {
            LlmError::Connect {
                url: self.url.to_string(),
                detail: error_chain(&e),
            }
        } else {
            LlmError::StreamCut(error_chain(&e))
        }
    }
}

/// The first of two requests to answer (any status); if one fails to connect or send, the
/// other's outcome.
async fn first_answer<F>(first: F, second: F) -> Result<reqwest::Response, reqwest::Error>
where
    F: std::future::Future<Output = Result<reqwest::Response, reqwest::Error>> + Unpin,
{
    match futures::future::select(first, second).await {
        futures::future::Either::Left((Ok(response), _))
        | futures::future::Either::Right((Ok(response), _)) => Ok(response),
        futures::future::Either::Left((Err(_), other))
        | futures::future::Either::Right((Err(_), other)) => other.await,
    }
}

impl LanguageModel for OpenAiClient {
    fn name(&self) -> &str {
        &self.model
    }

    fn complete<'a>(
        &'a self,
        request: &'a ChatRequest,
        sink: &'a dyn TokenSink,
    ) -> BoxFuture<'a, Result<Completion, LlmError>> {
        Box::pin(self.call(request, sink))
    }

    fn serial(&self) -> bool {
        self.is_serial()
    }
}

/// The URL a client of the endpoint at `base` (`http://host:port/v1`) calls: its
/// [`Endpoint`] is [`endpoint`]`(chat_url(base)?.as_str())`.
pub fn chat_url(base: &str) -> Result<reqwest::Url, LlmError> {
    let url = format!("{}/chat/completions", base.trim_end_matches('/'));
    reqwest::Url::parse(&url)
        .map_err(|e| LlmError::Unavailable(format!("bad base URL `{base}`: {e}")))
}

/// `POST /chat/completions` as sent, but for its messages (written by `OpenAiClient::body`).
#[derive(Serialize)]
struct WireSettings<'a> {
    model: &'a str,
    max_tokens: u32,
    temperature: f32,
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<WireFormat<'a>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    logprobs: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_logprobs: Option<u8>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

/// `response_format` as sent, borrowing the schema (the judge's is built once).
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireFormat<'a> {
    /// `{"type": "json_schema", "json_schema": {"name", "schema", "strict": true}}`
    JsonSchema { json_schema: WireSchema<'a> },
    /// `{"type": "json_object", "schema": …}`
    JsonObject {
        schema: &'a serde_json::value::RawValue,
    },
}

#[derive(Serialize)]
struct WireSchema<'a> {
    name: &'a str,
    schema: &'a serde_json::value::RawValue,
    strict: bool,
}

/// What a stream has said so far.
#[derive(Default)]
struct StreamState {
    decoder: SseDecoder,
    text: String,
    chunks: u64,
    usage: Usage,
    finish_reason: Option<FinishReason>,
}

impl StreamState {
    /// Takes a chunk of bytes, however split; returns true at `[DONE]`.
    fn push(&mut self, chunk: &[u8], sink: &dyn TokenSink) -> Result<bool, LlmError> {
        for event in self.decoder.push(chunk) {
            if self.apply(&event.event, &event.data, sink)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// What a stream that ended without `[DONE]` amounts to. A last event cut off mid-way is
    /// a broken stream; some servers end a finished stream without `[DONE]`, so a stream that
    /// said it finished is complete; any other stream was cut.
    fn end(mut self, sink: &dyn TokenSink) -> Result<Completion, LlmError> {
        if let Some(event) = self.decoder.finish() {
            match self.apply(&event.event, &event.data, sink) {
                Ok(_) => {}
                Err(LlmError::Protocol(_)) => {
                    return Err(LlmError::StreamCut("the stream ended mid-message".into()));
                }
                Err(e) => return Err(e),
            }
        }
        if self.finish_reason.is_some() {
            Ok(self.finish())
        } else {
            Err(LlmError::StreamCut(
                "the stream ended before the reply was finished".into(),
            ))
        }
    }

    /// Applies one SSE event; returns true at `[DONE]`.
    fn apply(&mut self, event: &str, data: &str, sink: &dyn TokenSink) -> Result<bool, LlmError> {
        let data = data.trim();
        if data == "[DONE]" {
            return Ok(true);
        }
        let chunk: StreamChunk = serde_json::from_str(data).map_err(|e| {
            LlmError::Protocol(format!("bad stream chunk ({e}): {}", snippet(data)))
        })?;
        if let Some(error) = chunk.error {
            return Err(error.into_llm_error());
        }
        if event == "error" {
            return Err(LlmError::Remote {
                message: snippet(data),
                retryable: true,
            });
        }
        if let Some(usage) = chunk.usage {
            self.usage = usage.into();
        }
        for choice in chunk.choices {
            if let Some(content) = choice.delta.content.filter(|c| !c.is_empty()) {
                sink.token(&content);
                self.text.push_str(&content);
                self.chunks += 1;
            }
            if let Some(reason) = choice.finish_reason {
                self.finish_reason = Some(reason);
            }
        }
        Ok(false)
    }

    fn finish(self) -> Completion {
        // Servers that report no usage (llama-cpp-python) stream one token a delta.
        let usage = if self.usage == Usage::default() {
            Usage {
                prompt_tokens: 0,
                completion_tokens: self.chunks,
            }
        } else {
            self.usage
        };
        Completion {
            text: self.text,
            usage,
            chunks: self.chunks,
            finish_reason: self.finish_reason,
            logprobs: None,
        }
    }
}

/// One chunk of a stream; the delta's text is borrowed from the chunk unless it has escapes.
#[derive(Deserialize)]
struct StreamChunk<'a> {
    #[serde(default, borrow)]
    choices: Vec<StreamChoice<'a>>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<WireError>,
}

#[derive(Deserialize)]
struct StreamChoice<'a> {
    #[serde(default, borrow)]
    delta: Delta<'a>,
    #[serde(default)]
    finish_reason: Option<FinishReason>,
}

#[derive(Deserialize, Default)]
struct Delta<'a> {
    #[serde(default, borrow)]
    content: Option<std::borrow::Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
}

impl From<WireUsage> for Usage {
    fn from(u: WireUsage) -> Usage {
        Usage {
            prompt_tokens: u.prompt_tokens.unwrap_or(0),
            completion_tokens: u.completion_tokens.unwrap_or(0),
        }
    }
}

/// `{"error": {"message": …, "code": …}}` or `{"error": "…"}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum WireError {
    Object {
        #[serde(default)]
        message: Option<String>,
        #[serde(default)]
        code: Option<serde_json::Value>,
    },
    Text(String),
}

impl WireError {
    fn into_llm_error(self) -> LlmError {
        match self {
            WireError::Object { message, code } => {
                let status = code.as_ref().and_then(|c| {
                    c.as_u64()
                        .or_else(|| c.as_str().and_then(|s| s.parse().ok()))
                });
                // A client error (bad request, context too long) will fail again; anything else
                // is the server's trouble and worth another try.
                let retryable = !matches!(status, Some(400..=499)) || status == Some(429);
                LlmError::Remote {
                    message: message.unwrap_or_else(|| "unknown error".into()),
                    retryable,
                }
            }
            WireError::Text(message) => LlmError::Remote {
                message,
                retryable: true,
            },
        }
    }
}

#[derive(Deserialize)]
struct WholeCompletion {
    #[serde(default)]
    choices: Vec<WholeChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<WireError>,
}

#[derive(Deserialize)]
struct WholeChoice {
    #[serde(default)]
    message: WholeMessage,
    #[serde(default)]
    finish_reason: Option<FinishReason>,
    #[serde(default)]
    logprobs: Option<WireLogprobs>,
}

/// `choices[].logprobs` as OpenAI, vLLM and llama.cpp's server send it.
#[derive(Deserialize)]
struct WireLogprobs {
    #[serde(default)]
    content: Option<Vec<WireTokenLogprob>>,
}

#[derive(Deserialize)]
struct WireTokenLogprob {
    #[serde(default)]
    token: String,
    #[serde(default)]
    logprob: f32,
    #[serde(default)]
    top_logprobs: Vec<WireTopLogprob>,
}

#[derive(Deserialize)]
struct WireTopLogprob {
    #[serde(default)]
    token: String,
    #[serde(default)]
    logprob: f32,
}

#[derive(Deserialize, Default)]
struct WholeMessage {
    #[serde(default)]
    content: Option<String>,
}

/// Parses a non-streamed reply.
fn parse_completion(body: &[u8]) -> Result<Completion, LlmError> {
    let whole: WholeCompletion = serde_json::from_slice(body).map_err(|e| {
        LlmError::Protocol(format!(
            "bad completion ({e}): {}",
            snippet(&String::from_utf8_lossy(body))
        ))
    })?;
    if let Some(error) = whole.error {
        return Err(error.into_llm_error());
    }
    let choice = whole
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| LlmError::Protocol("a completion with no choices".into()))?;
    let text = choice.message.content.unwrap_or_default();
    let logprobs = choice
        .logprobs
        .and_then(|l| l.content)
        .filter(|tokens| !tokens.is_empty())
        .map(|tokens| {
            tokens
                .into_iter()
                .map(|t| {
                    let mut top: Vec<(String, f32)> = t
                        .top_logprobs
                        .into_iter()
                        .map(|a| (a.token, a.logprob))
                        .collect();
                    if !top.iter().any(|(token, _)| *token == t.token) {
                        top.push((t.token.clone(), t.logprob));
                    }
                    TokenLogprobs {
                        token: t.token,
                        top,
                    }
                })
                .collect()
        });
    Ok(Completion {
        chunks: u64::from(!text.is_empty()),
        text,
        usage: whole.usage.map(Usage::from).unwrap_or_default(),
        finish_reason: choice.finish_reason,
        logprobs,
    })
}

/// The message of an error body, JSON or not.
fn error_message(status: reqwest::StatusCode, body: &str) -> String {
    #[derive(Deserialize)]
    struct Body {
        error: WireError,
    }
    let reason = status.canonical_reason().unwrap_or("");
    let detail = match serde_json::from_str::<Body>(body) {
        Ok(Body {
            error: WireError::Object {
                message: Some(m), ..
            },
        })
        | Ok(Body {
            error: WireError::Text(m),
        }) => m,
        _ => snippet(body),
    };
    if detail.is_empty() {
        reason.to_string()
    } else {
        format!("{reason}: {detail}")
    }
}

/// The start of a server's text, for an error message.
pub(crate) fn snippet(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// An error with its causes, one after another.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

/// Decodes the bytes of a streamed response, chunked in any way, exactly as the client does.
pub fn decode_stream<'a>(
    chunks: impl IntoIterator<Item = &'a [u8]>,
    sink: &dyn TokenSink,
) -> Result<Completion, LlmError> {
    let mut state = StreamState::default();
    for chunk in chunks {
        if state.push(chunk, sink)? {
            return Ok(state.finish());
        }
    }
    state.end(sink)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Backend;
    use crate::llm::{JsonSchema, Message, Role};
    use serde_json::json;

    #[test]
    fn the_body_holds_the_messages_and_every_setting() {
        let client = OpenAiClient::new(&LlmConfig {
            backend: Backend::Openai,
            base_url: Some("http://127.0.0.1:9/v1".into()),
            model: "m\"1".into(),
            api_key: None,
            timeout: Duration::from_secs(5),
            max_in_flight: 1,
            max_retries: 0,
            retry_base: Duration::from_millis(10),
            hedge_after: None,
            max_tokens: 100,
            temperature: 0.7,
            brief_prompts: false,
        })
        .unwrap();
        let schema = Arc::new(JsonSchema::new("verdict", json!({"type": "object"})));
        let request = ChatRequest {
            messages: vec![
                Message::new(Role::System, "You are \"Churchill\".\n\tSpeak."),
                Message::new(Role::User, "The motion: ⟦1940⟧ \\ war."),
            ],
            max_tokens: 300,
            temperature: 0.5,
            seed: Some(7),
            response_format: Some(ResponseFormat::JsonSchema(schema)),
            stream: true,
            top_logprobs: Some(3),
            stop: vec!["</response>".into()],
            continue_reply: None,
            reader_waiting: false,
        };
        let body: serde_json::Value =
            serde_json::from_slice(&client.body(&request).unwrap()).expect("the body is JSON");
        assert_eq!(
            body,
            json!({
                "model": "m\"1",
                "messages": request.messages,
                "max_tokens": 300,
                "temperature": 0.5,
                "stream": true,
                "stream_options": {"include_usage": true},
                "seed": 7,
                "response_format": {"type": "json_schema", "json_schema": {"name": "verdict", "schema": {"type": "object"}, "strict": true}},
                "logprobs": true,
                "top_logprobs": 3,
                "stop": ["</response>"],
            })
        );
    }
}
