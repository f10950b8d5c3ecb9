//! The screen a text passes before anyone is shown it: the editors' policy first, then the
//! moderation endpoint, if one is configured, for what the policy let through.

use std::sync::Arc;

use super::Stage;
use super::policy::{Action, Policy};

/// What screening decided about one text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Let through, and kept for editors.
    Flagged {
        category: String,
        rule: String,
    },
    /// Never shown.
    Refused(Refusal),
}

/// Why a text was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The category's id (`hate`, `self_harm`, …).
    pub category: String,
    /// What a reader is told: the category's message, never the rule.
    pub message: String,
    /// The rule that found it, or the moderation endpoint: for editors and logs only.
    pub rule: String,
}

/// Why a text could not be screened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScreenError {
    /// The moderation endpoint did not answer, and the deployment refuses what it cannot
    /// screen.
    #[error("the moderation endpoint is unavailable: {0}")]
    Unavailable(String),
}

/// Told of every verdict: how the service counts them (`/metrics`).
pub trait ScreenObserver: Send + Sync {
    fn screened(&self, stage: Stage, verdict: &Verdict);
}

/// The policy, and how it is applied.
#[derive(Clone, Default)]
pub struct Screener {
    policy: Arc<Policy>,
    observer: Option<Arc<dyn ScreenObserver>>,
}

impl Screener {
    /// A screen of `policy` alone.
    pub fn new(policy: Arc<Policy>) -> Screener {
        Screener {
            policy,
            observer: None,
        }
    }

    /// The same screen with another policy: how a reload puts a new policy live.
    pub fn with_policy(&self, policy: Arc<Policy>) -> Screener {
        Screener {
            policy,
            ..self.clone()
        }
    }

    /// The same screen, reporting its verdicts to `observer`.
    pub fn observed(&self, observer: Arc<dyn ScreenObserver>) -> Screener {
        Screener {
            observer: Some(observer),
            ..self.clone()
        }
    }

    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    /// The verdict on each of `texts`, in order.
    pub async fn screen(
        &self,
        texts: &[String],
        stage: Stage,
    ) -> Result<Vec<Verdict>, ScreenError> {
        let verdicts: Vec<Verdict> = texts.iter().map(|t| self.by_rules(t, stage)).collect();
        if let Some(observer) = &self.observer {
            for verdict in &verdicts {
                observer.screened(stage, verdict);
            }
        }
        Ok(verdicts)
    }

    /// The verdict on one text.
    pub async fn screen_one(&self, text: &str, stage: Stage) -> Result<Verdict, ScreenError> {
        let mut verdicts = self.screen(&[text.to_string()], stage).await?;
        Ok(verdicts.pop().unwrap_or(Verdict::Allowed))
    }

    /// The policy's verdict: a refusing category first, else a flagging one.
    fn by_rules(&self, text: &str, stage: Stage) -> Verdict {
        let findings = self.policy.screen(text, stage);
        if let Some(found) = findings
            .iter()
            .find(|f| f.category.action == Action::Refuse)
        {
            return Verdict::Refused(Refusal {
                category: found.category.id.clone(),
                message: found.category.message.clone(),
                rule: found.rule.to_string(),
            });
        }
        match findings.first() {
            Some(found) => Verdict::Flagged {
                category: found.category.id.clone(),
                rule: found.rule.to_string(),
            },
            None => Verdict::Allowed,
        }
    }
}
