//! A run executing on this instance: its events so far, its tokens gathering into a batch,
//! and the channel that tells followers of new ones.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::time::Instant;

use super::*;
use crate::store::{Finish, RunKind, Store, StoredEvent};
use crossfire_engine::event::{Event, EventSink, Speaker};

/// How long tokens gather before they are sent and stored as one event.
pub const TOKEN_BATCH: Duration = Duration::from_millis(25);

/// Events a follower may fall behind by before it catches up from the run's memory.
pub(super) const LIVE_BUFFER: usize = 64;

/// A run executing on this instance: every event so far, the tokens gathering for the next,
/// and the channel of new ones.
pub struct LiveRun {
    pub(super) id: String,
    pub(super) owner: Owner,
    pub(super) store: Store,
    pub(super) due: Arc<DueBatches>,
    pub(super) state: Mutex<RunState>,
}

pub(super) struct RunState {
    /// The events told to followers so far.
    pub(super) events: Vec<StoredEvent>,
    /// The last sequence number given (to an event told, or queued and not yet told).
    pub(super) last: i64,
    /// `None` once the run has ended (or was sealed): followers then see the channel close,
    /// and further events are dropped.
    pub(super) tx: Option<broadcast::Sender<StoredEvent>>,
    /// Tokens not yet published, one batch per speaking turn: the two sides stream at once,
    /// and must not cut each other's batches short.
    pub(super) batches: Vec<Batch>,
    /// The engine's `done`, held to be stored with the run's result.
    pub(super) done: Option<Event>,
    /// Resolves once the latest event is stored.
    pub(super) stored: Option<crate::store::Stored>,
}

/// Whose run it is, and what kind: enough to let a follower in without asking the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub user_id: i64,
    pub kind: RunKind,
}

/// Tokens of one turn gathered for one event.
pub(super) struct Batch {
    pub(super) round: u8,
    pub(super) speaker: Speaker,
    pub(super) text: String,
    pub(super) due: Instant,
}

impl LiveRun {
    pub(super) fn state(&self) -> MutexGuard<'_, RunState> {
        // A panic elsewhere cannot leave the state inconsistent: take it anyway.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The sink the engine reports this run's events to.
    pub fn sink(self: &Arc<Self>) -> EventSink {
        let run = self.clone();
        EventSink::new(move |event| run.take(event))
    }

    /// Files an engine event: a token joins its turn's batch, which the hub's timer
    /// publishes when due; anything else is published at once, after the tokens before it.
    pub(super) fn take(self: &Arc<Self>, event: Event) {
        let mut state = self.state();
        if state.tx.is_none() {
            return;
        }
        match event {
            Event::Token {
                round,
                speaker,
                text,
            } => {
                match state
                    .batches
                    .iter_mut()
                    .find(|b| (b.round, b.speaker) == (round, speaker))
                {
                    Some(batch) => batch.text.push_str(&text),
                    None => {
                        // A turn's batch opened while the other side's waits goes out with
                        // it: one write to each follower for both.
                        let due = match state.batches.first() {
                            Some(waiting) => waiting.due,
                            None => {
                                let due = Instant::now() + TOKEN_BATCH;
                                self.due.schedule(due, Arc::downgrade(self));
                                due
                            }
                        };
                        state.batches.push(Batch {
                            round,
                            speaker,
                            text,
                            due,
                        });
                    }
                }
            }
            Event::Done { .. } => {
                self.flush(&mut state, |_| true);
                state.done = Some(event);
            }
            event => {
                self.flush(&mut state, |_| true);
                self.publish(&mut state, &event);
            }
        }
    }

    /// Publishes the batches that `due` selects, oldest first.
    pub(super) fn flush(&self, state: &mut RunState, due: impl Fn(&Batch) -> bool) {
        let (ready, waiting) = std::mem::take(&mut state.batches)
            .into_iter()
            .partition::<Vec<Batch>, _>(|b| due(b));
        state.batches = waiting;
        for batch in ready {
            let (round, speaker, text) = (batch.round, batch.speaker, batch.text);
            let token = Event::Token {
                round,
                speaker,
                text,
            };
            self.publish(state, &token);
        }
    }

    /// Numbers an event, queues it for the database and tells the followers, under one
    /// lock so that a follower arriving meanwhile sees it exactly once: in its snapshot or
    /// on its channel.
    pub(super) fn publish(&self, state: &mut RunState, event: &Event) {
        if state.tx.is_none() {
            return;
        }
        let stored = self.record(state, event);
        state.tell(stored);
    }

    /// Numbers an event and queues it for the database.
    pub(super) fn record(&self, state: &mut RunState, event: &Event) -> StoredEvent {
        state.last += 1;
        let stored = numbered(state.last, event);
        state.stored = Some(self.store.queue_event(&self.id, stored.clone()));
        stored
    }

    /// Ends the run: publishes what is left, stores the held `done` together with the
    /// run's result (`None` if it has none to store), and tells followers `done` only once
    /// both are committed, so a client who sees it finds the result. Then leaves the hub.
    pub async fn finish(&self, hub: &Hub, result: Option<Finish>) {
        let (stored, done) = {
            let mut state = self.state();
            self.flush(&mut state, |_| true);
            let mut done = None;
            // A sealed run is being ended by whoever sealed it.
            if state.tx.is_some() {
                done = state.done.take().map(|done| self.record(&mut state, &done));
                if let Some(result) = result {
                    state.stored = Some(self.store.queue_finish(&self.id, result));
                }
            }
            (state.stored.take(), done)
        };
        if let Some(stored) = stored {
            // Records are committed in order: the last one stored means all are.
            if let Err(e) = stored.wait().await {
                tracing::error!(
                    run = self.id,
                    "cannot store the last events and result: {e}"
                );
            }
        }
        {
            let mut state = self.state();
            if let Some(done) = done {
                state.tell(done);
            }
            state.tx = None;
        }
        hub.close(&self.id);
    }

    /// The events after `last`, and a channel for the ones to come.
    pub(super) fn follow(&self, last: i64) -> (Vec<StoredEvent>, broadcast::Receiver<StoredEvent>) {
        let state = self.state();
        let rx = match &state.tx {
            Some(tx) => tx.subscribe(),
            None => broadcast::channel(1).1, // its sender is gone: closed at once
        };
        (after(&state.events, last), rx)
    }

    /// Takes no more events (pending tokens are dropped); returns the last sequence number.
    pub(super) fn end(&self) -> i64 {
        let mut state = self.state();
        state.tx = None;
        state.batches.clear();
        state.last
    }
}

impl RunState {
    /// Tells the followers a numbered event and keeps it for those still to come.
    pub(super) fn tell(&mut self, event: StoredEvent) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(event.clone()); // nobody listening is fine
            self.events.push(event);
        }
    }
}

pub(super) fn after(events: &[StoredEvent], last: i64) -> Vec<StoredEvent> {
    let start = events.partition_point(|e| e.seq <= last);
    events[start..].to_vec()
}
