//! Whole debates against the fake OpenAI-compatible server: the happy path, the shape of the
//! calls (concurrency, rebuttals, swapped judging), and every failure the fake can stage.

use crossfire_testkit as support;

use std::time::Duration;

use crossfire_engine::event::{Event, EventSink, Speaker};
use crossfire_engine::transcript::{ErrorCode, ScoreMethod, Status, Transcript, Winner};
use support::{FakeLlm, FakeOptions, Fault, JudgeMode, Target};

const MOTION: &str = "Is Pyongyang winning more than it is losing?";

async fn run(fake: &FakeLlm) -> (Transcript, Vec<Event>) {
    run_with(support::config_for(&fake.base_url)).await
}

async fn run_with(config: support::TestConfig) -> (Transcript, Vec<Event>) {
    let engine = support::engine_for(&config);
    let story = support::story("nk-troops-russia");
    let (a, b) = (
        support::persona("winston-churchill"),
        support::persona("george-kennan"),
    );
    let (sink, mut rx) = EventSink::channel();
    let transcript = engine
        .run_debate("t".into(), &story, &a, &b, MOTION, &sink)
        .await;
    drop(sink);
    let mut events = Vec::new();
    while let Some(e) = rx.recv().await {
        events.push(e);
    }
    (transcript, events)
}

/// Replays the events as a client would (dropping a turn's text on `turn_restart`) and
/// returns each turn's text in the order the turns ended.
fn replay(events: &[Event]) -> Vec<((u8, Speaker), String)> {
    let mut partial: std::collections::HashMap<(u8, Speaker), String> = Default::default();
    let mut ended = Vec::new();
    for event in events {
        match event {
            Event::Token {
                round,
                speaker,
                text,
            } => partial
                .entry((*round, *speaker))
                .or_default()
                .push_str(text),
            Event::TurnRestart { round, speaker, .. } => {
                partial.remove(&(*round, *speaker));
            }
            Event::TurnEnd {
                round,
                speaker,
                text,
                ..
            } => {
                let streamed = partial.remove(&(*round, *speaker)).unwrap_or_default();
                assert_eq!(
                    streamed.trim(),
                    text,
                    "streamed tokens add up to the turn's text"
                );
                ended.push(((*round, *speaker), text.clone()));
            }
            _ => {}
        }
    }
    ended
}

#[tokio::test]
async fn a_debate_streams_four_turns_then_a_verdict() {
    let fake = FakeLlm::start(FakeOptions::default()).await;
    let (transcript, events) = run(&fake).await;

    assert_eq!(transcript.status, Status::Done, "{:?}", transcript.error);
    assert_eq!(transcript.rounds.len(), 2);
    for (round, expected_round) in transcript.rounds.iter().zip(1..) {
        assert_eq!(round.round, expected_round);
        let speakers: Vec<Speaker> = round.turns.iter().map(|t| t.speaker).collect();
        assert_eq!(speakers, [Speaker::A, Speaker::B]);
    }
    let opening_a = &transcript.rounds[0].turns[0];
    assert!(
        opening_a
            .text
            .starts_with("I am Winston Churchill, speaking in round 1"),
        "{}",
        opening_a.text
    );
    let rebuttal_b = &transcript.rounds[1].turns[1];
    assert!(
        rebuttal_b
            .text
            .starts_with("I am George F. Kennan, speaking in round 2"),
        "{}",
        rebuttal_b.text
    );
    // The claim check flags the invented figure and passes the story's one.
    assert_eq!(opening_a.unsupported, vec!["99,999".to_string()]);

    let verdict = transcript.verdict.as_ref().expect("a verdict");
    assert_eq!(
        verdict.winner,
        Winner::A,
        "the fake judge prefers Churchill in both orders"
    );
    assert!(!verdict.contested);
    assert_eq!(verdict.scores.a.criteria.argument, 8.0);
    assert_eq!(verdict.scores.a.total, 8.0 + 8.0 + 7.0 + 8.0);
    assert!(
        verdict
            .rationale
            .contains("Winston Churchill made the stronger case"),
        "{}",
        verdict.rationale
    );

    // Usage is the sum of what every call reported.
    let log = fake.log();
    assert_eq!(log.len(), 6, "4 speeches and 2 judging passes");
    let completion: u64 = log
        .iter()
        .map(|l| support::split_words(&l.text).len() as u64)
        .sum();
    let prompt: u64 = log
        .iter()
        .map(|l| (l.body.to_string().len() / 4) as u64)
        .sum();
    assert_eq!(transcript.usage.completion_tokens, completion);
    assert_eq!(transcript.usage.prompt_tokens, prompt);
    assert!(opening_a.tokens > 0);

    // The events tell the same story, ending with the verdict and `done`.
    let ended = replay(&events);
    assert_eq!(ended.len(), 4);
    let n = events.len();
    assert!(matches!(events[n - 2], Event::Verdict(_)));
    assert_eq!(
        events[n - 1],
        Event::Done {
            status: Status::Done
        }
    );
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::TurnRestart { .. }))
    );
}

#[tokio::test]
async fn calls_overlap_rebuttals_answer_openings_and_the_judge_swaps_sides() {
    let fake = FakeLlm::start(FakeOptions {
        latency: Duration::from_millis(150),
        ..FakeOptions::default()
    })
    .await;
    let (transcript, _) = run(&fake).await;
    assert_eq!(transcript.status, Status::Done, "{:?}", transcript.error);

    let debaters = fake.requests(Target::Debater);
    let overlap = |x: &support::Logged, y: &support::Logged| {
        x.received < y.finished().unwrap() && y.received < x.finished().unwrap()
    };
    let (openings, rebuttals): (Vec<_>, Vec<_>) = debaters
        .iter()
        .partition(|l| l.user().starts_with("Round 1"));
    assert_eq!((openings.len(), rebuttals.len()), (2, 2));
    assert!(
        overlap(openings[0], openings[1]),
        "the two openings run concurrently"
    );
    assert!(
        overlap(rebuttals[0], rebuttals[1]),
        "the two rebuttals run concurrently"
    );
    let judges = fake.requests(Target::Judge);
    assert!(
        overlap(&judges[0], &judges[1]),
        "the two judging passes run concurrently"
    );
    for rebuttal in &rebuttals {
        assert!(
            openings
                .iter()
                .all(|o| o.finished().unwrap() <= rebuttal.received)
        );
    }

    // Each rebuttal carries the opponent's opening.
    let opening_a = &transcript.rounds[0].turns[0].text;
    let opening_b = &transcript.rounds[0].turns[1].text;
    let rebuttal_of = |name: &str| {
        rebuttals
            .iter()
            .find(|l| l.system().contains(&format!("You are {name}")))
            .unwrap()
    };
    let opponent_block = |text: &str| format!("<opponent_opening>\n{text}\n</opponent_opening>");
    assert!(
        rebuttal_of("Winston Churchill")
            .user()
            .contains(&opponent_block(opening_b))
    );
    assert!(
        rebuttal_of("George F. Kennan")
            .user()
            .contains(&opponent_block(opening_a))
    );

    // The judge sees the sides in one order, then the other.
    let first_listed: Vec<bool> = judges
        .iter()
        .map(|j| j.user().starts_with("## Speaker 1 plays Winston Churchill"))
        .collect();
    assert!(
        first_listed.contains(&true) && first_listed.contains(&false),
        "one pass lists Churchill first, the other Kennan"
    );
    for judge in &judges {
        let fmt = &judge.body["response_format"];
        assert_eq!(fmt["type"], "json_schema");
        assert_eq!(
            fmt["json_schema"]["schema"]["properties"]["winner"]["enum"][2],
            "tie"
        );
    }

    // Every call of the debate opens with the same story block.
    let story_block_end = debaters[0].system().find("\n# The ").unwrap();
    let prefix = &debaters[0].system()[..story_block_end];
    assert!(prefix.starts_with("# The news story"));
    for call in fake.log() {
        assert!(
            call.system().starts_with(prefix),
            "every call opens with the story block"
        );
    }
}

#[tokio::test]
async fn a_judge_with_positional_bias_gives_a_contested_tie() {
    let fake = FakeLlm::start(FakeOptions {
        judge: JudgeMode::FirstListed,
        ..FakeOptions::default()
    })
    .await;
    let (transcript, _) = run(&fake).await;
    let verdict = transcript.verdict.expect("a verdict");
    assert_eq!((verdict.winner, verdict.contested), (Winner::Tie, true));
    let winners: Vec<Winner> = verdict.passes.iter().map(|p| p.winner).collect();
    assert!(winners.contains(&Winner::A) && winners.contains(&Winner::B));
    assert_eq!(
        verdict.scores.a.total, verdict.scores.b.total,
        "symmetric bias, equal means"
    );
}

#[tokio::test]
async fn the_debate_survives_500_429_cut_streams_error_frames_hangs_stalls_and_prose_verdicts() {
    let fake = FakeLlm::start(FakeOptions {
        faults: vec![
            (Target::Debater, Fault::ServerError),
            (Target::Debater, Fault::CutStream),
            (Target::Debater, Fault::RateLimited { secs: 1 }),
            (Target::Debater, Fault::ErrorFrame),
            (Target::Debater, Fault::Hang),
            (Target::Debater, Fault::Stall),
            (Target::Judge, Fault::NonJson),
        ],
        ..FakeOptions::default()
    })
    .await;
    // Both sides call at once, so which call meets which fault depends on timing (under load
    // one call met four in a row); with seven attempts a call outlasts even all six.
    let mut config = support::config_for(&fake.base_url);
    config.llm.max_retries = 6;
    let (transcript, events) = run_with(config).await;
    assert_eq!(transcript.status, Status::Done, "{:?}", transcript.error);

    // No transcript holds a doubled or half turn: each text is exactly one full speech.
    let log = fake.log();
    for round in &transcript.rounds {
        for turn in &round.turns {
            let served: Vec<&str> = log
                .iter()
                .filter(|l| l.fault.is_none())
                .map(|l| l.text.as_str())
                .collect();
            assert!(
                served.contains(&turn.text.as_str()),
                "turn text is one whole speech: {}",
                turn.text
            );
        }
    }
    // Streams that broke after sending text were restarted, and clients were told.
    let restarts = events
        .iter()
        .filter(|e| matches!(e, Event::TurnRestart { .. }))
        .count();
    assert_eq!(
        restarts, 3,
        "the cut stream, the error frame and the stall each restart their turn"
    );
    assert_eq!(replay(&events).len(), 4);

    // How long after a faulty call the same call was made again.
    let retried_after = |fault: Fault| {
        let i = log.iter().position(|l| l.fault == Some(fault)).unwrap();
        let again = log[i + 1..]
            .iter()
            .find(|l| {
                l.target == log[i].target
                    && l.system() == log[i].system()
                    && l.user() == log[i].user()
            })
            .unwrap_or_else(|| panic!("the call with {fault:?} was retried"));
        again.received - log[i].received
    };
    // The 429 was honoured: the retry of that call came no sooner than Retry-After.
    assert!(retried_after(Fault::RateLimited { secs: 1 }) >= Duration::from_millis(950));
    // The stream that went silent was given up after the 1 s timeout of silence, and its
    // turn asked for again, long before the fake would have spoken again.
    let waited = retried_after(Fault::Stall);
    assert!(
        waited >= Duration::from_millis(950) && waited < Duration::from_secs(5),
        "{waited:?}"
    );

    // The prose verdict was repaired with a second request.
    let verdict = transcript.verdict.expect("a verdict");
    assert_eq!(verdict.passes.iter().filter(|p| p.repaired).count(), 1);
    assert_eq!(fake.requests(Target::Judge).len(), 3);
    let repair = fake
        .requests(Target::Judge)
        .into_iter()
        .find(|l| l.body["messages"].as_array().unwrap().len() == 4)
        .expect("a repair request carries the bad reply and a correction");
    assert!(repair.all_text().contains("could not be read"));
}

/// The `response_format` types of the judge's requests, in order.
fn judge_formats(fake: &FakeLlm) -> Vec<String> {
    fake.requests(Target::Judge)
        .iter()
        .map(|j| {
            j.body["response_format"]["type"]
                .as_str()
                .unwrap_or("none")
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn a_judge_without_json_schema_gets_json_object_with_the_schema() {
    let fake = FakeLlm::start(FakeOptions {
        faults: vec![(Target::Judge, Fault::NoJsonSchema)],
        ..FakeOptions::default()
    })
    .await;
    let (transcript, _) = run(&fake).await;
    assert_eq!(transcript.status, Status::Done, "{:?}", transcript.error);
    let formats = judge_formats(&fake);
    let refused = formats.iter().filter(|f| *f == "json_schema").count();
    assert!(
        (1..=2).contains(&refused),
        "the refusal is not retried: {formats:?}"
    );
    assert_eq!(
        formats.iter().filter(|f| *f == "json_object").count(),
        2,
        "{formats:?}"
    );
    let object = fake
        .requests(Target::Judge)
        .into_iter()
        .find(|j| j.body["response_format"]["type"] == "json_object")
        .unwrap();
    assert_eq!(
        object.body["response_format"]["schema"]["required"][2],
        "winner"
    );
}

#[tokio::test]
async fn a_judge_without_structured_output_is_read_leniently() {
    let fake = FakeLlm::start(FakeOptions {
        faults: vec![(Target::Judge, Fault::NoStructuredOutput)],
        ..FakeOptions::default()
    })
    .await;
    let (transcript, _) = run(&fake).await;
    assert_eq!(transcript.status, Status::Done, "{:?}", transcript.error);
    assert_eq!(transcript.verdict.unwrap().winner, Winner::A);
    let formats = judge_formats(&fake);
    assert_eq!(
        formats.iter().filter(|f| *f == "none").count(),
        2,
        "{formats:?}"
    );
    assert!(
        formats.len() <= 6,
        "each format is refused at most once per pass: {formats:?}"
    );
}

#[tokio::test]
async fn an_endpoint_that_stays_down_fails_the_debate_cleanly() {
    let fake = FakeLlm::start(FakeOptions {
        faults: vec![(Target::Debater, Fault::AlwaysDown)],
        ..FakeOptions::default()
    })
    .await;
    let (transcript, events) = run(&fake).await;
    assert_eq!(transcript.status, Status::Failed);
    let error = transcript.error.expect("an error");
    assert_eq!(error.code, ErrorCode::ModelFailed);
    assert!(error.message.contains("503"), "{}", error.message);
    assert!(
        error.message.contains("gave up after 4 attempts"),
        "{}",
        error.message
    );
    assert!(transcript.rounds.is_empty() && transcript.verdict.is_none());
    let n = events.len();
    assert!(matches!(&events[n - 2], Event::Error { code, .. } if *code == ErrorCode::ModelFailed));
    assert_eq!(
        events[n - 1],
        Event::Done {
            status: Status::Failed
        }
    );
}

#[tokio::test]
async fn an_unreachable_endpoint_is_named() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    drop(listener);
    let mut config = support::config_for(&url);
    config.llm.max_retries = 1;
    let engine = support::engine_for(&config);
    let story = support::story("nk-troops-russia");
    let (a, b) = (
        support::persona("winston-churchill"),
        support::persona("george-kennan"),
    );
    let transcript = engine
        .run_debate("t".into(), &story, &a, &b, MOTION, &EventSink::discard())
        .await;
    let error = transcript.error.expect("an error");
    assert!(
        error.message.contains("cannot reach the model at"),
        "{}",
        error.message
    );
    assert!(error.message.contains(&url), "{}", error.message);
}

#[tokio::test]
async fn calls_in_flight_per_endpoint_are_bounded() {
    let fake = FakeLlm::start(FakeOptions {
        latency: Duration::from_millis(60),
        ..FakeOptions::default()
    })
    .await;
    let mut config = support::config_for(&fake.base_url);
    config.llm.max_in_flight = 1;
    config.llm.max_tokens = 123;
    let (transcript, _) = run_with(config).await;
    assert_eq!(transcript.status, Status::Done, "{:?}", transcript.error);
    let debaters = fake.requests(Target::Debater);
    for pair in debaters.windows(2) {
        assert!(
            pair[0].finished().unwrap() <= pair[1].received,
            "one debater call at a time"
        );
        assert_eq!(pair[1].body["max_tokens"], 123);
    }
}

#[tokio::test]
async fn the_judge_may_use_its_own_endpoint_and_model() {
    let debaters = FakeLlm::start(FakeOptions::default()).await;
    let judge = FakeLlm::start(FakeOptions::default()).await;
    let mut config = support::config_for(&debaters.base_url);
    config.judge.base_url = Some(judge.base_url.clone());
    let (transcript, _) = run_with(config).await;
    assert_eq!(transcript.status, Status::Done, "{:?}", transcript.error);
    assert_eq!(debaters.log().len(), 4);
    assert!(debaters.requests(Target::Judge).is_empty());
    let judged = judge.requests(Target::Judge);
    assert_eq!(judged.len(), 2);
    assert!(judged.iter().all(|j| j.body["model"] == "fake-judge"));
    assert_eq!(transcript.provenance.judge_model, "fake-judge");
    assert_eq!(transcript.provenance.model, "fake-debater");
}

#[tokio::test]
async fn a_failed_debate_keeps_the_turn_that_finished_exactly_as_streamed() {
    let fake = FakeLlm::start(FakeOptions {
        faults: vec![(Target::Speaker("George F. Kennan"), Fault::AlwaysDown)],
        ..FakeOptions::default()
    })
    .await;
    let (transcript, events) = run(&fake).await;
    assert_eq!(transcript.status, Status::Failed);
    assert_eq!(
        transcript.error.expect("a reason").code,
        ErrorCode::ModelFailed
    );
    let streamed: Vec<(Speaker, String)> = events
        .iter()
        .filter_map(|e| match e {
            Event::TurnEnd { speaker, text, .. } => Some((*speaker, text.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        streamed.len(),
        1,
        "Churchill's opening finished: {streamed:?}"
    );
    assert_eq!(transcript.rounds.len(), 1);
    let kept: Vec<(Speaker, String)> = transcript.rounds[0]
        .turns
        .iter()
        .map(|t| (t.speaker, t.text.clone()))
        .collect();
    assert_eq!(
        kept, streamed,
        "the stored transcript holds every finished turn as streamed"
    );
    assert!(
        transcript.usage.completion_tokens > 0,
        "the finished turn's usage counts"
    );
}

#[tokio::test]
async fn a_speech_that_reaches_its_token_limit_ends_at_a_sentence_and_says_so() {
    let fake = FakeLlm::start(FakeOptions {
        faults: vec![(Target::Speaker("Winston Churchill"), Fault::Length)],
        ..FakeOptions::default()
    })
    .await;
    // A limit the fake's speeches come near, so the stream holds back their last sentence.
    let mut config = support::config_for(&fake.base_url);
    config.llm.max_tokens = 20;
    let (transcript, events) = run_with(config).await;
    assert_eq!(transcript.status, Status::Done, "{:?}", transcript.error);
    let turns: Vec<_> = transcript.rounds.iter().flat_map(|r| &r.turns).collect();
    let cut: Vec<_> = turns.iter().filter(|t| t.truncated).collect();
    assert_eq!(cut.len(), 1, "one speech hit the limit");
    assert!(cut[0].text.ends_with("戦争."), "{}", cut[0].text);
    assert!(
        !cut[0].text.contains("this ship is still"),
        "{}",
        cut[0].text
    );
    assert!(
        turns
            .iter()
            .filter(|t| !t.truncated)
            .all(|t| !t.text.is_empty())
    );
    // What streamed for that turn is what the transcript keeps: nothing cut was shown.
    let (round, speaker) = transcript
        .rounds
        .iter()
        .find_map(|r| {
            r.turns
                .iter()
                .find(|t| t.truncated)
                .map(|t| (r.round, t.speaker))
        })
        .unwrap();
    let streamed: String = events
        .iter()
        .filter_map(|e| match e {
            Event::Token {
                round: r,
                speaker: s,
                text,
            } if *r == round && *s == speaker => Some(text.as_str()),
            Event::TurnRestart { .. } => None,
            _ => None,
        })
        .collect();
    assert_eq!(streamed.trim(), cut[0].text);
    assert!(events.iter().any(|e| matches!(
        e,
        Event::TurnEnd {
            truncated: true,
            ..
        }
    )));
}

#[tokio::test]
async fn scores_are_expected_values_where_the_endpoint_gives_probabilities() {
    let fake = FakeLlm::start(FakeOptions {
        logprobs: true,
        ..FakeOptions::default()
    })
    .await;
    let (transcript, _) = run(&fake).await;
    let verdict = transcript.verdict.expect("a verdict");
    assert_eq!(verdict.method, ScoreMethod::Expected);
    for pass in &verdict.passes {
        assert_eq!(pass.method, ScoreMethod::Expected);
        // The fake weighs each written score and the one below it evenly.
        for c in [pass.scores.a, pass.scores.b] {
            for score in [c.argument, c.evidence, c.rebuttal, c.fidelity] {
                assert_eq!(score.fract(), 0.5, "{score} is an expected value");
            }
        }
    }
    assert_eq!(verdict.winner, Winner::A);
    assert!(!verdict.contested, "both passes named the same winner");
    let expected_margin = (verdict.scores.a.total - verdict.scores.b.total).abs();
    assert!(verdict.margin > 0.0 && (verdict.margin - expected_margin).abs() < 1e-9);
    let judged = fake.requests(Target::Judge);
    assert!(
        judged
            .iter()
            .all(|r| r.body["logprobs"] == true && r.body["top_logprobs"] == 10)
    );
}

#[tokio::test]
async fn without_probabilities_scores_are_read_as_written_and_the_endpoint_is_not_asked_again() {
    let fake = FakeLlm::start(FakeOptions::default()).await;
    let engine = support::engine_for(&support::config_for(&fake.base_url));
    let story = support::story("nk-troops-russia");
    let (a, b) = (
        support::persona("winston-churchill"),
        support::persona("george-kennan"),
    );
    for _ in 0..2 {
        let t = engine
            .run_debate("t".into(), &story, &a, &b, MOTION, &EventSink::discard())
            .await;
        let verdict = t.verdict.expect("a verdict");
        assert_eq!(verdict.method, ScoreMethod::Sampled);
        assert!(
            verdict
                .passes
                .iter()
                .all(|p| p.scores.a.argument.fract() == 0.0)
        );
    }
    let judged = fake.requests(Target::Judge);
    assert_eq!(judged.len(), 4);
    assert!(
        judged[..2].iter().all(|r| r.body["logprobs"] == true),
        "asked at first"
    );
    assert!(
        judged[2..].iter().all(|r| r.body.get("logprobs").is_none()),
        "and not again once the endpoint gave none"
    );
}
