//! Bounded fuzzing of every parser that reads what others wrote: persona TOML, story JSON,
//! the model's SSE stream, the judge's reply and Character Cards (JSON, PNG and CHARX), and
//! the claim check of a speech the model wrote. Arbitrary bytes, and the seed corpus
//! (`tests/corpus/`, the shipped personas and stories) with bytes overwritten, inserted and
//! cut, must give a value or an error — never a panic. A whole debate on arbitrary speeches
//! and verdicts must end `done` or `failed` with a reason, and its Markdown must hold no
//! markup the model wrote. `PROPTEST_CASES` sets the cases.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crossfire_engine::event::EventSink;
use crossfire_engine::llm::sse::SseDecoder;
use crossfire_engine::llm::{ChatRequest, Completion, LanguageModel, LlmError, TokenSink, Usage};
use crossfire_engine::persona::Persona;
use crossfire_engine::story::Story;
use crossfire_engine::transcript::Status;
use crossfire_testkit as support;
use futures::future::BoxFuture;
use proptest::prelude::*;

/// The seeds of one target: the files of `dir` under the repository whose name ends so.
fn seeds(dir: &str, ending: &str) -> Vec<Vec<u8>> {
    let mut files: Vec<_> = std::fs::read_dir(support::repo(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(ending))
        .collect();
    files.sort();
    let seeds: Vec<Vec<u8>> = files.iter().map(|p| std::fs::read(p).unwrap()).collect();
    assert!(!seeds.is_empty(), "no seeds in {dir}");
    seeds
}

/// A seed with some bytes overwritten, some inserted and perhaps its tail cut.
fn mutated(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let n = seeds.len();
    (
        0..n,
        proptest::collection::vec((any::<u32>(), any::<u8>(), any::<bool>()), 0..12),
        proptest::option::of(any::<u32>()),
    )
        .prop_map(move |(i, edits, cut)| {
            let mut bytes = seeds[i].clone();
            for (at, byte, insert) in edits {
                let at = at as usize % (bytes.len() + 1);
                if insert || at == bytes.len() {
                    bytes.insert(at, byte);
                } else {
                    bytes[at] = byte;
                }
            }
            if let Some(cut) = cut {
                bytes.truncate(cut as usize % (bytes.len() + 1));
            }
            bytes
        })
}

fn any_bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..600)
}

proptest! {
    #![proptest_config(crossfire_testkit::fuzz_config(4000))]

    #[test]
    fn character_cards_never_panic(
        bytes in prop_oneof![any_bytes(), mutated(seeds("crates/engine/tests/cards", ""))],
    ) {
        // Whatever a card is, what it imports as passes the persona check.
        if let Ok(imported) = crossfire_engine::card::import(&bytes, None) {
            let path = Path::new("card.toml");
            prop_assert!(
                Persona::parse(path, imported.toml.as_bytes(), Some(&imported.persona.id)).is_ok()
            );
        }
    }

    #[test]
    fn persona_files_never_panic(bytes in prop_oneof![any_bytes(), mutated(seeds("personas", ".toml"))]) {
        if let Err(problems) = Persona::parse(Path::new("fuzz.toml"), &bytes, Some("fuzz")) {
            prop_assert!(!problems.is_empty(), "a refusal names its problems");
            for p in &problems {
                prop_assert!(p.line >= 1 && p.column >= 1, "{p}");
            }
        }
    }

    #[test]
    fn story_files_never_panic(bytes in prop_oneof![any_bytes(), mutated(seeds("stories", ".json"))]) {
        let _ = Story::parse(Path::new("fuzz.json"), &bytes, None);
    }

    #[test]
    fn sse_streams_never_panic(
        bytes in prop_oneof![any_bytes(), mutated(seeds("crates/engine/tests/corpus", ".sse"))],
        cuts in proptest::collection::vec(any::<u16>(), 0..8),
    ) {
        let mut whole = SseDecoder::new();
        let mut expected = whole.push(&bytes);
        expected.extend(whole.finish());
        let mut decoder = SseDecoder::new();
        let mut events = Vec::new();
        let mut at = 0;
        let mut ends: Vec<usize> = cuts.iter().map(|c| *c as usize % (bytes.len() + 1)).collect();
        ends.sort_unstable();
        for end in ends.into_iter().chain([bytes.len()]) {
            events.extend(decoder.push(&bytes[at..end]));
            at = end;
        }
        events.extend(decoder.finish());
        prop_assert_eq!(events, expected, "the same events however the bytes are cut");
    }

    #[test]
    fn judge_replies_never_panic(
        bytes in prop_oneof![
            any_bytes(),
            mutated(seeds("crates/engine/tests/corpus", ".json")),
            mutated(seeds("crates/engine/tests/corpus", ".txt")),
        ],
    ) {
        let reply = String::from_utf8_lossy(&bytes);
        let _ = crossfire_engine::judge::parse_lenient(&reply);
    }

    #[test]
    fn the_claim_check_never_panics_on_a_speech(
        speech in "([0-9]{1,5}|[ ,.%$€£+\\-–—\"“”'’sé⟦⟧İẞΣ]|[a-zA-Z]{1,3}|thousand|Million|percent|twenty|one|and|a|hundred|October|Oct\\.|2024-10){0,60}",
    ) {
        // A model writes the speech: whatever it writes, what is flagged is written in it.
        let checker = crossfire_engine::claims::ClaimChecker::new(
            "About 12,000 troops in October 2024; 40% more; $5.5B; \"a sacred fight\".",
        );
        for item in checker.unsupported(&speech) {
            let shown = item.strip_prefix('"').and_then(|i| i.strip_suffix('"')).unwrap_or(&item);
            prop_assert!(speech.contains(shown), "{item:?} is not in {speech:?}");
        }
    }
}

/// A model that answers each call with its next scripted reply, streamed word by word when
/// the call asks for a stream, and with nothing once the script is spent.
struct Scripted(Mutex<VecDeque<String>>);

impl LanguageModel for Scripted {
    fn name(&self) -> &str {
        "scripted"
    }

    fn complete<'a>(
        &'a self,
        request: &'a ChatRequest,
        sink: &'a dyn TokenSink,
    ) -> BoxFuture<'a, Result<Completion, LlmError>> {
        let text = self.0.lock().unwrap().pop_front().unwrap_or_default();
        Box::pin(async move {
            let mut chunks = 0;
            if request.stream {
                for piece in text.split_inclusive(' ') {
                    sink.token(piece);
                    chunks += 1;
                }
            }
            Ok(Completion {
                text,
                usage: Usage::default(),
                chunks,
                finish_reason: Some("stop".into()),
                logprobs: None,
            })
        })
    }
}

/// What a small model might write for a speech: figures, dates, quotes, markdown, letters
/// whose lowercase is longer, and the judge's own labels.
fn speech() -> impl Strategy<Value = String> {
    "([0-9]{1,5}|[ ,.%$€£+\\-–—\"“”'’é⟦⟧İẞΣ\n*#_:<>\\[\\]()=~`|&]|\n    |[a-zA-Z]{1,8}|thousand|percent|October|2024-10|Speaker 1|speaker_2|Churchill|\\{|\\}){0,80}"
}

proptest! {
    #![proptest_config(crossfire_testkit::fuzz_config(150))]

    #[test]
    fn a_debate_on_whatever_the_models_write_ends_done_or_failed_with_a_reason(
        speeches in proptest::collection::vec(speech(), 4),
        verdicts in proptest::collection::vec(
            prop_oneof![
                // Whole verdicts too, so that debates also end judged.
                4 => proptest::sample::select(
                    [seeds("crates/engine/tests/corpus", ".json"), seeds("crates/engine/tests/corpus", ".txt")].concat(),
                ),
                1 => any_bytes(),
                1 => mutated(seeds("crates/engine/tests/corpus", ".json")),
                1 => mutated(seeds("crates/engine/tests/corpus", ".txt")),
            ],
            4,
        ),
    ) {
        let scripted = |replies: Vec<String>| -> Arc<dyn LanguageModel> {
            Arc::new(Scripted(Mutex::new(replies.into())))
        };
        let verdicts = verdicts.iter().map(|v| String::from_utf8_lossy(v).into_owned()).collect();
        let config = support::config_for("http://127.0.0.1:9");
        let engine = crossfire_engine::debate::Engine::new(
            Arc::new(crossfire_engine::prompts::Prompts::load(&support::repo("prompts")).unwrap()),
            scripted(speeches),
            scripted(verdicts),
            crossfire_engine::debate::Settings::new(&config.llm, &config.judge, false),
        );
        let (story, a, b) = (
            support::story("nk-troops-russia"),
            support::persona("winston-churchill"),
            support::persona("george-kennan"),
        );
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let transcript = runtime.block_on(engine.run_debate(
            "t".into(), &story, &a, &b, "Is Pyongyang winning?", &EventSink::discard(),
        ));
        // What readers download: no generated text in it is markup.
        let markdown = crossfire_engine::markdown::debate(&transcript, &story.title);
        prop_assert!(!markdown.contains('<'), "a tag in {markdown}");
        for line in markdown.lines() {
            let digits = line.bytes().take_while(u8::is_ascii_digit).count();
            let block = line.starts_with([' ', '-', '+', '=', '~', '`'])
                || (digits > 0 && line[digits..].starts_with(['.', ')']));
            prop_assert!(!block, "a line that starts a block: {line:?}");
        }
        match transcript.status {
            Status::Done => prop_assert!(transcript.verdict.is_some()),
            Status::Failed => prop_assert!(
                transcript.error.as_ref().is_some_and(|e| !e.message.is_empty()),
                "failed without a reason"
            ),
            other => prop_assert!(false, "ended {other:?}"),
        }
    }
}

#[test]
fn the_seeds_themselves_parse() {
    for seed in seeds("personas", ".toml") {
        assert!(Persona::parse(Path::new("p.toml"), &seed, None).is_ok());
    }
    for seed in seeds("crates/engine/tests/corpus", ".json")
        .into_iter()
        .chain(seeds("crates/engine/tests/corpus", ".txt"))
    {
        let reply = String::from_utf8_lossy(&seed).into_owned();
        assert!(
            crossfire_engine::judge::parse_lenient(&reply).is_ok(),
            "{reply}"
        );
    }
    let stream = &seeds("crates/engine/tests/corpus", ".sse")[0];
    let events = SseDecoder::new().push(stream);
    assert_eq!(events.len(), 5);
}
