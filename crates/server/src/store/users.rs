//! Accounts and sessions.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::audit::{Audit, AuditAction};
use super::{Store, StoreError};

crossfire_engine::named_enum! {
    /// What a user may do.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
    pub enum Role("role") {
        /// A reader: debates and perspectives of their own.
        User = "user",
        /// An editor: also the persona and template tools.
        Editor = "editor",
    }
}

/// A user account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub role: Role,
}

impl sqlx::FromRow<'_, AnyRow> for User {
    fn from_row(row: &AnyRow) -> Result<User, sqlx::Error> {
        Ok(User {
            id: row.try_get("id")?,
            email: row.try_get("email")?,
            role: super::decode(row, "role")?,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub struct Credentials {
    pub id: i64,
    pub password_hash: String,
}

impl Store {
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

    /// Sets a user's role, in the audit log as done `by` someone; false if there is no
    /// such user.
    pub async fn set_role(&self, email: &str, role: Role, by: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("UPDATE users SET role = $1 WHERE email = $2")
            .bind(role.as_str())
            .bind(email)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        let entry = Audit {
            by,
            action: AuditAction::RoleGrant,
            target: email,
            note: Some(role.as_str()),
        };
        entry.append(&mut tx).await?;
        tx.commit().await?;
        Ok(true)
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

    /// Ends a session; false if there was none with this token.
    pub async fn delete_session(&self, token_hash: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
