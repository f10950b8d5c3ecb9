//! What this process has learned about an endpoint's concurrency. Some servers abort a
//! running stream whenever a new request arrives (llama-cpp-python's, by default), so two
//! concurrent speeches abort each other for ever; others serve concurrent streams but cut
//! some now and then. The two are told apart by evidence, not by one cut:
//!
//! - a *correlated cut* is a stream that ends early (or empty) after another call to the
//!   endpoint began during it, shortly before the cut: what abort-on-arrival looks like;
//! - a *survivor* is a call that went on streaming (or finished) after the server had
//!   accepted a call begun later (its response had started): abort-on-arrival never allows
//!   that, so it shows the endpoint serves concurrent calls.
//!
//! Under load every cut is "correlated" (some call always began shortly before), so the
//! endpoint is made serial by the share of cuts among the outcomes of the last minute, not
//! by a run of them: at least [`Policy::evidence`] correlated cuts, and at least
//! [`Policy::cuts_per_survivor`] for each survivor. An aborting server has (almost) no
//! survivors and is serial after its second cut; a flaky one that cuts a third of its
//! streams has two survivors a cut however its cuts bunch. Not for good either: after
//! [`Policy::probe_after`] and a run of [`Policy::probe_calls`] clean serial calls, calls
//! go concurrent again to probe; a survivor confirms it, and the same evidence during the
//! probe makes it serial again, with the wait before the next probe doubled. Streams cut
//! while a call ran alone show the cuts are not concurrency's doing: after
//! [`Policy::evidence`] of them the endpoint is probed at once (unless a probe has failed
//! since it was last concurrent). Every switch is logged and counted ([`stats`]), for
//! `/metrics`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::{Completion, LlmError, TokenSink};

/// When an endpoint is concluded to abort concurrent streams, and when it is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Correlated cuts within [`Policy::memory`] that make the endpoint serial (with no
    /// survivor), and cuts of calls alone that make a serial one probe early.
    pub evidence: u32,
    /// As many correlated cuts again for each survivor within [`Policy::memory`]: the share
    /// of overlapped streams an endpoint must cut to be called one at a time.
    pub cuts_per_survivor: u32,
    /// How long the outcomes of overlapped calls are weighed.
    pub memory: Duration,
    /// How soon after another call began a cut counts as correlated with it.
    pub window: Duration,
    /// How long an endpoint stays serial before concurrency is probed again (doubled after
    /// each failed probe, up to [`Policy::max_probe_after`]).
    pub probe_after: Duration,
    /// Clean serial calls in a row needed before a probe, besides the time.
    pub probe_calls: u32,
    /// The longest wait between probes.
    pub max_probe_after: Duration,
}

impl Policy {
    /// Two correlated cuts and three for each survivor in the last minute; a probe after
    /// 30 s and 8 clean serial calls (or two cuts of calls alone), at most every 10 minutes
    /// after failed probes.
    pub const DEFAULT: Policy = Policy {
        evidence: 2,
        cuts_per_survivor: 3,
        memory: Duration::from_secs(60),
        window: Duration::from_secs(2),
        probe_after: Duration::from_secs(30),
        probe_calls: 8,
        max_probe_after: Duration::from_secs(600),
    };
}

impl Default for Policy {
    fn default() -> Policy {
        Policy::DEFAULT
    }
}

/// How an endpoint takes calls now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Calls run side by side.
    Concurrent,
    /// Calls run side by side to find out whether the endpoint, serial until now, serves
    /// them again; not confirmed yet.
    Probing,
    /// One call at a time: the endpoint was found to abort running streams.
    Serial,
}

/// An endpoint's concurrency as `/metrics` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointStats {
    /// The endpoint's URL, without any user name, password or query.
    pub url: String,
    pub mode: Mode,
    /// Times it was made serial (after evidence, or after a failed probe).
    pub switches_to_serial: u64,
    /// Times it went back to concurrent calls (each probe counts).
    pub switches_to_concurrent: u64,
    /// Requests sent again because the first had no answer in time.
    pub hedges: u64,
}

impl EndpointStats {
    /// Whether calls to the endpoint now run one at a time.
    pub fn is_serial(&self) -> bool {
        self.mode == Mode::Serial
    }
}

/// One endpoint's concurrency, shared by every client of its URL in this process.
pub struct Endpoint {
    url: String,
    /// Calls take it shared, or exclusively while the endpoint is serial: an exclusive call
    /// waits for the shared ones that started before.
    gate: RwLock<()>,
    /// Mirrors `state.mode == Serial`, read without the lock on every call.
    serial: AtomicBool,
    /// Calls begun so far: a call that sees it move was joined by a later one.
    begun: AtomicUsize,
    /// The highest number of a call whose response has started: the server took it.
    accepted: AtomicUsize,
    state: Mutex<State>,
}

/// How an overlapped call bore on the question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Survived,
    CutOnArrival,
}

/// The most outcomes kept, so that memory stays bounded under any load: past it, the
/// oldest go first, even within the minute.
const MAX_OUTCOMES: usize = 256;

struct State {
    policy: Policy,
    mode: Mode,
    /// Overlapped calls' outcomes within `policy.memory`, oldest first; cleared when the
    /// endpoint becomes serial and when a probe begins.
    outcomes: VecDeque<(Instant, Outcome)>,
    /// When the last call began.
    last_begun: Option<Instant>,
    /// When the endpoint last became serial.
    serial_since: Instant,
    /// Clean calls in a row since then.
    clean_serial: u32,
    /// Calls alone cut since then: the endpoint cuts streams with no other call in flight.
    lone_cuts: u32,
    /// A probe failed since the endpoint was last concurrent: cuts of calls alone no longer
    /// hurry the next.
    probe_failed: bool,
    /// The wait before the next probe.
    probe_after: Duration,
    switches_to_serial: u64,
    switches_to_concurrent: u64,
    hedges: u64,
}

/// The endpoints this process has called, by URL.
static ENDPOINTS: LazyLock<Mutex<HashMap<String, Arc<Endpoint>>>> = LazyLock::new(Default::default);

/// The shared state of the endpoint at `url`.
pub fn endpoint(url: &str) -> Arc<Endpoint> {
    let mut endpoints = ENDPOINTS.lock().unwrap_or_else(|e| e.into_inner());
    endpoints
        .entry(url.to_string())
        .or_insert_with(|| Arc::new(Endpoint::new(url)))
        .clone()
}

/// The concurrency of every endpoint this process has called, by URL: what `/metrics`
/// shows.
pub fn stats() -> Vec<EndpointStats> {
    let endpoints: Vec<Arc<Endpoint>> = {
        let endpoints = ENDPOINTS.lock().unwrap_or_else(|e| e.into_inner());
        endpoints.values().cloned().collect()
    };
    let mut stats: Vec<EndpointStats> = endpoints.iter().map(|e| e.stats()).collect();
    stats.sort_by(|a, b| a.url.cmp(&b.url));
    stats
}

/// A URL fit for a metrics label: no credentials, query or fragment.
fn public_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.set_query(None);
            parsed.set_fragment(None);
            parsed.to_string()
        }
        Err(_) => String::new(),
    }
}

/// A call in flight; it counts until dropped.
pub struct Call<'a> {
    endpoint: &'a Endpoint,
    /// This call's number among those begun (from 1).
    number: usize,
    /// It took the endpoint alone.
    alone: bool,
    /// It was already counted as a survivor.
    survived: AtomicBool,
    _gate: Gate<'a>,
}

enum Gate<'a> {
    Shared(#[allow(dead_code)] RwLockReadGuard<'a, ()>),
    Alone(#[allow(dead_code)] RwLockWriteGuard<'a, ()>),
}

impl Endpoint {
    /// A fresh endpoint at `url`, concurrent until shown otherwise.
    pub fn new(url: &str) -> Endpoint {
        Endpoint {
            url: url.to_string(),
            gate: RwLock::new(()),
            serial: AtomicBool::new(false),
            begun: AtomicUsize::new(0),
            accepted: AtomicUsize::new(0),
            state: Mutex::new(State {
                policy: Policy::DEFAULT,
                mode: Mode::Concurrent,
                outcomes: VecDeque::new(),
                last_begun: None,
                serial_since: Instant::now(),
                clean_serial: 0,
                lone_cuts: 0,
                probe_failed: false,
                probe_after: Policy::DEFAULT.probe_after,
                switches_to_serial: 0,
                switches_to_concurrent: 0,
                hedges: 0,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets when the endpoint is concluded serial and probed again (tests use short times).
    pub fn set_policy(&self, policy: Policy) {
        let mut state = self.state();
        state.policy = policy;
        state.probe_after = policy.probe_after;
    }

    /// Whether calls now run one at a time, the endpoint having aborted concurrent streams.
    pub fn is_serial(&self) -> bool {
        self.serial.load(Ordering::Relaxed)
    }

    /// The endpoint's mode and switches so far.
    pub fn stats(&self) -> EndpointStats {
        let state = self.state();
        EndpointStats {
            url: public_url(&self.url),
            mode: state.mode,
            switches_to_serial: state.switches_to_serial,
            switches_to_concurrent: state.switches_to_concurrent,
            hedges: state.hedges,
        }
    }

    /// Waits for the endpoint's turn: at once beside other calls, or alone while serial. A
    /// serial endpoint due for a probe goes concurrent first.
    pub async fn begin(&self) -> Call<'_> {
        if self.is_serial() {
            self.maybe_probe();
        }
        let (gate, alone) = if self.is_serial() {
            (Gate::Alone(self.gate.write().await), true)
        } else {
            (Gate::Shared(self.gate.read().await), false)
        };
        let number = self.begun.fetch_add(1, Ordering::SeqCst) + 1;
        self.state().last_begun = Some(Instant::now());
        Call {
            endpoint: self,
            number,
            alone,
            survived: AtomicBool::new(false),
            _gate: gate,
        }
    }

    /// Goes concurrent to probe, when the endpoint has been serial long enough and its last
    /// calls were clean, or when calls alone were cut as well (unless a probe failed since
    /// the endpoint was last concurrent).
    fn maybe_probe(&self) {
        let mut state = self.state();
        if state.mode != Mode::Serial {
            return;
        }
        let waited = state.serial_since.elapsed() >= state.probe_after
            && state.clean_serial >= state.policy.probe_calls;
        let cut_alone = state.lone_cuts >= state.policy.evidence && !state.probe_failed;
        if waited || cut_alone {
            state.mode = Mode::Probing;
            state.outcomes.clear();
            state.switches_to_concurrent += 1;
            self.serial.store(false, Ordering::SeqCst);
            if waited {
                tracing::info!(
                    url = %public_url(&self.url),
                    "probing whether the endpoint serves concurrent calls again, after {} \
                     clean calls one at a time",
                    state.clean_serial
                );
            } else {
                tracing::info!(
                    url = %public_url(&self.url),
                    "the endpoint cut {} streams with no other call in flight: its cuts are \
                     not concurrency's doing; probing concurrent calls again",
                    state.lone_cuts
                );
            }
        }
    }

    /// A call kept streaming after the server took a later one: the endpoint serves
    /// concurrent calls.
    fn survivor(&self) {
        let mut state = self.state();
        state.note(Outcome::Survived);
        if state.mode == Mode::Probing {
            state.mode = Mode::Concurrent;
            state.probe_after = state.policy.probe_after;
            state.probe_failed = false;
            tracing::info!(
                url = %public_url(&self.url),
                "the endpoint serves concurrent calls again: calling it concurrently"
            );
        }
    }

    /// A cut correlated with a later call's arrival: serial once the evidence suffices.
    /// Returns whether this cut made it serial.
    fn correlated_cut(&self) -> bool {
        let mut state = self.state();
        if state.mode == Mode::Serial {
            return false;
        }
        state.note(Outcome::CutOnArrival);
        let probing = state.mode == Mode::Probing;
        let count = |kind| state.outcomes.iter().filter(|(_, o)| *o == kind).count();
        let (cuts, survivors) = (count(Outcome::CutOnArrival), count(Outcome::Survived));
        let needed = state.policy.evidence as usize;
        if cuts < needed || cuts < state.policy.cuts_per_survivor as usize * survivors {
            return false;
        }
        if probing {
            state.probe_after = (state.probe_after * 2).min(state.policy.max_probe_after);
            state.probe_failed = true;
        }
        state.mode = Mode::Serial;
        state.outcomes.clear();
        state.serial_since = Instant::now();
        state.clean_serial = 0;
        state.lone_cuts = 0;
        state.switches_to_serial += 1;
        self.serial.store(true, Ordering::SeqCst);
        if probing {
            tracing::warn!(
                url = %public_url(&self.url),
                "the endpoint aborted a stream again when a request arrived: back to one call \
                 at a time; next probe in {:?} at the earliest",
                state.probe_after
            );
        } else {
            tracing::warn!(
                url = %public_url(&self.url),
                "the endpoint ended {} streams early right after another request arrived: it \
                 seems to abort running streams when a request arrives (llama-cpp-python does \
                 unless started with --interrupt_requests False); calling it one at a time, \
                 probing again in {:?} at the earliest",
                needed,
                state.probe_after
            );
        }
        true
    }

    /// A call made alone ended: clean or not.
    fn serial_call_ended(&self, clean: bool) {
        let mut state = self.state();
        state.clean_serial = if clean { state.clean_serial + 1 } else { 0 };
    }

    /// A call made alone was cut short: not by another call's arrival.
    fn cut_alone(&self) {
        self.state().lone_cuts += 1;
    }
}

impl State {
    /// Adds an overlapped call's outcome, forgetting those past `policy.memory`.
    fn note(&mut self, outcome: Outcome) {
        let now = Instant::now();
        while self.outcomes.len() >= MAX_OUTCOMES
            || self
                .outcomes
                .front()
                .is_some_and(|(at, _)| now.duration_since(*at) > self.policy.memory)
        {
            self.outcomes.pop_front();
        }
        self.outcomes.push_back((now, outcome));
    }
}

impl<'a> Call<'a> {
    /// Whether the call has the endpoint to itself (the endpoint is serial).
    pub fn is_alone(&self) -> bool {
        self.alone
    }

    /// The call's request was sent again, the first having had no answer in time: an
    /// arrival like a new call's, which an aborting server answers by cutting a stream.
    pub fn hedged(&self) {
        self.endpoint.begun.fetch_add(1, Ordering::SeqCst);
        let mut state = self.endpoint.state();
        state.last_begun = Some(Instant::now());
        state.hedges += 1;
        tracing::debug!(
            url = %public_url(&self.endpoint.url),
            "no answer yet: the request sent again beside it"
        );
    }

    /// The server took this call (its response started): calls begun before it that keep
    /// streaming are survivors.
    pub fn accepted(&self) {
        self.endpoint
            .accepted
            .fetch_max(self.number, Ordering::SeqCst);
    }

    /// The call received text: if the server had already taken a later call, this one
    /// survived it (noted once a call: this runs for every token).
    pub fn progressed(&self) {
        if !self.survived.load(Ordering::Relaxed) {
            self.note_survival();
        }
    }

    /// Counts the call as a survivor if it outlived a later call: once, by its tokens or by
    /// its end.
    fn note_survival(&self) {
        if self.outlived_a_later_call() && !self.survived.swap(true, Ordering::Relaxed) {
            self.endpoint.survivor();
        }
    }

    fn outlived_a_later_call(&self) -> bool {
        !self.alone && self.endpoint.accepted.load(Ordering::SeqCst) > self.number
    }

    /// A sink that passes tokens on to `inner`, noting on the way whether this call
    /// survives later ones.
    pub fn watch<'s>(&'s self, inner: &'s dyn TokenSink) -> Watched<'s, 'a> {
        Watched { call: self, inner }
    }

    /// Looks at how the call ended. A stream cut short or empty soon after a later call
    /// began is evidence that the endpoint aborts streams on arrival; the cut that makes it
    /// serial is reported as [`LlmError::Overtaken`] (retried at once: the server is not
    /// overloaded, only impatient). Any other result is returned as it is.
    pub fn observe(&self, result: Result<Completion, LlmError>) -> Result<Completion, LlmError> {
        let cut = match &result {
            Err(LlmError::StreamCut(_) | LlmError::Empty) => true,
            Ok(completion) => completion.text.trim().is_empty(),
            Err(_) => false,
        };
        if self.alone {
            if cut {
                self.endpoint.cut_alone();
            }
            self.endpoint.serial_call_ended(result.is_ok() && !cut);
            return result;
        }
        if !cut {
            if result.is_ok() {
                self.note_survival();
            }
            return result;
        }
        let joined = self.endpoint.begun.load(Ordering::SeqCst) > self.number;
        let recent = {
            let state = self.endpoint.state();
            state
                .last_begun
                .is_some_and(|at| at.elapsed() <= state.policy.window)
        };
        if joined && recent && self.endpoint.correlated_cut() {
            return Err(LlmError::Overtaken(self.endpoint.url.clone()));
        }
        result
    }
}

/// A token sink that notes, for its call, whether it survives later calls.
pub struct Watched<'s, 'a> {
    call: &'s Call<'a>,
    inner: &'s dyn TokenSink,
}

impl TokenSink for Watched<'_, '_> {
    fn token(&self, text: &str) {
        self.call.progressed();
        self.inner.token(text);
    }

    fn restart(&self, reason: &str) {
        self.inner.restart(reason);
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

    const URL: &str = "http://user:secret@x/v1/chat/completions?key=1";

    fn quick() -> Policy {
        Policy {
            probe_after: Duration::from_millis(30),
            probe_calls: 2,
            max_probe_after: Duration::from_millis(100),
            ..Policy::DEFAULT
        }
    }

    /// As llama-cpp-python: each call is cut when the next one arrives.
    async fn abort_on_arrival(endpoint: &Endpoint, cuts: usize) -> Vec<Result<(), LlmError>> {
        let mut previous = endpoint.begin().await;
        let mut results = Vec::new();
        for _ in 0..cuts {
            let next = endpoint.begin().await;
            results.push(previous.observe(cut()).map(|_| ()));
            drop(previous);
            next.accepted();
            previous = next;
        }
        results
    }

    #[tokio::test]
    async fn cuts_on_arrival_make_the_endpoint_serial_on_the_second() {
        let endpoint = Endpoint::new(URL);
        let results = abort_on_arrival(&endpoint, 2).await;
        assert!(
            matches!(results[0], Err(LlmError::StreamCut(_))),
            "{results:?}"
        );
        assert!(
            matches!(results[1], Err(LlmError::Overtaken(_))),
            "{results:?}"
        );
        let stats = endpoint.stats();
        assert!(stats.is_serial());
        assert_eq!(stats.switches_to_serial, 1);
        assert_eq!(stats.url, "http://x/v1/chat/completions", "no credentials");
    }

    #[tokio::test]
    async fn a_call_that_outlives_a_later_one_weighs_against_the_cuts() {
        let endpoint = Endpoint::new(URL);
        let first = endpoint.begin().await;
        let second = endpoint.begin().await;
        assert!(first.observe(cut()).is_err());
        let third = endpoint.begin().await;
        third.accepted();
        // The second call streams on after the server took the third: a survivor.
        second.progressed();
        let fourth = endpoint.begin().await;
        let result = third.observe(cut());
        assert!(matches!(result, Err(LlmError::StreamCut(_))), "{result:?}");
        assert!(
            !endpoint.is_serial(),
            "a flaky server that serves concurrent calls"
        );
        // Its end does not count it again: one more cut makes three for one survivor.
        assert!(second.observe(done()).is_ok());
        let fifth = endpoint.begin().await;
        let result = fourth.observe(cut());
        assert!(matches!(result, Err(LlmError::Overtaken(_))), "{result:?}");
        assert!(endpoint.is_serial());
        drop(fifth);
    }

    /// Whether every call ended as an ordinary cut (none made the endpoint serial).
    fn all_cut(results: &[Result<(), LlmError>]) -> bool {
        results
            .iter()
            .all(|r| matches!(r, Err(LlmError::StreamCut(_))))
    }

    /// `n` calls that each outlive a later one.
    async fn survivors(endpoint: &Endpoint, n: usize) {
        for _ in 0..n {
            let first = endpoint.begin().await;
            let second = endpoint.begin().await;
            second.accepted();
            assert!(first.observe(done()).is_ok(), "a survivor");
        }
    }

    #[tokio::test]
    async fn after_a_survivor_it_takes_three_cuts() {
        let endpoint = Endpoint::new(URL);
        survivors(&endpoint, 1).await;
        let results = abort_on_arrival(&endpoint, 3).await;
        assert!(all_cut(&results[..2]), "{results:?}");
        assert!(
            matches!(results[2], Err(LlmError::Overtaken(_))),
            "{results:?}"
        );
        assert!(endpoint.is_serial());
    }

    #[tokio::test]
    async fn cuts_that_bunch_among_many_survivors_leave_it_concurrent() {
        // A third of the streams cut, all at once, as when many calls began together.
        let endpoint = Endpoint::new(URL);
        survivors(&endpoint, 20).await;
        let results = abort_on_arrival(&endpoint, 10).await;
        assert!(all_cut(&results), "{results:?}");
        assert!(!endpoint.is_serial());
        // Cut more than three streams for each that survives, and it is serial.
        let results = abort_on_arrival(&endpoint, 50).await;
        assert!(endpoint.is_serial(), "{results:?}");
    }

    #[tokio::test]
    async fn cuts_of_calls_alone_make_a_serial_endpoint_probe_at_once() {
        let endpoint = Endpoint::new(URL);
        abort_on_arrival(&endpoint, 2).await;
        assert!(endpoint.is_serial());
        assert!(endpoint.begin().await.observe(cut()).is_err());
        assert!(endpoint.begin().await.alone, "one cut alone is not enough");
        assert!(endpoint.begin().await.observe(cut()).is_err());
        let probe = endpoint.begin().await;
        assert!(!probe.alone, "no 30 s wait, no clean calls");
        assert_eq!(endpoint.stats().mode, Mode::Probing);
        drop(probe);
        // The probe's calls are cut on arrival: a real aborting server. Cuts alone no longer
        // hurry the next probe.
        let results = abort_on_arrival(&endpoint, 2).await;
        assert!(matches!(results[1], Err(LlmError::Overtaken(_))));
        assert!(endpoint.is_serial());
        for _ in 0..3 {
            assert!(endpoint.begin().await.observe(cut()).is_err());
        }
        assert!(
            endpoint.begin().await.alone,
            "back to the wait after a failed probe"
        );
    }

    #[tokio::test]
    async fn a_cut_that_no_later_call_explains_is_an_ordinary_failure() {
        let endpoint = Endpoint::new(URL);
        for _ in 0..5 {
            let only = endpoint.begin().await;
            assert!(matches!(only.observe(cut()), Err(LlmError::StreamCut(_))));
        }
        assert!(!endpoint.is_serial());
    }

    #[tokio::test]
    async fn a_serial_endpoint_probes_after_time_and_clean_calls_and_stays_concurrent_if_fine() {
        let endpoint = Endpoint::new(URL);
        endpoint.set_policy(quick());
        abort_on_arrival(&endpoint, 2).await;
        assert!(endpoint.is_serial());
        // Clean calls alone, but too soon: still serial.
        for _ in 0..3 {
            let call = endpoint.begin().await;
            assert!(call.alone);
            assert!(call.observe(done()).is_ok());
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
        let probe = endpoint.begin().await;
        assert!(!probe.alone, "the probe runs beside others");
        assert_eq!(endpoint.stats().mode, Mode::Probing);
        let later = endpoint.begin().await;
        later.accepted();
        probe.progressed();
        let stats = endpoint.stats();
        assert_eq!(stats.mode, Mode::Concurrent);
        assert_eq!(
            (stats.switches_to_serial, stats.switches_to_concurrent),
            (1, 1)
        );
    }

    #[tokio::test]
    async fn a_probe_cut_on_arrival_goes_back_to_serial_and_waits_longer() {
        let endpoint = Endpoint::new(URL);
        endpoint.set_policy(quick());
        abort_on_arrival(&endpoint, 2).await;
        for _ in 0..2 {
            assert!(endpoint.begin().await.observe(done()).is_ok());
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
        let results = abort_on_arrival(&endpoint, 2).await;
        assert!(
            matches!(results[0], Err(LlmError::StreamCut(_)))
                && matches!(results[1], Err(LlmError::Overtaken(_))),
            "the probe takes the same evidence: {results:?}"
        );
        assert!(endpoint.is_serial());
        // A failed serial call breaks the run of clean ones.
        assert!(endpoint.begin().await.observe(cut()).is_err());
        for _ in 0..2 {
            assert!(endpoint.begin().await.observe(done()).is_ok());
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert!(endpoint.begin().await.alone, "the wait doubled to 60 ms");
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(!endpoint.begin().await.alone, "probing again");
        let stats = endpoint.stats();
        assert_eq!(
            (stats.switches_to_serial, stats.switches_to_concurrent),
            (2, 2)
        );
    }
}
