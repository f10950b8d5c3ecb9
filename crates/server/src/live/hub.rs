//! The runs this instance executes, the PostgreSQL wake-ups for runs executed elsewhere,
//! and ending the log of a run nobody executes any more.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::broadcast;

use super::*;
use crate::store::{Finish, Store};
use crossfire_engine::event::Event;

/// The runs this instance is executing, and wake-ups for runs that other instances execute
/// (fed by PostgreSQL notifications).
pub struct Hub {
    pub(super) store: Store,
    pub(super) runs: Mutex<HashMap<String, Arc<LiveRun>>>,
    pub(super) due: Arc<DueBatches>,
    pub(super) remote: Mutex<HashMap<String, broadcast::Sender<()>>>,
}

impl Hub {
    /// A hub whose runs store their events in `store`, with its batch timer running (so
    /// inside a Tokio runtime).
    pub fn start(store: Store) -> Arc<Hub> {
        let due = Arc::new(DueBatches::default());
        tokio::spawn(publish_batches(Arc::downgrade(&due)));
        Arc::new(Hub {
            store,
            runs: Mutex::default(),
            due,
            remote: Mutex::default(),
        })
    }

    /// Opens a run about to execute here. Done before the run is announced to its client,
    /// so a follower arriving at once finds it.
    pub fn open(&self, run_id: &str, owner: Owner) -> Arc<LiveRun> {
        self.open_after(run_id, owner, Vec::new(), 0)
    }

    /// Opens a run that resumes here after a crash: its stored `log` is what followers
    /// replay first, and its new events are numbered after `last` (past the crash gap).
    pub fn open_after(
        &self,
        run_id: &str,
        owner: Owner,
        log: Vec<StoredEvent>,
        last: i64,
    ) -> Arc<LiveRun> {
        let run = Arc::new(LiveRun {
            id: run_id.to_string(),
            owner,
            store: self.store.clone(),
            due: self.due.clone(),
            state: Mutex::new(RunState {
                events: log,
                last,
                tx: Some(broadcast::channel(LIVE_BUFFER).0),
                batches: Vec::new(),
                done: None,
                stored: None,
            }),
        });
        self.lock().insert(run_id.to_string(), run.clone());
        run
    }

    pub(super) fn close(&self, run_id: &str) {
        self.lock().remove(run_id);
    }

    /// A run executing here, if it is.
    pub(super) fn live(&self, run_id: &str) -> Option<Arc<LiveRun>> {
        self.lock().get(run_id).cloned()
    }

    /// The owner of a run executing here, if it is.
    pub fn owner(&self, run_id: &str) -> Option<Owner> {
        self.lock().get(run_id).map(|run| run.owner)
    }

    /// Whether event `seq` of a run executing here was streamed and then lost by a crash
    /// (it falls in the gap before a resumed run's new events); `None` if the run does not
    /// execute here.
    pub fn lost(&self, run_id: &str, seq: i64) -> Option<bool> {
        let run = self.live(run_id)?;
        let state = run.state();
        let kept = state.events.binary_search_by_key(&seq, |e| e.seq).is_ok();
        // A number not yet given is still to come. Of those given, only the held `done`
        // is not kept, and nobody has heard it.
        Some(!kept && seq <= state.last)
    }

    /// Stops a run executing here from adding events (it is being interrupted); returns
    /// its last sequence number, or `None` if it does not execute here.
    pub fn seal(&self, run_id: &str) -> Option<i64> {
        self.live(run_id).map(|run| run.end())
    }

    /// Every event so far of a run executing here (stored or not yet).
    pub fn events_of(&self, run_id: &str) -> Option<Vec<StoredEvent>> {
        self.live(run_id).map(|run| run.state().events.clone())
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<LiveRun>>> {
        self.runs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wake-ups for a run executing on another instance.
    pub(super) fn watch(&self, run_id: &str) -> broadcast::Receiver<()> {
        let mut remote = self.remote.lock().unwrap_or_else(|e| e.into_inner());
        remote.retain(|_, tx| tx.receiver_count() > 0);
        remote
            .entry(run_id.to_string())
            .or_insert_with(|| broadcast::channel(16).0)
            .subscribe()
    }

    /// Another instance stored events of `run_id`.
    pub(super) fn wake(&self, run_id: &str) {
        let remote = self.remote.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = remote.get(run_id) {
            let _ = tx.send(());
        }
    }

    pub(super) fn wake_all(&self) {
        let remote = self.remote.lock().unwrap_or_else(|e| e.into_inner());
        for tx in remote.values() {
            let _ = tx.send(());
        }
    }
}

/// Listens for other instances' events (PostgreSQL `LISTEN`), reconnecting as needed.
pub async fn listen(database_url: String, hub: std::sync::Arc<Hub>) {
    loop {
        match sqlx::postgres::PgListener::connect(&database_url).await {
            Ok(mut listener) => {
                if let Err(e) = listener.listen(crate::store::NOTIFY_CHANNEL).await {
                    tracing::error!("cannot LISTEN: {e}");
                } else {
                    // Anything may have happened while we were not listening.
                    hub.wake_all();
                    loop {
                        match listener.recv().await {
                            Ok(notification) => hub.wake(notification.payload()),
                            Err(e) => {
                                tracing::warn!("LISTEN connection lost: {e}");
                                break;
                            }
                        }
                    }
                }
            }
            Err(e) => tracing::error!("cannot connect to LISTEN: {e}"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Ends the log of a run nobody is executing any more (one interrupted by a crash, or
/// sealed past the shutdown grace period: `last` is then its last number) with `events`,
/// and stores its result in the same commit.
/// How far past its last stored event a crashed run's log goes on: more events than a run
/// ever streams between two commits.
pub const CRASH_GAP: i64 = 1_000_000;

pub async fn end_log(
    store: &Store,
    run_id: &str,
    last: Option<i64>,
    events: &[Event],
    result: Finish,
) -> Result<(), crate::store::StoreError> {
    let mut seq = match last {
        Some(seq) => seq,
        // Nobody knows what the run streamed past its stored events before the crash: its
        // log goes on past a gap, so no number it may have streamed is used again.
        None => store.last_seq(run_id).await? + CRASH_GAP,
    };
    for event in events {
        seq += 1;
        store.queue_event(run_id, numbered(seq, event));
    }
    // Queued together, committed in order: the last one stored means all are.
    store.queue_finish(run_id, result).wait().await
}
