//! Retries with exponential backoff and jitter around any [`LanguageModel`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;

use super::{ChatRequest, Completion, LanguageModel, Likelihood, LlmError, Message, TokenSink};
use crate::config::LlmConfig;

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts after the first.
    pub max_retries: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl RetryPolicy {
    pub fn from_config(config: &LlmConfig) -> RetryPolicy {
        RetryPolicy {
            max_retries: config.max_retries,
            base_delay: config.retry_base,
            max_delay: Duration::from_secs(20),
        }
    }

    /// The wait before retry number `retry` (0-based): exponential, with "equal jitter" so
    /// that many clients that failed together do not come back together.
    pub fn delay(&self, retry: u32, error: &LlmError) -> Duration {
        if matches!(error, LlmError::Overtaken(_)) {
            // Nothing to wait for: the endpoint now takes the call when it is free.
            return Duration::ZERO;
        }
        let exp = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(retry))
            .min(self.max_delay);
        let half = exp / 2;
        let jitter = half.mul_f64(rand::random::<f64>());
        // A server that says when to come back is believed (within reason).
        error
            .retry_after()
            .map_or(half + jitter, |after| after.min(Duration::from_secs(120)))
    }
}

/// A model whose retryable failures are retried; a retried stream tells its sink to drop the
/// partial text.
pub struct Retrying<M> {
    inner: M,
    policy: RetryPolicy,
}

impl<M: LanguageModel> Retrying<M> {
    pub fn new(inner: M, policy: RetryPolicy) -> Retrying<M> {
        Retrying { inner, policy }
    }

    async fn run(
        &self,
        request: &ChatRequest,
        sink: &dyn TokenSink,
    ) -> Result<Completion, LlmError> {
        let mut retry = 0;
        loop {
            let tracked = Tracked {
                inner: sink,
                spoke: AtomicBool::new(false),
            };
            let result = self.inner.complete(request, &tracked).await;
            let error = match result {
                Ok(c) if request.is_empty_reply(&c.text) => LlmError::Empty,
                Ok(c) => return Ok(c),
                Err(e) => e,
            };
            if !error.is_retryable() {
                return Err(error);
            }
            if retry >= self.policy.max_retries {
                return Err(LlmError::Exhausted {
                    attempts: retry + 1,
                    last: Box::new(error),
                });
            }
            if tracked.spoke.load(Ordering::Relaxed) {
                sink.restart(&error.to_string());
            }
            tokio::time::sleep(self.policy.delay(retry, &error)).await;
            retry += 1;
        }
    }
}

impl<M: LanguageModel> LanguageModel for Retrying<M> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn complete<'a>(
        &'a self,
        request: &'a ChatRequest,
        sink: &'a dyn TokenSink,
    ) -> BoxFuture<'a, Result<Completion, LlmError>> {
        Box::pin(self.run(request, sink))
    }

    fn serial(&self) -> bool {
        self.inner.serial()
    }

    fn scores_text(&self) -> bool {
        self.inner.scores_text()
    }

    fn continues_replies(&self) -> bool {
        self.inner.continues_replies()
    }

    fn prefill_shared<'a>(
        &'a self,
        prompts: &'a [Vec<Message>],
    ) -> BoxFuture<'a, Result<usize, LlmError>> {
        self.inner.prefill_shared(prompts)
    }

    fn likelihood<'a>(
        &'a self,
        messages: &'a [Message],
        reply: &'a str,
    ) -> BoxFuture<'a, Result<Likelihood, LlmError>> {
        Box::pin(async move {
            let mut retry = 0;
            loop {
                let error = match self.inner.likelihood(messages, reply).await {
                    Ok(l) => return Ok(l),
                    Err(e) => e,
                };
                if !error.is_retryable() || retry >= self.policy.max_retries {
                    return Err(error);
                }
                tokio::time::sleep(self.policy.delay(retry, &error)).await;
                retry += 1;
            }
        })
    }
}

/// Passes tokens on and remembers whether any were sent.
struct Tracked<'a> {
    inner: &'a dyn TokenSink,
    spoke: AtomicBool,
}

impl TokenSink for Tracked<'_> {
    fn token(&self, text: &str) {
        self.spoke.store(true, Ordering::Relaxed);
        self.inner.token(text);
    }

    fn restart(&self, reason: &str) {
        self.inner.restart(reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers every call with nothing, counting them.
    struct Silent(std::sync::atomic::AtomicU32);

    impl LanguageModel for Silent {
        fn name(&self) -> &str {
            "silent"
        }

        fn complete<'a>(
            &'a self,
            _: &'a ChatRequest,
            _: &'a dyn TokenSink,
        ) -> BoxFuture<'a, Result<Completion, LlmError>> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Box::pin(async {
                Ok(Completion {
                    text: " ".into(),
                    usage: Default::default(),
                    chunks: 1,
                    finish_reason: Some(super::super::FinishReason::Stop),
                    logprobs: None,
                })
            })
        }
    }

    #[tokio::test]
    async fn an_empty_reply_is_retried_but_an_empty_continuation_ends_the_reply() {
        let policy = RetryPolicy {
            max_retries: 2,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(1),
        };
        let model = Retrying::new(Silent(Default::default()), policy);
        let mut request = ChatRequest {
            messages: vec![Message::new(super::super::Role::User, "Speak.")],
            max_tokens: 10,
            temperature: 0.0,
            seed: Some(1),
            response_format: None,
            stream: true,
            top_logprobs: None,
            stop: Vec::new(),
            continue_reply: None,
            reader_waiting: false,
        };
        let fresh = model.complete(&request, &super::super::NoSink).await;
        assert!(
            matches!(fresh, Err(LlmError::Exhausted { attempts: 3, .. })),
            "{fresh:?}"
        );
        assert_eq!(model.inner.0.load(Ordering::Relaxed), 3);
        request.continue_reply = Some("What was shown.".into());
        let continued = model.complete(&request, &super::super::NoSink).await;
        assert!(continued.is_ok(), "{continued:?}");
        assert_eq!(model.inner.0.load(Ordering::Relaxed), 4, "asked once");
    }

    #[test]
    fn delays_grow_stay_bounded_and_honour_retry_after() {
        let policy = RetryPolicy {
            max_retries: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
        };
        let cut = LlmError::StreamCut("x".into());
        for retry in 0..10 {
            let d = policy.delay(retry, &cut);
            let cap = Duration::from_millis(100 * 2u64.pow(retry)).min(Duration::from_secs(2));
            assert!(
                d >= cap / 2 && d <= cap,
                "retry {retry}: {d:?} outside [{:?}, {cap:?}]",
                cap / 2
            );
        }
        let limited = LlmError::Status {
            url: String::new(),
            status: 429,
            message: String::new(),
            retry_after: Some(Duration::from_secs(3)),
        };
        assert_eq!(policy.delay(0, &limited), Duration::from_secs(3));
    }
}
