//! A reader's motion, screened before anything runs: a refused motion is answered at once —
//! no run is stored, no quota charged, no model called — and an unreachable moderation
//! endpoint refuses rather than let an unscreened motion through (when configured so).

use crate::error::ApiError;
use crossfire_engine::debate::Engine;
use crossfire_engine::screen::Verdict;

/// Screens `motion` with the live set's `engine`; `user` names who asked, for the log.
pub async fn screen_motion(engine: &Engine, motion: &str, user: i64) -> Result<(), ApiError> {
    match engine.screen_motion(motion).await? {
        Verdict::Refused(refusal) => {
            // The category and the rule, never the text.
            tracing::info!(
                user,
                category = %refusal.category,
                rule = %refusal.rule,
                "motion refused"
            );
            Err(ApiError::MotionRefused {
                category: refusal.category,
                message: refusal.message,
            })
        }
        Verdict::Flagged { category, rule } => {
            tracing::info!(user, %category, %rule, "motion flagged for editors");
            Ok(())
        }
        Verdict::Allowed => Ok(()),
    }
}
