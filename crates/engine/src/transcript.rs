//! The record of a debate or perspective: the transcript JSON of docs/events.md.

use serde::{Deserialize, Serialize};

use crate::claims::Quote;
use crate::llm::Usage;

crate::named_enum! {
    /// Who is speaking: a debate's side `a` or `b`, or the one voice of a perspective.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    pub enum Speaker("speaker") {
        A = "a",
        B = "b",
        Solo = "solo",
    }
}

impl Speaker {
    /// The other side of a debate.
    pub fn opponent(self) -> Speaker {
        match self {
            Speaker::A => Speaker::B,
            Speaker::B => Speaker::A,
            Speaker::Solo => Speaker::Solo,
        }
    }
}

crate::named_enum! {
    /// Where a debate or perspective stands.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    pub enum Status("status") {
        Queued = "queued",
        Running = "running",
        Done = "done",
        Failed = "failed",
    }
}

impl TryFrom<String> for Status {
    type Error = UnknownName;

    fn try_from(name: String) -> Result<Status, UnknownName> {
        name.parse()
    }
}

pub use crate::names::UnknownName;

impl Status {
    /// Whether the run may still produce events.
    pub fn is_unfinished(self) -> bool {
        matches!(self, Status::Queued | Status::Running)
    }
}

/// A persona as a result records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PersonaRef {
    pub id: String,
    pub name: String,
    pub version: String,
    /// The persona portrays a living person: whatever shows it says it is a simulated
    /// imitation ([`crate::persona::LIVING_NOTICE`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub living: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Sides<T> {
    pub a: T,
    pub b: T,
}

impl<T> Sides<T> {
    pub fn get(&self, speaker: Speaker) -> &T {
        match speaker {
            Speaker::B => &self.b,
            Speaker::A | Speaker::Solo => &self.a,
        }
    }
}

/// One speech.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Turn {
    pub speaker: Speaker,
    pub text: String,
    /// Figures and quotations in the text that the story does not support.
    pub unsupported: Vec<String>,
    pub tokens: u64,
    #[serde(default)]
    pub ms: u64,
    /// The speech reached its token limit and ends at its last complete sentence.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// Quotations in the text that the story, the speech it answers or the speaker's own
    /// documented lines support, with their source.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quotes: Vec<Quote>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum RoundKind {
    Opening,
    Rebuttal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Round {
    pub round: u8,
    pub kind: RoundKind,
    pub turns: Vec<Turn>,
}

/// Who won.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Winner {
    A,
    B,
    Tie,
}

/// The four rubric criteria, scored 1–10 (averages of the judge's passes may be halves).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Criteria {
    pub argument: f64,
    pub evidence: f64,
    pub rebuttal: f64,
    pub fidelity: f64,
}

impl Criteria {
    pub fn total(&self) -> f64 {
        self.argument + self.evidence + self.rebuttal + self.fidelity
    }

    /// Each criterion's name and score, in the rubric's order.
    pub fn named(&self) -> [(&'static str, f64); 4] {
        [
            ("argument", self.argument),
            ("evidence", self.evidence),
            ("rebuttal", self.rebuttal),
            ("fidelity", self.fidelity),
        ]
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Score {
    pub total: f64,
    pub criteria: Criteria,
}

/// One pass of the judge, mapped back from its neutral labels to the sides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JudgePass {
    /// Which side the judge saw first, then second.
    pub order: [Speaker; 2],
    pub winner: Winner,
    pub scores: Sides<Criteria>,
    /// The judge's short reason for each criterion score.
    pub reasons: Sides<CriteriaReasons>,
    pub rationale: String,
    /// Whether the reply needed a repair request to parse.
    pub repaired: bool,
    /// How the scores were read from the reply.
    #[serde(default)]
    pub method: ScoreMethod,
}

/// How a judging pass's scores were read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ScoreMethod {
    /// The scores the judge wrote.
    #[default]
    Sampled,
    /// Each score the expected value over the scores the judge's model weighed at that
    /// place, by their probabilities (as in G-Eval).
    Expected,
    /// Scores from how likely the judge's model finds each speech in different contexts,
    /// with the claim and era checks (`likelihood`).
    Likelihood,
}

impl ScoreMethod {
    /// How the scores were read, in words for readers.
    pub fn describe(self) -> &'static str {
        match self {
            ScoreMethod::Expected => "scores weighted by the judge model's probabilities",
            ScoreMethod::Sampled => "scores as the judge wrote them",
            ScoreMethod::Likelihood => {
                "scores from the judge model's likelihoods and the claim and era checks"
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CriteriaReasons {
    pub argument: String,
    pub evidence: String,
    pub rebuttal: String,
    pub fidelity: String,
}

/// The judge's verdict over both passes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Verdict {
    pub winner: Winner,
    /// The two passes disagreed, so the verdict is a tie.
    pub contested: bool,
    pub scores: Sides<Score>,
    pub rationale: String,
    pub passes: Vec<JudgePass>,
    /// The method every pass used (`sampled` when they differ).
    #[serde(default)]
    pub method: ScoreMethod,
    /// How far apart the two sides' totals are (out of 40).
    #[serde(default)]
    pub margin: f64,
    /// The verdict says little: the judge scored below 80 % in its last calibration, or
    /// only one of its two passes could be read (`single_pass`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub low_confidence: bool,
    /// Only one pass could be read: the verdict is that pass's, the sides seen in one order
    /// only (`passes` holds it alone).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub single_pass: bool,
}

impl Verdict {
    /// What the verdict says of its low confidence, if it has it: the single pass first.
    pub fn low_confidence_notice(&self) -> Option<&'static str> {
        if self.single_pass {
            Some(SINGLE_PASS_NOTICE)
        } else {
            self.low_confidence.then_some(LOW_CONFIDENCE_NOTICE)
        }
    }
}

/// What a verdict of low confidence says, wherever it is shown.
pub const LOW_CONFIDENCE_NOTICE: &str =
    "Low confidence: this judge scored below 80 % in its last calibration";

/// What a single-pass verdict says, wherever it is shown.
pub const SINGLE_PASS_NOTICE: &str = "Low confidence: only one of the judge's two passes could be read, so the speeches were judged in one order only";

/// Which model, templates and times produced a result. (Runs queued by versions before it
/// was recorded from the start read back with it empty.)
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Provenance {
    pub model: String,
    pub judge_model: String,
    pub templates: String,
    pub started_at: String,
    pub finished_at: Option<String>,
}

/// A failure, as results and event streams report it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorInfo {
    pub code: ErrorCode,
    pub message: String,
}

crate::named_enum! {
    /// Why a run failed, as a stable code in results and `error` events (docs/events.md).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    pub enum ErrorCode("error code") {
        /// A debater's model call failed after its retries.
        ModelFailed = "model_failed",
        /// The judge's model call failed after its retries.
        JudgeFailed = "judge_failed",
        /// The judge answered, but not with a verdict that could be read.
        JudgeUnreadable = "judge_unreadable",
        /// A prompt template failed to render.
        TemplateError = "template_error",
        /// The service stopped (or crashed) while the run was in flight.
        Interrupted = "interrupted",
        /// A speech kept breaking the content policy, however often it was written again.
        UnsafeOutput = "unsafe_output",
    }
}

/// A whole debate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Transcript {
    pub id: String,
    pub status: Status,
    pub story: String,
    pub motion: String,
    pub personas: Sides<PersonaRef>,
    pub rounds: Vec<Round>,
    pub verdict: Option<Verdict>,
    #[serde(default)]
    pub provenance: Provenance,
    pub usage: Usage,
    pub error: Option<ErrorInfo>,
}

/// A persona's perspective on a story.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PerspectiveRecord {
    pub id: String,
    pub status: Status,
    pub story: String,
    pub persona: PersonaRef,
    pub text: String,
    pub unsupported: Vec<String>,
    pub tokens: u64,
    pub ms: u64,
    #[serde(default)]
    pub provenance: Provenance,
    pub usage: Usage,
    pub error: Option<ErrorInfo>,
}

/// A fresh random id for a debate or perspective: 128 bits, hex.
pub fn new_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// The current time as RFC 3339.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
