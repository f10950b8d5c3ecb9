//! A follower of one run: the stored log after `Last-Event-ID`, then live events.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;

use super::*;
use crate::store::{Store, StoredEvent};
use crossfire_engine::event::EventKind;

/// How a follower hears of new events.
pub(super) enum Live {
    /// The run executes here: its events as they happen, and all of them in memory.
    Local(Arc<LiveRun>, broadcast::Receiver<StoredEvent>),
    /// The run executes on another instance: wake-ups to read the log again.
    Remote(broadcast::Receiver<()>),
}

/// A follower of one run's events: the stored log after `last`, then live events. A `done`
/// ends them unless more follow: a debate judged again goes on past its first `done`.
pub struct Follower {
    pub(super) store: Store,
    pub(super) run_id: String,
    pub(super) last: i64,
    pub(super) backlog: VecDeque<StoredEvent>,
    pub(super) live: Option<Live>,
    pub(super) finished: bool,
}

impl Follower {
    /// Subscribes before reading the log, so nothing falls between the two. `unfinished`
    /// says whether the run may still produce events (somewhere).
    pub async fn start(
        hub: &Hub,
        run_id: &str,
        last: i64,
        unfinished: bool,
    ) -> Result<Follower, crate::store::StoreError> {
        let store = hub.store.clone();
        if let Some(run) = hub.live(run_id) {
            let (backlog, rx) = run.follow(last);
            return Ok(Follower {
                store,
                run_id: run_id.to_string(),
                last,
                backlog: backlog.into(),
                live: Some(Live::Local(run, rx)),
                finished: false,
            });
        }
        let live = (unfinished && store.dialect() == crate::store::Dialect::Postgres)
            .then(|| Live::Remote(hub.watch(run_id)));
        let backlog = store.events_after(run_id, last).await?.into();
        Ok(Follower {
            store,
            run_id: run_id.to_string(),
            last,
            backlog,
            live,
            finished: false,
        })
    }

    /// The next event, or `None` once the run is done (or nobody runs it any more).
    pub async fn next(&mut self) -> Option<StoredEvent> {
        loop {
            if self.finished {
                return None;
            }
            if let Some(event) = self.backlog.pop_front() {
                if event.seq <= self.last {
                    continue; // seen both in the log and live
                }
                self.last = event.seq;
                if event.kind() == Some(EventKind::Done) && self.backlog.is_empty() {
                    self.finished = self.ends_here().await;
                }
                return Some(event);
            }
            match self.live.as_mut()? {
                Live::Local(run, live) => match live.recv().await {
                    Ok(event) => self.backlog.push_back(event),
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        // Too slow for the channel: catch up from memory, then listen again.
                        let (rest, rx) = run.follow(self.last);
                        *live = rx;
                        self.backlog.extend(rest);
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        // The run ended (and `done`, if it came, is in its events).
                        let rest = after(&run.state().events, self.last);
                        self.live = None;
                        if rest.is_empty() {
                            return None;
                        }
                        self.backlog.extend(rest);
                    }
                },
                Live::Remote(wake) => {
                    // A wake-up, or a look anyway now and then in case one was missed.
                    let _ = tokio::time::timeout(Duration::from_secs(1), wake.recv()).await;
                    let rest = self
                        .store
                        .events_after(&self.run_id, self.last)
                        .await
                        .ok()?;
                    self.backlog.extend(rest);
                }
            }
        }
    }

    /// Whether the `done` just read, with nothing after it yet, is the run's last event.
    async fn ends_here(&self) -> bool {
        match &self.live {
            // Executing here: the channel closes right after the run's last `done`.
            Some(Live::Local(..)) => false,
            // Executing elsewhere: over unless the run was started again.
            Some(Live::Remote(_)) => match self.store.run(&self.run_id).await {
                Ok(Some(run)) => !run.status.is_unfinished(),
                Ok(None) | Err(_) => true,
            },
            None => true,
        }
    }
}
