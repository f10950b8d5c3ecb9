//! An endpoint's concurrency learnt from evidence, through the fake server: one that aborts
//! running streams when a request arrives (as llama-cpp-python's) is soon called one at a
//! time, a flaky one that serves concurrent streams never is, and a serial one that comes to
//! serve them is called concurrently again after a probe; a request with no answer is sent
//! again beside it.

use crossfire_testkit as support;

use std::sync::Arc;
use std::time::Duration;

use crossfire_engine::debate::Engine;
use crossfire_engine::event::EventSink;
use crossfire_engine::llm::endpoint::{EndpointStats, Mode, Policy};
use crossfire_engine::llm::openai::OpenAiClient;
use crossfire_engine::transcript::{Status, Transcript};
use support::{FakeLlm, FakeOptions, Fault, Logged, RandomFaults};

const MOTION: &str = "Is Pyongyang winning more than it is losing?";

async fn debate(engine: &Engine) -> Transcript {
    let story = support::story("nk-troops-russia");
    let (a, b) = (
        support::persona("winston-churchill"),
        support::persona("george-kennan"),
    );
    engine
        .run_debate("t".into(), &story, &a, &b, MOTION, &EventSink::discard())
        .await
}

/// The concurrency this process learnt of the fake's endpoint.
fn stats(config: &support::TestConfig) -> EndpointStats {
    OpenAiClient::new(&config.llm).unwrap().endpoint().stats()
}

/// Whether a call began before an earlier one had ended.
fn overlapped(log: &[Logged], i: usize) -> bool {
    log[..i]
        .iter()
        .any(|c| c.finished().is_none_or(|end| log[i].received < end))
}

/// A fake as llama-cpp-python's server: each new request aborts the running stream.
async fn aborting() -> FakeLlm {
    FakeLlm::start(FakeOptions {
        abort_on_new_request: true,
        random_chunks: false,
        latency: Duration::from_millis(20),
        token_delay: Duration::from_millis(3),
        ..FakeOptions::default()
    })
    .await
}

#[tokio::test]
async fn an_endpoint_that_aborts_concurrent_streams_is_serial_within_its_first_debate() {
    let fake = aborting().await;
    let config = support::config_for(&fake.base_url);
    let engine = support::engine_for(&config);
    assert!(
        !engine.debater.serial(),
        "nothing is known before the first call"
    );
    let transcript = debate(&engine).await;
    assert_eq!(transcript.status, Status::Done, "{:?}", transcript.error);
    assert!(
        engine.debater.serial() && engine.judge.serial(),
        "remembered for the endpoint"
    );
    let stats = stats(&config);
    assert_eq!(stats.mode, Mode::Serial);
    assert_eq!(
        (stats.switches_to_serial, stats.switches_to_concurrent),
        (1, 0)
    );
    // The openings met and aborted each other twice (the evidence); from then on each call
    // starts after the last one ended.
    let log = fake.log();
    assert!(log.len() >= 8, "six calls and two retries: {}", log.len());
    for i in 4..log.len() {
        assert!(!overlapped(&log, i), "call {i} overlapped an earlier one");
    }
}

#[tokio::test]
async fn an_endpoint_that_serves_concurrent_streams_keeps_its_three_waves() {
    let fine = FakeLlm::start(FakeOptions::default()).await;
    let config = support::config_for(&fine.base_url);
    let engine = support::engine_for(&config);
    assert_eq!(debate(&engine).await.status, Status::Done);
    assert!(!engine.debater.serial());
    let log = fine.log();
    assert_eq!(log.len(), 6);
    assert!(overlapped(&log, 1), "the openings ran together");
    assert_eq!(stats(&config).switches_to_serial, 0);
}

#[tokio::test]
async fn a_flaky_endpoint_that_serves_concurrent_streams_stays_concurrent() {
    // 30 % of all calls cut half-way, and a quarter of the rest cut after two pieces when
    // another call is in flight: cuts while calls overlap, but none caused by an arrival.
    let fake = FakeLlm::start(FakeOptions {
        random_chunks: false,
        latency: Duration::from_millis(5),
        token_delay: Duration::from_millis(2),
        random_faults: Some(RandomFaults {
            kinds: &[Fault::CutStream],
            early_cuts: 0.25,
            ..RandomFaults::new(7, 0.3, 0.0)
        }),
        ..FakeOptions::default()
    })
    .await;
    let mut config = support::config_for(&fake.base_url);
    config.llm.max_retries = 10;
    let engine = Arc::new(support::engine_for(&config));
    let mut done = 0;
    for _ in 0..2 {
        let runs: Vec<_> = (0..4)
            .map(|_| {
                let engine = engine.clone();
                tokio::spawn(async move { debate(&engine).await })
            })
            .collect();
        for run in runs {
            done += usize::from(run.await.unwrap().status == Status::Done);
        }
    }
    // A speech cut on each of its eleven attempts is rare, not impossible.
    assert!(done >= 7, "{done} of 8 debates done");
    let log = fake.log();
    let cut = |fault| log.iter().filter(|c| c.fault == Some(fault)).count();
    let stats = stats(&config);
    assert_eq!(
        (stats.mode, stats.switches_to_serial),
        (Mode::Concurrent, 0),
        "{} cut streams, none caused by an arrival",
        cut(Fault::CutStream) + cut(Fault::EarlyCut)
    );
    assert!(
        cut(Fault::CutStream) >= 5 && cut(Fault::EarlyCut) >= 5,
        "{} cut half-way, {} early",
        cut(Fault::CutStream),
        cut(Fault::EarlyCut)
    );
    let last = log.len() - 1;
    assert!(
        (last - 10..=last).any(|i| overlapped(&log, i)),
        "calls still overlap"
    );
}

#[tokio::test]
async fn a_serial_endpoint_is_called_concurrently_again_once_it_serves_concurrent_streams() {
    let fake = aborting().await;
    let config = support::config_for(&fake.base_url);
    // The endpoint is shared by URL: the engine's clients see this policy.
    OpenAiClient::new(&config.llm)
        .unwrap()
        .endpoint()
        .set_policy(Policy {
            // Longer than the rest of the first debate takes one call at a time.
            probe_after: Duration::from_secs(2),
            probe_calls: 3,
            ..Policy::DEFAULT
        });
    let engine = support::engine_for(&config);
    assert_eq!(debate(&engine).await.status, Status::Done);
    assert_eq!(stats(&config).mode, Mode::Serial);

    // The server is restarted without aborting; after a while and three clean calls alone
    // the endpoint is probed, and the probe's calls run side by side unharmed.
    fake.set_abort_on_new_request(false);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    for _ in 0..2 {
        assert_eq!(debate(&engine).await.status, Status::Done);
    }
    let stats = stats(&config);
    assert_eq!(stats.mode, Mode::Concurrent);
    assert_eq!(
        (stats.switches_to_serial, stats.switches_to_concurrent),
        (1, 1)
    );
    assert!(!engine.debater.serial());
    // The last debate's openings ran together.
    let log = fake.log();
    assert!(overlapped(&log, log.len() - 5), "the openings met");
}

#[tokio::test]
async fn a_request_with_no_answer_is_sent_again_beside_it_after_hedge_after() {
    let fake = FakeLlm::start(FakeOptions {
        faults: vec![(support::Target::Debater, Fault::Hang)],
        ..FakeOptions::default()
    })
    .await;
    let mut config = support::config_for(&fake.base_url);
    config.llm.timeout = Duration::from_secs(20);
    config.llm.hedge_after = Some(Duration::from_millis(300));
    let engine = support::engine_for(&config);
    let transcript = debate(&engine).await;
    assert_eq!(transcript.status, Status::Done, "{:?}", transcript.error);

    // The hung call was sent again 300 ms on, long before its timeout, and the copy answered:
    // six calls and the copy, no retry.
    let log = fake.log();
    assert_eq!(log.len(), 7);
    let hung = log
        .iter()
        .position(|c| c.fault == Some(Fault::Hang))
        .unwrap();
    let copy = log
        .iter()
        .position(|c| c.fault.is_none() && c.body == log[hung].body)
        .unwrap();
    let after = log[copy].received - log[hung].received;
    assert!(
        after >= Duration::from_millis(250) && after < Duration::from_secs(5),
        "sent again after {after:?}"
    );
    assert_eq!(stats(&config).hedges, 1);
}
