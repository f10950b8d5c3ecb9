//! Model tokens the whole deployment spent per UTC day, for the daily budget: every
//! instance adds what its calls used.

use sqlx::Row;

use super::{Store, StoreError};

impl Store {
    /// Adds `tokens` to what was spent on `day` (`YYYY-MM-DD`).
    pub async fn add_spend(&self, day: &str, tokens: u64) -> Result<(), StoreError> {
        let tokens = i64::try_from(tokens).unwrap_or(i64::MAX);
        sqlx::query(
            "INSERT INTO token_spend (day, tokens) VALUES ($1, $2) \
             ON CONFLICT (day) DO UPDATE SET tokens = token_spend.tokens + excluded.tokens",
        )
        .bind(day)
        .bind(tokens)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The tokens spent on `day`.
    pub async fn spent(&self, day: &str) -> Result<u64, StoreError> {
        let row = sqlx::query("SELECT tokens FROM token_spend WHERE day = $1")
            .bind(day)
            .fetch_optional(&self.pool)
            .await?;
        let tokens = match row {
            Some(row) => row.try_get::<i64, _>("tokens")?,
            None => 0,
        };
        Ok(u64::try_from(tokens).unwrap_or(0))
    }
}
