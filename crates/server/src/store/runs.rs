//! Runs (debates and perspectives) as stored, and the daily quotas charged to create them.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError, now_ms};
use crossfire_engine::transcript::{ErrorInfo, Status};

crossfire_engine::named_enum! {
    /// What kind of engine run a row holds.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
    pub enum RunKind("run kind") {
        Debate = "debate",
        Perspective = "perspective",
    }
}

impl RunKind {
    /// The path of a run's event stream.
    pub fn events_path(self, id: &str) -> String {
        format!("/api/{}s/{id}/events", self.as_str())
    }
}

/// A debate or perspective as stored.
#[derive(Debug, Clone)]
pub struct Run {
    pub id: String,
    pub kind: RunKind,
    pub user_id: i64,
    pub status: Status,
    pub cache_key: Option<String>,
    /// The result JSON: the transcript or perspective record.
    pub result: String,
    pub error: Option<ErrorInfo>,
    pub created_at: i64,
    /// Set while its owner shares it: the token of its public link.
    pub share_token: Option<String>,
    /// An editor's trial of a draft: kept out of readers' lists and the perspective cache.
    pub trial: bool,
    /// Set while editors keep it down.
    pub removed: Option<Removal>,
}

/// A run editors took down: when, and the note its owner is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    /// Milliseconds since the Unix epoch.
    pub at: i64,
    pub note: Option<String>,
}

impl sqlx::FromRow<'_, AnyRow> for Run {
    fn from_row(row: &AnyRow) -> Result<Run, sqlx::Error> {
        let code: Option<String> = row.try_get("error_code")?;
        let error = match code {
            Some(code) => Some(ErrorInfo {
                code: code.parse().map_err(|e| sqlx::Error::ColumnDecode {
                    index: "error_code".into(),
                    source: Box::new(e),
                })?,
                message: row
                    .try_get::<Option<String>, _>("error_message")?
                    .unwrap_or_default(),
            }),
            None => None,
        };
        Ok(Run {
            id: row.try_get("id")?,
            kind: super::decode(row, "kind")?,
            user_id: row.try_get("user_id")?,
            status: super::decode(row, "status")?,
            cache_key: row.try_get("cache_key")?,
            result: row.try_get("result")?,
            error,
            created_at: row.try_get("created_at")?,
            share_token: row.try_get("share_token")?,
            trial: row.try_get::<i64, _>("trial")? != 0,
            removed: match row.try_get::<Option<i64>, _>("removed_at")? {
                Some(at) => Some(Removal {
                    at,
                    note: row.try_get("removed_note")?,
                }),
                None => None,
            },
        })
    }
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
            status: Status::Queued,
            cache_key,
            result,
            error: None,
            created_at: now_ms(),
            share_token: None,
            trial: false,
            removed: None,
        }
    }
}

/// An instance's claim on the runs it executes: whose, and until when (ms since the
/// epoch) it holds without renewal.
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    pub owner: &'a str,
    pub until: i64,
}

/// A daily allowance to charge when creating a run.
#[derive(Debug, Clone, Copy)]
pub struct Quota<'a> {
    pub day: &'a str,
    pub limit: u32,
}

impl Store {
    /// Creates a run claimed by `claim`, charging the quota in the same transaction:
    /// concurrent requests can never exceed it.
    pub async fn create_run(
        &self,
        run: &Run,
        quota: Option<Quota<'_>>,
        claim: Claim<'_>,
    ) -> Result<(), StoreError> {
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
             error_message, created_at, updated_at, trial, owner, lease_until) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11, $12)",
        )
        .bind(&run.id)
        .bind(run.kind.as_str())
        .bind(run.user_id)
        .bind(run.status.as_str())
        .bind(&run.cache_key)
        .bind(&run.result)
        .bind(run.error.as_ref().map(|e| e.code.as_str()))
        .bind(run.error.as_ref().map(|e| e.message.as_str()))
        .bind(run.created_at)
        .bind(i64::from(run.trial))
        .bind(claim.owner)
        .bind(claim.until)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    const RUN_COLUMNS: &'static str = "id, kind, user_id, status, cache_key, result, error_code, error_message, created_at, \
         share_token, trial, removed_at, removed_note";

    pub async fn run(&self, id: &str) -> Result<Option<Run>, StoreError> {
        let sql = format!("SELECT {} FROM runs WHERE id = $1", Store::RUN_COLUMNS);
        Ok(sqlx::query_as::<_, Run>(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// The run a share token names.
    pub async fn shared_run(&self, token: &str) -> Result<Option<Run>, StoreError> {
        let sql = format!(
            "SELECT {} FROM runs WHERE share_token = $1",
            Store::RUN_COLUMNS
        );
        Ok(sqlx::query_as::<_, Run>(&sql)
            .bind(token)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// A page of a user's runs of a kind, newest first: `limit` of them after the first
    /// `offset`.
    pub async fn runs_of(
        &self,
        user_id: i64,
        kind: RunKind,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Run>, StoreError> {
        let sql = format!(
            "SELECT {} FROM runs WHERE user_id = $1 AND kind = $2 AND trial = 0 \
             ORDER BY created_at DESC, id LIMIT $3 OFFSET $4",
            Store::RUN_COLUMNS
        );
        Ok(sqlx::query_as::<_, Run>(&sql)
            .bind(user_id)
            .bind(kind.as_str())
            .bind(limit)
            .bind(offset)
            .fetch_all(&self.pool)
            .await?)
    }

    /// A finished perspective with this cache key, whoever asked for it (never one editors
    /// took down).
    pub async fn cached(&self, cache_key: &str) -> Result<Option<Run>, StoreError> {
        let sql = format!(
            "SELECT {} FROM runs WHERE cache_key = $1 AND status = 'done' AND removed_at IS NULL \
             ORDER BY created_at LIMIT 1",
            Store::RUN_COLUMNS
        );
        Ok(sqlx::query_as::<_, Run>(&sql)
            .bind(cache_key)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// The results of the latest `limit` debates that ended with a verdict (trials left out),
    /// newest first.
    pub async fn judged_debates(&self, limit: i64) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT result FROM runs WHERE kind = 'debate' AND status = 'done' AND trial = 0 \
             ORDER BY created_at DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| row.try_get("result"))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Runs left queued or running (by a crash, or a shutdown past its grace period).
    pub async fn unfinished_runs(&self) -> Result<Vec<Run>, StoreError> {
        let sql = format!(
            "SELECT {} FROM runs WHERE status IN ('queued', 'running')",
            Store::RUN_COLUMNS
        );
        Ok(sqlx::query_as::<_, Run>(&sql).fetch_all(&self.pool).await?)
    }

    /// The unfinished runs `owner` has claimed.
    pub async fn unfinished_runs_of(&self, owner: &str) -> Result<Vec<Run>, StoreError> {
        let sql = format!(
            "SELECT {} FROM runs WHERE status IN ('queued', 'running') AND owner = $1",
            Store::RUN_COLUMNS
        );
        Ok(sqlx::query_as::<_, Run>(&sql)
            .bind(owner)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Runs a finished run again, claimed by `claim` (a debate judged again); false if it is
    /// not finished (it runs already, or another request restarted it first).
    pub async fn restart_finished(&self, id: &str, claim: Claim<'_>) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE runs SET status = 'running', owner = $2, lease_until = $3, updated_at = $4 \
             WHERE id = $1 AND status IN ('done', 'failed')",
        )
        .bind(id)
        .bind(claim.owner)
        .bind(claim.until)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Renews `claim.owner`'s claim on every unfinished run it holds.
    pub async fn renew_claims(&self, claim: Claim<'_>) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE runs SET lease_until = $2 \
             WHERE owner = $1 AND status IN ('queued', 'running')",
        )
        .bind(claim.owner)
        .bind(claim.until)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Claims the unfinished runs nobody holds any more: those without a claim, those whose
    /// claim lapsed before `lapsed_before`, and (with `own`) those a previous process of the
    /// same name held. One statement, so two instances never claim the same run.
    pub async fn claim_abandoned(
        &self,
        claim: Claim<'_>,
        lapsed_before: i64,
        own: bool,
    ) -> Result<Vec<Run>, StoreError> {
        let sql = format!(
            "UPDATE runs SET owner = $1, lease_until = $2 \
             WHERE status IN ('queued', 'running') \
             AND (lease_until IS NULL OR lease_until < $3 OR (owner = $1 AND $4 = 1)) \
             RETURNING {}",
            Store::RUN_COLUMNS
        );
        Ok(sqlx::query_as::<_, Run>(&sql)
            .bind(claim.owner)
            .bind(claim.until)
            .bind(lapsed_before)
            .bind(i64::from(own))
            .fetch_all(&self.pool)
            .await?)
    }
}
