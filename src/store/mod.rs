//! Storage: accounts, sessions, runs (debates and perspectives) with their event logs, and
//! daily quotas — in a SQLite file by default, or PostgreSQL by URL, through one set of
//! queries (`$n` placeholders work in both).

use std::collections::HashMap;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};
use tokio::sync::{mpsc, oneshot};

/// The PostgreSQL channel on which instances announce new events (payload: the run id).
pub const NOTIFY_CHANNEL: &str = "crossfire_events";

/// Why a storage call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL `{0}`: use sqlite://FILE or postgres://…")]
    BadUrl(String),
    #[error("already exists")]
    Duplicate,
    #[error("storing events failed: {0}")]
    Writer(String),
    #[error("daily quota of {limit} reached")]
    QuotaExceeded { limit: u32 },
}

/// Milliseconds since the Unix epoch: how the store keeps times.
pub fn now_ms() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Which database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A user account.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub role: String,
}

#[derive(Debug, sqlx::FromRow)]
pub struct Credentials {
    pub id: i64,
    pub password_hash: String,
}

/// What kind of engine run a row holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    Debate,
    Perspective,
}

impl RunKind {
    /// The kind's name, as stored and as shown.
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Debate => "debate",
            RunKind::Perspective => "perspective",
        }
    }
}

/// A debate or perspective as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Run {
    pub id: String,
    #[sqlx(try_from = "String")]
    pub kind: RunKind,
    pub user_id: i64,
    pub status: String,
    pub cache_key: Option<String>,
    pub result: String,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub created_at: i64,
}

impl Run {
    /// A new run, queued; `result` is what it shows until it has its own.
    pub fn queued(
        id: &str,
        kind: RunKind,
        user_id: i64,
        cache_key: Option<String>,
        result: String,
    ) -> Run {
        Run {
            id: id.to_string(),
            kind,
            user_id,
            status: "queued".to_string(),
            cache_key,
            result,
            error_code: None,
            error_message: None,
            created_at: now_ms(),
        }
    }
}

/// One stored event of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub seq: i64,
    pub name: String,
    /// The event as compact JSON.
    pub data: String,
}

/// A run's consecutive events `seq` to `last_seq` in one row of the log. A row of several holds
/// their names separated by spaces and their data one JSON object a line (compact JSON has no
/// raw newline); a row of one holds it as it is.
#[derive(Debug, sqlx::FromRow)]
struct EventRow {
    seq: i64,
    last_seq: i64,
    name: String,
    data: String,
}

impl EventRow {
    fn new(event: &StoredEvent) -> EventRow {
        EventRow {
            seq: event.seq,
            last_seq: event.seq,
            name: event.name.clone(),
            data: event.data.clone(),
        }
    }

    /// Takes `event` if it is the next one and both can share a row; returns whether it did.
    fn extend(&mut self, event: &StoredEvent) -> bool {
        // Events from our own serializer always can; anything else keeps a row to itself.
        let joinable = |name: &str, data: &str| !name.contains(' ') && !data.contains('\n');
        let alone = self.seq == self.last_seq;
        if event.seq != self.last_seq + 1
            || !joinable(&event.name, &event.data)
            || (alone && !joinable(&self.name, &self.data))
        {
            return false;
        }
        self.last_seq = event.seq;
        self.name.push(' ');
        self.name.push_str(&event.name);
        self.data.push('\n');
        self.data.push_str(&event.data);
        true
    }

    /// Adds the row's events after `after` to `out`.
    fn expand_into(&self, after: i64, out: &mut Vec<StoredEvent>) {
        if self.seq == self.last_seq {
            if self.seq > after {
                out.push(StoredEvent {
                    seq: self.seq,
                    name: self.name.clone(),
                    data: self.data.clone(),
                });
            }
            return;
        }
        let events = self.name.split(' ').zip(self.data.split('\n'));
        for (seq, (name, data)) in (self.seq..).zip(events) {
            if seq > after {
                out.push(StoredEvent {
                    seq,
                    name: name.to_string(),
                    data: data.to_string(),
                });
            }
        }
    }
}

/// A daily allowance to charge when creating a run.
#[derive(Debug, Clone, Copy)]
pub struct Quota<'a> {
    pub day: &'a str,
    pub limit: u32,
}

/// How a pool connects; for SQLite, a `reader` pool is one read-only connection.
fn pool_options(dialect: Dialect, reader: bool) -> AnyPoolOptions {
    let connections = match dialect {
        Dialect::Sqlite => 1,
        Dialect::Postgres => 16,
    };
    AnyPoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(Duration::from_secs(10))
        // A SQLite file does not drop connections, so a ping before each use would only add
        // a round trip to the connection's thread; a PostgreSQL server might have.
        .test_before_acquire(dialect == Dialect::Postgres)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if dialect == Dialect::Sqlite {
                    // WAL lets readers work beside the writer; the busy timeout makes
                    // concurrent writers wait instead of failing.
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA busy_timeout = 5000").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    // Statement journals (one for each many-row INSERT in a transaction) in
                    // memory, not in temporary files written page by page.
                    conn.execute("PRAGMA temp_store = MEMORY").await?;
                    if reader {
                        conn.execute("PRAGMA query_only = ON").await?;
                    }
                }
                Ok(())
            })
        })
}

/// The database.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    /// Where sign-in checks read (for SQLite, beside the one connection that does the rest).
    sessions: AnyPool,
    dialect: Dialect,
    writer: mpsc::UnboundedSender<Write>,
}

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
    pub status: String,
    /// The result JSON.
    pub result: String,
    /// The error's code and message, if it failed.
    pub error: Option<(String, String)>,
    pub at: i64,
}

/// What the writer stores for a run.
enum Record {
    Event(StoredEvent),
    Finish(Finish),
}

/// A record waiting for the writer, and who to tell when it is stored.
struct Write {
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
async fn write_records(pool: AnyPool, dialect: Dialect, mut queue: mpsc::UnboundedReceiver<Write>) {
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
            .bind(&finish.status)
            .bind(&finish.result)
            .bind(error.map(|e| e.0.as_str()))
            .bind(error.map(|e| e.1.as_str()))
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
    /// Connects (creating a SQLite file if needed) and applies the migrations.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        install_default_drivers();
        let (dialect, url) = if let Some(rest) = url.strip_prefix("sqlite:") {
            let url = if rest.contains('?') {
                format!("sqlite:{rest}")
            } else {
                format!("sqlite:{rest}?mode=rwc")
            };
            (Dialect::Sqlite, url)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Dialect::Postgres, url.to_string())
        } else {
            return Err(StoreError::BadUrl(url.to_string()));
        };
        // One SQLite connection for everything but sign-in checks: SQLite runs one writer at
        // a time anyway, and in WAL mode a connection drops its page cache whenever another
        // one has committed, so with several every query read its pages again (and each
        // connection is a thread that queries hand off to). One took a fifth off the CPU per
        // debate.
        let pool = pool_options(dialect, false).connect(&url).await?;
        match dialect {
            Dialect::Sqlite => sqlx::migrate!("migrations/sqlite").run(&pool).await?,
            Dialect::Postgres => sqlx::migrate!("migrations/postgres").run(&pool).await?,
        }
        // Sign-in checks, which every signed-in request makes, read on a connection of their
        // own: behind the one, a burst of new debates queued every stream's check behind
        // thousands of statements, and at 2,000 debates the first tokens waited seconds for
        // it (p99 3.1-4.7 s; 0.3-1.8 s, mostly under 0.5, with its own connection).
        // (A database in memory exists only for its one connection.)
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let sessions = match dialect {
            Dialect::Sqlite if !in_memory => pool_options(dialect, true).connect(&url).await?,
            _ => pool.clone(),
        };
        let (writer, queue) = mpsc::unbounded_channel();
        tokio::spawn(write_records(pool.clone(), dialect, queue));
        Ok(Store {
            pool,
            sessions,
            dialect,
            writer,
        })
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Checks the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn create_user(
        &self,
        email: &str,
        password_hash: &str,
        now: i64,
    ) -> Result<User, StoreError> {
        let result = sqlx::query_as::<_, User>(
            "INSERT INTO users (email, password_hash, role, created_at) VALUES ($1, $2, 'user', $3) \
             RETURNING id, email, role",
        )
        .bind(email)
        .bind(password_hash)
        .bind(now)
        .fetch_one(&self.pool)
        .await;
        match result {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(StoreError::Duplicate),
            other => Ok(other?),
        }
    }

    pub async fn credentials(&self, email: &str) -> Result<Option<Credentials>, StoreError> {
        Ok(
            sqlx::query_as::<_, Credentials>(
                "SELECT id, password_hash FROM users WHERE email = $1",
            )
            .bind(email)
            .fetch_optional(&self.pool)
            .await?,
        )
    }

    pub async fn user(&self, id: i64) -> Result<Option<User>, StoreError> {
        Ok(
            sqlx::query_as::<_, User>("SELECT id, email, role FROM users WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Sets a user's role; false if there is no such user.
    pub async fn set_role(&self, email: &str, role: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE users SET role = $1 WHERE email = $2")
            .bind(role)
            .bind(email)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn create_session(
        &self,
        token_hash: &str,
        user_id: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO sessions (token_hash, user_id, expires_at) VALUES ($1, $2, $3)")
            .bind(token_hash)
            .bind(user_id)
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The user of a live session.
    pub async fn session_user(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<User>, StoreError> {
        Ok(sqlx::query_as::<_, User>(
            "SELECT u.id, u.email, u.role FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.sessions)
        .await?)
    }

    pub async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Creates a run, charging the quota in the same transaction: concurrent requests can
    /// never exceed it.
    pub async fn create_run(&self, run: &Run, quota: Option<Quota<'_>>) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        if let Some(quota) = quota {
            if quota.limit == 0 {
                return Err(StoreError::QuotaExceeded { limit: 0 });
            }
            let charged = sqlx::query(
                "INSERT INTO quota_usage (user_id, day, kind, used) VALUES ($1, $2, $3, 1) \
                 ON CONFLICT (user_id, day, kind) DO UPDATE SET used = quota_usage.used + 1 \
                 WHERE quota_usage.used < $4 RETURNING used",
            )
            .bind(run.user_id)
            .bind(quota.day)
            .bind(run.kind.as_str())
            .bind(i64::from(quota.limit))
            .fetch_optional(&mut *tx)
            .await?;
            if charged.is_none() {
                return Err(StoreError::QuotaExceeded { limit: quota.limit });
            }
        }
        sqlx::query(
            "INSERT INTO runs (id, kind, user_id, status, cache_key, result, error_code, \
             error_message, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
        )
        .bind(&run.id)
        .bind(run.kind.as_str())
        .bind(run.user_id)
        .bind(&run.status)
        .bind(&run.cache_key)
        .bind(&run.result)
        .bind(&run.error_code)
        .bind(&run.error_message)
        .bind(run.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    const RUN_COLUMNS: &'static str =
        "id, kind, user_id, status, cache_key, result, error_code, error_message, created_at";

    pub async fn run(&self, id: &str) -> Result<Option<Run>, StoreError> {
        let sql = format!("SELECT {} FROM runs WHERE id = $1", Store::RUN_COLUMNS);
        Ok(sqlx::query_as::<_, Run>(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// A user's runs of a kind, newest first.
    pub async fn runs_of(
        &self,
        user_id: i64,
        kind: RunKind,
        limit: i64,
    ) -> Result<Vec<Run>, StoreError> {
        let sql = format!(
            "SELECT {} FROM runs WHERE user_id = $1 AND kind = $2 ORDER BY created_at DESC, id LIMIT $3",
            Store::RUN_COLUMNS
        );
        Ok(sqlx::query_as::<_, Run>(&sql)
            .bind(user_id)
            .bind(kind.as_str())
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
    }

    /// A finished perspective with this cache key, whoever asked for it.
    pub async fn cached(&self, cache_key: &str) -> Result<Option<Run>, StoreError> {
        let sql = format!(
            "SELECT {} FROM runs WHERE cache_key = $1 AND status = 'done' ORDER BY created_at LIMIT 1",
            Store::RUN_COLUMNS
        );
        Ok(sqlx::query_as::<_, Run>(&sql)
            .bind(cache_key)
            .fetch_optional(&self.pool)
            .await?)
    }

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

    /// A run's events after sequence number `after`, in order.
    pub async fn events_after(
        &self,
        run_id: &str,
        after: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = sqlx::query_as::<_, EventRow>(
            "SELECT seq, last_seq, name, data FROM run_events \
             WHERE run_id = $1 AND last_seq > $2 ORDER BY seq",
        )
        .bind(run_id)
        .bind(after)
        .fetch_all(&self.pool)
        .await?;
        let mut events = Vec::new();
        for row in &rows {
            row.expand_into(after, &mut events);
        }
        Ok(events)
    }

    /// Runs left queued or running (by a crash, or a shutdown past its grace period).
    pub async fn unfinished_runs(&self) -> Result<Vec<Run>, StoreError> {
        let sql = format!(
            "SELECT {} FROM runs WHERE status IN ('queued', 'running')",
            Store::RUN_COLUMNS
        );
        Ok(sqlx::query_as::<_, Run>(&sql).fetch_all(&self.pool).await?)
    }

    /// The highest sequence number of a run's log (0 if empty).
    pub async fn last_seq(&self, run_id: &str) -> Result<i64, StoreError> {
        let row: (i64,) =
            sqlx::query_as("SELECT COALESCE(MAX(last_seq), 0) FROM run_events WHERE run_id = $1")
                .bind(run_id)
                .fetch_one(&self.pool)
                .await?;
        Ok(row.0)
    }
}

/// A `runs.kind` that names no kind: the database was written by something else.
#[derive(Debug, thiserror::Error)]
#[error("unknown run kind `{0}`")]
pub struct UnknownRunKind(String);

impl TryFrom<String> for RunKind {
    type Error = UnknownRunKind;
    fn try_from(name: String) -> Result<RunKind, UnknownRunKind> {
        match name.as_str() {
            "debate" => Ok(RunKind::Debate),
            "perspective" => Ok(RunKind::Perspective),
            _ => Err(UnknownRunKind(name)),
        }
    }
}
