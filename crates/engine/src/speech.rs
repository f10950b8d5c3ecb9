//! One speech as it streams: the model's tokens are released to readers a sentence at a
//! time, each sentence screened first (docs/events.md), and a speech that reaches its token
//! limit ends at its last complete sentence instead of mid-word (`truncated`).
//!
//! The stream holds back what follows the last sentence end, so nothing a reader saw is taken
//! back: a sentence is shown whole once it has passed screening, a speech that finishes on its
//! own releases its last words, and one cut off by the limit drops its unfinished sentence.

use std::sync::Mutex;

use tokio::sync::mpsc;

use crate::event::{Event, EventSink, Speaker, Withheld};
use crate::llm::TokenSink;
use crate::screen::echo::{Echo, Voices, check_sentence};
use crate::screen::{Refusal, ScreenError, Screener, Stage, Verdict};

/// What the sink releases, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece {
    /// One or more complete sentences, as written (with their spaces).
    Text(String),
    /// The call is being retried: what was released of this attempt is dropped.
    Restart(String),
}

/// Collects one speech's tokens and releases them a sentence at a time.
pub(crate) struct SpeechSink {
    out: mpsc::UnboundedSender<Piece>,
    state: Mutex<Streamed>,
}

#[derive(Default)]
struct Streamed {
    /// Text released so far.
    shown: String,
    /// Text received but not released: it follows the last sentence end.
    held: String,
}

impl SpeechSink {
    /// A sink, and the receiver of what it releases.
    pub(crate) fn new() -> (SpeechSink, mpsc::UnboundedReceiver<Piece>) {
        let (out, pieces) = mpsc::unbounded_channel();
        let sink = SpeechSink {
            out,
            state: Mutex::new(Streamed::default()),
        };
        (sink, pieces)
    }

    fn release(&self, text: String) {
        let _ = self.out.send(Piece::Text(text));
    }

    /// Ends the stream: a speech cut off by the token limit (`truncated`) loses its unfinished
    /// sentence; otherwise the held text is released.
    pub(crate) fn finish(&self, truncated: bool) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let held = std::mem::take(&mut state.held);
        if !truncated {
            if !held.is_empty() {
                self.release(held);
            }
            return;
        }
        let shown = std::mem::take(&mut state.shown);
        let kept = clean_cut(&(shown.clone() + &held));
        // Held text after the last sentence end is dropped; a speech of one unfinished
        // sentence keeps its whole words.
        if let Some(tail) = kept.strip_prefix(shown.as_str()).filter(|t| !t.is_empty()) {
            self.release(tail.to_string());
        }
    }
}

impl TokenSink for SpeechSink {
    fn token(&self, text: &str) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.held.push_str(text);
        if let Some(end) = sentence_end(&state.held) {
            let ready: String = state.held.drain(..end).collect();
            state.shown.push_str(&ready);
            drop(state);
            self.release(ready);
        }
    }

    fn restart(&self, reason: &str) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = Streamed::default();
        let _ = self.out.send(Piece::Restart(reason.to_string()));
    }
}

/// Why a speech stopped streaming before its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stopped {
    /// A sentence broke the policy: it was withheld, and the speech must go on another way
    /// (from what was shown, or written again).
    Refused(Refusal),
    /// Prompt text is woven into a sentence, or the speaker stepped out of the debate: the
    /// speech must go on another way.
    Echo(&'static str),
    /// A sentence could not be screened (the moderation endpoint did not answer).
    Unscreened(ScreenError),
}

/// How a speech's sentences are read before they are streamed.
pub(crate) struct Reading<'a> {
    pub screener: &'a Screener,
    pub voices: Voices<'a>,
    /// Whether a sentence with prompt text woven in stops the speech (to go on another way),
    /// or is cut: the last attempt keeps what it can rather than fail.
    pub rewrite_echoes: bool,
}

/// Streams what `pieces` releases to `events` as the turn's tokens, each sentence read first:
/// prompt markup and echoed instruction lines are cut ([`crate::screen::echo`]), then each
/// batch is screened; a refused sentence is withheld (to editors only) and ends the stream.
/// What is streamed is added to `streamed` (the speech so far, when a call goes on from
/// it), also when the stream stops.
pub(crate) async fn stream_screened(
    mut pieces: mpsc::UnboundedReceiver<Piece>,
    reading: Reading<'_>,
    events: &EventSink,
    (round, speaker): (u8, Speaker),
    streamed: &mut String,
) -> Result<(), Stopped> {
    // What earlier attempts showed: this call goes on from it.
    let begun = streamed.len();
    while let Some(first) = pieces.recv().await {
        // What queued while the last batch was screened goes to the screen together.
        let mut batch = vec![first];
        while let Ok(next) = pieces.try_recv() {
            batch.push(next);
        }
        // Consecutive texts are one batch; a restart ends a batch.
        let mut merged: Vec<Piece> = Vec::new();
        for piece in batch {
            match (merged.last_mut(), piece) {
                (Some(Piece::Text(text)), Piece::Text(more)) => text.push_str(&more),
                (_, piece) => merged.push(piece),
            }
        }
        for piece in merged {
            let text = match piece {
                Piece::Text(text) => text,
                Piece::Restart(reason) => {
                    streamed.truncate(begun);
                    events.send(Event::TurnRestart {
                        round,
                        speaker,
                        reason,
                    });
                    // Clients drop the turn's text: what earlier attempts showed is sent
                    // again, since the call still goes on from it.
                    if !streamed.is_empty() {
                        events.send(Event::Token {
                            round,
                            speaker,
                            text: streamed.clone(),
                        });
                    }
                    continue;
                }
            };
            let Some(text) = without_echoes(&text, &reading)? else {
                continue;
            };
            let said = sentences(&text);
            let verdicts = reading
                .screener
                .screen(&said, Stage::Output)
                .await
                .map_err(Stopped::Unscreened)?;
            for (sentence, verdict) in said.iter().zip(verdicts) {
                let withheld = |category: &str, rule: &str, refused| Withheld {
                    round,
                    speaker,
                    text: sentence.clone(),
                    category: category.to_string(),
                    rule: rule.to_string(),
                    refused,
                };
                match verdict {
                    Verdict::Allowed => {}
                    Verdict::Flagged { category, rule } => {
                        events.withhold(withheld(&category, &rule, false));
                    }
                    Verdict::Refused(refusal) => {
                        events.withhold(withheld(&refusal.category, &refusal.rule, true));
                        return Err(Stopped::Refused(refusal));
                    }
                }
            }
            // A call that goes on from a begun speech may begin without a space (only its
            // first piece: later ones join as the model wrote them, "3." then "5 percent").
            let joins_begun = begun > 0 && streamed.len() == begun;
            let text = match joins_begun
                && !streamed.ends_with(char::is_whitespace)
                && !text.starts_with(char::is_whitespace)
            {
                true => format!(" {text}"),
                false => text,
            };
            streamed.push_str(&text);
            events.send(Event::Token {
                round,
                speaker,
                text,
            });
        }
    }
    Ok(())
}

/// A piece of a speech with prompt echoes cut: unchanged when it has none, `None` when
/// nothing of it is the speaker's.
fn without_echoes(text: &str, reading: &Reading<'_>) -> Result<Option<String>, Stopped> {
    let said = sentences(text);
    let mut kept = Vec::with_capacity(said.len());
    let mut changed = false;
    for sentence in &said {
        match check_sentence(sentence, &reading.voices) {
            Echo::Speech(own) => {
                changed |= own != *sentence;
                kept.push(own);
            }
            Echo::Cut => changed = true,
            Echo::Rewrite(why) if reading.rewrite_echoes => return Err(Stopped::Echo(why)),
            Echo::Rewrite(why) => {
                tracing::debug!(why, "a sentence with prompt text was cut");
                changed = true;
            }
        }
    }
    if !changed {
        return Ok(Some(text.to_string()));
    }
    if kept.is_empty() {
        return Ok(None);
    }
    // The piece's own leading space keeps it apart from the sentence before.
    let lead = &text[..text.len() - text.trim_start().len()];
    Ok(Some(format!("{lead}{}", kept.join(" "))))
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

/// The byte just past the last complete sentence in `text`: where a stream may show
/// readers what it has (once screened).
pub fn sentence_end(text: &str) -> Option<usize> {
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

    /// The speech as streamed, trimmed.
    fn run(pieces: &[&str], truncated: bool) -> String {
        let (speech, mut out) = SpeechSink::new();
        for piece in pieces {
            speech.token(piece);
        }
        speech.finish(truncated);
        drop(speech);
        let mut streamed = String::new();
        while let Ok(piece) = out.try_recv() {
            if let Piece::Text(text) = piece {
                streamed.push_str(&text);
            }
        }
        streamed.trim().to_string()
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
        assert_eq!(
            run(&pieces, true),
            "We shall fight. We shall never surrender.",
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
        assert_eq!(
            run(&pieces, false),
            "We shall fight. We shall never surrender, and win"
        );
    }

    /// Streams `pieces` to `events` as Churchill's opening, going on from `begun`; the speech.
    async fn stream(
        pieces: mpsc::UnboundedReceiver<Piece>,
        begun: &str,
        events: &EventSink,
    ) -> String {
        let screener = Screener::default();
        let reading = Reading {
            screener: &screener,
            voices: Voices {
                speaker: "Winston Churchill",
                opponent: None,
            },
            rewrite_echoes: true,
        };
        let mut spoken = begun.to_string();
        stream_screened(pieces, reading, events, (1, Speaker::A), &mut spoken)
            .await
            .unwrap();
        spoken
    }

    #[tokio::test]
    async fn a_retried_call_that_goes_on_from_a_begun_speech_shows_it_again_after_the_restart() {
        let (speech, pieces) = SpeechSink::new();
        speech.token(" Second. ");
        speech.restart("the stream was cut");
        speech.token(" Third. ");
        speech.finish(false);
        drop(speech);
        let (events, mut received) = EventSink::channel();
        let spoken = stream(pieces, "First.", &events).await;
        drop(events);
        let mut shown = String::new();
        while let Ok(event) = received.try_recv() {
            match event {
                Event::TurnRestart { .. } => shown.clear(),
                Event::Token { text, .. } => shown.push_str(&text),
                _ => {}
            }
        }
        assert_eq!(spoken.trim(), "First. Third.");
        assert_eq!(
            shown.trim(),
            spoken.trim(),
            "what a client shows is the speech"
        );
    }

    #[tokio::test]
    async fn pieces_join_as_written_and_a_continuation_joins_its_begun_speech_with_a_space() {
        let stream = |begun: &str, pieces: &[&str]| {
            let (speech, out) = SpeechSink::new();
            for piece in pieces {
                speech.token(piece);
            }
            speech.finish(false);
            drop(speech);
            let begun = begun.to_string();
            async move {
                let (events, _received) = EventSink::channel();
                stream(out, &begun, &events).await
            }
        };
        // The sink releases "It rose 3." before "5" comes: nothing may be put between.
        let spoken = stream("", &["It rose 3.", "5 percent", " in the U.", "S. today."]).await;
        assert_eq!(spoken, "It rose 3.5 percent in the U.S. today.");
        let spoken = stream("We shall fight.", &["Never", " surrender."]).await;
        assert_eq!(spoken, "We shall fight. Never surrender.");
    }

    #[test]
    fn a_short_speech_cut_by_the_limit_keeps_its_sentences() {
        let pieces = ["One. ", "Two ", "three"];
        assert_eq!(run(&pieces, true), "One.");
    }

    #[test]
    fn text_is_released_a_sentence_at_a_time() {
        let (speech, mut out) = SpeechSink::new();
        speech.token("no sentence end ");
        speech.token("yet");
        assert!(out.try_recv().is_err(), "nothing before a sentence ends");
        speech.token(". And then");
        assert_eq!(
            out.try_recv(),
            Ok(Piece::Text("no sentence end yet.".into()))
        );
        speech.restart("cut");
        assert_eq!(out.try_recv(), Ok(Piece::Restart("cut".into())));
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
