//! Fault soak: debates through a real `crossfire serve` (SQLite), C at a time, against a fake
//! model that serves concurrent streams but is flaky: about a third of calls fail — 500, 429
//! with `Retry-After`, a stream cut half-way, no answer until long past the timeout — a tenth
//! of the other streams that begin while calls overlap are cut after a few pieces, and a third
//! of the judge's structured answers, repairs included, are prose around broken JSON; half-way
//! the server is killed (SIGKILL) with debates in flight, and started again on the same
//! database. Clients follow every debate to its end, reconnecting with `Last-Event-ID`.
//!
//! The fake answers at a hosted endpoint's pace: 300 ms to the response, then its ~30 pieces a
//! speech 200 ms apart, the six seconds a 300-token speech takes at 50 tokens a second. A fault
//! costs what it costs a reader (a 429's second, a cut speech begun again), against debates
//! that take as long as real ones: the ratio of the two soaks' wall times means something. At
//! the fake's own pace (`SOAK_TOKEN_MS=2 SOAK_LATENCY_MS=20`) a debate takes 70 ms and any
//! single 429 or hang outweighs it.
//!
//!     cargo bench --bench soak                                   # 120 debates, 24 at a time
//!     SOAK_DEBATES=500 SOAK_CONCURRENCY=50 cargo bench --bench soak
//!     SOAK_SEED=7 …                                              # another draw of faults
//!     SOAK_FAULTS=0 …                                            # the same soak, no faults
//!     SOAK_KINDS=cut SOAK_PROSE_PCT=0 SOAK_EARLY_CUTS_PCT=0 …   # only streams cut half-way
//!
//! Reports how many debates ended `done` and `failed` (by code, with a message each), whether
//! every stream equals its stored transcript (turns, verdict, final status; event ids from 1,
//! rising, each once), whether any row stayed queued or running, whether a debate that had
//! finished before the crash was lost by it, and whether the service kept calling the flaky
//! endpoint concurrently: its `/metrics` on the endpoint's mode and switches (the restarted
//! instance's: the killed one's went with it) and, from the fake's side, how many calls began
//! while another was in flight.

#[allow(dead_code)] // the benches share it; this one reads only its settings
mod measure;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossfire_engine::llm::sse::SseDecoder;
use crossfire_server::store::Store;
use crossfire_testkit as support;
use futures::StreamExt;
use measure::env_or;
use serde_json::{Value, json};
use support::process::Instance;
use support::{FakeLlm, FakeOptions, Fault, RandomFaults};

const USERS: usize = 10;

/// How one debate went, as its client saw it and as the service stored it.
struct Outcome {
    status: String,
    error: Option<(String, String)>,
    /// The stream and the transcript tell the same story.
    consistent: Result<(), String>,
    /// It had ended before the crash.
    done_before_crash: bool,
    /// From its creation to the end of its stream.
    took: Duration,
    id: String,
}

/// Where the service is now (it moves when it restarts), and the users' tokens.
struct Service {
    base: Mutex<String>,
    http: reqwest::Client,
    tokens: Vec<String>,
    finished: AtomicUsize,
    crashed: std::sync::atomic::AtomicBool,
}

impl Service {
    fn base(&self) -> String {
        self.base.lock().unwrap().clone()
    }
}

#[tokio::main]
async fn main() {
    let debates = env_or("SOAK_DEBATES", 120) as usize;
    let concurrency = env_or("SOAK_CONCURRENCY", 24) as usize;
    let seed = env_or("SOAK_SEED", 1);
    let faults = env_or("SOAK_FAULTS", 1) != 0;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fake = FakeLlm::start(FakeOptions {
        latency: Duration::from_millis(env_or("SOAK_LATENCY_MS", 300)),
        token_delay: Duration::from_millis(env_or("SOAK_TOKEN_MS", 200)),
        random_chunks: false,
        random_faults: faults.then_some(RandomFaults {
            repairs_too: true,
            early_cuts: env_or("SOAK_EARLY_CUTS_PCT", 10) as f64 / 100.0,
            kinds: kinds(),
            judge_prose: env_or("SOAK_PROSE_PCT", 33) as f64 / 100.0,
            ..RandomFaults::new(seed, 1.0 / 3.0, 1.0 / 3.0)
        }),
        ..FakeOptions::default()
    })
    .await;
    let dir = std::env::temp_dir().join(format!("crossfire-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("crossfire.toml");
    // A second's timeout and a copy of a request unanswered after half a second (the fake
    // answers in 0.3) bound a hang. Two in five attempts at a speech fail, so seven failures
    // in a row come once in 600 calls; eight retries make it nine, once in 3,800.
    std::fs::write(
        &config,
        "[llm]\ntimeout_s = 1\nhedge_after_s = 0.5\nmax_retries = 8\nretry_base_ms = 100\nmax_in_flight = 1000\n",
    )
    .unwrap();
    let database = format!("sqlite://{}", dir.join("soak.db").display());
    let args = ["--config", config.to_str().unwrap(), "--", "--grace-s", "0"];
    let envs = [
        ("CROSSFIRE_LLM_BASE_URL", fake.base_url.as_str()),
        ("CROSSFIRE_DATABASE_URL", database.as_str()),
        ("CROSSFIRE_DEBATES_PER_DAY", "1000000"),
        ("CROSSFIRE_SIGNUPS_PER_HOUR", "0"),
    ];
    let start = || Instance::start(env!("CARGO_BIN_EXE_crossfire"), &args, &envs);
    let mut server = start().await;
    let http = reqwest::Client::new();
    let mut tokens = Vec::new();
    for i in 0..USERS {
        let reply: Value = http
            .post(format!("{}/api/auth/signup", server.base))
            .json(&json!({"email": format!("soak-{i}@example.com"), "password": "soak-test-password"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        tokens.push(reply["token"].as_str().unwrap().to_string());
    }
    let service = Arc::new(Service {
        base: Mutex::new(server.base.clone()),
        http,
        tokens,
        finished: AtomicUsize::new(0),
        crashed: Default::default(),
    });

    let mix = if faults {
        "~1/3 of model calls failing, 1/3 of verdicts and repairs unreadable, early cuts"
    } else {
        "no faults"
    };
    println!("soak: {debates} debates, {concurrency} at a time, {mix}, a kill half-way");
    let started = Instant::now();
    let runs = futures::stream::iter(0..debates)
        .map(|i| {
            let service = service.clone();
            async move { run(&service, i).await }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<Outcome>>();
    let crash = async {
        while service.finished.load(Ordering::SeqCst) < debates / 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server.signal("KILL");
        let _ = server.child.wait().await;
        service.crashed.store(true, Ordering::SeqCst);
        let in_flight = service.finished.load(Ordering::SeqCst);
        server = start().await;
        *service.base.lock().unwrap() = server.base.clone();
        in_flight
    };
    let (outcomes, finished_at_crash) = futures::join!(runs, crash);
    let wall = started.elapsed();

    // Every debate that was done before the crash is still done, as is every row settled.
    let store = Store::connect(&database).await.unwrap();
    let mut lost = 0;
    for outcome in outcomes.iter().filter(|o| o.done_before_crash) {
        let run = store.run(&outcome.id).await.unwrap();
        if run.is_none_or(|r| r.status.as_str() != "done") {
            lost += 1;
        }
    }
    let unsettled = store.unfinished_runs().await.unwrap().len();

    let done = outcomes.iter().filter(|o| o.status == "done").count();
    let mut failed: BTreeMap<String, (usize, String)> = BTreeMap::new();
    let mut without_reason = 0;
    for o in outcomes.iter().filter(|o| o.status != "done") {
        match &o.error {
            Some((code, message)) if !code.is_empty() && !message.is_empty() => {
                let entry = failed.entry(code.clone()).or_insert((0, message.clone()));
                entry.0 += 1;
            }
            _ => without_reason += 1,
        }
    }
    let inconsistent: Vec<&String> = outcomes
        .iter()
        .filter_map(|o| o.consistent.as_ref().err())
        .collect();
    println!(
        "  {done} done ({:.1}%), {} failed, in {:.1} s; the kill came after {finished_at_crash} had ended",
        100.0 * done as f64 / debates as f64,
        debates - done,
        wall.as_secs_f64()
    );
    let mut took: Vec<f64> = outcomes.iter().map(|o| o.took.as_secs_f64()).collect();
    took.sort_by(f64::total_cmp);
    let at = |q: f64| took[((took.len() - 1) as f64 * q) as usize];
    println!(
        "    a debate took {:.1} s on average, p50 {:.1} s, p90 {:.1} s, the longest {:.1} s",
        took.iter().sum::<f64>() / took.len() as f64,
        at(0.5),
        at(0.9),
        at(1.0)
    );
    for (code, (n, message)) in &failed {
        println!("    failed {code}: {n}, e.g. {message}");
    }
    println!("    failed without a code and a message: {without_reason}");
    println!(
        "  streams that differ from their transcripts: {}",
        inconsistent.len()
    );
    for problem in inconsistent.iter().take(5) {
        println!("    {problem}");
    }
    println!("  rows left queued or running: {unsettled}");
    println!("  debates done before the crash and lost by it: {lost}");
    // What the restarted instance took over from the killed one.
    let base = service.base.lock().unwrap().clone();
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in metrics
        .lines()
        .filter(|l| l.starts_with("crossfire_runs_taken_over_total{"))
    {
        println!("  after the kill, {line}");
    }
    // Serial or concurrent: what the restarted instance says of its endpoint (mode and
    // switches), and what the fake saw.
    for line in metrics
        .lines()
        .filter(|l| l.starts_with("crossfire_model_endpoint"))
    {
        println!("  after the kill, {line}");
    }
    let log = fake.log();
    let model_calls = log.len();
    let faulted = log.iter().filter(|c| c.fault.is_some()).count();
    println!(
        "  model calls: {model_calls}, {faulted} of them faulted ({:.0}%)",
        100.0 * faulted as f64 / model_calls.max(1) as f64
    );
    let overlapping = |calls: &[support::Logged]| {
        let n = calls
            .iter()
            .enumerate()
            .filter(|(i, call)| {
                // A hung call never finishes; the rest in flight are the ones that count.
                calls[..*i]
                    .iter()
                    .rev()
                    .take(200)
                    .filter(|c| c.fault != Some(Fault::Hang))
                    .any(|c| c.finished().is_none_or(|end| call.received < end))
            })
            .count();
        100.0 * n as f64 / calls.len().max(1) as f64
    };
    let (first, second) = log.split_at(model_calls / 2);
    println!(
        "  calls that began while another was in flight: {:.0}% of the first half, {:.0}% of \
         the second (one at a time would be 0%)",
        overlapping(first),
        overlapping(second)
    );
    let _ = server.child.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The kinds of failure drawn, from `SOAK_KINDS` (a comma-separated list of `500`, `429`,
/// `cut`, `hang`), by default all four.
fn kinds() -> &'static [Fault] {
    let Ok(list) = std::env::var("SOAK_KINDS") else {
        return RandomFaults::KINDS;
    };
    let kinds = list
        .split(',')
        .filter(|kind| !kind.trim().is_empty())
        .map(|kind| match kind.trim() {
            "500" => Fault::ServerError,
            "429" => Fault::RateLimited { secs: 1 },
            "cut" => Fault::CutStream,
            "hang" => Fault::Hang,
            other => panic!("SOAK_KINDS: unknown kind {other:?}"),
        })
        .collect::<Vec<_>>();
    Vec::leak(kinds)
}

/// One debate, start to end: created (retried while the service is down), followed to `done`
/// across reconnections, then compared with its stored transcript.
async fn run(service: &Service, i: usize) -> Outcome {
    let started = Instant::now();
    let token = &service.tokens[i % USERS];
    let body = json!({"story": "nk-troops-russia", "a": "winston-churchill", "b": "george-kennan",
                      "motion": format!("Is Pyongyang winning more than it is losing? ({i})")});
    let id = loop {
        let sent = service
            .http
            .post(format!("{}/api/debates", service.base()))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await;
        if let Ok(response) = sent
            && let Ok(created) = response.json::<Value>().await
            && let Some(id) = created["id"].as_str()
        {
            break id.to_string();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let events = follow(service, &id, token).await;
    let took = started.elapsed();
    let crashed_before_end = !service.crashed.load(Ordering::SeqCst);
    service.finished.fetch_add(1, Ordering::SeqCst);
    let transcript = loop {
        let got = service
            .http
            .get(format!("{}/api/debates/{id}", service.base()))
            .bearer_auth(token)
            .send()
            .await;
        if let Ok(response) = got
            && let Ok(t) = response.json::<Value>().await
            && t["status"].is_string()
        {
            break t;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let status = transcript["status"].as_str().unwrap_or("").to_string();
    let error = transcript["error"].as_object().map(|e| {
        let text = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        (text("code"), text("message"))
    });
    Outcome {
        done_before_crash: crashed_before_end && status == "done",
        took,
        consistent: compare(&events, &transcript),
        status,
        error,
        id,
    }
}

/// The debate's events, from the start to `done`, reconnecting after `Last-Event-ID`
/// whenever the stream breaks (the service was killed, and comes back elsewhere).
async fn follow(service: &Service, id: &str, token: &str) -> Vec<(i64, String, Value)> {
    let mut events: Vec<(i64, String, Value)> = Vec::new();
    loop {
        let mut request = service
            .http
            .get(format!("{}/api/debates/{id}/events", service.base()))
            .bearer_auth(token);
        if let Some((last, ..)) = events.last() {
            request = request.header("Last-Event-ID", last.to_string());
        }
        let Ok(response) = request.send().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let mut body = response.bytes_stream();
        let mut decoder = SseDecoder::new();
        while let Some(Ok(chunk)) = body.next().await {
            for event in decoder.push(&chunk) {
                if event.event == "reset" {
                    // What we heard of this run was never stored: the whole log follows.
                    events.clear();
                    continue;
                }
                let seq = event
                    .id
                    .as_deref()
                    .and_then(|i| i.parse().ok())
                    .unwrap_or(-1);
                let data = serde_json::from_str(&event.data).unwrap_or(Value::Null);
                let done = event.event == "done";
                events.push((seq, event.event, data));
                if done {
                    return events;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether the streamed events tell what the transcript holds: ids 1, 2, 3… each once; each
/// finished turn's text as stored; a verdict if it has one; the same final status.
fn compare(events: &[(i64, String, Value)], transcript: &Value) -> Result<(), String> {
    let id = transcript["id"].as_str().unwrap_or("?");
    // Ids rise, each once (a crashed run's log goes on past a gap).
    for pair in events.windows(2) {
        if pair[1].0 <= pair[0].0 {
            return Err(format!("{id}: event id {} after {}", pair[1].0, pair[0].0));
        }
    }
    // The log starts at 1, or past the gap when a crash left nothing of it stored.
    let first = events.first().map(|e| e.0);
    if first.is_some_and(|f| f != 1 && f != crossfire_server::live::CRASH_GAP + 1) {
        return Err(format!("{id}: the first event has id {first:?}"));
    }
    let streamed: Vec<(u64, String, String)> = events
        .iter()
        .filter(|(_, name, _)| name == "turn_end")
        .map(|(_, _, d)| {
            (
                d["round"].as_u64().unwrap_or(0),
                d["speaker"].as_str().unwrap_or("").to_string(),
                d["text"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let stored: Vec<(u64, String, String)> = transcript["rounds"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| {
            let round = r["round"].as_u64().unwrap_or(0);
            r["turns"].as_array().into_iter().flatten().map(move |t| {
                (
                    round,
                    t["speaker"].as_str().unwrap_or("").to_string(),
                    t["text"].as_str().unwrap_or("").to_string(),
                )
            })
        })
        .collect();
    let mut streamed_sorted = streamed.clone();
    streamed_sorted.sort();
    let mut stored_sorted = stored;
    stored_sorted.sort();
    if streamed_sorted != stored_sorted {
        return Err(format!(
            "{id}: {} turns streamed, {} stored, or their texts differ",
            streamed_sorted.len(),
            stored_sorted.len()
        ));
    }
    let verdict_streamed = events.iter().any(|(_, name, _)| name == "verdict");
    let verdict_stored = !transcript["verdict"].is_null();
    if verdict_streamed != verdict_stored {
        return Err(format!("{id}: a verdict in one and not the other"));
    }
    let ended = events.last().map(|(_, _, d)| d["status"].clone());
    if ended.as_ref() != Some(&transcript["status"]) {
        return Err(format!(
            "{id}: the stream ended {ended:?}, the transcript is {}",
            transcript["status"]
        ));
    }
    Ok(())
}
