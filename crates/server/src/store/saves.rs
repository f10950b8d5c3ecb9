//! Who saved which version of an editor's file, and when.

use sqlx::Row;

use super::audit::{Audit, AuditAction};
use super::{Store, StoreError, User, now_ms};

/// One save of a persona, template or policy file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Save {
    pub version: String,
    pub previous_version: Option<String>,
    /// The editor's email.
    pub by: String,
    /// Milliseconds since the Unix epoch.
    pub at: i64,
}

impl Store {
    /// Records that `editor` saved `version` of a file (`kind` is `persona`, `template` or
    /// `policy`), in the file's history and the audit log as `action`.
    pub async fn record_save(
        &self,
        kind: &str,
        name: &str,
        version: &str,
        previous_version: Option<&str>,
        editor: &User,
        action: AuditAction,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO file_saves (id, kind, name, version, previous_version, user_id, saved_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(crossfire_engine::transcript::new_id())
        .bind(kind)
        .bind(name)
        .bind(version)
        .bind(previous_version)
        .bind(editor.id)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        let note = format!("version {}", &version[..version.len().min(12)]);
        let entry = Audit {
            by: &editor.email,
            action,
            target: name,
            note: Some(&note),
        };
        entry.append(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A file's saves, newest first.
    pub async fn saves(&self, kind: &str, name: &str) -> Result<Vec<Save>, StoreError> {
        let rows = sqlx::query(
            "SELECT s.version, s.previous_version, u.email, s.saved_at FROM file_saves s \
             JOIN users u ON u.id = s.user_id WHERE s.kind = $1 AND s.name = $2 \
             ORDER BY s.saved_at DESC, s.id LIMIT 50",
        )
        .bind(kind)
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Save {
                    version: row.try_get("version")?,
                    previous_version: row.try_get("previous_version")?,
                    by: row.try_get("email")?,
                    at: row.try_get("saved_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }
}
