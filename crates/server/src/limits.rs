//! Limits on what one client may do in a while: login attempts per account and per address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::ApiError;

/// Login attempts allowed per account and per address in a window.
pub struct LoginLimiter {
    max: usize,
    window: Duration,
    attempts: Mutex<HashMap<String, Vec<Instant>>>,
}

impl LoginLimiter {
    pub fn new(max: usize, window: Duration) -> LoginLimiter {
        LoginLimiter {
            max,
            window,
            attempts: Mutex::new(HashMap::new()),
        }
    }

    pub fn check(&self, email: &str, ip: IpAddr) -> Result<(), ApiError> {
        let now = Instant::now();
        let mut attempts = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        if attempts.len() > 100_000 {
            attempts.retain(|_, times| times.iter().any(|t| now.duration_since(*t) < self.window));
        }
        for key in [format!("email:{email}"), format!("ip:{ip}")] {
            let times = attempts.entry(key).or_default();
            times.retain(|t| now.duration_since(*t) < self.window);
            if times.len() >= self.max {
                let wait = self.window.saturating_sub(now.duration_since(times[0]));
                return Err(ApiError::TooMany {
                    message: "too many login attempts; try again later".to_string(),
                    retry_after: wait.as_secs().max(1),
                });
            }
            times.push(now);
        }
        Ok(())
    }
}
