//! What models write, screened before anyone is shown it: a sentence the policy refuses never
//! reaches the stream, a turn's text or the transcript; it goes to editors only, and the
//! speech is written again (or, by a model that can, gone on from what was shown), at most
//! twice, before the debate ends as `unsafe_output`.

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;

use crossfire_engine::event::{Event, EventSink, Speaker, Withheld};
use crossfire_engine::llm::{ChatRequest, Completion, LanguageModel, LlmError, TokenSink};
use crossfire_engine::screen::{Policy, Screener};
use crossfire_engine::transcript::{ErrorCode, Status, Transcript};
use crossfire_testkit::{self as support, ABUSE, FakeLlm, FakeOptions, Fault, Target};

/// A debate on the shipped policy, with what it streamed and what it withheld.
async fn debate(fake: &FakeLlm) -> (Transcript, Vec<Event>, Vec<Withheld>) {
    debate_with(fake, None).await
}

/// [`debate`], with another debater in front of the fake.
async fn debate_with(
    fake: &FakeLlm,
    debater: Option<Arc<dyn LanguageModel>>,
) -> (Transcript, Vec<Event>, Vec<Withheld>) {
    let policy = Policy::load_dir(&support::repo("policy")).unwrap();
    let mut engine = support::engine_for(&support::config_for(&fake.base_url))
        .with_screener(Screener::new(Arc::new(policy)));
    if let Some(debater) = debater {
        engine.debater = debater;
    }
    let withheld = Arc::new(Mutex::new(Vec::new()));
    let kept = withheld.clone();
    let (sink, mut rx) = EventSink::channel();
    let sink = sink.with_quarantine(move |w| kept.lock().unwrap().push(w));
    let transcript = engine
        .run_debate(
            "t".into(),
            &support::story("nk-troops-russia"),
            &support::persona("winston-churchill"),
            &support::persona("george-kennan"),
            "Is Pyongyang winning more than it is losing?",
            &sink,
        )
        .await;
    drop(sink);
    let mut events = Vec::new();
    while let Some(e) = rx.recv().await {
        events.push(e);
    }
    let withheld = withheld.lock().unwrap().clone();
    (transcript, events, withheld)
}

fn restarts(events: &[Event]) -> usize {
    events
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::TurnRestart {
                    speaker: Speaker::A,
                    ..
                }
            )
        })
        .count()
}

#[tokio::test]
async fn a_refused_sentence_is_withheld_and_the_speech_written_again() {
    let fake = FakeLlm::start(FakeOptions {
        faults: vec![(Target::Speaker("Winston Churchill"), Fault::Abusive)],
        ..FakeOptions::default()
    })
    .await;
    let (transcript, events, withheld) = debate(&fake).await;
    assert_eq!(transcript.status, Status::Done, "{:?}", transcript.error);
    let streamed = format!("{events:?}");
    assert!(!streamed.contains("vermin"), "the stream never shows it");
    let stored = serde_json::to_string(&transcript).unwrap();
    assert!(!stored.contains("vermin"), "nor does the transcript");
    let markdown = crossfire_engine::markdown::debate(&transcript, "A story");
    assert!(!markdown.contains("vermin"));
    assert_eq!(restarts(&events), 1, "the opening was spoken again");
    assert_eq!(withheld.len(), 1, "{withheld:?}");
    assert_eq!(withheld[0].text, ABUSE);
    assert_eq!(withheld[0].category, "hate");
    assert!(withheld[0].refused && withheld[0].round == 1);
    // The sentence before it had passed screening and was shown: the restart takes it back.
    let first_attempt: Vec<&Event> = events
        .iter()
        .take_while(|e| !matches!(e, Event::TurnRestart { .. }))
        .collect();
    assert!(
        first_attempt.iter().any(|e| matches!(
            e,
            Event::Token {
                speaker: Speaker::A,
                ..
            }
        )),
        "sentences before the refused one streamed: {first_attempt:?}"
    );
}

#[tokio::test]
async fn a_model_that_keeps_writing_it_ends_the_debate_as_unsafe_output() {
    let abusive = (Target::Speaker("Winston Churchill"), Fault::Abusive);
    let fake = FakeLlm::start(FakeOptions {
        faults: vec![abusive; 3],
        ..FakeOptions::default()
    })
    .await;
    let (transcript, events, withheld) = debate(&fake).await;
    assert_eq!(transcript.status, Status::Failed);
    let error = transcript.error.clone().unwrap();
    assert_eq!(error.code, ErrorCode::UnsafeOutput);
    assert!(!error.message.contains("vermin"), "{}", error.message);
    assert_eq!(restarts(&events), 2, "written again twice, then given up");
    assert_eq!(withheld.len(), 3);
    // The other side's opening finished: the failed debate keeps it.
    let kept = &transcript.rounds[0].turns;
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].speaker, Speaker::B);
    assert!(!format!("{events:?}").contains("vermin"));
    assert!(matches!(
        events.last(),
        Some(Event::Done {
            status: Status::Failed
        })
    ));
}

#[tokio::test]
async fn a_verdict_whose_rationale_breaks_the_policy_is_judged_again_and_never_shown() {
    let fake = FakeLlm::start(FakeOptions {
        faults: vec![(Target::Judge, Fault::Abusive)],
        ..FakeOptions::default()
    })
    .await;
    let (transcript, events, withheld) = debate(&fake).await;
    assert_eq!(transcript.status, Status::Done, "{:?}", transcript.error);
    assert!(!format!("{events:?}").contains("vermin"));
    assert!(
        !serde_json::to_string(&transcript)
            .unwrap()
            .contains("vermin")
    );
    assert_eq!(withheld.len(), 1, "{withheld:?}");
    assert_eq!(withheld[0].round, crossfire_engine::debate::VERDICT_ROUND);
    assert!(transcript.verdict.is_some());
}

#[tokio::test]
async fn prompt_markup_and_instruction_lines_are_cut_and_a_speech_out_of_character_is_rewritten() {
    let fake = FakeLlm::start(FakeOptions {
        faults: vec![
            (Target::Speaker("Winston Churchill"), Fault::PromptEcho),
            (Target::Speaker("George F. Kennan"), Fault::AsAnAi),
        ],
        ..FakeOptions::default()
    })
    .await;
    let (transcript, events, _) = debate(&fake).await;
    assert_eq!(transcript.status, Status::Done, "{:?}", transcript.error);
    let shown = format!("{events:?} {}", serde_json::to_string(&transcript).unwrap());
    for echo in [
        "<opponent_opening>",
        "</response>",
        "Round 2 of 2",
        "language model",
    ] {
        assert!(!shown.contains(echo), "{echo} reached a reader");
    }
    // Churchill's words were kept, his prompt's cut without speaking again; Kennan's opening
    // stepped out of the debate and was spoken again.
    let opening = |speaker| {
        transcript.rounds[0]
            .turns
            .iter()
            .find(|t| t.speaker == speaker)
            .map(|t| t.text.clone())
            .unwrap_or_default()
    };
    assert!(
        opening(Speaker::A).starts_with("I am Winston Churchill"),
        "{}",
        opening(Speaker::A)
    );
    let restarted = |speaker| {
        events
            .iter()
            .filter(|e| matches!(e, Event::TurnRestart { speaker: s, .. } if *s == speaker))
            .count()
    };
    assert_eq!(restarted(Speaker::A), 0);
    assert_eq!(restarted(Speaker::B), 1);
}

/// A debater that goes on from a reply begun earlier, as the embedded model does, and notes
/// what it was asked to go on from (the fake behind it answers whole speeches).
struct Continuing {
    inner: Arc<dyn LanguageModel>,
    asked: Mutex<Vec<Option<String>>>,
}

impl LanguageModel for Continuing {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn continues_replies(&self) -> bool {
        true
    }

    fn complete<'a>(
        &'a self,
        request: &'a ChatRequest,
        sink: &'a dyn TokenSink,
    ) -> BoxFuture<'a, Result<Completion, LlmError>> {
        self.asked
            .lock()
            .unwrap()
            .push(request.continue_reply.clone());
        self.inner.complete(request, sink)
    }
}

#[tokio::test]
async fn a_model_that_continues_replies_goes_on_after_a_refused_sentence_keeping_what_was_shown() {
    let fake = FakeLlm::start(FakeOptions {
        faults: vec![(Target::Speaker("Winston Churchill"), Fault::Abusive)],
        ..FakeOptions::default()
    })
    .await;
    let continuing = Arc::new(Continuing {
        inner: support::engine_for(&support::config_for(&fake.base_url)).debater,
        asked: Mutex::new(Vec::new()),
    });
    let debater: Arc<dyn LanguageModel> = continuing.clone();
    let (transcript, events, withheld) = debate_with(&fake, Some(debater)).await;
    assert_eq!(transcript.status, Status::Done, "{:?}", transcript.error);
    assert_eq!(withheld.len(), 1, "{withheld:?}");
    assert_eq!(restarts(&events), 0, "nothing shown is taken back");
    // What Churchill's opening streamed before the refused sentence is what the next call
    // went on from, and it begins his speech as kept.
    let shown: String = events
        .iter()
        .filter_map(|e| match e {
            Event::Token {
                round: 1,
                speaker: Speaker::A,
                text,
            } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    let opening = transcript.rounds[0]
        .turns
        .iter()
        .find(|t| t.speaker == Speaker::A)
        .unwrap();
    assert_eq!(shown.trim(), opening.text, "the stream is the speech");
    let asked = continuing.asked.lock().unwrap().clone();
    let went_on: Vec<&String> = asked.iter().flatten().collect();
    assert_eq!(went_on.len(), 1, "{asked:?}");
    assert!(!went_on[0].is_empty() && !went_on[0].contains("vermin"));
    assert!(
        opening.text.starts_with(went_on[0].as_str()),
        "{:?} then {:?}",
        went_on[0],
        opening.text
    );
    assert!(opening.text.len() > went_on[0].len(), "and went on");
    assert!(
        !serde_json::to_string(&transcript)
            .unwrap()
            .contains("vermin")
    );
}
