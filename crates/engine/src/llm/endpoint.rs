//! What this process has learned about an endpoint's concurrency. Some servers abort a
//! running stream whenever a new request arrives (llama-cpp-python's, by default), so two
//! concurrent speeches abort each other for ever. A stream that ends early or empty while
//! another call to the same endpoint is in flight shows it: from then on the endpoint takes
//! one call at a time, for the rest of the process, and says so once in the log.

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
        self.active.fetch_add(1, Ordering::SeqCst);
        Call {
            endpoint: self,
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
        if !cut || self.endpoint.active.load(Ordering::SeqCst) < 2 {
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
