//! Load: many concurrent streaming debates through a real `crossfire serve` process (SQLite),
//! against a fake model with 30 ms to first token and 20 ms a token. Reports the delay from
//! a model token's emission to its arrival at the client (p50/p99/max), the server's peak
//! RSS, and the server's CPU time per debate (the model runs in this process, not there).
//!
//!     cargo bench --bench load                      # 2,000 debates
//!     LOAD_DEBATES=200 cargo bench --bench load
//!     LOAD_TOKEN_MS=0 cargo bench --bench load      # tokens at once: the per-debate cost
//!     LOAD_RAMP_MS=0 cargo bench --bench load       # every debate starts at once
//!     BENCH_PIN=1 cargo bench --bench load          # the server on a core of its own
//!     LOAD_TIMELINE=1 cargo bench --bench load      # delays and CPU per 250 ms
//!     LOAD_SERVER=/tmp/old/crossfire cargo bench --bench load   # another build's server
//!
//! Debates start spread evenly over `LOAD_RAMP_MS` (1 s by default). Started in the same
//! millisecond, every stream's tokens arrive in lockstep with the fake's 20 ms tick, and the
//! bursts, not the service, set the tail latency.

mod measure;

use crossfire_testkit as support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossfire_engine::llm::sse::SseDecoder;
use futures::StreamExt;
use measure::{cpu_times, env_or, percentile_ms, pin};
use serde_json::{Value, json};
use support::process::Instance;
use support::{FakeLlm, FakeOptions};

const USERS: usize = 20;

#[tokio::main]
async fn main() {
    let debates: usize = env_or("LOAD_DEBATES", 2000) as usize;
    // Counted before any pinning, which leaves this process one core.
    let cores = cores();
    let ramp = Duration::from_millis(env_or("LOAD_RAMP_MS", 1000));
    let _ = rustls::crypto::ring::default_provider().install_default();
    support::epoch();
    let fake = FakeLlm::start(FakeOptions {
        latency: Duration::from_millis(30),
        token_delay: Duration::from_millis(env_or("LOAD_TOKEN_MS", 20)),
        random_chunks: false,
        stamp_tokens: true,
        ..FakeOptions::default()
    })
    .await;

    let dir = std::env::temp_dir().join(format!("crossfire-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("crossfire.toml");
    std::fs::write(
        &config,
        "[llm]\nmax_in_flight = 100000\n[judge]\nmax_in_flight = 100000\n",
    )
    .unwrap();
    let database = format!("sqlite://{}", dir.join("load.db").display());
    // Two builds compare best in alternating runs, one window: the VM's speed drifts.
    let binary = std::env::var("LOAD_SERVER")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_crossfire").to_string());
    let mut server = Instance::start(
        &binary,
        &["--config", config.to_str().unwrap(), "--"],
        &[
            ("CROSSFIRE_LLM_BASE_URL", &fake.base_url),
            ("CROSSFIRE_DATABASE_URL", &database),
            ("CROSSFIRE_DEBATES_PER_DAY", "1000000000"),
            ("CROSSFIRE_SIGNUPS_PER_HOUR", "0"),
        ],
    )
    .await;
    let pid = server.pid();
    pin(pid);
    let base = server.base.clone();

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(4096)
        .build()
        .unwrap();
    let mut tokens = Vec::new();
    for i in 0..USERS {
        let reply: Value = http
            .post(format!("{base}/api/auth/signup"))
            .json(&json!({"email": format!("load-{i}@example.com"), "password": "load-test-password"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        tokens.push(reply["token"].as_str().unwrap().to_string());
    }

    let cpu_before = cpu_times(pid);
    let own_cpu_before = cpu_times(std::process::id());
    let delays = Arc::new(Mutex::new(Vec::<(u64, u64)>::new()));
    let releases = Arc::new(Mutex::new(Vec::<u64>::new()));
    let streams = Arc::new(Mutex::new(Vec::<(Instant, Instant)>::new()));
    let started = Instant::now();
    let samples = Arc::new(Mutex::new(Vec::new()));
    if std::env::var_os("LOAD_TIMELINE").is_some() {
        tokio::spawn(sample_cpu(pid, samples.clone()));
    }
    let runs = (0..debates).map(|i| {
        let (http, base, token, delays, releases, streams) = (
            http.clone(),
            base.clone(),
            tokens[i % USERS].clone(),
            delays.clone(),
            releases.clone(),
            streams.clone(),
        );
        // Readers do not all press the button in the same millisecond: starts are spread
        // evenly over the ramp.
        let start = started + ramp.mul_f64(i as f64 / debates as f64);
        tokio::spawn(async move {
            tokio::time::sleep_until(start.into()).await;
            let timing = Timing {
                delays: &delays,
                releases: &releases,
                streams: &streams,
            };
            one_debate(&http, &base, &token, &timing).await
        })
    });
    let outcomes = futures::future::join_all(runs).await;
    let wall = started.elapsed();
    // Work the server defers past the clients' end (the event writer's backlog) counts too.
    let cpu_after = settled_cpu_times(pid).await;
    let (user, system) = (cpu_after.0 - cpu_before.0, cpu_after.1 - cpu_before.1);
    let cpu = user + system;
    let own_cpu = {
        let (u, s) = cpu_times(std::process::id());
        u + s - own_cpu_before.0 - own_cpu_before.1
    };
    let done = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(Ok(s)) if s == "done"))
        .count();
    let failed: Vec<String> = outcomes
        .iter()
        .filter_map(|o| match o {
            Ok(Ok(s)) if s == "done" => None,
            Ok(Ok(s)) => Some(s.clone()),
            Ok(Err(e)) => Some(e.clone()),
            Err(e) => Some(e.to_string()),
        })
        .take(3)
        .collect();

    // Each token's (emission time, delay), in µs.
    let timed = delays.lock().unwrap().clone();
    let mut delays: Vec<u64> = timed.iter().map(|&(_, d)| d).collect();
    delays.sort_unstable();
    let pct = |q: f64| percentile_ms(&delays, q);
    println!(
        "{debates} concurrent debates through `crossfire serve` (SQLite), started over {} ms, fake model 30 ms TTFT + {} ms/token",
        ramp.as_millis(),
        env_or("LOAD_TOKEN_MS", 20)
    );
    println!(
        "  finished: {done} done, {} not done {failed:?}; wall {:.1} s",
        debates - done,
        wall.as_secs_f64()
    );
    let streams = streams.lock().unwrap().clone();
    let mut lengths: Vec<Duration> = streams.iter().map(|(from, to)| *to - *from).collect();
    lengths.sort_unstable();
    println!(
        "  streams open at once: {} at most; a debate streams for {:.1} s (median)",
        most_at_once(&streams),
        lengths
            .get(lengths.len() / 2)
            .map_or(0.0, Duration::as_secs_f64)
    );
    println!(
        "  token → client delay over {} tokens: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms (goal p99 < 50 ms)",
        delays.len(),
        pct(0.5),
        pct(0.9),
        pct(0.99),
        pct(1.0)
    );
    let mut releases = releases.lock().unwrap().clone();
    releases.sort_unstable();
    let released = |q: f64| percentile_ms(&releases, q);
    println!(
        "  released → client over {} events (from each event's last token, which released it: \
         the tokens before it waited for their sentence to be screened): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        releases.len(),
        released(0.5),
        released(0.99),
        released(1.0)
    );
    println!(
        "  server peak RSS: {:.0} MB (goal < 500 MB)",
        peak_rss_mb(pid)
    );
    println!(
        "  server CPU: {:.2} s ({:.2} user, {:.2} system), {:.2} ms per debate (goal ≤ 2× relay_floor's CPU a stream)",
        cpu,
        user,
        system,
        cpu * 1000.0 / debates as f64
    );
    // The fake model and the clients share the machine: what they take, the server cannot.
    println!(
        "  load generator CPU (fake model + clients, this process): {:.2} s; machine: {:.0}% of {} cores",
        own_cpu,
        100.0 * (cpu + own_cpu) / wall.as_secs_f64() / cores as f64,
        cores
    );
    if std::env::var_os("LOAD_TIMELINE").is_some() {
        print_timeline(&timed, &samples.lock().unwrap());
    }
    let _ = server.child.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// What the clients record: every token's (emission, delay), each token event's delay from
/// its last token, and when each stream was open.
struct Timing<'a> {
    delays: &'a Mutex<Vec<(u64, u64)>>,
    releases: &'a Mutex<Vec<u64>>,
    streams: &'a Mutex<Vec<(Instant, Instant)>>,
}

/// Starts a debate, follows its stream to the end, and records its timing.
async fn one_debate(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    timing: &Timing<'_>,
) -> Result<String, String> {
    let body = json!({"story": "nk-troops-russia", "a": "winston-churchill", "b": "george-kennan"});
    let created: Value = http
        .post(format!("{base}/api/debates"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let events = created["events"]
        .as_str()
        .ok_or_else(|| created.to_string())?;
    let response = http
        .get(format!("{base}{events}"))
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let opened = Instant::now();
    let mut stream = response.bytes_stream();
    let mut decoder = SseDecoder::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        let now = support::epoch().elapsed().as_micros() as u64;
        for event in decoder.push(&chunk) {
            match event.event.as_str() {
                "token" => {
                    let mut found = Vec::new();
                    for part in event.data.split('⟦').skip(1) {
                        if let Some(sent) = part.split('⟧').next().and_then(support::read_stamp) {
                            found.push((sent, now.saturating_sub(sent)));
                        }
                    }
                    if let Some(last) = found.iter().map(|&(sent, _)| sent).max() {
                        timing
                            .releases
                            .lock()
                            .unwrap()
                            .push(now.saturating_sub(last));
                    }
                    timing.delays.lock().unwrap().extend(found);
                }
                "done" => {
                    timing
                        .streams
                        .lock()
                        .unwrap()
                        .push((opened, Instant::now()));
                    let data: Value = serde_json::from_str(&event.data).unwrap_or_default();
                    return Ok(data["status"].as_str().unwrap_or("?").to_string());
                }
                _ => {}
            }
        }
    }
    Err("the stream ended without done".into())
}

/// The most intervals open at one instant.
fn most_at_once(intervals: &[(Instant, Instant)]) -> usize {
    // Ends sort before starts at the same instant: touching intervals do not overlap.
    let mut edges: Vec<(Instant, i32)> = intervals
        .iter()
        .flat_map(|&(from, to)| [(from, 1), (to, -1)])
        .collect();
    edges.sort_unstable();
    let (mut open, mut most) = (0i32, 0i32);
    for (_, change) in edges {
        open += change;
        most = most.max(open);
    }
    most as usize
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// User and system CPU seconds of a process once it has gone idle (under 5 ms of CPU in
/// 200 ms), or after a minute.
async fn settled_cpu_times(pid: u32) -> (f64, f64) {
    let mut before = cpu_times(pid);
    for _ in 0..300 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = cpu_times(pid);
        if (now.0 + now.1) - (before.0 + before.1) < 0.005 {
            return now;
        }
        before = now;
    }
    before
}

/// Peak resident memory of a process (VmHWM), in MB.
fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// CPU seconds the server and this process (the generator) had used at a moment, in µs
/// since the stamps' epoch.
struct Sample {
    at: u64,
    server: f64,
    generator: f64,
}

/// Samples both processes' CPU time every 250 ms.
async fn sample_cpu(server: u32, samples: Arc<Mutex<Vec<Sample>>>) {
    loop {
        let ((su, ss), (gu, gs)) = (cpu_times(server), cpu_times(std::process::id()));
        samples.lock().unwrap().push(Sample {
            at: support::epoch().elapsed().as_micros() as u64,
            server: su + ss,
            generator: gu + gs,
        });
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `LOAD_TIMELINE`: for each sampling interval, the tokens sent in it, their delay, and how
/// busy each process kept its core. While the generator's core is full, the delays are in
/// part its own.
fn print_timeline(timed: &[(u64, u64)], samples: &[Sample]) {
    println!("  timeline (token emission time, from the first sample):");
    let first = samples.first().map_or(0, |s| s.at);
    for pair in samples.windows(2) {
        let (from, to) = (&pair[0], &pair[1]);
        let mut delays: Vec<u64> = timed
            .iter()
            .filter(|(sent, _)| (from.at..to.at).contains(sent))
            .map(|&(_, delay)| delay)
            .collect();
        if delays.is_empty() {
            continue;
        }
        delays.sort_unstable();
        let seconds = (to.at - from.at) as f64 / 1e6;
        println!(
            "    {:5.2} s: {:6} tokens, p50 {:6.1} ms, p99 {:6.1} ms; server {:4.0}%, generator {:4.0}% of a core",
            (from.at - first) as f64 / 1e6,
            delays.len(),
            percentile_ms(&delays, 0.5),
            percentile_ms(&delays, 0.99),
            100.0 * (to.server - from.server) / seconds,
            100.0 * (to.generator - from.generator) / seconds,
        );
    }
}
