//! The audit log: every editor action, who did it and when, append-only (the database's
//! triggers refuse to change or delete an entry). An action and its entry are written in one
//! transaction, so neither exists without the other.

use serde::Serialize;
use sqlx::Row;

use super::{Store, StoreError, now_ms};

crossfire_engine::named_enum! {
    /// What an editor (or an operator, at the command line) did.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
    pub enum AuditAction("audit action") {
        /// Took a debate or perspective down.
        Hide = "hide",
        /// Put a hidden one back up.
        Restore = "restore",
        /// Closed its reports and kept it up.
        Dismiss = "dismiss",
        /// Gave a user a role.
        RoleGrant = "role_grant",
        PersonaSave = "persona_save",
        TemplateSave = "template_save",
        PolicySave = "policy_save",
    }
}

/// Who did it, as the log names them: an editor by email, or the operator's command line.
pub const COMMAND_LINE: &str = "command line";

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// The entry's place in the log: later entries have larger numbers.
    pub seq: i64,
    /// Milliseconds since the Unix epoch.
    pub at: i64,
    /// The editor's email, or `command line`.
    pub by: String,
    pub action: AuditAction,
    /// What it was done to: a debate's or perspective's id, a user's email, a file's name.
    pub target: String,
    pub note: Option<String>,
}

/// An entry to append.
#[derive(Debug, Clone, Copy)]
pub struct Audit<'a> {
    pub by: &'a str,
    pub action: AuditAction,
    pub target: &'a str,
    pub note: Option<&'a str>,
}

impl Audit<'_> {
    /// Appends the entry on `conn`, inside the action's own transaction.
    pub(super) async fn append(&self, conn: &mut sqlx::AnyConnection) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_log (at, actor, action, target, note) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(now_ms())
        .bind(self.by)
        .bind(self.action.as_str())
        .bind(self.target)
        .bind(self.note)
        .execute(conn)
        .await?;
        Ok(())
    }
}

impl Store {
    /// Appends an entry for an action done elsewhere (a file written to disk).
    pub async fn audit(&self, entry: Audit<'_>) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        entry.append(&mut conn).await
    }

    /// A page of the log, newest first: at most `limit` entries older than `before` (a
    /// `seq`; none: from the newest).
    pub async fn audit_log(
        &self,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, at, actor, action, target, note FROM audit_log \
             WHERE seq < $1 ORDER BY seq DESC LIMIT $2",
        )
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AuditEntry {
                    seq: row.try_get("seq")?,
                    at: row.try_get("at")?,
                    by: row.try_get("actor")?,
                    action: super::decode(row, "action")?,
                    target: row.try_get("target")?,
                    note: row.try_get("note")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }
}
