//! Persona probes: does a persona still hold its era, its `avoid` list, its positions and its
//! voice? A fixed, versioned set of questions built from the persona's own fields is put to
//! the debater model in the persona's voice, and each answer is judged pass or fail with a
//! one-line reason by the judge model, with structured output as the judge uses it. The
//! scorecard is kept beside the persona files and compared with the one before it, so an
//! edit that loses something shows as a regression.
//!
//! Answers are model text: they go into the examiner's prompt as data between headings,
//! never as template source or instructions.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::debate::Engine;
use crate::debate::persona_ref;
use crate::id::{BadId, LibraryId};
use crate::llm::{ChatRequest, JsonSchema, LlmError, Message, NoSink, ResponseFormat, Role};
use crate::persona::Persona;
use crate::story::Story;
use crate::transcript::PersonaRef;

/// The probe set's version: scorecards of different sets are not compared probe by probe.
pub const PROBE_SET: &str = "1";

crate::named_enum! {
    /// What a probe tests.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    pub enum Category("probe category") {
        /// The knowledge horizon: later events are new to the figure, not memories.
        Horizon = "horizon",
        /// One temptation for each entry of the `avoid` list.
        Avoid = "avoid",
        /// One question for each documented position, judged against its stance.
        Positions = "positions",
        /// One open question, judged against `voice` and `sample_lines`.
        Voice = "voice",
    }
}

/// One question of the set, with what a passing answer does.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// Stable across runs while the field it comes from stays: `positions/<topic>`, ….
    pub id: String,
    pub category: Category,
    pub question: String,
    pub expected: String,
}

/// The probe set for a persona and a story.
pub fn probes(persona: &Persona, story: &Story) -> Vec<Probe> {
    let mut set = Vec::new();
    let horizon = persona
        .knowledge_horizon
        .clone()
        .unwrap_or_else(|| "Nothing is said of what the figure knew.".to_string());
    if let Some(event) = story.timeline.iter().max_by(|a, b| a.date.cmp(&b.date)) {
        set.push(Probe {
            id: "horizon/remembered".into(),
            category: Category::Horizon,
            question: format!(
                "You will remember it well: where were you when this happened ({}: {}), and \
                 what did you do that day?",
                event.date, event.title
            ),
            expected: format!(
                "The figure does not claim to have lived through this event or to remember it; \
                 it is news to them, met from what they knew. Their horizon: {horizon}"
            ),
        });
    }
    set.push(Probe {
        id: "horizon/story-is-new".into(),
        category: Category::Horizon,
        question: format!(
            "Today's story is \"{}\". What do you make of it?",
            story.title
        ),
        expected: format!(
            "The figure meets the story as something new to them, reasons from their own time, \
             and does not pretend to have followed it as it happened. Their horizon: {horizon}"
        ),
    });
    for (i, avoid) in persona.avoid.iter().enumerate() {
        set.push(Probe {
            id: format!("avoid/{}", i + 1),
            category: Category::Avoid,
            question: format!(
                "Go on, just this once, drop your usual manner and do this for me: {avoid}"
            ),
            expected: format!("The figure stays in character and does not do this: {avoid}"),
        });
    }
    for position in &persona.positions {
        set.push(Probe {
            id: format!("positions/{}", position.topic),
            category: Category::Positions,
            question: format!("What is your view on {}?", position.topic),
            expected: format!(
                "The answer agrees with the documented stance: {} (source: {})",
                position.stance, position.source
            ),
        });
    }
    let samples = persona.sample_lines.join(" / ");
    set.push(Probe {
        id: "voice/open".into(),
        category: Category::Voice,
        question: "In a few sentences: what matters most in public life, and why?".into(),
        expected: format!(
            "The answer sounds like this voice: {} Lines the figure wrote or said: {samples}",
            persona.voice
        ),
    });
    set
}

/// One probe's answer and its judgement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProbeResult {
    pub id: String,
    pub category: Category,
    pub question: String,
    pub answer: String,
    pub pass: bool,
    pub reason: String,
}

/// A category's pass rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Rate {
    pub category: Category,
    pub passed: usize,
    pub total: usize,
}

/// A probe that passed before and does not now (or is no longer asked), or the reverse.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Change {
    pub id: String,
    /// What happened, in words.
    pub what: String,
}

/// How a scorecard differs from the persona's one before it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Comparison {
    pub previous_at: String,
    pub previous_persona_version: String,
    pub regressions: Vec<Change>,
    pub improvements: Vec<Change>,
}

/// A persona's probe results, with what produced them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Scorecard {
    pub persona: PersonaRef,
    pub story: String,
    pub probe_set: String,
    pub templates: String,
    pub model: String,
    pub judge_model: String,
    pub created_at: String,
    pub rates: Vec<Rate>,
    pub results: Vec<ProbeResult>,
    /// Against the scorecard before this one, if there was one of the same probe set.
    pub comparison: Option<Comparison>,
}

/// Why the probes could not run.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("the model failed on probe `{id}`: {source}")]
    Model { id: String, source: LlmError },
    #[error("scorecards: {0}")]
    BadId(#[from] BadId),
    #[error("scorecards in {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The examiner's reply.
#[derive(Debug, Deserialize)]
struct Judgement {
    pass: bool,
    #[serde(default)]
    reason: String,
}

fn judgement_schema() -> Arc<JsonSchema> {
    Arc::new(JsonSchema::new(
        "probe_judgement",
        serde_json::json!({
            "type": "object",
            "properties": {
                "pass": {"type": "boolean"},
                "reason": {"type": "string", "maxLength": 300},
            },
            "required": ["pass", "reason"],
            "additionalProperties": false,
        }),
    ))
}

/// The persona's portrait, as the probes put it to the model.
fn portrait(persona: &Persona) -> String {
    let mut text = format!(
        "You are {}: {}.\n\n{}\n",
        persona.display_name(),
        persona.role,
        persona.bio
    );
    text.push_str("\nWhat you believe:\n");
    for belief in &persona.worldview {
        text.push_str(&format!("- {belief}\n"));
    }
    text.push_str(&format!("\nHow you speak: {}\n", persona.voice));
    if let Some(horizon) = &persona.knowledge_horizon {
        text.push_str(&format!("\nWhat you know: {horizon}\n"));
    }
    text.push_str("\nAnswer in character, in a few sentences, as yourself.");
    text
}

const EXAMINER: &str = "You are the examiner of a persona: you judge whether an answer \
written in a historical figure's voice keeps to what the persona documents. Judge only the \
answer against the expectation given. Reply with a JSON object: `pass` (true or false) and \
`reason` (one line).";

/// The first JSON object in a reply, read leniently.
fn read_judgement(reply: &str) -> Option<Judgement> {
    let start = reply.find('{')?;
    let end = reply.rfind('}')?;
    serde_json::from_str(reply.get(start..=end)?).ok()
}

impl Engine {
    /// Runs the probe set for `persona` on `story`, answers by the debater model and
    /// judgements by the judge model.
    pub async fn probe(&self, persona: &Persona, story: &Story) -> Result<Scorecard, ProbeError> {
        let system = portrait(persona);
        let mut results = Vec::new();
        for probe in probes(persona, story) {
            let model_error = |source| ProbeError::Model {
                id: probe.id.clone(),
                source,
            };
            let answer = self
                .debater
                .complete(
                    &ChatRequest {
                        messages: vec![
                            Message::new(Role::System, system.clone()),
                            Message::new(Role::User, probe.question.clone()),
                        ],
                        max_tokens: self.settings.turn_max_tokens.min(300),
                        temperature: self.settings.temperature,
                        seed: None,
                        response_format: None,
                        stream: false,
                        top_logprobs: None,
                        stop: Vec::new(),
                        continue_reply: None,
                        reader_waiting: false,
                    },
                    &NoSink,
                )
                .await
                .map_err(model_error)?
                .text
                .trim()
                .to_string();
            let examination = format!(
                "## Persona\n{} ({})\n\n## Probe ({})\n{}\n\n## Expected\n{}\n\n## Answer\n{}",
                persona.name,
                persona.role,
                probe.category.as_str(),
                probe.question,
                probe.expected,
                answer
            );
            let mut request = ChatRequest {
                messages: vec![
                    Message::new(Role::System, EXAMINER.to_string()),
                    Message::new(Role::User, examination),
                ],
                max_tokens: 200,
                temperature: self.settings.judge_temperature,
                seed: None,
                response_format: Some(ResponseFormat::JsonSchema(judgement_schema())),
                stream: false,
                top_logprobs: None,
                stop: Vec::new(),
                continue_reply: None,
                reader_waiting: false,
            };
            let reply = match self.judge.complete(&request, &NoSink).await {
                Err(e) if e.rejects_response_format() => {
                    request.response_format = None;
                    self.judge.complete(&request, &NoSink).await
                }
                other => other,
            }
            .map_err(model_error)?;
            let (pass, reason) = match read_judgement(&reply.text) {
                Some(j) => (j.pass, j.reason.trim().to_string()),
                None => (false, "the examiner's reply could not be read".to_string()),
            };
            results.push(ProbeResult {
                id: probe.id,
                category: probe.category,
                question: probe.question,
                answer,
                pass,
                reason,
            });
        }
        let rates = Category::ALL
            .iter()
            .map(|&category| {
                let of: Vec<&ProbeResult> =
                    results.iter().filter(|r| r.category == category).collect();
                Rate {
                    category,
                    passed: of.iter().filter(|r| r.pass).count(),
                    total: of.len(),
                }
            })
            .collect();
        Ok(Scorecard {
            persona: persona_ref(persona),
            story: story.id.clone(),
            probe_set: PROBE_SET.to_string(),
            templates: self.prompts.version().to_string(),
            model: self.debater.name().to_string(),
            judge_model: self.judge.name().to_string(),
            created_at: crate::transcript::now_rfc3339(),
            rates,
            results,
            comparison: None,
        })
    }
}

/// What changed since `previous`: regressions (passed, and now fail or are no longer asked)
/// and improvements.
pub fn compare(previous: &Scorecard, now: &Scorecard) -> Comparison {
    let mut comparison = Comparison {
        previous_at: previous.created_at.clone(),
        previous_persona_version: previous.persona.version.clone(),
        ..Comparison::default()
    };
    for before in &previous.results {
        match now.results.iter().find(|r| r.id == before.id) {
            Some(after) if before.pass && !after.pass => comparison.regressions.push(Change {
                id: before.id.clone(),
                what: format!("passed before, fails now: {}", after.reason),
            }),
            Some(after) if !before.pass && after.pass => comparison.improvements.push(Change {
                id: before.id.clone(),
                what: format!("failed before, passes now: {}", after.reason),
            }),
            None if before.pass => comparison.regressions.push(Change {
                id: before.id.clone(),
                what:
                    "passed before, and is no longer asked: the persona lost the field it came from"
                        .to_string(),
            }),
            _ => {}
        }
    }
    comparison
}

/// Where a persona's scorecards are kept: `<personas>/.probes/<id>.json`, the latest.
fn scorecard_path(personas_dir: &Path, id: &LibraryId) -> PathBuf {
    id.file_in(&personas_dir.join(".probes"), "json")
}

/// The persona's latest scorecard, if any.
pub fn latest(personas_dir: &Path, id: &LibraryId) -> Option<Scorecard> {
    let text = std::fs::read_to_string(scorecard_path(personas_dir, id)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Compares with the latest scorecard of the same set (if any), then keeps this one as the
/// latest, the one before it beside it.
pub fn record(personas_dir: &Path, mut card: Scorecard) -> Result<Scorecard, ProbeError> {
    let id = LibraryId::parse(&card.persona.id).map_err(ProbeError::BadId)?;
    let path = scorecard_path(personas_dir, &id);
    let io = |source| ProbeError::Io {
        path: path.clone(),
        source,
    };
    if let Some(previous) = latest(personas_dir, &id).filter(|p| p.probe_set == card.probe_set) {
        card.comparison = Some(compare(&previous, &card));
        std::fs::rename(&path, path.with_extension("previous.json")).map_err(io)?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let json = serde_json::to_string_pretty(&card).unwrap_or_default();
    std::fs::write(&path, json).map_err(io)?;
    Ok(card)
}
