//! A fake moderation endpoint (real HTTP on a random port) speaking both wire formats the
//! engine's moderation clients use (`crossfire_engine::screen::endpoint`):
//!
//! - `POST /v1/moderations`, OpenAI's: every input gets a result with all of OpenAI's
//!   categories (false unless flagged), their scores and `category_applied_input_types`, as
//!   the real API answers, so a client must ignore what it does not read;
//! - `POST /v1/chat/completions`, a guard model's (Llama Guard 3): one text a request, answered
//!   `safe` or `unsafe\nS1,S10` with the spacing real servers leave (a trailing newline, a
//!   leading space).
//!
//! A text is flagged when it contains one of the configured [`Flag`]s. Every request is
//! recorded ([`Received`]), and a [`Fault`] can be switched on and off while it runs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Map, Value, json};

/// Every category OpenAI's `omni-moderation-latest` reports, in its order.
pub const OPENAI_CATEGORIES: &[&str] = &[
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
];

/// A text containing `contains` is flagged: under `openai` (a category name of OpenAI's; any
/// other name is reported as an extra true category) on `/moderations`, under `guard` (a
/// hazard code, `S1`…`S14`) on `/chat/completions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    pub contains: String,
    pub openai: String,
    pub guard: String,
}

impl Flag {
    pub fn new(contains: &str, openai: &str, guard: &str) -> Flag {
        Flag {
            contains: contains.to_string(),
            openai: openai.to_string(),
            guard: guard.to_string(),
        }
    }
}

/// A way for the endpoint to fail; it lasts until switched off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 500 with a non-JSON (HTML) body that echoes the request's `Authorization` header, as
    /// some proxies' error pages do.
    Down,
    /// No answer, for longer than any test's timeout.
    Hang,
    /// 200 with a body that is not JSON (cut off half-way).
    Garbage,
    /// 200 with well-formed JSON that does not answer: one result too few (`/moderations`),
    /// prose instead of `safe`/`unsafe` (`/chat/completions`).
    OffScript,
}

/// Which wire format a request used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// `POST /v1/moderations`
    Openai,
    /// `POST /v1/chat/completions`
    Guard,
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Received {
    pub wire: Wire,
    /// The `Authorization` header, as sent.
    pub authorization: Option<String>,
    pub body: Value,
    /// The fault in force when it arrived.
    pub fault: Option<Fault>,
}

impl Received {
    /// The texts asked about: `input` (a list or one string) of a moderation request, the
    /// user message of a guard request.
    pub fn texts(&self) -> Vec<String> {
        match self.wire {
            Wire::Openai => match &self.body["input"] {
                Value::Array(items) => items
                    .iter()
                    .map(|i| i.as_str().unwrap_or_default().to_string())
                    .collect(),
                Value::String(s) => vec![s.clone()],
                _ => Vec::new(),
            },
            Wire::Guard => self.body["messages"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|m| m["role"] == "user")
                .filter_map(|m| m["content"].as_str().map(str::to_string))
                .collect(),
        }
    }
}

/// How to start the fake.
#[derive(Debug, Clone, Default)]
pub struct ModerationOptions {
    pub flags: Vec<Flag>,
    /// The fault in force from the start.
    pub fault: Option<Fault>,
    /// A wait before each answer.
    pub latency: Duration,
}

struct Shared {
    flags: Vec<Flag>,
    fault: Mutex<Option<Fault>>,
    latency: Duration,
    log: Mutex<Vec<Received>>,
}

/// The fake moderation endpoint.
pub struct FakeModeration {
    /// `http://127.0.0.1:PORT/v1`
    pub base_url: String,
    shared: Arc<Shared>,
}

impl FakeModeration {
    /// Serves on 127.0.0.1 at a free port, on the current runtime.
    pub async fn start(options: ModerationOptions) -> FakeModeration {
        let shared = Arc::new(Shared {
            flags: options.flags,
            fault: Mutex::new(options.fault),
            latency: options.latency,
            log: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/v1/moderations", post(moderations))
            .route("/v1/chat/completions", post(guard))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeModeration {
            base_url: format!("http://{addr}/v1"),
            shared,
        }
    }

    /// Switches a fault on (`Some`) or off (`None`) for the requests that follow.
    pub fn set_fault(&self, fault: Option<Fault>) {
        *self.shared.fault.lock().unwrap() = fault;
    }

    /// Every request received so far, in order of arrival.
    pub fn requests(&self) -> Vec<Received> {
        self.shared.log.lock().unwrap().clone()
    }
}

/// Records a request; the fault in force, after the latency.
async fn receive(shared: &Shared, wire: Wire, headers: &HeaderMap, body: &Bytes) -> Received {
    let received = Received {
        wire,
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body: serde_json::from_slice(body).unwrap_or(Value::Null),
        fault: *shared.fault.lock().unwrap(),
    };
    shared.log.lock().unwrap().push(received.clone());
    if !shared.latency.is_zero() {
        tokio::time::sleep(shared.latency).await;
    }
    received
}

/// The answer a fault makes, if it makes one (`OffScript` is the handlers' own).
async fn faulty(received: &Received) -> Option<Response> {
    match received.fault? {
        Fault::Down => {
            let echoed = received.authorization.as_deref().unwrap_or("(none)");
            let page = format!(
                "<html><head><title>500 Internal Server Error</title></head><body>\
                 <h1>Internal Server Error</h1><pre>upstream failed; request headers:\n\
                 authorization: {echoed}</pre></body></html>"
            );
            Some(
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    [("content-type", "text/html")],
                    page,
                )
                    .into_response(),
            )
        }
        Fault::Hang => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Some((StatusCode::GATEWAY_TIMEOUT, "too late").into_response())
        }
        Fault::Garbage => Some(
            (
                StatusCode::OK,
                [("content-type", "application/json")],
                "{\"id\": \"modr-fake\", \"results\": [{\"flagged\": tr",
            )
                .into_response(),
        ),
        Fault::OffScript => None,
    }
}

fn json_reply(value: Value) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        value.to_string(),
    )
        .into_response()
}

/// The flags a text trips.
fn tripped<'a>(flags: &'a [Flag], text: &str) -> Vec<&'a Flag> {
    flags
        .iter()
        .filter(|f| text.contains(&f.contains))
        .collect()
}

async fn moderations(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received = receive(&shared, Wire::Openai, &headers, &body).await;
    if let Some(response) = faulty(&received).await {
        return response;
    }
    let mut texts = received.texts();
    if received.fault == Some(Fault::OffScript) {
        texts.pop();
    }
    let results: Vec<Value> = texts
        .iter()
        .map(|text| {
            let flags = tripped(&shared.flags, text);
            let mut categories = Map::new();
            let mut scores = Map::new();
            let mut applied = Map::new();
            for name in OPENAI_CATEGORIES {
                let hit = flags.iter().any(|f| f.openai == *name);
                categories.insert(name.to_string(), json!(hit));
                scores.insert(
                    name.to_string(),
                    json!(if hit { 0.93 } else { 0.000_012_3 }),
                );
                applied.insert(
                    name.to_string(),
                    if hit { json!(["text"]) } else { json!([]) },
                );
            }
            // A category this client has never heard of, as newer models add them.
            for flag in &flags {
                if !OPENAI_CATEGORIES.contains(&flag.openai.as_str()) {
                    categories.insert(flag.openai.clone(), json!(true));
                    scores.insert(flag.openai.clone(), json!(0.91));
                }
            }
            json!({
                "flagged": !flags.is_empty(),
                "categories": categories,
                "category_scores": scores,
                "category_applied_input_types": applied,
            })
        })
        .collect();
    json_reply(json!({
        "id": "modr-fake",
        "model": received.body["model"],
        "results": results,
    }))
}

async fn guard(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let received = receive(&shared, Wire::Guard, &headers, &body).await;
    if let Some(response) = faulty(&received).await {
        return response;
    }
    let text = received.texts().pop().unwrap_or_default();
    let flags = tripped(&shared.flags, &text);
    let content = if received.fault == Some(Fault::OffScript) {
        "I'm sorry, but I can't assess that request.".to_string()
    } else if flags.is_empty() {
        "safe\n".to_string()
    } else {
        let codes: Vec<&str> = flags.iter().map(|f| f.guard.as_str()).collect();
        format!(" unsafe\n{}\n", codes.join(","))
    };
    json_reply(json!({
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "model": received.body["model"],
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "finish_reason": "stop",
        }],
        "usage": {"prompt_tokens": 210, "completion_tokens": 4, "total_tokens": 214},
    }))
}
