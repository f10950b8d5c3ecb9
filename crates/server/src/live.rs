//! Live runs: the engine's events are batched, numbered, broadcast to whoever follows and
//! stored; a follower replays the log and then follows live, resuming after any
//! `Last-Event-ID` without gaps or duplicates.
//!
//! The engine hands its events straight to the run's [`LiveRun`] on its own task: a token
//! joins its turn's batch, and one timer task for the whole instance publishes batches as
//! they come due, so thousands of runs streaming at once cost no wake-up per token.
//!
//! Followers hear an event before the database has it: a run executing here keeps its
//! events in memory too, so a follower on this instance never waits on a write, and the
//! writer commits many runs' events at once. A run leaves the hub only once all of its
//! events are stored, so followers elsewhere (and later) read a complete log.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::{Notify, broadcast};
use tokio::time::Instant;

use crate::store::{Finish, RunKind, Store, StoredEvent};
use crossfire_engine::event::{Event, EventKind, EventSink, Speaker};

/// How long tokens gather before they are sent and stored as one event.
pub const TOKEN_BATCH: Duration = Duration::from_millis(25);

/// Events a follower may fall behind by before it catches up from the run's memory.
const LIVE_BUFFER: usize = 64;

/// A run executing on this instance: every event so far, the tokens gathering for the next,
/// and the channel of new ones.
pub struct LiveRun {
    id: String,
    owner: Owner,
    store: Store,
    due: Arc<DueBatches>,
    state: Mutex<RunState>,
}

struct RunState {
    /// The events told to followers so far.
    events: Vec<StoredEvent>,
    /// The last sequence number given (to an event told, or queued and not yet told).
    last: i64,
    /// `None` once the run has ended (or was sealed): followers then see the channel close,
    /// and further events are dropped.
    tx: Option<broadcast::Sender<StoredEvent>>,
    /// Tokens not yet published, one batch per speaking turn: the two sides stream at once,
    /// and must not cut each other's batches short.
    batches: Vec<Batch>,
    /// The engine's `done`, held to be stored with the run's result.
    done: Option<Event>,
    /// Resolves once the latest event is stored.
    stored: Option<crate::store::Stored>,
}

/// Whose run it is, and what kind: enough to let a follower in without asking the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub user_id: i64,
    pub kind: RunKind,
}

/// Tokens of one turn gathered for one event.
struct Batch {
    round: u8,
    speaker: Speaker,
    text: String,
    due: Instant,
}

impl LiveRun {
    fn state(&self) -> MutexGuard<'_, RunState> {
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
    fn take(self: &Arc<Self>, event: Event) {
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
                        let due = Instant::now() + TOKEN_BATCH;
                        state.batches.push(Batch {
                            round,
                            speaker,
                            text,
                            due,
                        });
                        self.due.schedule(due, Arc::downgrade(self));
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
    fn flush(&self, state: &mut RunState, due: impl Fn(&Batch) -> bool) {
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
    fn publish(&self, state: &mut RunState, event: &Event) {
        if state.tx.is_none() {
            return;
        }
        let stored = self.record(state, event);
        state.tell(stored);
    }

    /// Numbers an event and queues it for the database.
    fn record(&self, state: &mut RunState, event: &Event) -> StoredEvent {
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
    fn follow(&self, last: i64) -> (Vec<StoredEvent>, broadcast::Receiver<StoredEvent>) {
        let state = self.state();
        let rx = match &state.tx {
            Some(tx) => tx.subscribe(),
            None => broadcast::channel(1).1, // its sender is gone: closed at once
        };
        (after(&state.events, last), rx)
    }

    /// Takes no more events (pending tokens are dropped); returns the last sequence number.
    fn end(&self) -> i64 {
        let mut state = self.state();
        state.tx = None;
        state.batches.clear();
        state.last
    }
}

impl RunState {
    /// Tells the followers a numbered event and keeps it for those still to come.
    fn tell(&mut self, event: StoredEvent) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(event.clone()); // nobody listening is fine
            self.events.push(event);
        }
    }
}

fn after(events: &[StoredEvent], last: i64) -> Vec<StoredEvent> {
    let start = events.partition_point(|e| e.seq <= last);
    events[start..].to_vec()
}

/// Token batches waiting to be published, in the order they come due. Every batch waits
/// the same [`TOKEN_BATCH`], so the order they are opened in is the order they are due.
#[derive(Default)]
struct DueBatches {
    queue: Mutex<VecDeque<(Instant, Weak<LiveRun>)>>,
    added: Notify,
}

impl DueBatches {
    fn lock(&self) -> MutexGuard<'_, VecDeque<(Instant, Weak<LiveRun>)>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn schedule(&self, due: Instant, run: Weak<LiveRun>) {
        let mut queue = self.lock();
        queue.push_back((due, run));
        if queue.len() == 1 {
            self.added.notify_one();
        }
    }

    /// Publishes the batches that are due; returns when the next one will be.
    fn publish_due(&self, now: Instant) -> Option<Instant> {
        let mut runs = Vec::new();
        let next = {
            let mut queue = self.lock();
            while let Some((due, _)) = queue.front() {
                if *due > now {
                    break;
                }
                runs.extend(queue.pop_front().and_then(|(_, run)| run.upgrade()));
            }
            queue.front().map(|(due, _)| *due)
        };
        for run in runs {
            let mut state = run.state();
            run.flush(&mut state, |b| b.due <= now);
        }
        next
    }
}

/// Publishes token batches as they come due, for every run of a hub, until the hub is gone.
async fn publish_batches(due: Weak<DueBatches>) {
    loop {
        let Some(batches) = due.upgrade() else {
            return;
        };
        match batches.publish_due(Instant::now()) {
            Some(next) => tokio::time::sleep_until(next).await,
            // Nothing waits: sleep until a batch opens (looking now and then whether the
            // hub is still there).
            None => {
                let _ =
                    tokio::time::timeout(Duration::from_secs(1), batches.added.notified()).await;
            }
        }
    }
}

/// The runs this instance is executing, and wake-ups for runs that other instances execute
/// (fed by PostgreSQL notifications).
pub struct Hub {
    store: Store,
    runs: Mutex<HashMap<String, Arc<LiveRun>>>,
    due: Arc<DueBatches>,
    remote: Mutex<HashMap<String, broadcast::Sender<()>>>,
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
        let run = Arc::new(LiveRun {
            id: run_id.to_string(),
            owner,
            store: self.store.clone(),
            due: self.due.clone(),
            state: Mutex::new(RunState {
                events: Vec::new(),
                last: 0,
                tx: Some(broadcast::channel(LIVE_BUFFER).0),
                batches: Vec::new(),
                done: None,
                stored: None,
            }),
        });
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

    /// The owner of a run executing here, if it is.
    pub fn owner(&self, run_id: &str) -> Option<Owner> {
        self.lock().get(run_id).map(|run| run.owner)
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

/// Ends the log of a run nobody is executing any more (one interrupted by a crash, or
/// sealed past the shutdown grace period: `last` is then its last number) with `events`,
/// and stores its result in the same commit.
pub async fn end_log(
    store: &Store,
    run_id: &str,
    last: Option<i64>,
    events: &[Event],
    result: Finish,
) -> Result<(), crate::store::StoreError> {
    let mut seq = match last {
        Some(seq) => seq,
        None => store.last_seq(run_id).await?,
    };
    for event in events {
        seq += 1;
        store.queue_event(run_id, numbered(seq, event));
    }
    // Queued together, committed in order: the last one stored means all are.
    store.queue_finish(run_id, result).wait().await
}

/// An engine event as the log stores it, numbered `seq`.
fn numbered(seq: i64, event: &Event) -> StoredEvent {
    StoredEvent {
        seq,
        name: event.name().to_string(),
        data: serde_json::to_string(event).unwrap_or_else(|_| "{}".into()),
    }
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
                self.finished = event.name == EventKind::Done.as_str();
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
    use crossfire_engine::transcript::Status;

    fn start(round: u8) -> Event {
        Event::TurnStart {
            round,
            speaker: Speaker::A,
            persona: "p".into(),
        }
    }

    fn token(speaker: Speaker, text: &str) -> Event {
        Event::Token {
            round: 1,
            speaker,
            text: text.into(),
        }
    }

    async fn drain(mut follower: Follower) -> Vec<StoredEvent> {
        let mut events = Vec::new();
        let next = async {
            while let Some(e) = follower.next().await {
                events.push(e);
            }
        };
        tokio::time::timeout(Duration::from_secs(5), next)
            .await
            .expect("the follower ends with the run");
        events
    }

    fn seqs(events: &[StoredEvent]) -> Vec<i64> {
        events.iter().map(|e| e.seq).collect()
    }

    #[tokio::test]
    async fn followers_here_miss_nothing_and_see_nothing_twice() {
        let path = std::env::temp_dir().join(format!("crossfire-live-{}.db", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let store = Store::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        let user = store.create_user("live@example.com", "-", 0).await.unwrap();
        for id in ["r", "cut"] {
            let row = crate::store::Run::queued(id, RunKind::Debate, user.id, None, "{}".into());
            store.create_run(&row, None).await.unwrap();
        }
        let hub = Hub::start(store.clone());
        let owner = Owner {
            user_id: user.id,
            kind: RunKind::Debate,
        };
        let run = hub.open("r", owner);
        assert_eq!(hub.owner("r"), Some(owner));
        let sink = run.sink();
        for _ in 1..=10 {
            sink.send(start(1));
        }
        // One follower resumes mid-run; one from the start falls far behind its channel.
        let resumed = Follower::start(&hub, "r", 4, true).await.unwrap();
        let mut slow = Follower::start(&hub, "r", 0, true).await.unwrap();
        for _ in 0..3 * LIVE_BUFFER {
            sink.send(start(1));
        }
        let before = run.state().events.len();

        // Tokens gather per turn until their batch is due...
        sink.send(token(Speaker::A, "to "));
        sink.send(token(Speaker::B, "or "));
        sink.send(token(Speaker::A, "be"));
        assert_eq!(
            run.state().events.len(),
            before,
            "tokens wait for their batch"
        );
        tokio::time::sleep(TOKEN_BATCH * 4).await;
        let batched: Vec<String> = run.state().events[before..]
            .iter()
            .map(|e| e.data.clone())
            .collect();
        assert_eq!(batched.len(), 2, "one event per turn: {batched:?}");
        assert!(
            batched[0].contains(r#""speaker":"a","text":"to be""#),
            "{batched:?}"
        );
        // ...or go out at once, before whatever follows them.
        sink.send(token(Speaker::B, "not"));
        sink.send(start(2));
        let names: Vec<String> = run.state().events[before + 2..]
            .iter()
            .map(|e| e.name.clone())
            .collect();
        assert_eq!(names, ["token", "turn_start"]);

        // `done` waits for the run's result, and is told once both are stored: whoever
        // hears it finds the run finished.
        let watcher = {
            let store = store.clone();
            tokio::spawn(async move {
                let mut heard = Vec::new();
                let mut status = None;
                while let Some(event) = slow.next().await {
                    if event.name == "done" {
                        status = store.run("r").await.unwrap().map(|r| r.status);
                    }
                    heard.push(event);
                }
                (heard, status)
            })
        };
        sink.send(Event::Done {
            status: Status::Done,
        });
        let last = run.state().events.len() as i64;
        assert_eq!(run.state().events.last().unwrap().name, "turn_start");
        let result = Finish {
            status: Status::Done,
            result: r#"{"verdict":"kept"}"#.into(),
            error: None,
            at: 1,
        };
        run.finish(&hub, Some(result)).await;
        sink.send(start(3));
        assert_eq!(
            run.state().events.len() as i64,
            last + 1,
            "an ended run takes no more"
        );
        assert!(hub.live("r").is_none(), "a finished run leaves the hub");
        assert_eq!(hub.owner("r"), None);

        let all = (1..=last + 1).collect::<Vec<_>>();
        assert_eq!(seqs(&drain(resumed).await), all[4..]);
        let (heard, status) = tokio::time::timeout(Duration::from_secs(5), watcher)
            .await
            .expect("the follower ends with the run")
            .unwrap();
        assert_eq!(seqs(&heard), all);
        assert_eq!(heard.last().unwrap().name, "done");
        assert_eq!(status, Some(Status::Done), "stored when `done` is told");
        let stored = store.run("r").await.unwrap().unwrap();
        assert_eq!(stored.result, r#"{"verdict":"kept"}"#);
        // The database has the same log once the run has left the hub.
        let stored = store.events_after("r", 0).await.unwrap();
        assert!(stored == heard, "{} events stored", stored.len());

        // A run that ends without `done` (sealed at shutdown) ends its followers too.
        let cut = hub.open("cut", owner);
        let follower = Follower::start(&hub, "cut", 0, true).await.unwrap();
        cut.sink().send(start(1));
        cut.sink().send(token(Speaker::A, "lost"));
        assert_eq!(hub.seal("cut"), Some(1));
        assert_eq!(seqs(&drain(follower).await), vec![1]);
        let _ = std::fs::remove_file(&path);
    }
}
