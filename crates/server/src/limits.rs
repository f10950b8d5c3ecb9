//! Limits on what one client may do in a while: login attempts per account and per address,
//! sign-ups and reports per address. Per instance, in memory: they slow a script down, they
//! are not quotas (those are in the store, by UTC day: [`today`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::ApiError;

/// At most `max` attempts per key in a sliding window.
pub struct Limiter {
    max: usize,
    window: Duration,
    /// What is limited, for the message: "login attempts".
    what: &'static str,
    attempts: Mutex<HashMap<String, Vec<Instant>>>,
}

impl Limiter {
    pub fn new(max: usize, window: Duration, what: &'static str) -> Limiter {
        Limiter {
            max,
            window,
            what,
            attempts: Mutex::new(HashMap::new()),
        }
    }

    /// Counts an attempt under each of `keys`; refuses it (429, with when to try again) once
    /// any of them is at its limit.
    pub fn check(&self, keys: &[String]) -> Result<(), ApiError> {
        let now = Instant::now();
        let mut attempts = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        if attempts.len() > 100_000 {
            attempts.retain(|_, times| times.iter().any(|t| now.duration_since(*t) < self.window));
        }
        for key in keys {
            let times = attempts.entry(key.clone()).or_default();
            times.retain(|t| now.duration_since(*t) < self.window);
            if times.len() >= self.max {
                let wait = self.window.saturating_sub(now.duration_since(times[0]));
                return Err(ApiError::TooMany {
                    message: format!("too many {}; try again later", self.what),
                    retry_after: wait.as_secs().max(1),
                });
            }
            times.push(now);
        }
        Ok(())
    }
}

/// Today's UTC date, `YYYY-MM-DD`: the day quotas and the token budget count in.
pub fn today() -> String {
    time::OffsetDateTime::now_utc().date().to_string()
}

/// Seconds until the next UTC day, when quotas and the token budget start again.
pub fn seconds_to_next_day() -> u64 {
    let now = time::OffsetDateTime::now_utc();
    let midnight = now.date().next_day().map(|d| d.midnight().assume_utc());
    midnight.map_or(3600, |m| (m - now).whole_seconds().max(1).unsigned_abs())
}
