//! Property: however a valid stream is split into reads — through lines, through UTF-8
//! sequences — the client decodes the same tokens, text and usage.

use crossfire_testkit as support;

use std::sync::Mutex;

use crossfire_engine::llm::openai::decode_stream;
use crossfire_engine::llm::{FinishReason, TokenSink};
use proptest::prelude::*;
use serde_json::json;

#[derive(Default)]
struct Collect(Mutex<Vec<String>>);

impl TokenSink for Collect {
    fn token(&self, text: &str) {
        self.0.lock().unwrap().push(text.to_string());
    }
    fn restart(&self, _: &str) {}
}

fn token() -> impl Strategy<Value = String> {
    // Words with spaces, newlines, quotes, backslashes, accents, emoji and CJK.
    prop::string::string_regex("[ a-zé\"\\\\\n🕊️戦争—]{1,6}").unwrap()
}

proptest! {
    #[test]
    fn any_split_yields_the_same_tokens(
        tokens in prop::collection::vec(token(), 1..20),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..40),
    ) {
        let usage = json!({"prompt_tokens": 11, "completion_tokens": tokens.len()});
        let bytes = support::sse_bytes(&tokens, &usage);
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        points.sort_unstable();
        points.dedup();
        let mut chunks = Vec::new();
        let mut start = 0;
        for p in points.into_iter().chain([bytes.len()]) {
            chunks.push(&bytes[start..p]);
            start = p;
        }

        let sink = Collect::default();
        let completion = decode_stream(chunks.iter().copied(), &sink).unwrap();
        prop_assert_eq!(sink.0.into_inner().unwrap(), tokens.clone());
        prop_assert_eq!(completion.text, tokens.concat());
        prop_assert_eq!(completion.usage.completion_tokens, tokens.len() as u64);
        prop_assert_eq!(completion.usage.prompt_tokens, 11);
        prop_assert_eq!(completion.finish_reason, Some(FinishReason::Stop));
    }

    #[test]
    fn a_stream_cut_anywhere_before_the_finish_is_never_taken_as_complete(
        tokens in prop::collection::vec(token(), 1..10),
        cut in any::<prop::sample::Index>(),
    ) {
        let bytes = support::sse_bytes(&tokens, &json!({}));
        let finish = String::from_utf8_lossy(&bytes).find("\"finish_reason\":\"stop\"").unwrap();
        let cut = cut.index(finish);
        let result = decode_stream([&bytes[..cut]], &Collect::default());
        prop_assert!(result.is_err(), "cut at {} of {} decoded as complete", cut, bytes.len());
        prop_assert!(result.unwrap_err().is_retryable());
    }
}

#[test]
fn a_server_that_reports_no_usage_is_counted_by_deltas() {
    let tokens: Vec<String> = ["Blood", ",", " toil"].map(String::from).to_vec();
    let bytes = support::sse_bytes(&tokens, &json!({}));
    let completion = decode_stream([bytes.as_slice()], &Collect::default()).unwrap();
    assert_eq!(completion.usage.completion_tokens, 3);
    assert_eq!(completion.usage.prompt_tokens, 0);
}
