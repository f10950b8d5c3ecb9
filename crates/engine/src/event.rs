//! What the engine reports while it works: the event stream of docs/events.md, which the command
//! line renders and the HTTP service stores and streams.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::claims::Quote;
pub use crate::transcript::Speaker;
use crate::transcript::{ErrorCode, Status, Turn, Verdict};

/// One step of a debate or perspective, as streamed and as stored (the `type` field names it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    TurnStart {
        round: u8,
        speaker: Speaker,
        persona: String,
    },
    Token {
        round: u8,
        speaker: Speaker,
        text: String,
    },
    TurnEnd {
        round: u8,
        speaker: Speaker,
        text: String,
        unsupported: Vec<String>,
        /// Supported quotations, with their source.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        quotes: Vec<Quote>,
        tokens: u64,
        /// Cut at its last complete sentence by the token limit.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        truncated: bool,
    },
    /// The turn is being generated again: drop the partial text received so far.
    TurnRestart {
        round: u8,
        speaker: Speaker,
        reason: String,
    },
    Verdict(Verdict),
    Error {
        code: ErrorCode,
        message: String,
    },
    Done {
        status: Status,
    },
}

crate::named_enum! {
    /// What kind of step an event is: its name in the SSE `event:` field and in stored logs
    /// (the same as the [`Event`]'s `type`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum EventKind("event") {
        TurnStart = "turn_start",
        Token = "token",
        TurnEnd = "turn_end",
        TurnRestart = "turn_restart",
        Verdict = "verdict",
        Error = "error",
        Done = "done",
    }
}

impl Event {
    pub fn kind(&self) -> EventKind {
        match self {
            Event::TurnStart { .. } => EventKind::TurnStart,
            Event::Token { .. } => EventKind::Token,
            Event::TurnEnd { .. } => EventKind::TurnEnd,
            Event::TurnRestart { .. } => EventKind::TurnRestart,
            Event::Verdict(_) => EventKind::Verdict,
            Event::Error { .. } => EventKind::Error,
            Event::Done { .. } => EventKind::Done,
        }
    }

    /// The turn a `turn_end` finished, with its round (its duration is not in the event).
    pub fn finished_turn(self) -> Option<(u8, Turn)> {
        match self {
            Event::TurnEnd {
                round,
                speaker,
                text,
                unsupported,
                quotes,
                tokens,
                truncated,
            } => Some((
                round,
                Turn {
                    speaker,
                    text,
                    unsupported,
                    tokens,
                    ms: 0,
                    truncated,
                    quotes,
                },
            )),
            _ => None,
        }
    }

    /// The event's name: the SSE `event:` field.
    pub fn name(&self) -> &'static str {
        self.kind().as_str()
    }
}

/// Text a model wrote that screening kept from readers: never an [`Event`], so it cannot
/// reach a stream, a log, a transcript or an export; it goes to editors only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withheld {
    pub round: u8,
    pub speaker: Speaker,
    /// The sentence as the model wrote it.
    pub text: String,
    /// The policy category that refused or flagged it.
    pub category: String,
    /// The rule, or the moderation endpoint, that found it.
    pub rule: String,
    /// Refused (and never shown), or only flagged (shown, and kept for editors).
    pub refused: bool,
}

type Take<T> = Option<Arc<dyn Fn(T) + Send + Sync>>;

/// Where the engine sends events. Sending never blocks generation; a receiver that went
/// away just stops listening. Withheld text goes to its own receiver, if the sink has one.
#[derive(Clone)]
pub struct EventSink {
    events: Take<Event>,
    withheld: Take<Withheld>,
}

impl EventSink {
    /// A sink that hands each event to `take`, at once and on the engine's task: cheaper than
    /// a channel for a receiver that only files events away.
    pub fn new(take: impl Fn(Event) + Send + Sync + 'static) -> EventSink {
        EventSink {
            events: Some(Arc::new(take)),
            withheld: None,
        }
    }

    /// The same sink, handing text screening withheld to `keep`.
    pub fn with_quarantine(mut self, keep: impl Fn(Withheld) + Send + Sync + 'static) -> EventSink {
        self.withheld = Some(Arc::new(keep));
        self
    }

    /// A sink that passes each event through `map` into this one; withheld text goes where
    /// this sink's goes.
    pub fn mapped(&self, map: impl Fn(Event) -> Event + Send + Sync + 'static) -> EventSink {
        let inner = self.clone();
        EventSink {
            events: Some(Arc::new(move |event| inner.send(map(event)))),
            withheld: self.withheld.clone(),
        }
    }

    /// Files text screening kept from readers.
    pub fn withhold(&self, item: Withheld) {
        if let Some(keep) = &self.withheld {
            keep(item);
        }
    }

    /// A sink and the receiver of its events.
    pub fn channel() -> (EventSink, mpsc::UnboundedReceiver<Event>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let sink = EventSink::new(move |event| {
            let _ = tx.send(event);
        });
        (sink, rx)
    }

    /// A sink nobody listens to.
    pub fn discard() -> EventSink {
        EventSink {
            events: None,
            withheld: None,
        }
    }

    pub fn send(&self, event: Event) {
        if let Some(take) = &self.events {
            take(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcript::Turn;

    #[test]
    fn an_event_reads_back_as_written_and_its_name_is_its_type() {
        let events = [
            Event::TurnStart {
                round: 1,
                speaker: Speaker::A,
                persona: "winston-churchill".into(),
            },
            Event::TurnEnd {
                round: 2,
                speaker: Speaker::B,
                text: "We shall not flag.".into(),
                unsupported: vec!["40%".into()],
                quotes: Vec::new(),
                tokens: 5,
                truncated: true,
            },
            Event::Error {
                code: ErrorCode::Interrupted,
                message: "stopped".into(),
            },
            Event::Done {
                status: Status::Failed,
            },
        ];
        for event in events {
            let json = serde_json::to_value(&event).unwrap();
            assert_eq!(json["type"], event.name());
            assert_eq!(event.name().parse::<EventKind>(), Ok(event.kind()));
            let back: Event = serde_json::from_value(json).unwrap();
            assert_eq!(back, event);
        }
    }

    #[test]
    fn a_turn_end_is_the_turn_it_finished() {
        let end = Event::TurnEnd {
            round: 2,
            speaker: Speaker::B,
            text: "Fine words.".into(),
            unsupported: Vec::new(),
            quotes: Vec::new(),
            tokens: 3,
            truncated: false,
        };
        let (round, turn): (u8, Turn) = end.finished_turn().unwrap();
        assert_eq!(
            (round, turn.speaker, turn.text.as_str()),
            (2, Speaker::B, "Fine words.")
        );
        let done = Event::Done {
            status: Status::Done,
        };
        assert_eq!(done.finished_turn(), None);
    }
}
