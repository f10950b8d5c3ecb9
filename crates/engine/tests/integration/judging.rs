//! A judge whose answers cannot be read, through the fake server: asked again (repair, then
//! fresh calls within the retry budget); a pass that never reads leaves a single-pass verdict
//! of low confidence; a judge that never reads fails the step but keeps the four speeches,
//! and the debate can be judged again.

use crossfire_testkit as support;

use crossfire_engine::debate::{JudgeAgainError, can_judge_again};
use crossfire_engine::event::{Event, EventSink, Speaker};
use crossfire_engine::markdown;
use crossfire_engine::transcript::{ErrorCode, SINGLE_PASS_NOTICE, Status, Transcript};
use support::{FakeLlm, FakeOptions, Fault, Target};

const MOTION: &str = "Is Pyongyang winning more than it is losing?";

/// Runs one debate on `engine`, with the events it sent.
async fn run(engine: &crossfire_engine::debate::Engine) -> (Transcript, Vec<Event>) {
    let story = support::story("nk-troops-russia");
    let (a, b) = (
        support::persona("winston-churchill"),
        support::persona("george-kennan"),
    );
    let (sink, rx) = EventSink::channel();
    let transcript = engine
        .run_debate("t".into(), &story, &a, &b, MOTION, &sink)
        .await;
    drop(sink);
    (transcript, drain(rx).await)
}

async fn drain(mut rx: tokio::sync::mpsc::UnboundedReceiver<Event>) -> Vec<Event> {
    let mut events = Vec::new();
    while let Some(e) = rx.recv().await {
        events.push(e);
    }
    events
}

/// A repair request carries the first answer and the complaint: four messages.
fn is_repair(request: &support::Logged) -> bool {
    request.body["messages"]
        .as_array()
        .is_some_and(|m| m.len() > 2)
}

#[tokio::test]
async fn a_judge_whose_answers_and_repairs_are_broken_json_is_asked_again_until_it_reads() {
    // Five unreadable answers (prose around broken JSON) shared by the two passes: some pass
    // sees its answer and its repair both broken, and must judge afresh.
    let fake = FakeLlm::start(FakeOptions {
        faults: vec![(Target::Judge, Fault::BrokenJson); 5],
        ..FakeOptions::default()
    })
    .await;
    let config = support::config_for(&fake.base_url);
    let (transcript, _) = run(&support::engine_for(&config)).await;
    assert_eq!(transcript.status, Status::Done, "{:?}", transcript.error);
    let verdict = transcript.verdict.expect("a verdict");
    assert_eq!(verdict.passes.len(), 2);
    assert!(!verdict.single_pass && !verdict.low_confidence);

    let judged = fake.requests(Target::Judge);
    assert_eq!(
        judged.len(),
        7,
        "two passes, and five answers asked for again"
    );
    let broken_repairs = judged
        .iter()
        .filter(|r| is_repair(r) && r.fault == Some(Fault::BrokenJson))
        .count();
    assert!(broken_repairs >= 1, "a repair came back broken too");
    let fresh = judged.iter().filter(|r| !is_repair(r)).count();
    assert!(fresh >= 3, "a fresh judging call followed: {fresh}");
}

#[tokio::test]
async fn a_pass_that_never_reads_leaves_a_single_pass_verdict_of_low_confidence() {
    // Every answer of the pass that shows Churchill (side a) first is unreadable.
    let fake = FakeLlm::start(FakeOptions {
        faults: vec![(
            Target::JudgeFirst("Winston Churchill"),
            Fault::AlwaysBrokenJson,
        )],
        ..FakeOptions::default()
    })
    .await;
    let config = support::config_for(&fake.base_url);
    let (transcript, events) = run(&support::engine_for(&config)).await;
    assert_eq!(transcript.status, Status::Done, "{:?}", transcript.error);
    let verdict = transcript.verdict.clone().expect("a verdict");
    assert!(verdict.single_pass && verdict.low_confidence);
    assert_eq!(verdict.passes.len(), 1);
    assert_eq!(
        verdict.passes[0].order,
        [Speaker::B, Speaker::A],
        "the pass that read"
    );
    assert!(!verdict.contested);
    // The broken pass used its whole budget: 1 + max_retries attempts, each repaired.
    let broken = fake
        .requests(Target::Judge)
        .into_iter()
        .filter(|r| r.fault == Some(Fault::AlwaysBrokenJson))
        .count();
    assert_eq!(broken, 2 * (1 + config.judge.max_retries as usize));
    // It says so wherever it is shown.
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Verdict(v) if v.single_pass))
    );
    let json = serde_json::to_value(&transcript).unwrap();
    assert_eq!(json["verdict"]["single_pass"], true);
    assert!(markdown::debate(&transcript, "A story").contains(SINGLE_PASS_NOTICE));
}

#[tokio::test]
async fn a_judge_that_never_reads_fails_the_step_keeps_the_speeches_and_can_judge_again() {
    let fake = FakeLlm::start(FakeOptions {
        faults: vec![(Target::Judge, Fault::AlwaysBrokenJson)],
        ..FakeOptions::default()
    })
    .await;
    let config = support::config_for(&fake.base_url);
    let engine = support::engine_for(&config);
    let (failed, events) = run(&engine).await;
    assert_eq!(failed.status, Status::Failed);
    let error = failed.error.clone().expect("an error");
    assert_eq!(error.code, ErrorCode::JudgeUnreadable);
    assert!(error.message.contains("invalid JSON"), "{}", error.message);
    assert!(error.message.contains("judged again"), "{}", error.message);
    assert!(failed.verdict.is_none());
    assert_eq!(
        can_judge_again(&failed),
        Ok(()),
        "the four speeches are kept"
    );
    assert!(matches!(
        &events[events.len() - 2..],
        [
            Event::Error {
                code: ErrorCode::JudgeUnreadable,
                ..
            },
            Event::Done {
                status: Status::Failed
            }
        ]
    ));

    // The judge is well again: judging again gives a verdict on the same speeches.
    fake.clear_faults();
    let before = fake.log().len();
    let story = support::story("nk-troops-russia");
    let (a, b) = (
        support::persona("winston-churchill"),
        support::persona("george-kennan"),
    );
    let (sink, rx) = EventSink::channel();
    let judged = engine
        .judge_again(failed.clone(), &story, &a, &b, &sink)
        .await
        .expect("four turns to judge");
    drop(sink);
    let events = drain(rx).await;
    assert_eq!(judged.status, Status::Done, "{:?}", judged.error);
    assert!(judged.error.is_none());
    assert_eq!(judged.rounds, failed.rounds, "the speeches as they were");
    let verdict = judged.verdict.clone().expect("a verdict");
    assert_eq!(verdict.passes.len(), 2);
    assert!(
        judged.usage.completion_tokens > failed.usage.completion_tokens,
        "the judging counts"
    );
    assert!(matches!(
        events.as_slice(),
        [Event::Verdict(v), Event::Done { status: Status::Done }] if *v == verdict
    ));
    let calls = &fake.log()[before..];
    assert_eq!(calls.len(), 2, "only the two judging passes were called");
    assert!(calls.iter().all(|c| c.target == Target::Judge));

    // What cannot be judged again is refused before anything is called or sent.
    let mut short = failed.clone();
    short.rounds.pop();
    let (sink, rx) = EventSink::channel();
    let refused = engine.judge_again(short, &story, &a, &b, &sink).await;
    assert_eq!(refused.unwrap_err(), JudgeAgainError::MissingTurns(2));
    let swapped = engine.judge_again(failed, &story, &b, &a, &sink).await;
    assert!(matches!(
        swapped.unwrap_err(),
        JudgeAgainError::Mismatch { what: "side a", .. }
    ));
    drop(sink);
    assert!(drain(rx).await.is_empty());
    assert_eq!(fake.log().len(), before + 2);
}
