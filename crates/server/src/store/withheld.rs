//! Model output screening kept from readers, stored for editors.

use sqlx::Row;

use super::{Store, StoreError, now_ms};
use crossfire_engine::event::{Speaker, Withheld};

impl Store {
    /// Keeps a sentence screening withheld from run `run_id`; one it refused also puts the
    /// run in the editors' queue.
    pub async fn withhold(&self, run_id: &str, item: &Withheld) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO withheld_output (id, run_id, round, speaker, text, category, rule, refused, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(crossfire_engine::transcript::new_id())
        .bind(run_id)
        .bind(i64::from(item.round))
        .bind(item.speaker.as_str())
        .bind(&item.text)
        .bind(&item.category)
        .bind(&item.rule)
        .bind(i64::from(item.refused))
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        if item.refused {
            self.open_screened_case(run_id).await?;
        }
        Ok(())
    }

    /// What screening withheld from run `run_id`, oldest first.
    pub async fn withheld(&self, run_id: &str) -> Result<Vec<Withheld>, StoreError> {
        let rows = sqlx::query(
            "SELECT round, speaker, text, category, rule, refused FROM withheld_output \
             WHERE run_id = $1 ORDER BY at, id",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let speaker: String = row.try_get("speaker")?;
                Ok(Withheld {
                    round: u8::try_from(row.try_get::<i64, _>("round")?).unwrap_or(0),
                    speaker: speaker.parse().unwrap_or(Speaker::Solo),
                    text: row.try_get("text")?,
                    category: row.try_get("category")?,
                    rule: row.try_get("rule")?,
                    refused: row.try_get::<i64, _>("refused")? != 0,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }
}
