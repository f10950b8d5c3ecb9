//! Live runs: the engine's events are batched, stored with sequence numbers, and broadcast
//! to whoever follows; a follower replays the stored log and then follows live, resuming
//! after any `Last-Event-ID` without gaps or duplicates.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

use crate::event::{Event, Speaker};
use crate::store::{Store, StoredEvent};

/// How long tokens gather before they are stored as one event.
pub const TOKEN_BATCH: Duration = Duration::from_millis(25);

/// The broadcast channels of the runs this instance is executing, and wake-ups for runs
/// that other instances execute (fed by PostgreSQL notifications).
#[derive(Default)]
pub struct Hub {
    runs: Mutex<HashMap<String, broadcast::Sender<StoredEvent>>>,
    remote: Mutex<HashMap<String, broadcast::Sender<()>>>,
}

impl Hub {
    /// Opens the channel of a run about to execute here. Done before the run is announced
    /// to its client, so a follower arriving at once finds it.
    pub fn open(&self, run_id: &str) -> broadcast::Sender<StoredEvent> {
        let (tx, _) = broadcast::channel(1024);
        self.lock().insert(run_id.to_string(), tx.clone());
        tx
    }

    fn close(&self, run_id: &str) {
        self.lock().remove(run_id);
    }

    /// Listens to a run executing here, if it is.
    pub fn subscribe(&self, run_id: &str) -> Option<broadcast::Receiver<StoredEvent>> {
        self.lock().get(run_id).map(broadcast::Sender::subscribe)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, broadcast::Sender<StoredEvent>>> {
        // A panic elsewhere cannot leave the map inconsistent: take it anyway.
        self.runs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wake-ups for a run executing on another instance.
    fn watch(&self, run_id: &str) -> broadcast::Receiver<()> {
        let mut remote = self.remote.lock().unwrap_or_else(|e| e.into_inner());
        remote.retain(|_, tx| tx.receiver_count() > 0);
        remote
            .entry(run_id.to_string())
            .or_insert_with(|| broadcast::channel(16).0)
            .subscribe()
    }

    /// Another instance stored events of `run_id`.
    fn wake(&self, run_id: &str) {
        let remote = self.remote.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = remote.get(run_id) {
            let _ = tx.send(());
        }
    }

    fn wake_all(&self) {
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

/// Stores and broadcasts the events of one run until its sender is dropped. The `done` event
/// is held back until then, so that a client who sees it finds the run's result stored.
pub async fn record(
    store: Store,
    hub: &Hub,
    run_id: &str,
    tx: broadcast::Sender<StoredEvent>,
    mut events: mpsc::UnboundedReceiver<Event>,
) {
    let mut writer = Writer {
        store: &store,
        run_id,
        tx: &tx,
        seq: 0,
    };
    // One batch per speaking turn: the two sides stream at once, and must not cut each
    // other's batches short.
    let mut batches: Vec<Batch> = Vec::new();
    let mut done = None;
    loop {
        let next = match batches.iter().map(|b| b.deadline).min() {
            Some(deadline) => match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(next) => next,
                Err(_) => {
                    let now = Instant::now();
                    writer.flush(&mut batches, |b| b.deadline <= now).await;
                    continue;
                }
            },
            None => events.recv().await,
        };
        match next {
            None => break,
            Some(Event::Token {
                round,
                speaker,
                text,
            }) => {
                match batches
                    .iter_mut()
                    .find(|b| (b.round, b.speaker) == (round, speaker))
                {
                    Some(batch) => batch.text.push_str(&text),
                    None => batches.push(Batch {
                        round,
                        speaker,
                        text,
                        deadline: Instant::now() + TOKEN_BATCH,
                    }),
                }
            }
            Some(event @ Event::Done { .. }) => {
                writer.flush(&mut batches, |_| true).await;
                done = Some(event);
            }
            Some(event) => {
                // Tokens come before whatever follows them.
                writer.flush(&mut batches, |_| true).await;
                writer.write(&event).await;
            }
        }
    }
    writer.flush(&mut batches, |_| true).await;
    if let Some(event) = done {
        writer.write(&event).await;
    }
    hub.close(run_id);
}

/// Tokens of one turn gathered for one event.
struct Batch {
    round: u8,
    speaker: Speaker,
    text: String,
    deadline: Instant,
}

struct Writer<'a> {
    store: &'a Store,
    run_id: &'a str,
    tx: &'a broadcast::Sender<StoredEvent>,
    seq: i64,
}

impl Writer<'_> {
    /// Writes out the batches that `due` selects, oldest first.
    async fn flush(&mut self, batches: &mut Vec<Batch>, due: impl Fn(&Batch) -> bool) {
        let (ready, waiting): (Vec<Batch>, Vec<Batch>) = batches.drain(..).partition(|b| due(b));
        *batches = waiting;
        for batch in ready {
            let (round, speaker, text) = (batch.round, batch.speaker, batch.text);
            self.write(&Event::Token {
                round,
                speaker,
                text,
            })
            .await;
        }
    }

    async fn write(&mut self, event: &Event) {
        self.seq += 1;
        let stored = StoredEvent {
            seq: self.seq,
            name: event.name().to_string(),
            data: serde_json::to_string(event).unwrap_or_else(|_| "{}".into()),
        };
        if let Err(e) = self.store.append_event(self.run_id, &stored).await {
            tracing::error!(run = self.run_id, "cannot store event {}: {e}", stored.seq);
        }
        let _ = self.tx.send(stored); // nobody listening is fine
    }
}

/// Appends events to the log of a run nobody is executing (e.g. one interrupted by a crash).
pub async fn append(
    store: &Store,
    run_id: &str,
    events: &[Event],
) -> Result<(), crate::store::StoreError> {
    let mut seq = store.last_seq(run_id).await?;
    for event in events {
        seq += 1;
        let stored = StoredEvent {
            seq,
            name: event.name().to_string(),
            data: serde_json::to_string(event).unwrap_or_else(|_| "{}".into()),
        };
        store.append_event(run_id, &stored).await?;
    }
    Ok(())
}

/// How a follower hears of new events.
enum Live {
    /// The run executes here: its events, as they are stored.
    Local(broadcast::Receiver<StoredEvent>),
    /// The run executes on another instance: wake-ups to read the log again.
    Remote(broadcast::Receiver<()>),
}

/// A follower of one run's events: the stored log after `last`, then live events.
pub struct Follower {
    store: Store,
    run_id: String,
    last: i64,
    backlog: VecDeque<StoredEvent>,
    live: Option<Live>,
    finished: bool,
}

impl Follower {
    /// Subscribes before reading the log, so nothing falls between the two. `unfinished`
    /// says whether the run may still produce events (somewhere).
    pub async fn start(
        store: Store,
        hub: &Hub,
        run_id: &str,
        last: i64,
        unfinished: bool,
    ) -> Result<Follower, crate::store::StoreError> {
        let live = match hub.subscribe(run_id) {
            Some(rx) => Some(Live::Local(rx)),
            None if unfinished && store.dialect() == crate::store::Dialect::Postgres => {
                Some(Live::Remote(hub.watch(run_id)))
            }
            None => None,
        };
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
                self.finished = event.name == "done";
                return Some(event);
            }
            match self.live.as_mut()? {
                Live::Local(live) => match live.recv().await {
                    Ok(event) => self.backlog.push_back(event),
                    Err(_) => {
                        // Too slow for the channel, or the run ended here: the log has
                        // everything.
                        if matches!(live.try_recv(), Err(broadcast::error::TryRecvError::Closed)) {
                            self.live = None;
                        }
                        let rest = self
                            .store
                            .events_after(&self.run_id, self.last)
                            .await
                            .ok()?;
                        if rest.is_empty() && self.live.is_none() {
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
}
