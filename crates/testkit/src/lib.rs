//! Test support: a fake OpenAI-compatible server (real HTTP on a random port) that streams
//! with arbitrary chunk splits, comments, a role-only first delta and usage chunks, and can be
//! told to fail in the ways real servers do; a fake moderation endpoint ([`moderation`]); plus
//! helpers to build an engine against the fake server and to find the repository's shipped
//! files. Helpers for testing the service are behind features, so crates below it do not build
//! their dependencies: `database` (SQLite and PostgreSQL test databases) and `service` (an HTTP
//! client of a running service, and the binary run as a process).

#[cfg(feature = "database")]
pub mod database;
#[cfg(feature = "service")]
pub mod http;
pub mod moderation;
#[cfg(feature = "service")]
pub mod process;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use crossfire_engine::config::{Backend, LlmConfig};
use crossfire_engine::debate::{Engine, Settings};
use crossfire_engine::llm::openai::OpenAiClient;
use crossfire_engine::llm::retry::{RetryPolicy, Retrying};
use crossfire_engine::persona::Persona;
use crossfire_engine::prompts::Prompts;
use crossfire_engine::story::Story;

/// Which calls a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Debater,
    Judge,
    /// The debater calls of one persona, by name (for a fault that hits one side only).
    Speaker(&'static str),
    /// The judging calls (repairs included) that show this persona as Speaker 1: one of
    /// the judge's two passes.
    JudgeFirst(&'static str),
}

/// A way for one call to go wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 500 with a JSON error body.
    ServerError,
    /// 503 forever: the endpoint is down (never consumed).
    AlwaysDown,
    /// 429 with `Retry-After: secs`.
    RateLimited { secs: u64 },
    /// The stream stops half-way, with no finish reason.
    CutStream,
    /// An error frame inside a 200 stream, half-way.
    ErrorFrame,
    /// No answer at all for a long time.
    Hang,
    /// The stream goes silent half-way, for a long time.
    Stall,
    /// The judge answers prose instead of JSON.
    NonJson,
    /// The judge answers prose around a JSON object that is broken (an unquoted winner, a
    /// missing brace), as models that half follow the format do.
    BrokenJson,
    /// [`Fault::BrokenJson`] for every call it applies to (never consumed).
    AlwaysBrokenJson,
    /// The stream stops after its first few pieces, when another call is in flight (as a
    /// flaky server under load does), with no finish reason.
    EarlyCut,
    /// The reply reaches `max_tokens`: it runs on past the speech and stops mid-sentence,
    /// with `finish_reason: "length"`.
    Length,
    /// 500 with a validation error for `response_format: json_schema`, as llama-cpp-python's
    /// server answers (never consumed).
    NoJsonSchema,
    /// 400 for any `response_format` (never consumed).
    NoStructuredOutput,
    /// The speech (or the judge's rationale) says something no policy lets through.
    Abusive,
    /// The speech repeats its prompt's markup and instruction lines around its own words, as
    /// small models do.
    PromptEcho,
    /// The speech steps out of the debate to talk as a language model.
    AsAnAi,
}

/// The sentence a speech says under [`Fault::Abusive`].
pub const ABUSE: &str = "Immigrants are vermin and should be exterminated.";

/// How the fake judge decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JudgeMode {
    /// Prefers the speaker who plays this persona, whatever the order.
    Prefer(String),
    /// Always picks whoever is listed first: a positional bias.
    FirstListed,
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Logged {
    pub body: Value,
    pub target: Target,
    pub received: Instant,
    pub finished: Arc<Mutex<Option<Instant>>>,
    pub fault: Option<Fault>,
    /// The text the fake meant to send (whole), for checking nothing was doubled.
    pub text: String,
}

impl Logged {
    pub fn system(&self) -> &str {
        self.body["messages"][0]["content"].as_str().unwrap_or("")
    }
    pub fn user(&self) -> &str {
        self.body["messages"][1]["content"].as_str().unwrap_or("")
    }
    pub fn all_text(&self) -> String {
        self.body["messages"]
            .as_array()
            .map(|m| {
                m.iter()
                    .filter_map(|m| m["content"].as_str())
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    }
    pub fn finished(&self) -> Option<Instant> {
        *self.finished.lock().unwrap()
    }
}

struct Shared {
    log: Mutex<Vec<Logged>>,
    faults: Mutex<VecDeque<(Target, Fault)>>,
    latency: Duration,
    random_chunks: bool,
    stamp_tokens: bool,
    token_delay: Duration,
    judge: JudgeMode,
    /// Changed by [`FakeLlm::set_abort_on_new_request`].
    abort_on_new_request: std::sync::atomic::AtomicBool,
    logprobs: bool,
    random_faults: Option<RandomFaults>,
    /// Requests received so far: a stream that sees the count move was overtaken.
    requests: std::sync::atomic::AtomicU64,
    /// Requests being answered now.
    in_flight: std::sync::atomic::AtomicU64,
}

/// The fake server.
pub struct FakeLlm {
    /// `http://127.0.0.1:PORT/v1`
    pub base_url: String,
    shared: Arc<Shared>,
}

/// How to start a fake.
pub struct FakeOptions {
    pub latency: Duration,
    /// Split the stream at random bytes (tests), or send one SSE frame a write as real
    /// servers do (benchmarks).
    pub random_chunks: bool,
    /// Stamp each token with the microseconds since [`epoch`] at which it was sent, as
    /// `⟦123⟧`, so a client can measure the delay to it (load benchmark).
    pub stamp_tokens: bool,
    pub token_delay: Duration,
    pub judge: JudgeMode,
    pub faults: Vec<(Target, Fault)>,
    /// Abort a running stream whenever a new request arrives, as llama-cpp-python's server
    /// does by default (`--interrupt_requests True`): the stream just stops.
    pub abort_on_new_request: bool,
    /// Answer `logprobs: true` with each token's `top_logprobs`, as OpenAI, vLLM and
    /// llama.cpp's server do; a score token weighs the score written and the one below it
    /// evenly. Without it the fake ignores `logprobs`, as many servers do.
    pub logprobs: bool,
    /// Faults drawn at random for calls the queue of `faults` does not cover.
    pub random_faults: Option<RandomFaults>,
}

/// Faults at random, reproducibly for a seed: a share of all calls fails (by default 500,
/// 429 with `Retry-After`, a stream cut half-way, no answer until long past any timeout), a
/// share of the judge's answers is prose (around broken JSON), and a share of the streams
/// that overlap another call is cut after a few pieces.
#[derive(Debug, Clone, Copy)]
pub struct RandomFaults {
    pub seed: u64,
    /// Of all calls, the share that fails.
    pub failing: f64,
    /// How they fail, each as likely.
    pub kinds: &'static [Fault],
    /// Of the judge's answers that do not fail, the share that cannot be read: prose around
    /// broken JSON.
    pub judge_prose: f64,
    /// Whether repair requests get such answers too (else they get JSON, as a model that
    /// ignores the format until told again).
    pub repairs_too: bool,
    /// Of the streams that do not fail and begin while another call is in flight, the share
    /// cut after a few pieces ([`Fault::EarlyCut`]).
    pub early_cuts: f64,
}

impl RandomFaults {
    /// The kinds of failure of [`RandomFaults::new`].
    pub const KINDS: &'static [Fault] = &[
        Fault::ServerError,
        Fault::RateLimited { secs: 1 },
        Fault::CutStream,
        Fault::Hang,
    ];

    /// `failing` of all calls fail (500, 429, a cut half-way, a hang), and `judge_prose` of
    /// the judge's first answers are prose; repairs get JSON; no early cuts.
    pub fn new(seed: u64, failing: f64, judge_prose: f64) -> RandomFaults {
        RandomFaults {
            seed,
            failing,
            kinds: RandomFaults::KINDS,
            judge_prose,
            repairs_too: false,
            early_cuts: 0.0,
        }
    }

    /// The fault, if any, of the `n`th request (`overlapping`: others were in flight).
    fn draw(&self, n: u64, target: Target, repair: bool, overlapping: bool) -> Option<Fault> {
        let mut x = self.seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut next = || {
            // splitmix64
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            (z ^ (z >> 31)) as f64 / u64::MAX as f64
        };
        if next() < self.failing && !self.kinds.is_empty() {
            let n = self.kinds.len();
            return Some(self.kinds[((next() * n as f64) as usize).min(n - 1)]);
        }
        if target == Target::Judge {
            let prose = (!repair || self.repairs_too) && next() < self.judge_prose;
            return prose.then_some(Fault::BrokenJson);
        }
        (overlapping && next() < self.early_cuts).then_some(Fault::EarlyCut)
    }
}

impl Default for FakeOptions {
    fn default() -> Self {
        FakeOptions {
            latency: Duration::from_millis(5),
            random_chunks: true,
            stamp_tokens: false,
            token_delay: Duration::from_millis(1),
            judge: JudgeMode::Prefer("Winston Churchill".into()),
            faults: Vec::new(),
            abort_on_new_request: false,
            logprobs: false,
            random_faults: None,
        }
    }
}

impl FakeLlm {
    pub async fn start(options: FakeOptions) -> FakeLlm {
        let shared = Arc::new(Shared {
            log: Mutex::new(Vec::new()),
            faults: Mutex::new(options.faults.into()),
            latency: options.latency,
            random_chunks: options.random_chunks,
            stamp_tokens: options.stamp_tokens,
            token_delay: options.token_delay,
            judge: options.judge,
            abort_on_new_request: options.abort_on_new_request.into(),
            logprobs: options.logprobs,
            random_faults: options.random_faults,
            requests: std::sync::atomic::AtomicU64::new(0),
            in_flight: Default::default(),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeLlm {
            base_url: format!("http://{addr}/v1"),
            shared,
        }
    }

    /// A handle on a fake started elsewhere (e.g. on another runtime), for its URL only.
    pub fn at(base_url: &str) -> FakeLlm {
        FakeLlm {
            base_url: base_url.to_string(),
            shared: Arc::new(Shared {
                log: Mutex::new(Vec::new()),
                faults: Mutex::new(VecDeque::new()),
                latency: Duration::ZERO,
                random_chunks: true,
                stamp_tokens: false,
                token_delay: Duration::ZERO,
                judge: JudgeMode::FirstListed,
                abort_on_new_request: false.into(),
                logprobs: false,
                random_faults: None,
                requests: Default::default(),
                in_flight: Default::default(),
            }),
        }
    }

    /// Starts or stops aborting running streams when a request arrives (a server that
    /// was restarted with other settings).
    pub fn set_abort_on_new_request(&self, abort: bool) {
        self.shared
            .abort_on_new_request
            .store(abort, std::sync::atomic::Ordering::SeqCst);
    }

    /// Drops the faults still queued, those never consumed included.
    pub fn clear_faults(&self) {
        self.shared.faults.lock().unwrap().clear();
    }

    pub fn log(&self) -> Vec<Logged> {
        self.shared.log.lock().unwrap().clone()
    }

    pub fn requests(&self, target: Target) -> Vec<Logged> {
        self.log()
            .into_iter()
            .filter(|l| l.target == target)
            .collect()
    }
}

/// A deterministic speech for a debater request: names the persona and round, quotes a story
/// figure and invents one, and carries multi-byte characters so split UTF-8 is exercised.
pub fn speech_for(body: &Value) -> String {
    let user = body["messages"][1]["content"].as_str().unwrap_or("");
    let name = speaker_of(body);
    let round = if user.starts_with("Round 2") { 2 } else { 1 };
    format!(
        "I am {name}, speaking in round {round} — the 6,000 casualties weigh on me, \
         and I say 99,999 men were lost. Déjà vu: « la guerre » 🕊️ 戦争."
    )
}

/// The persona a debater request speaks as.
fn speaker_of(body: &Value) -> &str {
    let system = body["messages"][0]["content"].as_str().unwrap_or("");
    system
        .split("You are ")
        .nth(1)
        .and_then(|s| s.split([':', '(']).next())
        .unwrap_or("Nobody")
        .trim()
}

/// `logprobs.content` for a reply: digits runs and other text in tokens of up to four
/// characters; a number right after a `:` is a score, and weighs itself and the score
/// below it (above, for 1) evenly.
fn token_logprobs(text: &str) -> Vec<Value> {
    let mut tokens: Vec<String> = Vec::new();
    for c in text.chars() {
        let joins = tokens.last().is_some_and(|t| {
            let digits = t.chars().all(|d| d.is_ascii_digit());
            if c.is_ascii_digit() {
                digits
            } else {
                !digits && t.chars().count() < 4
            }
        });
        match tokens.last_mut() {
            Some(t) if joins => t.push(c),
            _ => tokens.push(c.to_string()),
        }
    }
    let mut before = String::new();
    tokens
        .into_iter()
        .map(|token| {
            let score = token
                .parse::<u8>()
                .ok()
                .filter(|_| before.trim_end().ends_with(':'));
            before.push_str(&token);
            let top = match score {
                Some(s) => {
                    let other = if s > 1 { s - 1 } else { s + 1 };
                    json!([{"token": token, "logprob": 0.5f32.ln()},
                           {"token": other.to_string(), "logprob": 0.5f32.ln()}])
                }
                None => json!([{"token": token, "logprob": 0.0}]),
            };
            json!({"token": token, "logprob": top[0]["logprob"], "top_logprobs": top})
        })
        .collect()
}

fn judge_reply(body: &Value, mode: &JudgeMode) -> String {
    let user = body["messages"][1]["content"].as_str().unwrap_or("");
    let winner = match mode {
        JudgeMode::FirstListed => "speaker_1",
        JudgeMode::Prefer(name) => {
            if user.contains(&format!("## Speaker 1 plays {name}")) {
                "speaker_1"
            } else {
                "speaker_2"
            }
        }
    };
    let card = |hi: bool| {
        let s = if hi { 8 } else { 5 };
        json!({
            "argument": {"score": s, "reason": "clear"},
            "evidence": {"score": s, "reason": "used the story"},
            "rebuttal": {"score": s - 1, "reason": "answered"},
            "fidelity": {"score": s, "reason": "in voice"},
        })
    };
    json!({
        "speaker_1": card(winner == "speaker_1"),
        "speaker_2": card(winner == "speaker_2"),
        "winner": winner,
        "rationale": format!("{winner} made the stronger case."),
    })
    .to_string()
}

/// A persona probe's judgement: the answer passes when it speaks as the persona examined
/// (names them), as the fake debater always does.
fn examiner_reply(body: &Value) -> String {
    let user = body["messages"][1]["content"].as_str().unwrap_or("");
    let name = user
        .split("## Persona\n")
        .nth(1)
        .and_then(|s| s.split(" (").next())
        .unwrap_or("?");
    let answer = user.split("## Answer\n").nth(1).unwrap_or("");
    let pass = answer.contains(name);
    json!({"pass": pass, "reason": if pass { "answers as the persona" } else { "answers as someone else" }})
        .to_string()
}

async fn chat(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "bad json").into_response();
    };
    let system = body["messages"][0]["content"].as_str().unwrap_or("");
    let target = if system.contains("You are the judge of this debate")
        || system.starts_with("You are the examiner of a persona")
    {
        Target::Judge
    } else {
        Target::Debater
    };
    let arrival = shared
        .requests
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        + 1;
    let in_flight = InFlight::enter(shared.clone());
    let fault = {
        let mut faults = shared.faults.lock().unwrap();
        let applies = |t: &Target| match t {
            Target::Speaker(name) => target == Target::Debater && speaker_of(&body) == *name,
            Target::JudgeFirst(name) => {
                target == Target::Judge
                    && body["messages"][1]["content"]
                        .as_str()
                        .is_some_and(|u| u.contains(&format!("## Speaker 1 plays {name}")))
            }
            t => *t == target,
        };
        match faults.iter().position(|(t, _)| applies(t)) {
            Some(i)
                if matches!(
                    faults[i].1,
                    Fault::AlwaysDown
                        | Fault::NoJsonSchema
                        | Fault::NoStructuredOutput
                        | Fault::AlwaysBrokenJson
                ) =>
            {
                Some(faults[i].1)
            }
            Some(i) => faults.remove(i).map(|(_, f)| f),
            None => shared.random_faults.and_then(|random| {
                // A judge's repair request carries its first answer and the complaint.
                let repair = body["messages"].as_array().is_some_and(|m| m.len() > 2);
                random.draw(arrival, target, repair, in_flight.others() > 0)
            }),
        }
    };
    let text = match target {
        Target::Judge if system.starts_with("You are the examiner") => examiner_reply(&body),
        Target::Judge if fault == Some(Fault::Abusive) => {
            let reply = judge_reply(&body, &shared.judge);
            match serde_json::from_str::<Value>(&reply) {
                Ok(mut verdict) => {
                    verdict["rationale"] = json!(format!("The winner was clear. {ABUSE}"));
                    verdict.to_string()
                }
                Err(_) => reply,
            }
        }
        Target::Judge => judge_reply(&body, &shared.judge),
        _ if fault == Some(Fault::PromptEcho) => format!(
            "Round 2 of 2: your rebuttal.\n<opponent_opening>\n{}\n</opponent_opening>\n</response>",
            speech_for(&body)
        ),
        _ if fault == Some(Fault::AsAnAi) => {
            format!(
                "As an AI language model, I cannot hold opinions. {}",
                speech_for(&body)
            )
        }
        _ if fault == Some(Fault::Abusive) => {
            let speech = speech_for(&body);
            let (first, rest) = speech.split_once(" — ").unwrap_or((&speech, ""));
            format!("{first}. {ABUSE} And {rest}")
        }
        _ => speech_for(&body),
    };
    let finished = Arc::new(Mutex::new(None));
    let index = {
        let mut log = shared.log.lock().unwrap();
        log.push(Logged {
            body: body.clone(),
            target,
            received: Instant::now(),
            finished: finished.clone(),
            fault,
            text: text.clone(),
        });
        log.len()
    };
    let mark_finished = {
        let finished = finished.clone();
        move || *finished.lock().unwrap() = Some(Instant::now())
    };

    tokio::time::sleep(shared.latency).await;
    let error = |status: StatusCode, message: &str| {
        let body =
            json!({"error": {"message": message, "type": "server_error", "code": status.as_u16()}});
        (
            status,
            [("content-type", "application/json")],
            body.to_string(),
        )
            .into_response()
    };
    match fault {
        Some(Fault::ServerError) => {
            mark_finished();
            return error(StatusCode::INTERNAL_SERVER_ERROR, "the fake broke");
        }
        Some(Fault::AlwaysDown) => {
            mark_finished();
            return error(StatusCode::SERVICE_UNAVAILABLE, "the fake is down");
        }
        Some(Fault::RateLimited { secs }) => {
            mark_finished();
            let mut response = error(StatusCode::TOO_MANY_REQUESTS, "slow down");
            response
                .headers_mut()
                .insert("retry-after", secs.to_string().parse().unwrap());
            return response;
        }
        Some(Fault::NoJsonSchema) if body["response_format"]["type"] == "json_schema" => {
            mark_finished();
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "1 validation error: ('body', 'response_format', 'type'): Input should be 'text' or 'json_object'",
            );
        }
        Some(Fault::NoStructuredOutput) if body.get("response_format").is_some() => {
            mark_finished();
            return error(StatusCode::BAD_REQUEST, "response_format is not supported");
        }
        Some(Fault::Hang) => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            return error(StatusCode::GATEWAY_TIMEOUT, "too late");
        }
        _ => {}
    }
    let text = if fault == Some(Fault::NonJson) {
        "Speaker one was plainly the better debater, in my view.".to_string()
    } else if matches!(fault, Some(Fault::BrokenJson | Fault::AlwaysBrokenJson)) {
        broken_json(&text)
    } else if fault == Some(Fault::Length) {
        format!("{text} But this ship is still")
    } else {
        text
    };
    let prompt_tokens = (body.to_string().len() / 4) as u64;
    let mut pieces = split_words(&text);
    if shared.stamp_tokens {
        // Before the word, after its leading space: a sentence's last word keeps its full
        // stop next to the space after it, so the service sees the sentence end there.
        for piece in &mut pieces {
            let word_at = piece.len() - piece.trim_start().len();
            piece.insert_str(word_at, STAMP);
        }
    }
    let usage = json!({"prompt_tokens": prompt_tokens, "completion_tokens": pieces.len()});

    if body["stream"] != json!(true) {
        mark_finished();
        let mut choice = json!({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"});
        if shared.logprobs && body["logprobs"] == json!(true) {
            choice["logprobs"] = json!({"content": token_logprobs(&text)});
        }
        let reply = json!({
            "id": "cmpl-fake", "object": "chat.completion",
            "choices": [choice],
            "usage": usage,
        });
        return ([("content-type", "application/json")], reply.to_string()).into_response();
    }

    let finish = if fault == Some(Fault::Length) {
        "length"
    } else {
        "stop"
    };
    let mut bytes = sse_bytes_finishing(&pieces, &usage, finish);
    match fault {
        Some(Fault::CutStream) => bytes.truncate(bytes.len() / 2),
        Some(Fault::EarlyCut) => {
            // The comment, the role delta and two pieces, then nothing.
            let frames: usize = frames(bytes.clone()).iter().take(4).map(Vec::len).sum();
            bytes.truncate(frames);
        }
        Some(Fault::ErrorFrame) => {
            bytes.truncate(bytes.len() / 2);
            // Back to a line boundary, then an error frame as some servers send.
            let cut = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            bytes.truncate(cut);
            bytes.extend_from_slice(
                b"\ndata: {\"error\": {\"message\": \"upstream overloaded\", \"code\": 503}}\n\n",
            );
        }
        _ => {}
    }
    let chunks = if shared.random_chunks {
        random_chunks(bytes, index as u64)
    } else {
        frames(bytes)
    };
    let delay = shared.token_delay;
    let stamp = shared.stamp_tokens;
    let stall_at = (fault == Some(Fault::Stall)).then_some(chunks.len() / 2);
    let overtaken = {
        let shared = shared.clone();
        Arc::new(move || {
            shared
                .abort_on_new_request
                .load(std::sync::atomic::Ordering::SeqCst)
                && shared.requests.load(std::sync::atomic::Ordering::SeqCst) != arrival
        })
    };
    let stream = futures::stream::unfold(
        (chunks.into_iter().enumerate(), (mark_finished, in_flight)),
        move |(mut it, done)| {
            let (done, in_flight) = done;
            let overtaken = overtaken.clone();
            async move {
                match it.next() {
                    Some((i, chunk)) => {
                        if !delay.is_zero() {
                            tokio::time::sleep(delay).await;
                        }
                        if overtaken() {
                            done();
                            return None;
                        }
                        let done = (done, in_flight);
                        if stall_at == Some(i) {
                            tokio::time::sleep(Duration::from_secs(30)).await;
                        }
                        let chunk = if stamp { stamp_now(chunk) } else { chunk };
                        Some((Ok::<_, Infallible>(Bytes::from(chunk)), (it, done)))
                    }
                    None => {
                        done();
                        drop(in_flight);
                        None
                    }
                }
            }
        },
    );
    (
        [("content-type", "text/event-stream")],
        Body::from_stream(stream),
    )
        .into_response()
}

/// Counts a request as in flight until dropped (with its response, for a stream).
struct InFlight(Arc<Shared>);

impl InFlight {
    fn enter(shared: Arc<Shared>) -> InFlight {
        shared
            .in_flight
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        InFlight(shared)
    }

    /// The other requests being answered.
    fn others(&self) -> u64 {
        self.0
            .in_flight
            .load(std::sync::atomic::Ordering::SeqCst)
            .saturating_sub(1)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0
            .in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A verdict as prose around broken JSON: the object's winner unquoted and its last brace
/// missing, so no lenient reading can take it.
fn broken_json(verdict: &str) -> String {
    let broken = verdict
        .replace("\"winner\":\"", "\"winner\": ")
        .trim_end_matches('}')
        .to_string();
    format!("Having weighed both speeches, here is my verdict: {broken} — I hope this helps.")
}

const STAMP: &str = "⟦T⟧";

/// The instant stamps count from: the first use in this process.
pub fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Replaces the stamp placeholder in a chunk with the time now.
fn stamp_now(chunk: Vec<u8>) -> Vec<u8> {
    let text = String::from_utf8_lossy(&chunk);
    if !text.contains(STAMP) {
        return chunk;
    }
    let micros = epoch().elapsed().as_micros() as u64;
    text.replace(STAMP, &format!("⟦{}⟧", stamp_letters(micros)))
        .into_bytes()
}

/// The letters a stamp writes its microseconds in, one per hexadecimal digit: consonants,
/// so that the claim check reads no stamp as a figure or a number word (a real speech has no
/// stamps for it to check).
const STAMP_DIGITS: &[u8; 16] = b"bcdfghjklmnpqrvz";

fn stamp_letters(micros: u64) -> String {
    let digits = (64 - micros.leading_zeros()).div_ceil(4).max(1);
    (0..digits)
        .rev()
        .map(|i| STAMP_DIGITS[((micros >> (4 * i)) & 0xf) as usize] as char)
        .collect()
}

/// The microseconds (since [`epoch`]) a token was stamped with, read from the text between
/// a stamp's brackets.
pub fn read_stamp(letters: &str) -> Option<u64> {
    letters.bytes().try_fold(0u64, |micros, letter| {
        let digit = STAMP_DIGITS.iter().position(|&d| d == letter)?;
        micros.checked_mul(16)?.checked_add(digit as u64)
    })
}

/// Splits text into word-sized deltas, keeping the spaces.
pub fn split_words(text: &str) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        if c == ' ' && !current.is_empty() {
            pieces.push(std::mem::take(&mut current));
        }
        current.push(c);
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

/// The bytes of a streamed completion as OpenAI-compatible servers send it: a comment, a
/// role-only first delta, content deltas, a finish chunk, a usage chunk and `[DONE]`.
pub fn sse_bytes(pieces: &[String], usage: &Value) -> Vec<u8> {
    sse_bytes_finishing(pieces, usage, "stop")
}

/// As [`sse_bytes`], with the given `finish_reason`.
pub fn sse_bytes_finishing(pieces: &[String], usage: &Value, finish: &str) -> Vec<u8> {
    let mut out = String::from(": OPENROUTER PROCESSING\n\n");
    let frame = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    out += &format!(
        "data: {}\n\n",
        frame(json!({"role": "assistant", "content": ""}), Value::Null)
    );
    for piece in pieces {
        out += &format!(
            "data: {}\n\n",
            frame(json!({"content": piece}), Value::Null)
        );
    }
    out += &format!("data: {}\n\n", frame(json!({}), json!(finish)));
    out += &format!(
        "data: {}\n\n",
        json!({"id": "chatcmpl-fake", "choices": [], "usage": usage})
    );
    out += "data: [DONE]\n\n";
    out.into_bytes()
}

/// Splits bytes after each blank line: one SSE frame a chunk.
pub fn frames(bytes: Vec<u8>) -> Vec<Vec<u8>> {
    let text = String::from_utf8_lossy(&bytes).into_owned();
    text.split_inclusive("\n\n")
        .map(|f| f.as_bytes().to_vec())
        .collect()
}

/// Splits bytes at pseudo-random points (1–9 bytes a chunk), ignoring UTF-8 boundaries.
pub fn random_chunks(bytes: Vec<u8>, seed: u64) -> Vec<Vec<u8>> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut chunks = Vec::new();
    let mut rest = bytes.as_slice();
    while !rest.is_empty() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let n = (1 + state % 9) as usize;
        let n = n.min(rest.len());
        chunks.push(rest[..n].to_vec());
        rest = &rest[n..];
    }
    chunks
}

/// Settings of a bounded fuzz run: `cases` unless `PROPTEST_CASES` says otherwise, and no
/// files of failures written beside the sources.
pub fn fuzz_config(cases: u32) -> proptest::test_runner::Config {
    proptest::test_runner::Config {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(cases),
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    }
}

/// A path in the repository (the shipped `personas`, `prompts`, `stories`, …), wherever the
/// test runs from.
pub fn repo(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

/// The debaters' and the judge's endpoints, as a test sets them up.
#[derive(Debug, Clone)]
pub struct TestConfig {
    pub llm: LlmConfig,
    pub judge: LlmConfig,
}

/// Debaters and judge pointed at the fake, with quick retries and timeouts.
pub fn config_for(base_url: &str) -> TestConfig {
    let role = |model: &str, max_tokens: u32, temperature: f32| LlmConfig {
        backend: Backend::Openai,
        base_url: Some(base_url.to_string()),
        model: model.to_string(),
        api_key: None,
        timeout: Duration::from_secs(1),
        max_in_flight: 8,
        max_retries: 3,
        retry_base: Duration::from_millis(20),
        hedge_after: None,
        max_tokens,
        temperature,
        brief_prompts: false,
    };
    TestConfig {
        llm: role("fake-debater", 400, 0.8),
        judge: role("fake-judge", 700, 0.0),
    }
}

/// An engine on the shipped templates, calling the endpoints of `config` with retries.
pub fn engine_for(config: &TestConfig) -> Engine {
    let model = |role: &LlmConfig| -> Arc<dyn crossfire_engine::llm::LanguageModel> {
        Arc::new(Retrying::new(
            OpenAiClient::new(role).unwrap(),
            RetryPolicy::from_config(role),
        ))
    };
    Engine::new(
        Arc::new(Prompts::load(&repo("prompts")).unwrap()),
        model(&config.llm),
        model(&config.judge),
        Settings::new(&config.llm, &config.judge, false),
    )
}

pub fn story(id: &str) -> Story {
    Story::load(&repo("stories"), id, 64 * 1024).unwrap()
}

pub fn persona(id: &str) -> Persona {
    Persona::load(&repo("personas"), id).unwrap()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_stamp_reads_back_as_its_microseconds() {
        for micros in [0, 1, 15, 16, 1_234_567, u64::MAX] {
            let letters = super::stamp_letters(micros);
            assert!(
                !letters
                    .bytes()
                    .any(|b| b.is_ascii_digit() || b"aeiouy".contains(&b))
            );
            assert_eq!(super::read_stamp(&letters), Some(micros), "{letters}");
        }
        assert_eq!(super::read_stamp("T"), None);
    }
}
