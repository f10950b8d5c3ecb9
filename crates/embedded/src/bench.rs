//! `crossfire model bench`: load time, prompt and decode speed, two streams at once, prompts
//! filled together, a kept prefix's first token, memory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::model::Model;
use super::sampler::SamplerSettings;
use super::scheduler::{Request, Scheduler};

/// What one bench run measured.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub model: String,
    pub threads: usize,
    pub load_s: f64,
    pub prompt_tokens: usize,
    pub prompt_tok_per_s: f64,
    pub decode_tokens: usize,
    /// Decoding after a short (16-token) prompt.
    pub decode_tok_per_s: f64,
    /// Decoding after a 1,000-token prompt, where attention over the context costs more.
    pub decode_1k_context_tok_per_s: f64,
    /// Aggregate decode speed of two streams generated together.
    pub two_streams_tok_per_s: f64,
    /// Prompt speed with two and with four different 256-token prompts filled together.
    pub prefill_two_tok_per_s: f64,
    pub prefill_four_tok_per_s: f64,
    /// First token of a 1,000-token prompt computed whole, and of the same prompt when its
    /// first 600 tokens are kept from an earlier call (a story block shared by debates).
    pub first_token_cold_ms: f64,
    pub first_token_cached_ms: f64,
    pub peak_rss_mb: f64,
}

/// A prompt of about `n` tokens of ordinary prose.
fn prose(model: &Model, n: usize) -> Vec<u32> {
    const TEXT: &str = "The committee met on Tuesday to weigh the evidence on interest rates, \
        inflation and employment. Several members argued that the economy had cooled enough to \
        justify a cut, while others warned that prices in services were still rising faster \
        than wages. ";
    let unit = model.tokenizer.encode(TEXT).unwrap_or_default();
    unit.iter().copied().cycle().take(n).collect()
}

fn request(prompt: Vec<u32>, tokens: usize, seed: u64) -> Request {
    let sampling = SamplerSettings {
        temperature: 0.7,
        top_p: 0.9,
        repetition_penalty: 1.1,
        penalty_window: 64,
        seed,
    };
    Request {
        ignore_end: true,
        ..Request::generate(prompt, tokens, sampling)
    }
}

/// Runs until every sequence is done; returns the wall time.
fn drain(scheduler: &mut Scheduler) -> Duration {
    let started = Instant::now();
    while !scheduler.is_empty() {
        scheduler.step();
    }
    started.elapsed()
}

/// Measures `model` (loaded from `name`): a 256-token prompt; `tokens` decoded alone after a
/// short prompt and after a 1,000-token one; `tokens` each on two streams together.
pub fn run(model: Arc<Model>, name: &str, tokens: usize) -> BenchReport {
    let threads = model.threads();
    let load_s = model.load_time.as_secs_f64();
    let prompt_tokens = 256;

    let mut scheduler = Scheduler::new(model.clone());
    scheduler.add(request(prose(&model, prompt_tokens), 1, 1));
    drain(&mut scheduler);
    let prompt = scheduler.counters;

    let mut scheduler = Scheduler::new(model.clone());
    scheduler.add(request(prose(&model, 16), tokens, 2));
    drain(&mut scheduler);
    let single = scheduler.counters;

    let mut scheduler = Scheduler::new(model.clone());
    scheduler.add(request(prose(&model, 1000), tokens, 5));
    drain(&mut scheduler);
    let long = scheduler.counters;

    let mut scheduler = Scheduler::new(model.clone());
    scheduler.add(request(prose(&model, 16), tokens, 3));
    scheduler.add(request(prose(&model, 20), tokens, 4));
    drain(&mut scheduler);
    let pair = scheduler.counters;

    let together = |n: usize| {
        let mut scheduler = Scheduler::new(model.clone());
        for i in 0..n {
            // Different prompts: no prefix to share.
            let mut prompt = prose(&model, prompt_tokens + i);
            prompt.drain(..i);
            scheduler.add(request(prompt, 1, 10 + i as u64));
        }
        drain(&mut scheduler);
        scheduler.counters
    };
    let (two, four) = (together(2), together(4));

    // A 1,000-token prompt, then another sharing its first 600 tokens after the first left.
    let whole = prose(&model, 1000);
    let mut other = whole[..600].to_vec();
    other.extend(prose(&model, 1400).into_iter().skip(1000));
    let mut scheduler = Scheduler::new(model.clone());
    scheduler.add(request(whole, 1, 20));
    let cold = drain(&mut scheduler);
    scheduler.add(request(other, 1, 21));
    let cached = drain(&mut scheduler);

    let rate = |n: u64, t: Duration| n as f64 / t.as_secs_f64().max(1e-9);
    BenchReport {
        model: name.to_string(),
        threads,
        load_s,
        prompt_tokens,
        prompt_tok_per_s: rate(prompt.prompt_tokens, prompt.prompt_time),
        decode_tokens: tokens,
        decode_tok_per_s: rate(single.decode_tokens, single.decode_time),
        decode_1k_context_tok_per_s: rate(long.decode_tokens, long.decode_time),
        two_streams_tok_per_s: rate(pair.decode_tokens, pair.decode_time),
        prefill_two_tok_per_s: rate(two.prompt_tokens, two.prompt_time),
        prefill_four_tok_per_s: rate(four.prompt_tokens, four.prompt_time),
        first_token_cold_ms: cold.as_secs_f64() * 1000.0,
        first_token_cached_ms: cached.as_secs_f64() * 1000.0,
        peak_rss_mb: peak_rss_mb(),
    }
}

/// The process's peak resident memory, from /proc (0 where there is none).
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
