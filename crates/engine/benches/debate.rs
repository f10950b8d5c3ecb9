//! Debate wall time against a stub with a fixed latency L per call (goal: ≤ 3·L + 50 ms, as
//! the six calls run in three waves), and the share of prompt characters that a debate's
//! calls share as a common prefix (what a provider's prefix cache can reuse); and a debate
//! against a server that aborts a running stream when a new request arrives, against six
//! calls made one after another (goal: ≤ their time + 10 %).
//!
//!     cargo bench -p crossfire-engine --bench debate

use crossfire_testkit as support;

use std::time::{Duration, Instant};

use crossfire_engine::event::EventSink;
use crossfire_engine::transcript::Status;
use support::{FakeLlm, FakeOptions};

const RUNS: usize = 7;

#[tokio::main]
async fn main() {
    let story = support::story("nk-troops-russia");
    let (a, b) = (
        support::persona("winston-churchill"),
        support::persona("george-kennan"),
    );
    let motion = "Is Pyongyang winning more than it is losing?";

    println!("debate wall time against a stub with latency L per call ({RUNS} runs each)");
    for latency_ms in [50u64, 200, 500] {
        let latency = Duration::from_millis(latency_ms);
        let fake = FakeLlm::start(FakeOptions {
            latency,
            random_chunks: false,
            token_delay: Duration::ZERO,
            ..FakeOptions::default()
        })
        .await;
        let engine = support::engine_for(&support::config_for(&fake.base_url));
        let mut walls = Vec::new();
        for _ in 0..RUNS {
            let started = Instant::now();
            let t = engine
                .run_debate(
                    "bench".into(),
                    &story,
                    &a,
                    &b,
                    motion,
                    &EventSink::discard(),
                )
                .await;
            assert_eq!(t.status, Status::Done, "{:?}", t.error);
            walls.push(started.elapsed());
        }
        walls.sort();
        let median = walls[RUNS / 2];
        let overhead = median.saturating_sub(latency * 3);
        println!(
            "  L = {latency_ms:>3} ms: median {:>6.1} ms, max {:>6.1} ms, over 3·L: {:>5.1} ms (goal ≤ 50 ms) {}",
            ms(median),
            ms(walls[RUNS - 1]),
            ms(overhead),
            if overhead <= Duration::from_millis(50) {
                "ok"
            } else {
                "MISSED"
            }
        );

        if latency_ms == 50 {
            prefix_share(&fake.log()[..6]);
            let log = fake.log();
            let last = &log[log.len() - 6..];
            let t0 = last[0].received;
            for l in last {
                eprintln!(
                    "  call received +{:.1} ms, finished +{:.1} ms",
                    ms(l.received - t0),
                    ms(l.finished().unwrap() - t0)
                );
            }
        }
    }
    aborting_endpoint(&story, &a, &b, motion).await;
}

/// A server that aborts concurrent streams (llama-cpp-python's default): the engine finds
/// out on the first overlap and goes on one call at a time. Compared with the same six calls
/// made one after another, each measured alone against the same server.
async fn aborting_endpoint(
    story: &crossfire_engine::story::Story,
    a: &crossfire_engine::persona::Persona,
    b: &crossfire_engine::persona::Persona,
    motion: &str,
) {
    let options = || FakeOptions {
        latency: Duration::from_millis(200),
        random_chunks: false,
        token_delay: Duration::from_millis(10),
        abort_on_new_request: true,
        ..FakeOptions::default()
    };
    // Six calls, one after another: a debate on a fresh server whose calls never overlap,
    // timed call by call from the log.
    let fake = FakeLlm::start(options()).await;
    let mut config = support::config_for(&fake.base_url);
    config.llm.max_in_flight = 1;
    config.judge.max_in_flight = 1;
    let engine = support::engine_for(&config);
    let t = engine
        .run_debate("seq".into(), story, a, b, motion, &EventSink::discard())
        .await;
    assert_eq!(t.status, Status::Done, "{:?}", t.error);
    let sequential: Duration = fake
        .log()
        .iter()
        .map(|c| c.finished().unwrap() - c.received)
        .sum();

    let mut walls = Vec::new();
    for _ in 0..RUNS {
        let fake = FakeLlm::start(options()).await;
        let engine = support::engine_for(&support::config_for(&fake.base_url));
        let started = Instant::now();
        let t = engine
            .run_debate("abort".into(), story, a, b, motion, &EventSink::discard())
            .await;
        assert_eq!(t.status, Status::Done, "{:?}", t.error);
        walls.push(started.elapsed());
    }
    walls.sort();
    let median = walls[RUNS / 2];
    let ratio = median.as_secs_f64() / sequential.as_secs_f64();
    println!(
        "aborting endpoint: median {:.0} ms over {RUNS} fresh servers, six sequential calls {:.0} ms: {:.2}× (goal ≤ 1.10×) {}",
        ms(median),
        ms(sequential),
        ratio,
        if ratio <= 1.10 { "ok" } else { "MISSED" }
    );
}

/// The prompts as a provider sees them (role, then content, message after message), and how
/// much of them all six calls share from the start.
fn prefix_share(calls: &[support::Logged]) {
    let prompts: Vec<String> = calls
        .iter()
        .map(|c| {
            c.body["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    format!(
                        "<{}>{}",
                        m["role"].as_str().unwrap(),
                        m["content"].as_str().unwrap()
                    )
                })
                .collect()
        })
        .collect();
    let common = prompts
        .iter()
        .skip(1)
        .fold(prompts[0].len(), |n, p| common_prefix(&prompts[0][..n], p));
    let total: usize = prompts.iter().map(String::len).sum();
    let shared = common * prompts.len();
    println!(
        "prefix: the {} calls of a debate share their first {common} characters; \
         {shared} of {total} prompt characters ({:.1}%) are that common prefix",
        prompts.len(),
        100.0 * shared as f64 / total as f64
    );
    let debaters: Vec<&String> = prompts.iter().take(4).collect();
    let debater_common = debaters.iter().skip(1).fold(debaters[0].len(), |n, p| {
        common_prefix(&debaters[0][..n], p)
    });
    println!("        the 4 debater calls alone share {debater_common} characters");
}

fn common_prefix(a: &str, b: &str) -> usize {
    a.char_indices()
        .zip(b.chars())
        .find(|((_, x), y)| x != y)
        .map_or(a.len().min(b.len()), |((i, _), _)| i)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
