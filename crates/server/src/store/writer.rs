//! The event writer: one task that commits every run's events, and runs' results, in group
//! commits.

use std::collections::HashMap;
use std::time::Duration;

use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};

use super::events::{EventRow, StoredEvent};
use super::{Dialect, NOTIFY_CHANNEL, Store, StoreError, now_ms};
use crossfire_engine::transcript::{ErrorInfo, Status};

/// Resolves once a queued event or result is committed.
pub struct Stored(oneshot::Receiver<Result<(), String>>);

impl Stored {
    pub async fn wait(self) -> Result<(), StoreError> {
        self.0
            .await
            .map_err(|_| StoreError::Writer("the event writer stopped".into()))?
            .map_err(StoreError::Writer)
    }
}

/// A run's final status and result, stored with its last events.
#[derive(Debug, Clone)]
pub struct Finish {
    pub status: Status,
    /// The result JSON.
    pub result: String,
    /// Why it failed, if it did.
    pub error: Option<ErrorInfo>,
    pub at: i64,
}

/// What the writer stores for a run.
enum Record {
    Event(StoredEvent),
    Finish(Finish),
}

/// A record waiting for the writer, and who to tell when it is stored.
pub(super) struct Write {
    run_id: String,
    record: Record,
    stored: oneshot::Sender<Result<(), String>>,
}

/// Most events a group commit takes at once.
const GROUP_COMMIT: usize = 4096;

/// How long the writer gathers events before committing them.
const GROUP_WINDOW: Duration = Duration::from_millis(50);

/// Rows in one INSERT (5 parameters each, well under SQLite's and PostgreSQL's limits).
const ROWS_PER_INSERT: usize = 64;

/// Stores events (and runs' results) as they come, many per transaction: thousands of live
/// debates append a row per token batch, and one writer committing groups beats every task
/// contending for SQLite's single write lock (whose busy-wait sleeps add up to 100 ms a
/// try), and a commit each.
pub(super) async fn write_records(
    pool: AnyPool,
    dialect: Dialect,
    mut queue: mpsc::UnboundedReceiver<Write>,
) {
    while let Some(first) = queue.recv().await {
        // Runs append to their own pages of the log's index, so a commit costs about a page
        // per run in it: waiting a moment lets each run bring several events.
        tokio::time::sleep(GROUP_WINDOW).await;
        let mut group = vec![first];
        while group.len() < GROUP_COMMIT {
            match queue.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let result = commit_group(&pool, dialect, &group)
            .await
            .map_err(|e| e.to_string());
        if let Err(e) = &result {
            tracing::error!("cannot store {} events and results: {e}", group.len());
        }
        for write in group {
            let _ = write.stored.send(result.clone());
        }
    }
}

async fn commit_group(
    pool: &AnyPool,
    dialect: Dialect,
    group: &[Write],
) -> Result<(), sqlx::Error> {
    // A row per run: each row is an entry in the log's index, and with thousands of runs
    // streaming, the index pages they land on were most of a commit's cost.
    let mut rows: Vec<(&str, EventRow)> = Vec::new();
    let mut row_of: HashMap<&str, usize> = HashMap::new();
    let mut started: Vec<&str> = Vec::new();
    for write in group {
        let Record::Event(event) = &write.record else {
            continue;
        };
        let run_id = write.run_id.as_str();
        if event.seq == 1 {
            started.push(run_id);
        }
        match row_of.get(run_id) {
            Some(&i) if rows[i].1.extend(event) => {}
            _ => {
                row_of.insert(run_id, rows.len());
                rows.push((run_id, EventRow::new(event)));
            }
        }
    }
    let mut tx = pool.begin().await?;
    // Many rows a statement: each statement is a round trip to the database.
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| {
                let p = 5 * i;
                format!(
                    "(${}, ${}, ${}, ${}, ${})",
                    p + 1,
                    p + 2,
                    p + 3,
                    p + 4,
                    p + 5
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO run_events (run_id, seq, last_seq, name, data) VALUES {}",
            values.join(", ")
        );
        let mut insert = sqlx::query(&sql);
        for (run_id, row) in chunk {
            insert = insert
                .bind(*run_id)
                .bind(row.seq)
                .bind(row.last_seq)
                .bind(&row.name)
                .bind(&row.data);
        }
        insert.execute(&mut *tx).await?;
    }
    // A run is running from its first event on (a finished run stays finished).
    for runs in started.chunks(ROWS_PER_INSERT) {
        let ids: Vec<String> = (0..runs.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!(
            "UPDATE runs SET status = 'running', updated_at = $1 WHERE status = 'queued' AND id IN ({})",
            ids.join(", ")
        );
        let mut update = sqlx::query(&sql).bind(now_ms());
        for run in runs {
            update = update.bind(*run);
        }
        update.execute(&mut *tx).await?;
    }
    // Last: a run's result commits with its last events, after its start above.
    for write in group {
        if let Record::Finish(finish) = &write.record {
            let error = finish.error.as_ref();
            sqlx::query(
                "UPDATE runs SET status = $1, result = $2, error_code = $3, error_message = $4, \
                 updated_at = $5 WHERE id = $6",
            )
            .bind(finish.status.as_str())
            .bind(&finish.result)
            .bind(error.map(|e| e.code.as_str()))
            .bind(error.map(|e| e.message.as_str()))
            .bind(finish.at)
            .bind(&write.run_id)
            .execute(&mut *tx)
            .await?;
        }
    }
    if dialect == Dialect::Postgres {
        // Delivered at commit: other instances read what is already there.
        let mut runs: Vec<&str> = group.iter().map(|w| w.run_id.as_str()).collect();
        runs.sort_unstable();
        runs.dedup();
        for run in runs {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(NOTIFY_CHANNEL)
                .bind(run)
                .execute(&mut *tx)
                .await?;
        }
    }
    tx.commit().await
}

impl Store {
    /// Queues an event for the log without waiting; events and results are committed in
    /// the order they are queued.
    pub fn queue_event(&self, run_id: &str, event: StoredEvent) -> Stored {
        self.queue(run_id, Record::Event(event))
    }

    /// Queues a run's final status and result, to commit with the events queued before it
    /// (so no one reads a finished log of a run still marked running, or the reverse).
    pub fn queue_finish(&self, run_id: &str, finish: Finish) -> Stored {
        self.queue(run_id, Record::Finish(finish))
    }

    fn queue(&self, run_id: &str, record: Record) -> Stored {
        let (stored, committed) = oneshot::channel();
        let write = Write {
            run_id: run_id.to_string(),
            record,
            stored,
        };
        // If the writer has stopped, `committed` reports it.
        let _ = self.writer.send(write);
        Stored(committed)
    }
}
