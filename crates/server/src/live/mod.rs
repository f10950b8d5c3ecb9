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

mod batches;
mod follower;
mod hub;
mod run;

pub use follower::Follower;
pub use hub::{CRASH_GAP, Hub, end_log, listen};
pub use run::{LiveRun, Owner, TOKEN_BATCH};

use batches::{DueBatches, publish_batches};
use run::{LIVE_BUFFER, RunState, after};

use crate::store::StoredEvent;
use crossfire_engine::event::Event;

/// An engine event as the log stores it, numbered `seq`.
fn numbered(seq: i64, event: &Event) -> StoredEvent {
    StoredEvent {
        seq,
        name: event.name().to_string(),
        data: serde_json::to_string(event).unwrap_or_else(|_| "{}".into()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::store::{Finish, RunKind, Store};
    use crossfire_engine::event::{EventKind, Speaker};
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

    /// A store in a new SQLite file named after `name`, and the file's path.
    async fn fresh_store(name: &str) -> (Store, std::path::PathBuf) {
        let file = format!("crossfire-{name}-{}.db", std::process::id());
        let path = std::env::temp_dir().join(file);
        let _ = std::fs::remove_file(&path);
        let store = Store::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        (store, path)
    }

    /// The owner of a debate by user `user_id`.
    fn debate_owner(user_id: i64) -> Owner {
        Owner {
            user_id,
            kind: RunKind::Debate,
        }
    }

    fn seqs(events: &[StoredEvent]) -> Vec<i64> {
        events.iter().map(|e| e.seq).collect()
    }

    /// A resumed run's numbers in the gap after its stored log were heard and lost; the
    /// kept ones, and those still to come, were not.
    #[tokio::test]
    async fn only_numbers_in_a_resumed_runs_gap_are_lost() {
        let (store, path) = fresh_store("lost").await;
        let hub = Hub::start(store);
        let owner = debate_owner(1);
        let log = vec![
            numbered(1, &start(1)),
            numbered(2, &token(Speaker::A, "We")),
        ];
        hub.open_after("r", owner, log, 2 + CRASH_GAP);
        assert_eq!(hub.lost("r", 2), Some(false), "kept");
        assert_eq!(hub.lost("r", 3), Some(true), "in the gap");
        assert_eq!(hub.lost("r", 2 + CRASH_GAP), Some(true), "the gap's last");
        assert_eq!(hub.lost("r", 3 + CRASH_GAP), Some(false), "still to come");
        assert_eq!(hub.lost("elsewhere", 3), None, "not executing here");
        let _ = std::fs::remove_file(&path);
    }

    /// A side's tokens that start while the other side's batch waits go out with that
    /// batch: followers get both in one write, and the later side waits less.
    #[tokio::test]
    async fn a_batch_opened_while_the_other_sides_waits_goes_out_with_it() {
        let (store, path) = fresh_store("together").await;
        let hub = Hub::start(store);
        let owner = debate_owner(1);
        let run = hub.open("t", owner);
        let mut follower = Follower::start(&hub, "t", 0, true).await.unwrap();
        // From here on the clock moves only when every task waits: B's token comes half a
        // batch after A's, however loaded the machine.
        tokio::time::pause();
        let sink = run.sink();
        sink.send(token(Speaker::A, "to "));
        tokio::time::sleep(TOKEN_BATCH / 2).await;
        sink.send(token(Speaker::B, "or "));
        let first = tokio::time::timeout(Duration::from_secs(5), follower.next())
            .await
            .expect("the batch is published")
            .unwrap();
        assert!(first.data.contains(r#""speaker":"a""#), "{first:?}");
        // Published in one flush, under the run's lock: whoever hears the first hears both.
        let published: Vec<String> = run.state().events.iter().map(|e| e.data.clone()).collect();
        assert_eq!(published.len(), 2, "{published:?}");
        assert!(published[1].contains(r#""speaker":"b","text":"or ""#));
        let _ = std::fs::remove_file(&path);
    }

    #[tokio::test]
    async fn followers_here_miss_nothing_and_see_nothing_twice() {
        let (store, path) = fresh_store("live").await;
        let user = store.create_user("live@example.com", "-", 0).await.unwrap();
        for id in ["r", "cut"] {
            let row = crate::store::Run::queued(id, RunKind::Debate, user.id, None, "{}".into());
            let claim = crate::store::Claim {
                owner: "test",
                until: i64::MAX,
            };
            store.create_run(&row, None, claim).await.unwrap();
        }
        let hub = Hub::start(store.clone());
        let owner = debate_owner(user.id);
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
                    if event.kind() == Some(EventKind::Done) {
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
