//! The deployment's daily model token budget. The metrics count every model call's tokens;
//! every few seconds each instance adds what it spent since to the store's total for the UTC
//! day, so all instances see one figure. Once today's total reaches the budget, new debates
//! and perspectives are refused until the next UTC day; running ones finish.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::error::ApiError;
use crate::limits::{seconds_to_next_day, today};
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};

/// How often an instance adds its spending to the store.
const FLUSH_EVERY: Duration = Duration::from_secs(2);

/// The daily budget, and how much of this instance's spending the store has been told.
pub struct Budget {
    /// Tokens a UTC day may spend; 0: no limit.
    daily: u64,
    /// The metrics' token total when it was last added to the store.
    told: AtomicU64,
}

impl Budget {
    pub fn new(daily: u64) -> Budget {
        Budget {
            daily,
            told: AtomicU64::new(0),
        }
    }

    /// Adds what this instance spent since the last time to today's total in the store.
    pub async fn flush(&self, store: &Store, metrics: &Metrics) -> Result<(), StoreError> {
        let total = metrics.tokens();
        let before = self.told.swap(total, Ordering::SeqCst);
        let new = total.saturating_sub(before);
        if new == 0 {
            return Ok(());
        }
        let added = store.add_spend(&today(), new).await;
        if added.is_err() {
            // Told next time instead.
            self.told.fetch_sub(new, Ordering::SeqCst);
        }
        added
    }

    /// Tokens spent today: the store's total and what this instance has not told it yet.
    pub async fn spent_today(&self, store: &Store, metrics: &Metrics) -> Result<u64, StoreError> {
        let untold = metrics
            .tokens()
            .saturating_sub(self.told.load(Ordering::SeqCst));
        Ok(store.spent(&today()).await? + untold)
    }

    /// Refuses a new run once today's budget is spent (503 until the next UTC day).
    pub async fn check(&self, store: &Store, metrics: &Metrics) -> Result<(), ApiError> {
        if self.daily == 0 || self.spent_today(store, metrics).await? < self.daily {
            return Ok(());
        }
        Err(ApiError::BudgetExhausted {
            retry_after: seconds_to_next_day(),
        })
    }

    /// The budget and today's spending, as Prometheus gauges.
    pub async fn render(&self, out: &mut String, store: &Store, metrics: &Metrics) {
        let spent = match self.spent_today(store, metrics).await {
            Ok(spent) => spent,
            Err(e) => {
                tracing::warn!("today's token spending: {e}");
                return;
            }
        };
        let _ = writeln!(
            out,
            "# HELP crossfire_token_budget_daily Model tokens the deployment may spend per UTC day (0: no limit).\n\
             # TYPE crossfire_token_budget_daily gauge\ncrossfire_token_budget_daily {}\n\
             # HELP crossfire_tokens_spent_today Model tokens the whole deployment spent this UTC day.\n\
             # TYPE crossfire_tokens_spent_today gauge\ncrossfire_tokens_spent_today {spent}",
            self.daily
        );
    }

    /// Adds this instance's spending to the store every few seconds, for as long as it runs.
    pub async fn keep_flushing(&self, store: Store, metrics: &Metrics) {
        let mut ticks = tokio::time::interval(FLUSH_EVERY);
        loop {
            ticks.tick().await;
            if let Err(e) = self.flush(&store, metrics).await {
                tracing::warn!("cannot add today's token spending: {e}");
            }
        }
    }
}
