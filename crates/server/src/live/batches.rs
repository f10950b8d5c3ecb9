//! The one timer of a hub: token batches published as they come due, for every run.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::*;

/// Token batches waiting to be published, in the order they come due. An entry is a run's
/// batch that opened with none waiting (one opened beside it shares its due), due
/// [`TOKEN_BATCH`] later: the order they are opened in is the order they are due.
#[derive(Default)]
pub(super) struct DueBatches {
    pub(super) queue: Mutex<VecDeque<(Instant, Weak<LiveRun>)>>,
    pub(super) added: Notify,
}

impl DueBatches {
    pub(super) fn lock(&self) -> MutexGuard<'_, VecDeque<(Instant, Weak<LiveRun>)>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn schedule(&self, due: Instant, run: Weak<LiveRun>) {
        let mut queue = self.lock();
        queue.push_back((due, run));
        if queue.len() == 1 {
            self.added.notify_one();
        }
    }

    /// Publishes the batches that are due; returns when the next one will be.
    pub(super) fn publish_due(&self, now: Instant) -> Option<Instant> {
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
pub(super) async fn publish_batches(due: Weak<DueBatches>) {
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
