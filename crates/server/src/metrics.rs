//! Prometheus metrics, kept by hand (a few counters and histograms need no framework):
//! debates and perspectives by outcome, model calls by role and outcome with their latency,
//! tokens, HTTP requests with their latency, and streams open.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use crossfire_engine::llm::endpoint::EndpointStats;
use crossfire_engine::llm::{
    ChatRequest, Completion, LanguageModel, Likelihood, LlmError, Message, TokenSink,
};
use crossfire_engine::screen::{ScreenObserver, Stage, Verdict};

/// Latency buckets, in seconds: from a fast HTTP answer to a long model call.
const BUCKETS: [f64; 14] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, value: Duration) {
        let secs = value.as_secs_f64();
        for (bucket, count) in BUCKETS.iter().zip(self.counts.iter_mut()) {
            if secs <= *bucket {
                *count += 1;
            }
        }
        self.count += 1;
        self.sum += secs;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (bucket, count) in BUCKETS.iter().zip(self.counts) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bucket}\"}} {count}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

/// The service's metrics.
#[derive(Default)]
pub struct Metrics {
    runs: Mutex<BTreeMap<(String, String), u64>>,
    model_calls: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    model_latency: Mutex<BTreeMap<&'static str, Histogram>>,
    prompt_tokens: AtomicU64,
    completion_tokens: AtomicU64,
    http: Mutex<BTreeMap<(String, u16), u64>>,
    http_latency: Mutex<Histogram>,
    streams: AtomicI64,
    resumed: AtomicU64,
    interrupted_at_take_over: AtomicU64,
    /// Screened texts by stage, verdict and category (empty when allowed).
    moderation: Mutex<BTreeMap<(&'static str, &'static str, String), u64>>,
    /// Calls to the moderation endpoint, by whether it answered.
    moderation_calls: Mutex<BTreeMap<&'static str, u64>>,
    moderation_latency: Mutex<Histogram>,
    /// Stories whose debates' common beginning the model computed ahead, and its tokens.
    story_prefills: AtomicU64,
    story_prefill_tokens: AtomicU64,
}

/// A metric of one unlabelled value, with its help and type lines.
fn single(out: &mut String, (name, kind): (&str, &str), help: &str, value: impl std::fmt::Display) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Metrics {
    /// The model holds `tokens` of a story's debates' common beginning, computed ahead
    /// (none where its backend keeps no prompts).
    pub fn story_prefilled(&self, tokens: usize) {
        if tokens > 0 {
            self.story_prefills.fetch_add(1, Ordering::Relaxed);
            self.story_prefill_tokens
                .fetch_add(tokens as u64, Ordering::Relaxed);
        }
    }

    /// A debate or perspective ended.
    pub fn run_finished(&self, kind: &str, status: &str) {
        *lock(&self.runs)
            .entry((kind.to_string(), status.to_string()))
            .or_default() += 1;
    }

    fn model_call(
        &self,
        role: &'static str,
        result: &Result<Completion, LlmError>,
        took: Duration,
    ) {
        let outcome = match result {
            Ok(_) => "ok",
            Err(_) => "error",
        };
        *lock(&self.model_calls).entry((role, outcome)).or_default() += 1;
        lock(&self.model_latency)
            .entry(role)
            .or_default()
            .observe(took);
        if let Ok(c) = result {
            self.prompt_tokens
                .fetch_add(c.usage.prompt_tokens, Ordering::Relaxed);
            self.completion_tokens
                .fetch_add(c.usage.completion_tokens, Ordering::Relaxed);
        }
    }

    /// Tokens the models reported so far, prompt and completion.
    pub fn tokens(&self) -> u64 {
        self.prompt_tokens.load(Ordering::Relaxed) + self.completion_tokens.load(Ordering::Relaxed)
    }

    /// Runs a stopped instance left unfinished were taken over: resumed, or interrupted.
    pub fn runs_taken_over(&self, resumed: usize, interrupted: usize) {
        self.resumed.fetch_add(resumed as u64, Ordering::Relaxed);
        self.interrupted_at_take_over
            .fetch_add(interrupted as u64, Ordering::Relaxed);
    }

    /// A text screened.
    pub fn screened(&self, stage: Stage, verdict: &Verdict) {
        let (label, category) = match verdict {
            Verdict::Allowed => ("allowed", String::new()),
            Verdict::Flagged { category, .. } => ("flagged", category.clone()),
            Verdict::Refused(refusal) => ("refused", refusal.category.clone()),
        };
        *lock(&self.moderation)
            .entry((stage.as_str(), label, category))
            .or_default() += 1;
    }

    /// A call to the moderation endpoint.
    pub fn moderation_called(&self, took: Duration, ok: bool) {
        let outcome = if ok { "ok" } else { "error" };
        *lock(&self.moderation_calls).entry(outcome).or_default() += 1;
        lock(&self.moderation_latency).observe(took);
    }

    /// An SSE stream opened (+1) or closed (-1).
    pub fn stream_gauge(&self, delta: i64) {
        self.streams.fetch_add(delta, Ordering::Relaxed);
    }

    /// The Prometheus text exposition, with what the engine reports of itself.
    pub fn render(&self, engine: &EngineGauges) -> String {
        let mut out = String::new();
        out.push_str("# HELP crossfire_runs_total Debates and perspectives that ended, by outcome.\n# TYPE crossfire_runs_total counter\n");
        for ((kind, status), n) in lock(&self.runs).iter() {
            let _ = writeln!(
                out,
                "crossfire_runs_total{{kind=\"{kind}\",status=\"{status}\"}} {n}"
            );
        }
        out.push_str("# HELP crossfire_model_calls_total Model calls (after retries), by role and outcome.\n# TYPE crossfire_model_calls_total counter\n");
        for ((role, outcome), n) in lock(&self.model_calls).iter() {
            let _ = writeln!(
                out,
                "crossfire_model_calls_total{{role=\"{role}\",outcome=\"{outcome}\"}} {n}"
            );
        }
        out.push_str("# HELP crossfire_model_call_seconds Model call latency, retries included.\n# TYPE crossfire_model_call_seconds histogram\n");
        for (role, histogram) in lock(&self.model_latency).iter() {
            histogram.render(
                &mut out,
                "crossfire_model_call_seconds",
                &format!("role=\"{role}\""),
            );
        }
        out.push_str("# HELP crossfire_tokens_total Tokens the models reported.\n# TYPE crossfire_tokens_total counter\n");
        let _ = writeln!(
            out,
            "crossfire_tokens_total{{kind=\"prompt\"}} {}",
            self.prompt_tokens.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "crossfire_tokens_total{{kind=\"completion\"}} {}",
            self.completion_tokens.load(Ordering::Relaxed)
        );
        out.push_str("# HELP crossfire_http_requests_total HTTP requests, by route and status.\n# TYPE crossfire_http_requests_total counter\n");
        for ((route, status), n) in lock(&self.http).iter() {
            let _ = writeln!(
                out,
                "crossfire_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        out.push_str("# HELP crossfire_http_request_seconds Time to the response head.\n# TYPE crossfire_http_request_seconds histogram\n");
        lock(&self.http_latency).render(&mut out, "crossfire_http_request_seconds", "");
        single(
            &mut out,
            ("crossfire_streams_open", "gauge"),
            "Event streams open now.",
            self.streams.load(Ordering::Relaxed),
        );
        out.push_str("# HELP crossfire_moderation_total Texts screened, by stage (motion or output), verdict and category.\n# TYPE crossfire_moderation_total counter\n");
        for ((stage, verdict, category), n) in lock(&self.moderation).iter() {
            let _ = writeln!(
                out,
                "crossfire_moderation_total{{stage=\"{stage}\",verdict=\"{verdict}\",category=\"{category}\"}} {n}"
            );
        }
        out.push_str("# HELP crossfire_moderation_endpoint_calls_total Calls to the moderation endpoint, by whether it answered.\n# TYPE crossfire_moderation_endpoint_calls_total counter\n");
        for (outcome, n) in lock(&self.moderation_calls).iter() {
            let _ = writeln!(
                out,
                "crossfire_moderation_endpoint_calls_total{{outcome=\"{outcome}\"}} {n}"
            );
        }
        out.push_str("# HELP crossfire_moderation_endpoint_seconds Moderation endpoint latency.\n# TYPE crossfire_moderation_endpoint_seconds histogram\n");
        lock(&self.moderation_latency).render(
            &mut out,
            "crossfire_moderation_endpoint_seconds",
            "",
        );
        out.push_str("# HELP crossfire_runs_taken_over_total Runs a stopped instance left unfinished, taken over here: resumed, or ended as interrupted.\n# TYPE crossfire_runs_taken_over_total counter\n");
        for (outcome, n) in [
            ("resumed", &self.resumed),
            ("interrupted", &self.interrupted_at_take_over),
        ] {
            let _ = writeln!(
                out,
                "crossfire_runs_taken_over_total{{outcome=\"{outcome}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        single(
            &mut out,
            ("crossfire_story_prefills_total", "counter"),
            "Stories whose debates' common beginning the model computed ahead when a reader opened them.",
            self.story_prefills.load(Ordering::Relaxed),
        );
        single(
            &mut out,
            ("crossfire_story_prefill_tokens_total", "counter"),
            "Tokens of those beginnings the model holds.",
            self.story_prefill_tokens.load(Ordering::Relaxed),
        );
        single(
            &mut out,
            ("crossfire_prompt_cache_fallbacks_total", "counter"),
            "Renders where the kept prompt blocks failed and a plain render was used (a bug if not 0).",
            engine.prompt_fallbacks,
        );
        out.push_str("# HELP crossfire_model_endpoint_serial 1 when the role's endpoint aborted concurrent streams and now takes one call at a time.\n# TYPE crossfire_model_endpoint_serial gauge\n");
        for (role, serial) in [
            ("debater", engine.debater_serial),
            ("judge", engine.judge_serial),
        ] {
            let _ = writeln!(
                out,
                "crossfire_model_endpoint_serial{{role=\"{role}\"}} {}",
                u8::from(serial)
            );
        }
        out.push_str("# HELP crossfire_model_endpoint_hedges_total Requests to a model endpoint sent again because the first had no answer after `hedge_after_s`.\n# TYPE crossfire_model_endpoint_hedges_total counter\n");
        for endpoint in &engine.endpoints {
            let _ = writeln!(
                out,
                "crossfire_model_endpoint_hedges_total{{endpoint=\"{}\"}} {}",
                label_value(&endpoint.url),
                endpoint.hedges
            );
        }
        out.push_str("# HELP crossfire_model_endpoint_switches_total Times a model endpoint was made serial (it aborted concurrent streams) or went back to concurrent calls (each probe counts).\n# TYPE crossfire_model_endpoint_switches_total counter\n");
        for endpoint in &engine.endpoints {
            for (to, n) in [
                ("serial", endpoint.switches_to_serial),
                ("concurrent", endpoint.switches_to_concurrent),
            ] {
                let _ = writeln!(
                    out,
                    "crossfire_model_endpoint_switches_total{{endpoint=\"{}\",to=\"{to}\"}} {n}",
                    label_value(&endpoint.url)
                );
            }
        }
        out
    }
}

/// What the engine reports of itself at the time of a scrape.
pub struct EngineGauges {
    /// Renders that fell back from the kept prompt blocks.
    pub prompt_fallbacks: u64,
    pub debater_serial: bool,
    pub judge_serial: bool,
    /// Every model endpoint this process has called, with its switches.
    pub endpoints: Vec<EndpointStats>,
}

impl EngineGauges {
    pub fn of(engine: &crossfire_engine::debate::Engine) -> EngineGauges {
        EngineGauges {
            prompt_fallbacks: engine.prompts.cache_fallbacks(),
            debater_serial: engine.debater.serial(),
            judge_serial: engine.judge.serial(),
            endpoints: crossfire_engine::llm::endpoint::stats(),
        }
    }
}

impl Metrics {
    /// Counts a request by its route pattern (not its path: ids would explode the labels).
    pub fn request_served(&self, route: String, status: u16, took: Duration) {
        *lock(&self.http).entry((route, status)).or_default() += 1;
        lock(&self.http_latency).observe(took);
    }
}

/// A model whose calls are counted and timed.
pub struct Metered {
    inner: Arc<dyn LanguageModel>,
    role: &'static str,
    metrics: Arc<Metrics>,
}

impl Metered {
    pub fn wrap(
        inner: Arc<dyn LanguageModel>,
        role: &'static str,
        metrics: Arc<Metrics>,
    ) -> Arc<dyn LanguageModel> {
        Arc::new(Metered {
            inner,
            role,
            metrics,
        })
    }
}

impl LanguageModel for Metered {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn complete<'a>(
        &'a self,
        request: &'a ChatRequest,
        sink: &'a dyn TokenSink,
    ) -> BoxFuture<'a, Result<Completion, LlmError>> {
        Box::pin(async move {
            let started = Instant::now();
            let result = self.inner.complete(request, sink).await;
            self.metrics
                .model_call(self.role, &result, started.elapsed());
            result
        })
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
        self.inner.likelihood(messages, reply)
    }
}

/// The judge's fairness figures over the latest judged debates, as gauges.
pub fn render_fairness(out: &mut String, f: &crossfire_engine::fairness::Fairness) {
    let gauges = [
        (
            "crossfire_judge_debates",
            "Judged debates the fairness figures cover (the latest 1,000 at most).",
            Some(f.debates as f64),
        ),
        (
            "crossfire_judge_swap_agreement",
            "Share of verdicts whose two passes, sides swapped, named the same winner.",
            f.swap_agreement,
        ),
        (
            "crossfire_judge_first_position_wins",
            "Share of decided judging passes won by the side read first.",
            f.first_position_wins,
        ),
        (
            "crossfire_judge_side_a_wins",
            "Share of verdicts won by side A.",
            f.side_a_wins,
        ),
    ];
    for (name, help, value) in gauges {
        if let Some(value) = value {
            single(out, (name, "gauge"), help, value);
        }
    }
    if !f.personas.is_empty() {
        out.push_str("# HELP crossfire_persona_win_rate Share of its judged debates a persona won.\n# TYPE crossfire_persona_win_rate gauge\n");
        for p in &f.personas {
            let _ = writeln!(
                out,
                "crossfire_persona_win_rate{{persona=\"{}\"}} {}",
                p.id, p.win_rate
            );
        }
    }
}

/// Screening's verdicts, counted.
pub struct ScreenCounter(pub Arc<Metrics>);

impl ScreenObserver for ScreenCounter {
    fn screened(&self, stage: Stage, verdict: &Verdict) {
        self.0.screened(stage, verdict);
    }

    fn endpoint_called(&self, took: Duration, ok: bool) {
        self.0.moderation_called(took, ok);
    }
}

/// A label value as the exposition format writes it: backslashes and quotes escaped.
fn label_value(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"")
}
