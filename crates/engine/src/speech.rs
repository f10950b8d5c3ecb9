//! One speech as it streams: tokens become events, and a speech that reaches its token limit
//! ends at its last complete sentence instead of mid-word (docs/events.md, `truncated`).
//!
//! Near the limit the stream holds back what follows the last sentence end, so nothing a
//! reader saw is taken back: a speech that then finishes on its own releases the held text,
//! and one cut off by the limit drops it.

use std::sync::Mutex;

use crate::event::{Event, EventSink, Speaker};
use crate::llm::TokenSink;

/// Streams one speech's tokens as events, holding back its unfinished last sentence once the
/// speech nears `max_tokens`.
pub(crate) struct SpeechSink<'a> {
    round: u8,
    speaker: Speaker,
    events: &'a EventSink,
    /// Pieces and bytes past which text waits for a sentence end before it is sent.
    hold_pieces: u64,
    hold_bytes: usize,
    state: Mutex<Streamed>,
}

#[derive(Default)]
struct Streamed {
    pieces: u64,
    /// Text sent so far.
    shown: String,
    /// Text received but not sent: it follows the last sentence end.
    held: String,
}

impl<'a> SpeechSink<'a> {
    pub(crate) fn new(round: u8, speaker: Speaker, events: &'a EventSink, max_tokens: u32) -> Self {
        let max = u64::from(max_tokens);
        SpeechSink {
            round,
            speaker,
            events,
            hold_pieces: max * 3 / 4,
            // About three bytes a token: servers may send several tokens a piece.
            hold_bytes: max_tokens as usize * 3,
            state: Mutex::new(Streamed::default()),
        }
    }

    fn send(&self, text: String) {
        self.events.send(Event::Token {
            round: self.round,
            speaker: self.speaker,
            text,
        });
    }

    /// Ends the stream and returns the speech as shown. A speech cut off by the token limit
    /// (`truncated`) loses its unfinished sentence; otherwise the held text is sent.
    pub(crate) fn finish(&self, text: &str, truncated: bool) -> String {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let held = std::mem::take(&mut state.held);
        if !truncated {
            if !held.is_empty() {
                self.send(held);
            }
            return text.trim().to_string();
        }
        let shown = std::mem::take(&mut state.shown);
        let kept = clean_cut(&(shown.clone() + &held));
        // Held text after the last sentence end is dropped; a speech too short to have held
        // anything was shown whole, and its `turn_end` text is the one to keep.
        if let Some(tail) = kept.strip_prefix(shown.as_str()).filter(|t| !t.is_empty()) {
            self.send(tail.to_string());
        }
        kept.trim().to_string()
    }
}

impl TokenSink for SpeechSink<'_> {
    fn token(&self, text: &str) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.pieces += 1;
        let holding = state.pieces >= self.hold_pieces
            || state.shown.len() + state.held.len() >= self.hold_bytes;
        if !holding {
            state.shown.push_str(text);
            drop(state);
            self.send(text.to_string());
            return;
        }
        state.held.push_str(text);
        if let Some(end) = sentence_end(&state.held) {
            let ready: String = state.held.drain(..end).collect();
            state.shown.push_str(&ready);
            drop(state);
            self.send(ready);
        }
    }

    fn restart(&self, reason: &str) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = Streamed::default();
        self.events.send(Event::TurnRestart {
            round: self.round,
            speaker: self.speaker,
            reason: reason.to_string(),
        });
    }
}

/// A text's sentences, trimmed: split where one ends (see [`sentence_ends`]).
pub(crate) fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut start = 0;
    for end in sentence_ends(text) {
        let sentence = text[start..end].trim();
        if !sentence.is_empty() {
            out.push(sentence.to_string());
        }
        start = end;
    }
    if !text[start..].trim().is_empty() {
        out.push(text[start..].trim().to_string());
    }
    out
}

/// The byte just past the last complete sentence in `text`.
fn sentence_end(text: &str) -> Option<usize> {
    sentence_ends(text).last().copied()
}

/// The bytes just past each complete sentence in `text`: a `.`, `!`, `?` or `…` (with any
/// closing quotes or brackets after it) followed by whitespace or the end, so "1.5 °C" is
/// one number, not two sentences.
fn sentence_ends(text: &str) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if !matches!(c, '.' | '!' | '?' | '…') {
            continue;
        }
        let mut after = None;
        while let Some(&(i, next)) = chars.peek() {
            if matches!(next, '"' | '\'' | '”' | '’' | ')' | ']' | '»') {
                chars.next();
                continue;
            }
            after = Some((i, next));
            break;
        }
        match after {
            Some((i, next)) if next.is_whitespace() => ends.push(i),
            None => ends.push(text.len()),
            _ => {}
        }
    }
    ends
}

/// What is kept of a speech the token limit cut off: its complete sentences, else (a speech
/// of one unfinished sentence) its whole words and an ellipsis.
fn clean_cut(text: &str) -> String {
    if let Some(end) = sentence_end(text) {
        return text[..end].to_string();
    }
    match text.trim_end().rfind(char::is_whitespace) {
        Some(at) if !text[..at].trim().is_empty() => format!("{}…", text[..at].trim_end()),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(pieces: &[&str], max_tokens: u32, truncated: bool) -> (String, String) {
        let (sink, mut rx) = EventSink::channel();
        let speech = SpeechSink::new(1, Speaker::A, &sink, max_tokens);
        for piece in pieces {
            speech.token(piece);
        }
        let whole: String = pieces.concat();
        let text = speech.finish(&whole, truncated);
        drop(speech);
        drop(sink);
        let mut streamed = String::new();
        while let Ok(event) = rx.try_recv() {
            if let Event::Token { text, .. } = event {
                streamed.push_str(&text);
            }
        }
        (text, streamed)
    }

    #[test]
    fn sentences_end_at_punctuation_before_a_space_not_inside_a_number() {
        assert_eq!(
            sentences("It rose 1.5 °C. \"Why?\" he asked! And then"),
            ["It rose 1.5 °C.", "\"Why?\"", "he asked!", "And then"]
        );
        assert_eq!(sentences("  "), Vec::<String>::new());
    }

    #[test]
    fn a_speech_cut_by_the_limit_ends_at_its_last_sentence() {
        let pieces = [
            "We shall ",
            "fight. ",
            "We shall ",
            "never sur",
            "render. But this ",
            "ship is still",
        ];
        let (text, streamed) = run(&pieces, 4, true);
        assert_eq!(text, "We shall fight. We shall never surrender.");
        assert_eq!(
            streamed.trim(),
            text,
            "the stream never showed the cut words"
        );
    }

    #[test]
    fn a_speech_that_ends_on_its_own_is_sent_whole() {
        let pieces = [
            "We shall ",
            "fight. ",
            "We shall ",
            "never sur",
            "render, and ",
            "win",
        ];
        let (text, streamed) = run(&pieces, 4, false);
        assert_eq!(text, "We shall fight. We shall never surrender, and win");
        assert_eq!(streamed, pieces.concat());
    }

    #[test]
    fn a_short_speech_cut_by_the_limit_keeps_its_sentences() {
        let pieces = ["One. ", "Two ", "three"];
        let (text, _) = run(&pieces, 400, true);
        assert_eq!(text, "One.");
    }

    #[test]
    fn far_from_the_limit_every_piece_streams_at_once() {
        let (sink, mut rx) = EventSink::channel();
        let speech = SpeechSink::new(1, Speaker::A, &sink, 400);
        speech.token("no sentence end yet ");
        assert!(matches!(rx.try_recv(), Ok(Event::Token { .. })));
    }

    #[test]
    fn sentence_ends_and_clean_cuts() {
        assert_eq!(sentence_end("One. Two"), Some(4));
        assert_eq!(sentence_end("He said \"go.\" Then"), Some(13));
        assert_eq!(
            sentence_end("3.5 percent"),
            None,
            "a decimal point ends nothing"
        );
        assert_eq!(sentence_end("Done!"), Some(5));
        assert_eq!(clean_cut("We shall fight on the"), "We shall fight on…");
        assert_eq!(clean_cut("Done. And then the"), "Done.");
        assert_eq!(clean_cut("unfinishedwor"), "");
    }
}
