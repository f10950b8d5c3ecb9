//! Storage: accounts, sessions, runs (debates and perspectives) with their event logs, daily
//! quotas, readers' reports, the audit log and the daily token spend — in a SQLite file by
//! default, or PostgreSQL by URL, through one set of queries (`$n` placeholders work in both).

mod audit;
mod events;
mod reports;
mod runs;
mod saves;
mod spend;
mod users;
mod votes;
mod withheld;
mod writer;

use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow, install_default_drivers};
use sqlx::{AnyPool, Executor, Row};
use tokio::sync::mpsc;

pub use audit::{AuditAction, AuditEntry, COMMAND_LINE};
pub use events::StoredEvent;
pub use reports::{Case, CaseState, Report, ReportReason, Resolution, ResolveRefused};
pub use runs::{Claim, Quota, Removal, Run, RunKind};
pub use saves::Save;
pub use users::{Credentials, Role, User};
pub use votes::{Vote, VoteChoice, VotePhase};
pub use writer::{Finish, Stored};

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

/// Reads a text column into an enum, with an error naming the column and the unknown value.
fn decode<T>(row: &AnyRow, column: &str) -> Result<T, sqlx::Error>
where
    T: std::str::FromStr<Err = crossfire_engine::transcript::UnknownName>,
{
    let text: String = row.try_get(column)?;
    text.parse().map_err(|e| sqlx::Error::ColumnDecode {
        index: column.to_string(),
        source: Box::new(e),
    })
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
    writer: mpsc::UnboundedSender<writer::Write>,
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
        // connection is a thread that queries hand off to); see docs/benchmarks.md.
        let pool = pool_options(dialect, false).connect(&url).await?;
        match dialect {
            Dialect::Sqlite => sqlx::migrate!("./migrations/sqlite").run(&pool).await?,
            Dialect::Postgres => sqlx::migrate!("./migrations/postgres").run(&pool).await?,
        }
        // Sign-in checks, which every signed-in request makes, read on a connection of their
        // own: behind the one, a burst of new debates queued every stream's check behind
        // thousands of statements, and at 2,000 debates the first tokens waited seconds for
        // it (docs/benchmarks.md).
        // (A database in memory exists only for its one connection.)
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let sessions = match dialect {
            Dialect::Sqlite if !in_memory => pool_options(dialect, true).connect(&url).await?,
            _ => pool.clone(),
        };
        let (writer, queue) = mpsc::unbounded_channel();
        tokio::spawn(writer::write_records(pool.clone(), dialect, queue));
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

    /// Closes its connections once the writer has nothing left to store. On the last close
    /// SQLite folds its write-ahead log back into the file and removes it.
    pub async fn close(&self) {
        self.sessions.close().await;
        self.pool.close().await;
    }

    /// Checks the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
