//! Readers' votes on a debate's motion (Oxford style), and the links that share a debate.

use sqlx::Row;

use super::{Store, StoreError, now_ms};

crossfire_engine::named_enum! {
    /// When a vote is cast: before the verdict, or after it.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
    pub enum VotePhase("vote phase") {
        Before = "before",
        After = "after",
    }
}

crossfire_engine::named_enum! {
    /// What a reader votes for: side A, side B, or neither yet.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
    pub enum VoteChoice("vote choice") {
        A = "a",
        B = "b",
        Undecided = "undecided",
    }
}

/// One stored vote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vote {
    pub user_id: i64,
    pub phase: VotePhase,
    pub choice: VoteChoice,
}

impl Store {
    /// Records a reader's vote for a phase, replacing the one they cast before in it.
    pub async fn cast_vote(&self, run_id: &str, vote: &Vote) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO votes (run_id, user_id, phase, choice, updated_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (run_id, user_id, phase) \
             DO UPDATE SET choice = excluded.choice, updated_at = excluded.updated_at",
        )
        .bind(run_id)
        .bind(vote.user_id)
        .bind(vote.phase.as_str())
        .bind(vote.choice.as_str())
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every vote on a run.
    pub async fn votes(&self, run_id: &str) -> Result<Vec<Vote>, StoreError> {
        let rows = sqlx::query("SELECT user_id, phase, choice FROM votes WHERE run_id = $1")
            .bind(run_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(Vote {
                    user_id: row.try_get("user_id")?,
                    phase: super::decode(row, "phase")?,
                    choice: super::decode(row, "choice")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Sets (or with `None` clears) the token that shares a run.
    pub async fn set_share_token(
        &self,
        run_id: &str,
        token: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE runs SET share_token = $1 WHERE id = $2")
            .bind(token)
            .bind(run_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
