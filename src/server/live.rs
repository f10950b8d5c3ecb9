//! Live runs: the engine's events are batched, numbered, broadcast to whoever follows and
//! stored; a follower replays the log and then follows live, resuming after any
//! `Last-Event-ID` without gaps or duplicates.
//!
//! Followers hear an event before the database has it: a run executing here keeps its
//! events in memory too, so a follower on this instance never waits on a write, and the
//! writer commits many runs' events at once. A run leaves the hub only once all of its
//! events are stored, so followers elsewhere (and later) read a complete log.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Instant;

use crate::event::{Event, Speaker};
use crate::store::{Store, StoredEvent};

/// How long tokens gather before they are stored as one event.
pub const TOKEN_BATCH: Duration = Duration::from_millis(25);

/// Events a follower may fall behind by before it catches up from the run's memory.
const LIVE_BUFFER: usize = 64;

/// A run executing on this instance: every event so far, and the channel of new ones.
pub struct LiveRun(Mutex<RunState>);

struct RunState {
    events: Vec<StoredEvent>,
    /// `None` once the run has ended (or was sealed): followers then see the channel close.
    tx: Option<broadcast::Sender<StoredEvent>>,
}

impl LiveRun {
    fn state(&self) -> MutexGuard<'_, RunState> {
        // A panic elsewhere cannot leave the state inconsistent: take it anyway.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds an event and tells the followers, under one lock so that a follower arriving
    /// meanwhile sees it exactly once: in its snapshot or on its channel. False if the run
    /// has ended.
    fn publish(&self, event: StoredEvent) -> bool {
        let mut state = self.state();
        let Some(tx) = &state.tx else {
            return false;
        };
        let _ = tx.send(event.clone()); // nobody listening is fine
        state.events.push(event);
        true
    }

    /// The events after `last`, and a channel for the ones to come.
    fn follow(&self, last: i64) -> (Vec<StoredEvent>, broadcast::Receiver<StoredEvent>) {
        let state = self.state();
        let rx = match &state.tx {
            Some(tx) => tx.subscribe(),
            None => broadcast::channel(1).1, // its sender is gone: closed at once
        };
        (after(&state.events, last), rx)
    }

    /// Takes no more events; returns the last sequence number.
    fn end(&self) -> i64 {
        let mut state = self.state();
        state.tx = None;
        state.events.last().map_or(0, |e| e.seq)
    }
}

fn after(events: &[StoredEvent], last: i64) -> Vec<StoredEvent> {
    let start = events.partition_point(|e| e.seq <= last);
    events[start..].to_vec()
}

/// The runs this instance is executing, and wake-ups for runs that other instances execute
/// (fed by PostgreSQL notifications).
#[derive(Default)]
pub struct Hub {
    runs: Mutex<HashMap<String, Arc<LiveRun>>>,
    remote: Mutex<HashMap<String, broadcast::Sender<()>>>,
}

impl Hub {
    /// Opens a run about to execute here. Done before the run is announced to its client,
    /// so a follower arriving at once finds it.
    pub fn open(&self, run_id: &str) -> Arc<LiveRun> {
        let run = Arc::new(LiveRun(Mutex::new(RunState {
            events: Vec::new(),
            tx: Some(broadcast::channel(LIVE_BUFFER).0),
        })));
        self.lock().insert(run_id.to_string(), run.clone());
        run
    }

    fn close(&self, run_id: &str) {
        self.lock().remove(run_id);
    }

    /// A run executing here, if it is.
    fn live(&self, run_id: &str) -> Option<Arc<LiveRun>> {
        self.lock().get(run_id).cloned()
    }

    /// Stops a run executing here from adding events (it is being interrupted); returns
    /// its last sequence number, or `None` if it does not execute here.
    pub fn seal(&self, run_id: &str) -> Option<i64> {
        self.live(run_id).map(|run| run.end())
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<LiveRun>>> {
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

/// Broadcasts and stores the events of one run until its sender is dropped. The `done`
/// event is held back until `result_stored` fires (or is dropped), so that a client who
/// sees it finds the run's result stored; the run leaves the hub once the database has
/// every event.
pub async fn record(
    store: Store,
    hub: &Hub,
    run_id: &str,
    run: Arc<LiveRun>,
    mut events: mpsc::UnboundedReceiver<Event>,
    result_stored: oneshot::Receiver<()>,
) {
    let mut writer = Writer {
        store: &store,
        run_id,
        run: &run,
        seq: 0,
        stored: None,
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
                    writer.flush(&mut batches, |b| b.deadline <= now);
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
                writer.flush(&mut batches, |_| true);
                done = Some(event);
            }
            Some(event) => {
                // Tokens come before whatever follows them.
                writer.flush(&mut batches, |_| true);
                writer.write(&event);
            }
        }
    }
    writer.flush(&mut batches, |_| true);
    let _ = result_stored.await;
    if let Some(event) = done {
        writer.write(&event);
    }
    run.end();
    if let Some(stored) = writer.stored.take() {
        // Events are committed in order: the last one stored means all are.
        if let Err(e) = stored.wait().await {
            tracing::error!(run = run_id, "cannot store the last events: {e}");
        }
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
    run: &'a LiveRun,
    seq: i64,
    /// Resolves once the latest event is stored.
    stored: Option<crate::store::Stored>,
}

impl Writer<'_> {
    /// Writes out the batches that `due` selects, oldest first.
    fn flush(&mut self, batches: &mut Vec<Batch>, due: impl Fn(&Batch) -> bool) {
        let (ready, waiting): (Vec<Batch>, Vec<Batch>) = batches.drain(..).partition(|b| due(b));
        *batches = waiting;
        for batch in ready {
            let (round, speaker, text) = (batch.round, batch.speaker, batch.text);
            self.write(&Event::Token {
                round,
                speaker,
                text,
            });
        }
    }

    /// Numbers an event, tells the followers, and queues it for the database.
    fn write(&mut self, event: &Event) {
        self.seq += 1;
        let stored = StoredEvent {
            seq: self.seq,
            name: event.name().to_string(),
            data: serde_json::to_string(event).unwrap_or_else(|_| "{}".into()),
        };
        if self.run.publish(stored.clone()) {
            self.stored = Some(self.store.queue_event(self.run_id, stored));
        }
    }
}

/// Appends events to the log of a run nobody is executing any more (one interrupted by a
/// crash, or sealed past the shutdown grace period: `last` is then its last number).
pub async fn append(
    store: &Store,
    run_id: &str,
    last: Option<i64>,
    events: &[Event],
) -> Result<(), crate::store::StoreError> {
    let mut seq = match last {
        Some(seq) => seq,
        None => store.last_seq(run_id).await?,
    };
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
    /// The run executes here: its events as they happen, and all of them in memory.
    Local(Arc<LiveRun>, broadcast::Receiver<StoredEvent>),
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
                self.finished = event.name == "done";
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: i64, name: &str) -> StoredEvent {
        StoredEvent {
            seq,
            name: name.to_string(),
            data: seq.to_string(),
        }
    }

    async fn drain(mut follower: Follower) -> Vec<i64> {
        let mut seqs = Vec::new();
        let next = async {
            while let Some(e) = follower.next().await {
                seqs.push(e.seq);
            }
        };
        tokio::time::timeout(Duration::from_secs(5), next)
            .await
            .expect("the follower ends with the run");
        seqs
    }

    #[tokio::test]
    async fn followers_here_miss_nothing_and_see_nothing_twice() {
        let path = std::env::temp_dir().join(format!("crossfire-live-{}.db", std::process::id()));
        let store = Store::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        let hub = Hub::default();
        let run = hub.open("r");
        for seq in 1..=10 {
            assert!(run.publish(event(seq, "token")));
        }
        // One follower resumes mid-run; one from the start falls far behind its channel.
        let resumed = Follower::start(store.clone(), &hub, "r", 4, true)
            .await
            .unwrap();
        let slow = Follower::start(store.clone(), &hub, "r", 0, true)
            .await
            .unwrap();
        let last = 10 + 3 * LIVE_BUFFER as i64;
        for seq in 11..last {
            run.publish(event(seq, "token"));
        }
        run.publish(event(last, "done"));
        assert_eq!(run.end(), last);
        assert!(
            !run.publish(event(last + 1, "token")),
            "an ended run takes no more"
        );
        assert_eq!(drain(resumed).await, (5..=last).collect::<Vec<_>>());
        assert_eq!(drain(slow).await, (1..=last).collect::<Vec<_>>());

        // A run that ends without `done` (sealed at shutdown) ends its followers too.
        let cut = hub.open("cut");
        let follower = Follower::start(store, &hub, "cut", 0, true).await.unwrap();
        cut.publish(event(1, "token"));
        assert_eq!(hub.seal("cut"), Some(1));
        assert_eq!(drain(follower).await, vec![1]);
        let _ = std::fs::remove_file(&path);
    }
}
