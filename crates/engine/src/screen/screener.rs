//! The screen a text passes before anyone is shown it: the editors' policy first, then the
//! moderation endpoint, if one is configured, for what the policy let through — in one call
//! for a batch of texts (a motion, or the sentences a speech released together).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Stage;
use super::endpoint::{Moderation, OnError};
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

/// Told of every verdict and every call to the moderation endpoint: how the service counts
/// them (`/metrics`).
pub trait ScreenObserver: Send + Sync {
    fn screened(&self, stage: Stage, verdict: &Verdict);

    /// A call to the moderation endpoint took `took`, and answered (`ok`) or not.
    fn endpoint_called(&self, _took: Duration, _ok: bool) {}
}

/// The moderation endpoint, and what to do when it does not answer.
#[derive(Clone)]
struct Endpoint {
    moderation: Arc<dyn Moderation>,
    on_error: OnError,
}

/// The policy, and how it is applied.
#[derive(Clone, Default)]
pub struct Screener {
    policy: Arc<Policy>,
    endpoint: Option<Endpoint>,
    observer: Option<Arc<dyn ScreenObserver>>,
}

/// What a reader is told when the endpoint refuses in a category the policy has no message for.
const GENERIC_MESSAGE: &str = "This cannot be debated here: it breaks the publisher's content policy. Try asking about the news itself.";

/// The rule a refusal names when the moderation endpoint refused.
const BY_ENDPOINT: &str = "the moderation endpoint";

impl Screener {
    /// A screen of `policy` alone.
    pub fn new(policy: Arc<Policy>) -> Screener {
        Screener {
            policy,
            endpoint: None,
            observer: None,
        }
    }

    /// The same screen, asking `moderation` too about what the policy lets through; when it
    /// does not answer, `on_error` says whether the text is refused or let through.
    pub fn with_endpoint(&self, moderation: Arc<dyn Moderation>, on_error: OnError) -> Screener {
        Screener {
            endpoint: Some(Endpoint {
                moderation,
                on_error,
            }),
            ..self.clone()
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
        let mut verdicts: Vec<Verdict> = texts.iter().map(|t| self.by_rules(t, stage)).collect();
        if let Some(endpoint) = &self.endpoint {
            self.ask_endpoint(endpoint, texts, &mut verdicts).await?;
        }
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

    /// Asks the endpoint about the texts the policy did not refuse, in one call, and refuses
    /// those it flags.
    async fn ask_endpoint(
        &self,
        endpoint: &Endpoint,
        texts: &[String],
        verdicts: &mut [Verdict],
    ) -> Result<(), ScreenError> {
        let open: Vec<usize> = (0..texts.len())
            .filter(|&i| !matches!(verdicts[i], Verdict::Refused(_)))
            .collect();
        if open.is_empty() {
            return Ok(());
        }
        let asked: Vec<String> = open.iter().map(|&i| texts[i].clone()).collect();
        let started = Instant::now();
        let answer = endpoint.moderation.classify(&asked).await;
        if let Some(observer) = &self.observer {
            observer.endpoint_called(started.elapsed(), answer.is_ok());
        }
        let flags = match (answer, endpoint.on_error) {
            (Ok(flags), _) => flags,
            (Err(e), OnError::Refuse) => return Err(ScreenError::Unavailable(e.to_string())),
            (Err(e), OnError::Allow) => {
                tracing::warn!(
                    "moderation endpoint unavailable, screening by the policy alone: {e}"
                );
                return Ok(());
            }
        };
        for (i, flag) in open.into_iter().zip(flags) {
            if let Some(category) = flag {
                let message = self
                    .policy
                    .category(&category)
                    .map(|c| c.message.clone())
                    .unwrap_or_else(|| GENERIC_MESSAGE.to_string());
                verdicts[i] = Verdict::Refused(Refusal {
                    category,
                    message,
                    rule: BY_ENDPOINT.to_string(),
                });
            }
        }
        Ok(())
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
