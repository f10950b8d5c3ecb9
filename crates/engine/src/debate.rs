//! The debate (docs/architecture.md): openings together, rebuttals together, then two judging passes
//! together — three waves of model calls.

use std::sync::Arc;
use std::time::Instant;

use crate::cache::ByVersion;
use crate::claims::{Checked, ClaimChecker, QuoteContext};
use crate::config::LlmConfig;
use crate::event::{Event, EventSink, Speaker, Withheld};
use crate::judge::{self, JudgeError};
use crate::likelihood;
use crate::llm::retry::RetryPolicy;
use crate::llm::{ChatRequest, Completion, FinishReason, LanguageModel, LlmError, Message, Usage};
use crate::motion::MotionError;
use crate::persona::{Persona, PersonaKind};
use crate::prompts::{DebateSetup, PromptError, Prompts};
use crate::screen::echo::Voices;
use crate::screen::{Refusal, ScreenError, Screener, Stage, Verdict};
use crate::speech::{Reading, SpeechSink, Stopped, sentences, stream_screened};
use crate::story::Story;
use crate::transcript::{
    ErrorCode, ErrorInfo, PersonaRef, Provenance, Round, RoundKind, Sides, Status, Transcript,
    Turn, now_rfc3339,
};
use futures::future::Either;

/// How the engine calls its models.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub turn_max_tokens: u32,
    pub temperature: f32,
    pub judge_max_tokens: u32,
    pub judge_temperature: f32,
    pub allow_living_personas: bool,
    /// Short prompts, for small models (see [`LlmConfig::brief_prompts`]).
    pub brief_prompts: bool,
    /// The judge's own `brief_prompts`: a short rubric and bare scores, without reasons.
    pub judge_brief_prompts: bool,
    /// The judge's retry budget (`max_retries`) and backoff, for answers that cannot be
    /// read as well as for failed calls.
    pub judge_retry: RetryPolicy,
}

impl Settings {
    /// The settings for debaters and a judge configured so.
    pub fn new(debater: &LlmConfig, judge: &LlmConfig, allow_living_personas: bool) -> Settings {
        Settings {
            turn_max_tokens: debater.max_tokens,
            temperature: debater.temperature,
            judge_max_tokens: judge.max_tokens,
            judge_temperature: judge.temperature,
            allow_living_personas,
            brief_prompts: debater.brief_prompts,
            judge_brief_prompts: judge.brief_prompts,
            judge_retry: RetryPolicy::from_config(judge),
        }
    }

    /// The prompts' view of one debate under these settings.
    pub fn setup<'a>(
        &self,
        story: &'a Story,
        a: &'a Persona,
        b: &'a Persona,
        motion: &'a str,
    ) -> DebateSetup<'a> {
        DebateSetup {
            story,
            a,
            b,
            motion,
            words: self.words(),
            brief: self.brief_prompts,
            judge_brief: self.judge_brief_prompts,
        }
    }

    /// The length a speech should aim at, in words (a token is about three quarters of one),
    /// leaving room so it is not cut off by `max_tokens`.
    pub fn words(&self) -> u32 {
        (self.turn_max_tokens / 2).max(20)
    }
}

/// A request the engine refuses before calling anything.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    #[error(transparent)]
    Motion(#[from] MotionError),
    #[error("a persona cannot debate itself: pick two different personas")]
    SamePersona,
    #[error("`{0}` portrays a living person, which this deployment does not allow")]
    LivingPersona(String),
}

/// The round withheld verdict text is filed under: after the debate's two.
pub const VERDICT_ROUND: u8 = 3;

/// Every string in a JSON value, depth first.
fn collect_strings(value: &serde_json::Value, into: &mut Vec<String>) {
    match value {
        serde_json::Value::String(text) => into.push(text.clone()),
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_strings(v, into)),
        serde_json::Value::Object(fields) => fields.values().for_each(|v| collect_strings(v, into)),
        _ => {}
    }
}

/// How many times a speech is written again after a sentence of it broke the policy.
pub const UNSAFE_RETRIES: u8 = 2;

/// Why a turn could not be spoken.
#[derive(Debug, thiserror::Error)]
pub enum SpeakError {
    #[error(transparent)]
    Model(#[from] LlmError),
    /// Every attempt wrote something the policy refuses.
    #[error("the model kept writing text the content policy does not allow ({}), so this debate was stopped", .0.category)]
    Unsafe(Refusal),
    /// The moderation endpoint did not answer, so the speech could not be screened.
    #[error(transparent)]
    Unscreened(#[from] ScreenError),
}

/// Why a speech stopped and must go on another way (from what was shown, or written again).
enum Again {
    Refused(Refusal),
    Echo(&'static str),
}

fn again(stopped: Stopped) -> Result<Result<Completion, Again>, SpeakError> {
    match stopped {
        Stopped::Refused(refusal) => Ok(Err(Again::Refused(refusal))),
        Stopped::Echo(why) => Ok(Err(Again::Echo(why))),
        Stopped::Unscreened(e) => Err(SpeakError::Unscreened(e)),
    }
}

/// Why a run failed, as the transcript and the `error` event report it.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Model(#[from] LlmError),
    #[error(transparent)]
    Judge(#[from] JudgeError),
    #[error(transparent)]
    Prompt(#[from] PromptError),
    #[error(transparent)]
    Speech(#[from] SpeakError),
}

impl RunError {
    pub fn info(&self) -> ErrorInfo {
        let code = match self {
            RunError::Model(_) => ErrorCode::ModelFailed,
            RunError::Judge(JudgeError::Llm(_)) => ErrorCode::JudgeFailed,
            RunError::Judge(JudgeError::Unreadable { .. }) => ErrorCode::JudgeUnreadable,
            RunError::Prompt(_) => ErrorCode::TemplateError,
            RunError::Speech(SpeakError::Model(_)) => ErrorCode::ModelFailed,
            RunError::Speech(SpeakError::Unsafe(_) | SpeakError::Unscreened(_)) => {
                ErrorCode::UnsafeOutput
            }
        };
        ErrorInfo {
            code,
            message: self.to_string(),
        }
    }
}

/// Everything a debate or perspective needs besides its story and personas.
pub struct Engine {
    pub prompts: Arc<Prompts>,
    pub debater: Arc<dyn LanguageModel>,
    pub judge: Arc<dyn LanguageModel>,
    pub settings: Settings,
    /// What the judge's endpoint was found to support: shared by the engines one
    /// [`Engine::with_prompts`] makes from another, as they call the same endpoint.
    structured_output: Arc<judge::StructuredOutput>,
    claims: Arc<ByVersion<Arc<ClaimChecker>>>,
    /// The judge's accuracy in its last calibration (`crossfire judge calibrate`), if known.
    pub judge_accuracy: Option<f64>,
    pub judge_method: JudgeMethod,
    likelihoods: Arc<likelihood::Memo>,
    /// What every motion and every sentence a model writes is screened against.
    pub screener: Screener,
    /// The library's stories: the likelihood judge reads whether a speech is about its own
    /// story by how much likelier it is there than under the others.
    pub stories: Arc<[Story]>,
    /// Seeds the debaters' sampling (each call its own, from this), where the backend takes
    /// a seed: the judge's calibration is then the same for the same seed. `None`: random.
    pub seed: Option<u64>,
}

/// How the judge scores a debate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum JudgeMethod {
    /// By likelihood where the judge's backend can read them (the embedded model), else by
    /// rubric.
    #[default]
    Auto,
    /// The judge model writes scores against the rubric ([`judge`]).
    Rubric,
    /// Scores from the judge model's likelihoods ([`likelihood`]).
    Likelihood,
}

impl std::str::FromStr for JudgeMethod {
    type Err = String;

    fn from_str(s: &str) -> Result<JudgeMethod, String> {
        match s.trim() {
            "auto" => Ok(JudgeMethod::Auto),
            "rubric" => Ok(JudgeMethod::Rubric),
            "likelihood" => Ok(JudgeMethod::Likelihood),
            _ => Err("expected `auto`, `rubric` or `likelihood`".to_string()),
        }
    }
}

/// Below this calibrated accuracy, verdicts say they are of low confidence.
pub const LOW_CONFIDENCE_BELOW: f64 = 0.8;

impl Engine {
    pub fn new(
        prompts: Arc<Prompts>,
        debater: Arc<dyn LanguageModel>,
        judge: Arc<dyn LanguageModel>,
        settings: Settings,
    ) -> Engine {
        Engine {
            prompts,
            debater,
            judge,
            settings,
            structured_output: Arc::new(judge::StructuredOutput::new(settings.judge_brief_prompts)),
            claims: Arc::default(),
            judge_accuracy: None,
            judge_method: JudgeMethod::Auto,
            likelihoods: Arc::default(),
            screener: Screener::default(),
            stories: Arc::new([]),
            seed: None,
        }
    }

    /// The same engine screening with `screener`.
    pub fn with_screener(mut self, screener: Screener) -> Engine {
        self.screener = screener;
        self
    }

    /// A reader's motion, screened: refused, or let through (perhaps flagged for editors).
    pub async fn screen_motion(&self, motion: &str) -> Result<Verdict, ScreenError> {
        self.screener.screen_one(motion, Stage::Motion).await
    }

    /// The same engine (models, settings and what it learnt of its endpoints) with another
    /// set of prompt templates: how a reload puts new templates live while runs already
    /// going keep theirs.
    pub fn with_prompts(&self, prompts: Arc<Prompts>) -> Engine {
        Engine {
            prompts,
            ..self.with_models(self.debater.clone(), self.judge.clone())
        }
    }

    /// The same engine (templates, settings, the judge's calibration and what it learnt of
    /// its endpoints) speaking through other handles on its models: how the service meters
    /// every call.
    pub fn with_models(
        &self,
        debater: Arc<dyn LanguageModel>,
        judge: Arc<dyn LanguageModel>,
    ) -> Engine {
        Engine {
            prompts: self.prompts.clone(),
            debater,
            judge,
            settings: self.settings,
            structured_output: self.structured_output.clone(),
            claims: self.claims.clone(),
            judge_accuracy: self.judge_accuracy,
            judge_method: self.judge_method,
            likelihoods: self.likelihoods.clone(),
            screener: self.screener.clone(),
            stories: self.stories.clone(),
            seed: self.seed,
        }
    }

    /// Checks a debate request; returns the motion to use (the story's default if none).
    pub fn check_debate(
        &self,
        story: &Story,
        a: &Persona,
        b: &Persona,
        motion: Option<&str>,
    ) -> Result<String, RequestError> {
        if a.id == b.id {
            return Err(RequestError::SamePersona);
        }
        for persona in [a, b] {
            self.check_persona(persona)?;
        }
        match motion {
            None => Ok(story.default_motion()),
            Some(m) => crate::motion::check_motion(m)
                .map(str::to_string)
                .map_err(RequestError::from),
        }
    }

    /// Computes ahead, where the debaters' backend keeps prompts, what every debate on
    /// `story` begins with (the story block and the rules: what the openings of `a` and `b`
    /// share), so a reader's first debate on it starts from there. Returns the tokens the
    /// backend now holds (0 where it keeps none).
    pub async fn prefill_story(
        &self,
        story: &Story,
        a: &Persona,
        b: &Persona,
    ) -> Result<usize, RunError> {
        let motion = story.default_motion();
        let setup = self.settings.setup(story, a, b, &motion);
        let openings = [
            self.prompts.opening(&setup, Speaker::A)?,
            self.prompts.opening(&setup, Speaker::B)?,
        ];
        Ok(self.debater.prefill_shared(&openings).await?)
    }

    /// Refuses living personas unless the deployment allows them.
    pub fn check_persona(&self, persona: &Persona) -> Result<(), RequestError> {
        if persona.kind == PersonaKind::Living && !self.settings.allow_living_personas {
            return Err(RequestError::LivingPersona(persona.id.clone()));
        }
        Ok(())
    }

    /// A queued debate's transcript: what a debate shows before its first event.
    pub fn new_transcript(
        &self,
        id: String,
        story: &Story,
        a: &Persona,
        b: &Persona,
        motion: &str,
    ) -> Transcript {
        Transcript {
            id,
            status: Status::Queued,
            story: story.id.clone(),
            motion: motion.to_string(),
            personas: Sides {
                a: persona_ref(a),
                b: persona_ref(b),
            },
            rounds: Vec::new(),
            verdict: None,
            provenance: self.provenance(),
            usage: Usage::default(),
            error: None,
        }
    }

    /// Runs a whole debate, reporting every step on `events`; always returns a transcript,
    /// `done` or `failed`, and always ends the events with `done`.
    pub async fn run_debate(
        &self,
        id: String,
        story: &Story,
        a: &Persona,
        b: &Persona,
        motion: &str,
        events: &EventSink,
    ) -> Transcript {
        self.resume_debate(id, story, a, b, motion, &[], events)
            .await
    }

    /// Runs a debate that an earlier attempt left unfinished (the service stopped): the
    /// turns it `finished` (with their rounds) are kept as they were, without events, and
    /// the rest are spoken as in [`Engine::run_debate`].
    #[allow(clippy::too_many_arguments)]
    pub async fn resume_debate(
        &self,
        id: String,
        story: &Story,
        a: &Persona,
        b: &Persona,
        motion: &str,
        finished: &[(u8, Turn)],
        events: &EventSink,
    ) -> Transcript {
        let mut transcript = self.new_transcript(id, story, a, b, motion);
        transcript.status = Status::Running;
        let setup = self.settings.setup(story, a, b, motion);
        let result = self.debate(&setup, &mut transcript, finished, events).await;
        conclude(&mut transcript, result, events);
        transcript
    }

    pub async fn run_unjudged(
        &self,
        story: &Story,
        a: &Persona,
        b: &Persona,
        motion: &str,
    ) -> Transcript {
        let mut transcript = self.new_transcript(crate::transcript::new_id(), story, a, b, motion);
        let setup = self.settings.setup(story, a, b, motion);
        let result = self
            .argue(&setup, &mut transcript, &[], &EventSink::discard())
            .await;
        transcript.status = match result {
            Ok(()) => Status::Done,
            Err(e) => {
                transcript.error = Some(e.info());
                Status::Failed
            }
        };
        transcript
    }

    async fn debate(
        &self,
        setup: &DebateSetup<'_>,
        transcript: &mut Transcript,
        finished: &[(u8, Turn)],
        events: &EventSink,
    ) -> Result<(), RunError> {
        self.argue(setup, transcript, finished, events).await?;
        self.give_verdict(setup, transcript, events).await
    }

    /// Judges the transcript's rounds, screens the verdict's words (judging again while they
    /// break the policy, at most [`UNSAFE_RETRIES`] times), sends it and keeps it.
    async fn give_verdict(
        &self,
        setup: &DebateSetup<'_>,
        transcript: &mut Transcript,
        events: &EventSink,
    ) -> Result<(), RunError> {
        let mut attempt = 0;
        let verdict = loop {
            let verdict = self
                .judge_rounds(setup, &transcript.rounds, &mut transcript.usage)
                .await?;
            match self.screen_verdict(&verdict, events).await? {
                None => break verdict,
                Some(_) if attempt < UNSAFE_RETRIES => attempt += 1,
                Some(refusal) => return Err(SpeakError::Unsafe(refusal).into()),
            }
        };
        events.send(Event::Verdict(verdict.clone()));
        transcript.verdict = Some(verdict);
        Ok(())
    }

    /// Judges a finished debate's stored turns again (after `judge_unreadable`, say): only
    /// the judging runs, on the four speeches as they were, and its events are `verdict`
    /// (or `error`) then `done`. `story`, `a` and `b` are the transcript's, loaded again
    /// (their versions may have moved on). Returns the transcript with the new verdict and
    /// `done`, or `failed` with the judging's error (its speeches kept), the judge's usage
    /// added; or, before anything is called or sent, why it cannot be judged again.
    pub async fn judge_again(
        &self,
        mut transcript: Transcript,
        story: &Story,
        a: &Persona,
        b: &Persona,
        events: &EventSink,
    ) -> Result<Transcript, JudgeAgainError> {
        can_judge_again(&transcript)?;
        let same = |want: &str, got: &str, what: &'static str| {
            (want == got)
                .then_some(())
                .ok_or(JudgeAgainError::Mismatch {
                    what,
                    want: want.to_string(),
                    got: got.to_string(),
                })
        };
        same(&transcript.story, &story.id, "story")?;
        same(&transcript.personas.a.id, &a.id, "side a")?;
        same(&transcript.personas.b.id, &b.id, "side b")?;
        let motion = transcript.motion.clone();
        let setup = self.settings.setup(story, a, b, &motion);
        transcript.verdict = None;
        transcript.error = None;
        transcript.status = Status::Running;
        transcript.provenance.judge_model = self.judge.name().to_string();
        let result = self.give_verdict(&setup, &mut transcript, events).await;
        conclude(&mut transcript, result, events);
        Ok(transcript)
    }

    /// A verdict's written words — its rationale and each pass's rationale and reasons —
    /// screened before anyone sees them: the refusal, if any (the words go to editors only).
    async fn screen_verdict(
        &self,
        verdict: &crate::transcript::Verdict,
        events: &EventSink,
    ) -> Result<Option<Refusal>, RunError> {
        let mut texts = vec![verdict.rationale.clone()];
        for pass in &verdict.passes {
            texts.push(pass.rationale.clone());
            let reasons = serde_json::to_value(&pass.reasons).unwrap_or_default();
            collect_strings(&reasons, &mut texts);
        }
        let said: Vec<String> = texts.iter().flat_map(|t| sentences(t)).collect();
        let verdicts = self
            .screener
            .screen(&said, Stage::Output)
            .await
            .map_err(SpeakError::from)?;
        for (sentence, verdict) in said.into_iter().zip(verdicts) {
            if let Verdict::Refused(refusal) = verdict {
                events.withhold(Withheld {
                    round: VERDICT_ROUND,
                    speaker: Speaker::Solo,
                    text: sentence,
                    category: refusal.category.clone(),
                    rule: refusal.rule.clone(),
                    refused: true,
                });
                return Ok(Some(refusal));
            }
        }
        Ok(None)
    }

    /// The openings together, then the rebuttals together; a turn already `finished` is
    /// kept rather than spoken.
    async fn argue(
        &self,
        setup: &DebateSetup<'_>,
        transcript: &mut Transcript,
        finished: &[(u8, Turn)],
        events: &EventSink,
    ) -> Result<(), RunError> {
        let checker = self.claim_checker(setup.story);
        let speak = |round: u8, speaker: Speaker, messages: Vec<Message>, answering| {
            let persona = setup.persona(speaker);
            let context = QuoteContext {
                speaker: Some(persona),
                answering,
            };
            let kept = finished
                .iter()
                .find(|(r, turn)| *r == round && turn.speaker == speaker)
                .map(|(_, turn)| turn.clone());
            let checker = &checker;
            async move {
                match kept {
                    Some(turn) => Ok((turn, Usage::default())),
                    None => {
                        let voices = (persona, Some(setup.persona(speaker.opponent())));
                        self.speak(round, speaker, voices, messages, checker, context, events)
                            .await
                    }
                }
            }
        };

        let (open_a, open_b) = futures::join!(
            speak(
                1,
                Speaker::A,
                self.prompts.opening(setup, Speaker::A)?,
                None
            ),
            speak(
                1,
                Speaker::B,
                self.prompts.opening(setup, Speaker::B)?,
                None
            ),
        );
        let [open_a, open_b] = keep_round(transcript, RoundKind::Opening, [open_a, open_b])?;
        let rebuttal_a = self.prompts.rebuttal(setup, Speaker::A, &open_a, &open_b)?;
        let rebuttal_b = self.prompts.rebuttal(setup, Speaker::B, &open_b, &open_a)?;

        let (reb_a, reb_b) = futures::join!(
            speak(2, Speaker::A, rebuttal_a, Some(open_b.as_str())),
            speak(2, Speaker::B, rebuttal_b, Some(open_a.as_str())),
        );
        keep_round(transcript, RoundKind::Rebuttal, [reb_a, reb_b])?;
        Ok(())
    }

    /// Whether this engine's judge scores by likelihood.
    pub fn judges_by_likelihood(&self) -> bool {
        match self.judge_method {
            JudgeMethod::Auto => self.judge.scores_text(),
            JudgeMethod::Rubric => false,
            JudgeMethod::Likelihood => true,
        }
    }

    /// The judging method in words: `likelihood` or `rubric`.
    pub fn judge_method_name(&self) -> &'static str {
        if self.judges_by_likelihood() {
            "likelihood"
        } else {
            "rubric"
        }
    }

    /// Judges a debate's rounds: two passes with the order swapped, so neither side profits
    /// from going first, combined into the verdict.
    pub async fn judge_rounds(
        &self,
        setup: &DebateSetup<'_>,
        rounds: &[Round],
        usage: &mut Usage,
    ) -> Result<crate::transcript::Verdict, RunError> {
        let names = Sides {
            a: setup.a.name.clone(),
            b: setup.b.name.clone(),
        };
        let passes = if self.judges_by_likelihood() {
            let read = likelihood::Reading {
                model: self.judge.as_ref(),
                memo: &self.likelihoods,
                checker: &self.claim_checker(setup.story),
                library: &self.stories,
            };
            likelihood::judge(&read, setup, rounds)
                .await
                .map_err(JudgeError::Llm)?
        } else {
            self.rubric_passes(setup, rounds, usage).await?
        };
        let mut verdict = judge::combine(passes, &names);
        // A single pass is of low confidence already (`combine`).
        verdict.low_confidence |= self
            .judge_accuracy
            .is_some_and(|accuracy| accuracy < LOW_CONFIDENCE_BELOW);
        Ok(verdict)
    }

    /// The rubric judge's two passes, run together: both, or the one that could be read
    /// when the other could not (or its calls failed); the first pass's error when neither.
    async fn rubric_passes(
        &self,
        setup: &DebateSetup<'_>,
        rounds: &[Round],
        usage: &mut Usage,
    ) -> Result<Vec<crate::transcript::JudgePass>, RunError> {
        let orders = [[Speaker::A, Speaker::B], [Speaker::B, Speaker::A]];
        let mut used = [Usage::default(), Usage::default()];
        let [usage_1, usage_2] = &mut used;
        // Not try_join: a pass that fails must not cancel the other, which may stand alone.
        let (pass_1, pass_2) = futures::join!(
            self.judge_pass(setup, orders[0], rounds, usage_1),
            self.judge_pass(setup, orders[1], rounds, usage_2),
        );
        for u in used {
            *usage += u;
        }
        match (pass_1, pass_2) {
            (Ok(one), Ok(two)) => Ok(vec![one, two]),
            (Ok(pass), Err(e)) | (Err(e), Ok(pass)) => {
                tracing::warn!(error = %e, "one judging pass could not be read: a single-pass verdict, of low confidence");
                Ok(vec![pass])
            }
            (Err(e), Err(_)) => Err(e),
        }
    }

    async fn judge_pass(
        &self,
        setup: &DebateSetup<'_>,
        order: [Speaker; 2],
        rounds: &[Round],
        usage: &mut Usage,
    ) -> Result<crate::transcript::JudgePass, RunError> {
        let messages = self.prompts.judge(setup, order, rounds)?;
        let settings = judge::PassSettings {
            max_tokens: self.settings.judge_max_tokens,
            temperature: self.settings.judge_temperature,
            retry: self.settings.judge_retry,
        };
        let pass = judge::run_pass(
            self.judge.as_ref(),
            &self.structured_output,
            messages,
            order,
            &settings,
            usage,
        )
        .await?;
        Ok(pass)
    }

    /// One speech, streamed as events a sentence at a time, each sentence screened first. A
    /// sentence the policy refuses, or one that repeats the prompt, stops the call (at most
    /// [`UNSAFE_RETRIES`] times): a model that [continues replies] goes on from the sentences
    /// already shown, which stay; any other writes the speech again. Its claims are checked
    /// at the end (its quotations also against `context`).
    ///
    /// [continues replies]: LanguageModel::continues_replies
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn speak(
        &self,
        round: u8,
        speaker: Speaker,
        (persona, opponent): (&Persona, Option<&Persona>),
        messages: Vec<Message>,
        checker: &ClaimChecker,
        context: QuoteContext<'_>,
        events: &EventSink,
    ) -> Result<(Turn, Usage), SpeakError> {
        let started = Instant::now();
        events.send(Event::TurnStart {
            round,
            speaker,
            persona: persona.id.clone(),
        });
        let mut request = ChatRequest {
            messages,
            max_tokens: self.settings.turn_max_tokens,
            temperature: self.settings.temperature,
            seed: None,
            response_format: None,
            stream: true,
            top_logprobs: None,
            stop: self.prompts.stop_sequences(),
            continue_reply: None,
            reader_waiting: round == 1 && speaker != Speaker::B,
        };
        // The speech as streamed so far, across the attempts that go on from it.
        let mut spoken = String::new();
        let mut attempt: u64 = 0;
        let completion = loop {
            // Both sides of a round, both rounds and each new attempt sample differently.
            request.seed = self.seed.map(|s| {
                s ^ (u64::from(round) << 1 | u64::from(speaker == Speaker::B)) ^ (attempt << 8)
            });
            let reading = Reading {
                screener: &self.screener,
                voices: Voices {
                    speaker: &persona.name,
                    opponent: opponent.map(|o| o.name.as_str()),
                },
                rewrite_echoes: attempt < u64::from(UNSAFE_RETRIES),
            };
            let (reason, why) = match self
                .speak_once(&request, reading, (round, speaker), events, &mut spoken)
                .await?
            {
                Ok(completion) => break completion,
                Err(Again::Refused(refusal)) if attempt < u64::from(UNSAFE_RETRIES) => (
                    "a sentence broke the content policy: speaking again",
                    format!("a sentence was withheld ({})", refusal.category),
                ),
                Err(Again::Refused(refusal)) => return Err(SpeakError::Unsafe(refusal)),
                Err(Again::Echo(why)) => (
                    "the speech repeated its instructions: speaking again",
                    format!("prompt text in a speech ({why})"),
                ),
            };
            attempt += 1;
            let begun = spoken.trim();
            if self.debater.continues_replies() && !begun.is_empty() {
                tracing::info!(
                    round,
                    ?speaker,
                    "{why}: the speech goes on from what was shown"
                );
                request.continue_reply = Some(begun.to_string());
                // The reader has seen its first sentence.
                request.reader_waiting = false;
            } else {
                tracing::info!(round, ?speaker, "{why}: the speech is written again");
                spoken.clear();
                request.continue_reply = None;
                events.send(Event::TurnRestart {
                    round,
                    speaker,
                    reason: reason.into(),
                });
            }
        };
        let text = spoken.trim().to_string();
        let truncated = completion.finish_reason == Some(FinishReason::Length);
        let Checked {
            unsupported,
            quotes,
        } = checker.check(&text, context);
        let tokens = match completion.usage.completion_tokens {
            0 => completion.chunks,
            n => n,
        };
        events.send(Event::TurnEnd {
            round,
            speaker,
            text: text.clone(),
            unsupported: unsupported.clone(),
            quotes: quotes.clone(),
            tokens,
            truncated,
        });
        let turn = Turn {
            speaker,
            text,
            unsupported,
            tokens,
            ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            truncated,
            quotes,
        };
        Ok((turn, completion.usage))
    }

    /// One attempt at a speech: streamed a sentence at a time, each screened, and added to
    /// `spoken`; a refused sentence stops the call at once. The completion, or why the
    /// speech must go on another way.
    async fn speak_once(
        &self,
        request: &ChatRequest,
        reading: Reading<'_>,
        turn: (u8, Speaker),
        events: &EventSink,
        spoken: &mut String,
    ) -> Result<Result<Completion, Again>, SpeakError> {
        let (sink, pieces) = SpeechSink::new();
        let call = async move {
            let completion = self.debater.complete(request, &sink).await?;
            sink.finish(completion.finish_reason == Some(FinishReason::Length));
            // The sink goes with this block: the stream below ends when it has released all.
            Ok::<_, LlmError>(completion)
        };
        let stream = stream_screened(pieces, reading, events, turn, spoken);
        let (call, stream) = (std::pin::pin!(call), std::pin::pin!(stream));
        let (called, streamed) = match futures::future::select(call, stream).await {
            Either::Left((called, stream)) => (called, stream.await),
            // The stream ends early only when it stopped: the call is dropped, cut short.
            Either::Right((Err(stopped), _call)) => return again(stopped),
            Either::Right((streamed, call)) => (call.await, streamed),
        };
        let completion = called?;
        match streamed {
            Ok(()) => Ok(Ok(completion)),
            Err(stopped) => again(stopped),
        }
    }

    /// What checks speeches against a story: made once for each version of the story.
    pub(crate) fn claim_checker(&self, story: &Story) -> Arc<ClaimChecker> {
        self.claims.get(&story.version, || {
            Arc::new(ClaimChecker::new(&story.full_text()))
        })
    }

    pub(crate) fn provenance(&self) -> Provenance {
        Provenance {
            model: self.debater.name().to_string(),
            judge_model: self.judge.name().to_string(),
            templates: self.prompts.version().to_string(),
            started_at: now_rfc3339(),
            finished_at: None,
        }
    }
}

/// Ends a debate's run with its `result`: its status and error, the `error` event if it
/// failed (saying the speeches are kept when all four are), and `done`.
fn conclude(transcript: &mut Transcript, result: Result<(), RunError>, events: &EventSink) {
    transcript.provenance.finished_at = Some(now_rfc3339());
    transcript.status = match result {
        Ok(()) => Status::Done,
        Err(e) => {
            let mut info = e.info();
            // Only judging runs after the fourth speech: it can be asked again.
            if spoken_turns(transcript) == 4 {
                info.message.push_str(KEPT_FOR_JUDGING);
            }
            events.send(Event::Error {
                code: info.code,
                message: info.message.clone(),
            });
            transcript.error = Some(info);
            Status::Failed
        }
    };
    events.send(Event::Done {
        status: transcript.status,
    });
}

/// What a failed judging step adds to its message when the speeches are all there.
const KEPT_FOR_JUDGING: &str = "; the four speeches are kept, and the debate can be judged again";

/// Why a transcript cannot be judged again.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JudgeAgainError {
    #[error("the debate is still {0}: only a finished debate can be judged again")]
    Unfinished(&'static str),
    #[error("the debate has {0} of its four speeches: only a debate with all four can be judged")]
    MissingTurns(usize),
    #[error("the {what} given is `{got}`, but the debate's is `{want}`")]
    Mismatch {
        what: &'static str,
        want: String,
        got: String,
    },
}

/// Whether a transcript can be judged again: finished, with both rounds' two speeches.
pub fn can_judge_again(transcript: &Transcript) -> Result<(), JudgeAgainError> {
    if transcript.status.is_unfinished() {
        return Err(JudgeAgainError::Unfinished(transcript.status.as_str()));
    }
    match spoken_turns(transcript) {
        4 => Ok(()),
        turns => Err(JudgeAgainError::MissingTurns(turns)),
    }
}

/// How many of a debate's four speeches the transcript holds.
fn spoken_turns(transcript: &Transcript) -> usize {
    let spoken = |round: u8, speaker: Speaker| {
        transcript
            .rounds
            .iter()
            .filter(|r| r.round == round)
            .flat_map(|r| &r.turns)
            .any(|t| t.speaker == speaker)
    };
    [1, 2]
        .into_iter()
        .flat_map(|round| [Speaker::A, Speaker::B].map(|s| spoken(round, s)))
        .filter(|spoken| *spoken)
        .count()
}

pub(crate) fn persona_ref(p: &Persona) -> PersonaRef {
    PersonaRef {
        id: p.id.clone(),
        name: p.name.clone(),
        version: p.version.clone(),
        living: p.kind == PersonaKind::Living,
    }
}

/// Adds a round's turns to the transcript: every turn that finished, even when the other
/// side's failed (the stream showed it, and a failed run keeps it). Returns both texts, A's
/// first, or the first failure.
fn keep_round(
    transcript: &mut Transcript,
    kind: RoundKind,
    results: [Result<(Turn, Usage), SpeakError>; 2],
) -> Result<[String; 2], RunError> {
    let mut turns = Vec::with_capacity(2);
    let mut failure = None;
    for result in results {
        match result {
            Ok((turn, usage)) => {
                transcript.usage += usage;
                turns.push(turn);
            }
            Err(e) => {
                failure.get_or_insert(e);
            }
        }
    }
    let texts: Vec<String> = turns.iter().map(|t| t.text.clone()).collect();
    if !turns.is_empty() {
        transcript.rounds.push(Round {
            round: match kind {
                RoundKind::Opening => 1,
                RoundKind::Rebuttal => 2,
            },
            kind,
            turns,
        });
    }
    match failure {
        Some(e) => Err(e.into()),
        // No failure: both turns finished.
        None => Ok([texts[0].clone(), texts[1].clone()]),
    }
}
