//! What this process has learned about an endpoint's concurrency. Some servers abort a
//! running stream whenever a new request arrives (llama-cpp-python's, by default), so two
//! concurrent speeches abort each other for ever. A stream that ends early or empty while
//! another call to the same endpoint is in flight shows it: from then on the endpoint takes
//! one call at a time, for the rest of the process, and says so once in the log — unless
//! the endpoint has already finished a call that overlapped another: then the cut was some
//! other fault, and the retry policy deals with it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::{Completion, LlmError};

/// One endpoint's concurrency, shared by every client of its URL in this process.
#[derive(Default)]
pub struct Endpoint {
    /// Calls take it shared, or exclusively once the endpoint is serial: an exclusive call
    /// waits for the shared ones that started before.
    gate: RwLock<()>,
    active: AtomicUsize,
    /// Calls begun so far: a call that sees it move was overlapped by a later one.
    begun: AtomicUsize,
    /// It finished a call that overlapped another: it serves concurrent calls.
    concurrent_ok: AtomicBool,
    serial: AtomicBool,
}

/// The endpoints this process has called, by URL.
static ENDPOINTS: LazyLock<Mutex<HashMap<String, Arc<Endpoint>>>> = LazyLock::new(Default::default);

/// The shared state of the endpoint at `url`.
pub fn endpoint(url: &str) -> Arc<Endpoint> {
    let mut endpoints = ENDPOINTS.lock().unwrap_or_else(|e| e.into_inner());
    endpoints.entry(url.to_string()).or_default().clone()
}

/// A call in flight; it counts as active until dropped.
pub struct Call<'a> {
    endpoint: &'a Endpoint,
    /// Another call was in flight when this one began.
    joined_others: bool,
    /// The count of calls begun, this one included, when it began.
    begun: usize,
    _gate: Gate<'a>,
}

enum Gate<'a> {
    Shared(#[allow(dead_code)] RwLockReadGuard<'a, ()>),
    Alone(#[allow(dead_code)] RwLockWriteGuard<'a, ()>),
}

impl Endpoint {
    /// Whether the endpoint was found to abort concurrent streams.
    pub fn is_serial(&self) -> bool {
        self.serial.load(Ordering::Relaxed)
    }

    /// Waits for the endpoint's turn: at once beside other calls, or alone once serial.
    pub async fn begin(&self) -> Call<'_> {
        let gate = if self.is_serial() {
            Gate::Alone(self.gate.write().await)
        } else {
            Gate::Shared(self.gate.read().await)
        };
        let joined_others = self.active.fetch_add(1, Ordering::SeqCst) > 0;
        let begun = self.begun.fetch_add(1, Ordering::SeqCst) + 1;
        Call {
            endpoint: self,
            joined_others,
            begun,
            _gate: gate,
        }
    }
}

impl Call<'_> {
    /// Looks at how the call ended: a stream cut short or empty while another call was in
    /// flight makes the endpoint serial, and is reported as [`LlmError::Overtaken`] (retried
    /// at once: the server is not overloaded, only impatient).
    pub fn observe(
        &self,
        url: &str,
        result: Result<Completion, LlmError>,
    ) -> Result<Completion, LlmError> {
        let cut = match &result {
            Err(LlmError::StreamCut(_) | LlmError::Empty) => true,
            Ok(completion) => completion.text.trim().is_empty(),
            Err(_) => false,
        };
        let overlapped =
            self.joined_others || self.endpoint.begun.load(Ordering::SeqCst) > self.begun;
        if !cut {
            if overlapped && result.is_ok() {
                self.endpoint.concurrent_ok.store(true, Ordering::SeqCst);
            }
            return result;
        }
        if self.endpoint.active.load(Ordering::SeqCst) < 2
            || self.endpoint.concurrent_ok.load(Ordering::SeqCst)
        {
            return result;
        }
        if !self.endpoint.serial.swap(true, Ordering::SeqCst) {
            tracing::warn!(
                "{url} ended a stream early while another call was in flight: it seems to abort \
                 running streams when a request arrives (llama-cpp-python does unless started \
                 with --interrupt_requests False); calling it one at a time from now on"
            );
        }
        Err(LlmError::Overtaken(url.to_string()))
    }
}

impl Drop for Call<'_> {
    fn drop(&mut self) {
        self.endpoint.active.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::FinishReason;

    fn done() -> Result<Completion, LlmError> {
        Ok(Completion {
            text: "fine".into(),
            usage: Default::default(),
            chunks: 1,
            finish_reason: Some(FinishReason::Stop),
            logprobs: None,
        })
    }

    fn cut() -> Result<Completion, LlmError> {
        Err(LlmError::StreamCut("early end".into()))
    }

    #[tokio::test]
    async fn a_stream_cut_while_another_call_runs_makes_the_endpoint_serial() {
        let endpoint = Endpoint::default();
        let (first, _second) = (endpoint.begin().await, endpoint.begin().await);
        let result = first.observe("http://x", cut());
        assert!(matches!(result, Err(LlmError::Overtaken(_))), "{result:?}");
        assert!(endpoint.is_serial());
    }

    #[tokio::test]
    async fn an_endpoint_that_finished_overlapping_calls_is_not_made_serial_by_a_cut() {
        let endpoint = Endpoint::default();
        let (first, second) = (endpoint.begin().await, endpoint.begin().await);
        assert!(second.observe("http://x", done()).is_ok());
        let result = first.observe("http://x", cut());
        assert!(matches!(result, Err(LlmError::StreamCut(_))), "{result:?}");
        assert!(
            !endpoint.is_serial(),
            "a flaky server that serves concurrent calls"
        );
    }

    #[tokio::test]
    async fn a_cut_with_nothing_else_in_flight_is_an_ordinary_failure() {
        let endpoint = Endpoint::default();
        let only = endpoint.begin().await;
        assert!(matches!(
            only.observe("http://x", cut()),
            Err(LlmError::StreamCut(_))
        ));
        assert!(!endpoint.is_serial());
    }
}
