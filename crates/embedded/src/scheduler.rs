//! Runs many generations on one model: each step is one forward pass over the next token of
//! every decoding sequence plus chunks of the prompts being filled, so concurrent streams
//! share the weight reads and a new call does not wait for another's whole prompt. A new
//! prompt starts from the longest prefix any live or recently finished sequence has already
//! computed (debate calls share their story block), waiting for one still being computed
//! rather than computing it twice.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rayon::prelude::*;

use super::attention::Rows;
use super::grammar::{Matcher, Schema};
use super::model::Model;
use super::prompt_cache::{DISK_BLOCK, DiskCache, Kept};
use super::sampler::{Sampler, SamplerSettings};
use super::tokenizer::Utf8Stream;
use super::transformer::{KvCache, Row};
use super::vector::log_sum_exp;

/// What a generation asks for.
pub struct Request {
    pub prompt: Vec<u32>,
    pub max_tokens: usize,
    pub sampling: SamplerSettings,
    pub schema: Option<Arc<Schema>>,
    /// Keep going past the end of turn (benchmarks).
    pub ignore_end: bool,
    /// The prompt's last tokens that are the reply's beginning, gone on from: they count
    /// towards `max_tokens` and the completion's tokens.
    pub continued: usize,
    /// Generate nothing: read how likely the model finds the prompt's tokens from this
    /// position on (teacher forcing).
    pub score_from: Option<usize>,
    /// Report, for each generated token, this many likeliest tokens its schema allowed
    /// there, with their log-probabilities.
    pub top_logprobs: Option<u8>,
    /// A reader waits for the first sentence: until it is written, prompts no reader waits
    /// for wait (a while at most).
    pub reader_waiting: bool,
}

impl Request {
    /// A generation of at most `max_tokens` tokens after `prompt`, sampled by `sampling`.
    pub fn generate(prompt: Vec<u32>, max_tokens: usize, sampling: SamplerSettings) -> Request {
        Request {
            prompt,
            max_tokens,
            sampling,
            schema: None,
            ignore_end: false,
            continued: 0,
            score_from: None,
            top_logprobs: None,
            reader_waiting: false,
        }
    }

    /// A likelihood read of `prompt`'s tokens from position `from` on.
    pub fn score(prompt: Vec<u32>, from: usize) -> Request {
        Request {
            score_from: Some(from),
            ..Request::generate(prompt, 0, SamplerSettings::greedy())
        }
    }
}

/// What a generation reports, step by step.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    Text(String),
    /// A generated token and its likeliest allowed alternatives (when asked for), before
    /// its text.
    Choice(Choice),
    Done(Finish),
}

/// A generated token and the likeliest tokens its schema allowed at its place, with their
/// log-probabilities over the whole vocabulary (a token of a character split across tokens
/// shows as much of it as is whole).
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub token: String,
    pub top: Vec<(String, f32)>,
}

/// How a generation ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Finish {
    pub prompt_tokens: usize,
    /// Prompt tokens not computed again: a prefix copied from another call, kept or on disk.
    pub cached_tokens: usize,
    pub completion_tokens: usize,
    /// `stop` (end of turn or a complete document), `length` (max_tokens or the context).
    pub reason: &'static str,
    /// What a scoring request read: the scored tokens' log-probabilities, summed.
    pub score: Option<Scored>,
}

/// A scoring request's result.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Scored {
    pub logprob: f64,
    pub tokens: usize,
}

/// Time and tokens spent, for `model bench` and metrics.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counters {
    pub prompt_tokens: u64,
    pub prompt_time: Duration,
    pub decode_tokens: u64,
    pub decode_time: Duration,
}

struct Sequence {
    id: u64,
    tokens: Vec<u32>,
    prompt_len: usize,
    cache: KvCache,
    sampler: Sampler,
    max_tokens: usize,
    /// Where the reply stands in its schema, if it has one.
    matcher: Option<Matcher>,
    ignore_end: bool,
    continued: usize,
    score_from: Option<usize>,
    top_logprobs: Option<u8>,
    /// Summed log-probabilities of the scored tokens so far.
    logprob: f64,
    text: Utf8Stream,
    /// Whether the whole prompt is in the cache.
    prefilled: bool,
    /// Prompt tokens taken from another sequence's cache.
    reused: usize,
    started: Instant,
    first_token: Option<Duration>,
    /// The reply's text until its first sentence, which a reader waits for, is complete;
    /// `None` after, or when no reader waits.
    first_sentence: Option<String>,
    /// Steps its prompt waited for others' first sentences.
    held: usize,
}

/// Bytes of finished sequences' caches kept for their prompt prefixes, unless configured.
pub const KEPT_BYTES: usize = 256 << 20;
/// Most prompt tokens one step takes.
const PREFILL_CHUNK: usize = 256;
/// Fewest prompt tokens a filling prompt gets in a step while the step has rows left (the
/// newest prompts may wait a step or two when many fill at once).
const MIN_PREFILL: usize = 16;
/// While a stream a reader waits for writes its first sentence (which screening must see
/// whole before the reader sees a word; at most this many tokens), prompts no reader waits
/// for wait, so the stream's steps stay short.
const FIRST_WORDS: usize = 64;
/// The most steps a prompt waits for others' first sentences (two sentences' worth), so
/// debates that keep starting do not hold one another up for long.
const MAX_HELD_STEPS: usize = 2 * FIRST_WORDS;
/// Rows a step gives likelihood reads while streams decode or prompts fill.
const READ_ROWS_BESIDE_STREAMS: usize = 16;
/// Shared prompt tokens worth waiting for another prompt to compute.
const MIN_SHARED: usize = 32;

/// The sequences in flight on one model.
pub struct Scheduler {
    model: Arc<Model>,
    live: Vec<Sequence>,
    kept: Kept,
    disk: Option<DiskCache>,
    next_id: u64,
    pub counters: Counters,
    /// The last step's logits, kept for the next step's.
    logits: Vec<f32>,
}

/// Where a computed prefix is: a live sequence's cache, or a kept one.
#[derive(Debug, Clone, Copy)]
enum Source {
    Live(usize),
    Kept(usize),
}

impl Scheduler {
    /// A scheduler that keeps finished sequences' prefixes in memory (up to [`KEPT_BYTES`]).
    pub fn new(model: Arc<Model>) -> Scheduler {
        Scheduler::with_caches(model, KEPT_BYTES, None)
    }

    /// A scheduler that keeps up to `kept_bytes` of finished sequences' prefixes in memory,
    /// and shared prefixes in `disk` for later processes.
    pub fn with_caches(model: Arc<Model>, kept_bytes: usize, disk: Option<DiskCache>) -> Scheduler {
        Scheduler {
            model,
            live: Vec::new(),
            kept: Kept::new(kept_bytes),
            disk,
            next_id: 0,
            counters: Counters::default(),
            logits: Vec::new(),
        }
    }

    /// Sequences in flight.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Sequences in flight that generate (not likelihood reads).
    pub fn generating(&self) -> usize {
        self.live.iter().filter(|s| s.score_from.is_none()).count()
    }

    /// Starts a generation and returns its id.
    pub fn add(&mut self, request: Request) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.live.push(Sequence {
            id,
            prompt_len: request.prompt.len(),
            tokens: request.prompt,
            cache: self.model.transformer.new_cache(),
            sampler: Sampler::new(request.sampling),
            max_tokens: request.max_tokens,
            matcher: request.schema.as_ref().map(Schema::matcher),
            ignore_end: request.ignore_end,
            continued: request.continued,
            score_from: request.score_from,
            top_logprobs: request.top_logprobs,
            logprob: 0.0,
            text: Utf8Stream::default(),
            prefilled: false,
            reused: 0,
            started: Instant::now(),
            first_token: None,
            first_sentence: request.reader_waiting.then(String::new),
            held: 0,
        });
        id
    }

    /// Drops a generation nobody waits for any more.
    pub fn cancel(&mut self, id: u64) {
        self.live.retain(|s| s.id != id);
    }

    /// One forward pass; returns what each sequence produced, by id.
    pub fn step(&mut self) -> Vec<(u64, Output)> {
        let mut out = Vec::new();
        let context = self.model.transformer.hyper.context;
        // Prompts that are empty or cannot fit the context end at once.
        self.live.retain(|s| {
            let fits = s.prompt_len > 0 && s.prompt_len < context;
            if !fits {
                out.push((s.id, Output::Done(finish(s, "length"))));
            }
            fits
        });
        let mut rows = Vec::new();
        for (i, s) in self.live.iter().enumerate().filter(|(_, s)| s.prefilled) {
            rows.push(Row {
                seq: i,
                token: s.tokens[s.cache.len()],
                pos: s.cache.len(),
                logits: true,
                kind: Rows::Generated,
            });
        }
        let decoding = rows.len();
        self.prefill_rows(decoding, &mut rows);
        if rows.is_empty() {
            return out;
        }
        let started = Instant::now();
        let mut caches: Vec<KvCache> = self
            .live
            .iter_mut()
            .map(|s| std::mem::take(&mut s.cache))
            .collect();
        let mut logits = std::mem::take(&mut self.logits);
        self.model.forward(&rows, &mut caches, &mut logits);
        let vocab = self.model.transformer.hyper.vocab;
        for (s, cache) in self.live.iter_mut().zip(caches) {
            s.cache = cache;
        }
        let elapsed = started.elapsed();
        let prompt_rows = (rows.len() - decoding) as u64;
        let share = |n: u64| elapsed.mul_f64(n as f64 / rows.len() as f64);
        self.counters.prompt_tokens += prompt_rows;
        self.counters.prompt_time += share(prompt_rows);
        self.counters.decode_tokens += decoding as u64;
        self.counters.decode_time += share(decoding as u64);

        // A scoring read's rows are many and independent: their normalisers, a pass over
        // the vocabulary each, are summed on every core.
        let live = &self.live;
        let scored: Vec<Option<f64>> = rows
            .iter()
            .filter(|r| r.logits)
            .zip(logits.chunks(vocab))
            .collect::<Vec<_>>()
            .into_par_iter()
            .map(|(row, logits)| {
                let s = &live[row.seq];
                s.score_from
                    .map(|_| log_softmax_at(logits, s.tokens[row.pos + 1]))
            })
            .collect();
        let mut per_row = logits.chunks_mut(vocab).zip(scored);
        let mut finished = Vec::new();
        for row in rows.iter().filter(|r| r.logits) {
            let Some((logits, scored)) = per_row.next() else {
                break;
            };
            let s = &mut self.live[row.seq];
            if let Some(logprob) = scored {
                s.logprob += logprob;
                continue;
            }
            s.prefilled = true;
            s.first_token.get_or_insert_with(|| s.started.elapsed());
            match self.model.next_token(s, logits) {
                Step::Token(text, choice) => {
                    s.note_first_sentence(&text);
                    if let Some(choice) = choice {
                        out.push((s.id, Output::Choice(choice)));
                    }
                    if !text.is_empty() {
                        out.push((s.id, Output::Text(text)));
                    }
                    let generated = s.reply_tokens();
                    let complete = s.matcher.as_ref().is_some_and(Matcher::is_complete);
                    if complete {
                        finished.push((row.seq, "stop"));
                    } else if generated >= s.max_tokens || s.tokens.len() >= context {
                        finished.push((row.seq, "length"));
                    }
                }
                Step::End => finished.push((row.seq, "stop")),
            }
        }
        self.logits = logits;
        for (i, s) in self.live.iter().enumerate() {
            if s.score_from.is_some() && s.cache.len() >= s.prompt_len {
                finished.push((i, "stop"));
            }
        }
        finished.sort_by_key(|&(i, _)| std::cmp::Reverse(i));
        for (i, reason) in finished {
            let mut s = self.live.remove(i);
            let tail = s.text.finish();
            if !tail.is_empty() {
                out.push((s.id, Output::Text(tail)));
            }
            out.push((s.id, Output::Done(finish(&s, reason))));
            tracing::debug!(
                prompt = s.prompt_len,
                reused = s.reused,
                generated = s.reply_tokens(),
                first_token_ms = s.first_token.unwrap_or_default().as_millis() as u64,
                total_ms = s.started.elapsed().as_millis() as u64,
                reason,
                "embedded generation done"
            );
            // Only its prompt's positions are ever reused (`computed_prefix`); a prompt copied
            // whole (but a row) is already where it came from.
            if s.reused + 1 < s.prompt_len.min(s.cache.len()) {
                let mut cache = s.cache;
                cache.truncate(s.prompt_len);
                self.kept.insert(s.tokens, s.prompt_len, cache);
            }
        }
        out
    }

    /// Adds this step's prompt rows: chunks of the prompts being filled, out of what is left
    /// of the step's budget after `decoding` rows; the oldest takes seven eighths, and a new
    /// call does not wait for another's whole prompt. While a stream writes the first
    /// sentence a reader waits for, prompts no reader waits for wait. A prompt that shares a
    /// prefix with one still being filled waits until that prefix is computed, then starts
    /// from a copy of it.
    fn prefill_rows(&mut self, decoding: usize, rows: &mut Vec<Row>) {
        // While a reader waits for a first sentence, prompts no reader waits for wait too
        // (for a while at most).
        let hold = self
            .live
            .iter()
            .any(|s| s.prefilled && s.first_sentence.is_some());
        let mut filling = Vec::new();
        // Sequences a generation that is not held back waits for.
        let mut awaited = Vec::new();
        for i in 0..self.live.len() {
            if self.live[i].prefilled {
                continue;
            }
            if self.live[i].cache.is_empty() {
                if let Some(leader) = self.leader(i) {
                    let s = &self.live[i];
                    if s.score_from.is_none() && (!hold || s.first_sentence.is_some()) {
                        awaited.push(leader);
                    }
                    continue;
                }
                self.reuse_prefix(i);
            }
            filling.push(i);
        }
        if filling.is_empty() {
            return;
        }
        if hold {
            filling.retain(|&i| {
                let s = &mut self.live[i];
                // Another reader's first speech is not held back for this one's.
                if s.score_from.is_some() || s.first_sentence.is_some() {
                    return true;
                }
                s.held += 1;
                s.held > MAX_HELD_STEPS
            });
        }
        // Likelihood reads wait for nobody: beside streams they take a few rows a step, so a
        // verdict being read does not stall the speeches being written. A read a prompt
        // waits for (a story prefilled ahead) goes at the prompt's pace.
        let (reads, prompts): (Vec<usize>, Vec<usize>) = filling
            .into_iter()
            .partition(|i| self.live[*i].score_from.is_some() && !awaited.contains(i));
        let budget = PREFILL_CHUNK.saturating_sub(decoding).max(MIN_PREFILL);
        let read_budget = match decoding + prompts.len() {
            0 => budget,
            _ => READ_ROWS_BESIDE_STREAMS,
        };
        for (group, budget) in [(prompts, budget), (reads, read_budget)] {
            let n = group.len();
            let mut left = budget;
            for (k, i) in group.into_iter().enumerate() {
                let s = &self.live[i];
                // The oldest goes first, with seven eighths of the step, so its first word
                // comes sooner; the others share the rest and still move.
                let share = match k {
                    0 if n > 1 => budget * 7 / 8,
                    _ => left / (n - k),
                };
                let start = s.cache.len();
                let take = share.max(MIN_PREFILL).min(left);
                let end = (start + take).min(s.prompt_len);
                left -= end - start;
                for pos in start..end {
                    rows.push(Row {
                        seq: i,
                        token: s.tokens[pos],
                        pos,
                        logits: s.needs_logits(pos),
                        kind: Rows::Prompt,
                    });
                }
            }
        }
    }

    /// The earlier prompt still being filled that prompt `i`, not started, should wait for:
    /// one that shares a longer prefix with it than any computed cache holds (computing
    /// that prefix twice at once would waste the step).
    fn leader(&self, i: usize) -> Option<usize> {
        let s = &self.live[i];
        let prompt = &s.tokens[..s.first_needed()];
        let computed = self.computed_prefix(i).map_or(0, |(len, _)| len);
        (0..self.live.len()).find(|&j| {
            let leader = &self.live[j];
            let started = !leader.cache.is_empty() || j < i;
            let shared = common_prefix(&leader.tokens[..leader.prompt_len], prompt);
            j != i
                && !leader.prefilled
                && started
                && shared >= MIN_SHARED
                && shared > computed
                && leader.cache.len() < shared
        })
    }

    /// The longest prefix of prompt `i` (up to its first position whose logits are needed)
    /// that another sequence's computed cache holds, and where.
    fn computed_prefix(&self, i: usize) -> Option<(usize, Source)> {
        let prompt = &self.live[i].tokens[..self.live[i].first_needed()];
        // Only prompt positions: a generated token's keys come from another attention kernel
        // than the same token's in a prompt (`attention::Rows`), so reusing them would make a
        // prompt's keys depend on what the cache happened to hold.
        let live = self
            .live
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != i)
            .map(|(j, s)| {
                let computed = s.cache.len().min(s.prompt_len);
                (Source::Live(j), s.tokens.as_slice(), computed)
            });
        let kept = self
            .kept
            .iter()
            .enumerate()
            .map(|(k, (tokens, prompt_len, cache))| {
                (Source::Kept(k), tokens, cache.len().min(prompt_len))
            });
        live.chain(kept)
            .map(|(source, tokens, computed)| {
                let computed = &tokens[..computed.min(tokens.len())];
                (common_prefix(computed, prompt), source)
            })
            .filter(|&(len, _)| len > 0)
            .max_by_key(|&(len, _)| len)
    }

    /// Copies into sequence `i` the longest prompt prefix computed anywhere — another
    /// sequence, a kept one, or the disk — leaving to run every position whose logits are
    /// needed. A prefix shared with another prompt is saved to the disk for later processes.
    fn reuse_prefix(&mut self, i: usize) {
        let first_needed = self.live[i].first_needed();
        let mut best = self.computed_prefix(i);
        let known = best.map_or(0, |(len, _)| len);
        if let Some(disk) = &self.disk
            && known + DISK_BLOCK <= first_needed
        {
            let empty = self.model.transformer.new_cache();
            if let Some(cache) = disk.find(&self.live[i].tokens, known, first_needed, &empty) {
                let tokens = self.live[i].tokens[..cache.len()].to_vec();
                let len = cache.len();
                self.kept.insert(tokens, len, cache);
                best = Some((len, Source::Kept(self.kept.len() - 1)));
            }
        }
        let Some((len, source)) = best else { return };
        let (cache, shared_prompt) = match source {
            Source::Live(j) => (&self.live[j].cache, len <= self.live[j].prompt_len),
            Source::Kept(k) => {
                self.kept.touch(k);
                let Some((_, prompt_len, cache)) = self.kept.get(k) else {
                    return;
                };
                (cache, len <= prompt_len)
            }
        };
        let copy = cache.prefix(len);
        // Two prompts began the same way: a later process may well begin the same way too.
        if shared_prompt && len >= DISK_BLOCK {
            self.save_to_disk(i, &copy, len);
        }
        self.live[i].cache = copy;
        self.live[i].reused = len;
    }

    /// Saves sequence `i`'s first `len` prompt tokens with their cache, in the background.
    fn save_to_disk(&self, i: usize, cache: &KvCache, len: usize) {
        let Some(disk) = &self.disk else { return };
        let tokens = self.live[i].tokens[..len].to_vec();
        if disk.has(&tokens) {
            return;
        }
        let (disk, cache) = (disk.clone(), cache.clone());
        std::thread::spawn(move || {
            if let Err(e) = disk.save(&tokens, &cache, len) {
                tracing::warn!("cannot save a prompt prefix: {e}");
            }
        });
    }
}

impl Sequence {
    /// Whether the forward pass at `pos` must give logits: the last prompt token's, to
    /// sample from; or, when scoring, every position whose next token is scored.
    fn needs_logits(&self, pos: usize) -> bool {
        match self.score_from {
            Some(from) => pos + 1 >= from && pos + 1 < self.prompt_len,
            None => pos + 1 == self.prompt_len,
        }
    }

    /// Tokens generated so far.
    fn generated(&self) -> usize {
        self.tokens.len().saturating_sub(self.prompt_len)
    }

    /// Follows the reply's first sentence with its latest `text`.
    fn note_first_sentence(&mut self, text: &str) {
        if let Some(first) = &mut self.first_sentence {
            first.push_str(text);
            // An end with nothing after it yet may be an abbreviation's or a number's.
            let ended = crossfire_engine::sentence_end(first).is_some_and(|end| end < first.len());
            if ended || self.generated() >= FIRST_WORDS {
                self.first_sentence = None;
            }
        }
    }

    /// The reply's tokens: those generated, and those it went on from.
    fn reply_tokens(&self) -> usize {
        self.generated() + self.continued
    }

    /// The first position whose logits are needed.
    fn first_needed(&self) -> usize {
        self.score_from.unwrap_or(self.prompt_len).saturating_sub(1)
    }
}

/// How many tokens `a` and `b` share from their start.
pub(crate) fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// `log softmax(logits)[token]`.
fn log_softmax_at(logits: &[f32], token: u32) -> f64 {
    let at = logits
        .get(token as usize)
        .copied()
        .unwrap_or(f32::NEG_INFINITY);
    f64::from(at) - log_sum_exp(logits)
}

fn finish(s: &Sequence, reason: &'static str) -> Finish {
    Finish {
        // The begun reply is the completion's, not the prompt's.
        prompt_tokens: s.prompt_len.saturating_sub(s.continued),
        cached_tokens: s.reused,
        completion_tokens: s.reply_tokens(),
        reason,
        score: s.score_from.map(|from| Scored {
            logprob: s.logprob,
            tokens: s.prompt_len.saturating_sub(from),
        }),
    }
}

/// What sampling one position gave.
enum Step {
    Token(String, Option<Choice>),
    End,
}

impl Model {
    /// Samples the next token of `s` (within its schema, if any) and appends it.
    fn next_token(&self, s: &mut Sequence, logits: &mut [f32]) -> Step {
        let tokenizer = &self.tokenizer;
        let matcher = s.matcher.as_ref();
        // Tokens left after this one: the document must be completable within them (unless
        // max_tokens is too small for even the shortest document: then it is best effort).
        let budget = s.max_tokens.saturating_sub(s.reply_tokens() + 1);
        let budget = match matcher {
            // This token can shorten the completion by one byte at least.
            Some(m) if m.shortest_completion() > budget + 1 => usize::MAX,
            _ => budget,
        };
        let mut allowed = |t: u32| {
            if tokenizer.is_control(t) {
                // End of turn only where the document (if any) is complete.
                return !s.ignore_end
                    && t == self.end_of_turn
                    && matcher.is_none_or(Matcher::is_complete);
            }
            let bytes = tokenizer.token_bytes(t);
            match matcher {
                Some(m) => m.allows_within(bytes, budget),
                None => !bytes.is_empty(),
            }
        };
        // Read before sampling, which penalises repeats in place.
        let top = s
            .top_logprobs
            .map(|k| self.likeliest_allowed(logits, usize::from(k), &mut allowed));
        let token = s.sampler.sample(logits, &s.tokens, &mut allowed);
        let Some(token) = token else {
            return Step::End;
        };
        if tokenizer.is_control(token) {
            return Step::End;
        }
        s.tokens.push(token);
        let bytes = tokenizer.token_bytes(token);
        if let Some(m) = &mut s.matcher {
            // The sampler only picks tokens the matcher allows.
            m.advance(bytes);
        }
        let choice = top.map(|top| Choice {
            token: String::from_utf8_lossy(bytes).into_owned(),
            top,
        });
        Step::Token(s.text.push(bytes), choice)
    }

    /// The `k` likeliest tokens `allowed` lets through, with their log-probabilities.
    fn likeliest_allowed(
        &self,
        logits: &[f32],
        k: usize,
        allowed: &mut dyn FnMut(u32) -> bool,
    ) -> Vec<(String, f32)> {
        let log_total = log_sum_exp(logits);
        let by_logit = |a: &u32, b: &u32| logits[*b as usize].total_cmp(&logits[*a as usize]);
        let mut pick = |tokens: &[u32]| -> Vec<u32> {
            let mut wanted = |t: &u32| !self.tokenizer.is_control(*t) && allowed(*t);
            tokens
                .iter()
                .copied()
                .filter(|t| wanted(t))
                .take(k)
                .collect()
        };
        let mut order: Vec<u32> = (0..logits.len() as u32).collect();
        // The likeliest few hundred nearly always hold the allowed ones; else all of them.
        const FIRST: usize = 256;
        let mut found = Vec::new();
        if order.len() > FIRST {
            order.select_nth_unstable_by(FIRST, by_logit);
            order[..FIRST].sort_unstable_by(by_logit);
            found = pick(&order[..FIRST]);
        }
        if found.len() < k {
            order.sort_unstable_by(by_logit);
            found = pick(&order);
        }
        found
            .into_iter()
            .map(|t| {
                let text = String::from_utf8_lossy(self.tokenizer.token_bytes(t)).into_owned();
                (text, (f64::from(logits[t as usize]) - log_total) as f32)
            })
            .collect()
    }
}
