//! What a run executes: a debate, a perspective, or a debate's judging again, with the story
//! and personas it was asked for. Readers' requests, editors' trials, judging again and
//! recovery all start runs through a [`RunSpec`].

use crate::error::ApiError;
use crate::store::RunKind;
use crossfire_engine::debate::Engine;
use crossfire_engine::event::EventSink;
use crossfire_engine::persona::Persona;
use crossfire_engine::story::Story;
use crossfire_engine::transcript::{Transcript, Turn};

use super::record::{Outcome, outcome, to_json};

/// A debate or a perspective, ready to run.
pub enum RunSpec {
    Debate {
        story: Story,
        a: Persona,
        b: Persona,
        /// Checked (`Engine::check_debate`).
        motion: String,
    },
    Perspective {
        story: Story,
        persona: Persona,
    },
    /// A finished debate's judging, again, on its stored speeches.
    Verdict {
        transcript: Box<Transcript>,
        story: Story,
        a: Persona,
        b: Persona,
    },
}

impl RunSpec {
    pub fn kind(&self) -> RunKind {
        match self {
            RunSpec::Debate { .. } | RunSpec::Verdict { .. } => RunKind::Debate,
            RunSpec::Perspective { .. } => RunKind::Perspective,
        }
    }

    /// The record a queued run shows until its first event, as JSON.
    pub fn queued(&self, engine: &Engine, id: &str) -> Result<String, ApiError> {
        match self {
            RunSpec::Debate {
                story,
                a,
                b,
                motion,
            } => to_json(&engine.new_transcript(id.to_string(), story, a, b, motion)),
            RunSpec::Perspective { story, persona } => {
                to_json(&engine.new_perspective(id.to_string(), story, persona))
            }
            RunSpec::Verdict { transcript, .. } => to_json(transcript),
        }
    }

    /// Runs it on `engine` as run `id`, keeping the turns a resumed run's log shows
    /// `finished`; its events go to `sink`.
    pub async fn run(
        self,
        engine: &Engine,
        id: String,
        finished: &[(u8, Turn)],
        sink: &EventSink,
    ) -> Outcome {
        match self {
            RunSpec::Debate {
                story,
                a,
                b,
                motion,
            } => {
                let t = engine
                    .resume_debate(id, &story, &a, &b, &motion, finished, sink)
                    .await;
                outcome(&t)
            }
            // One speech: a resumed perspective is spoken again whole.
            RunSpec::Perspective { story, persona } => {
                outcome(&engine.run_perspective(id, &story, &persona, sink).await)
            }
            RunSpec::Verdict {
                transcript,
                story,
                a,
                b,
            } => {
                let before = (*transcript).clone();
                match engine.judge_again(*transcript, &story, &a, &b, sink).await {
                    Ok(judged) => outcome(&judged),
                    // Checked before the run started again: it ends as it was.
                    Err(e) => {
                        tracing::error!("cannot judge again: {e}");
                        outcome(&before)
                    }
                }
            }
        }
    }
}
