//! A persona's perspective on a story: "what would Lincoln say about this?"

use crate::claims::QuoteContext;
use crate::debate::{Engine, RunError, persona_ref};
use crate::event::{Event, EventSink, Speaker};
use crate::persona::Persona;
use crate::story::Story;
use crate::transcript::{ErrorCode, ErrorInfo, PerspectiveRecord, Status, now_rfc3339};

impl Engine {
    /// A queued perspective's record: what it shows before its first event.
    pub fn new_perspective(
        &self,
        id: String,
        story: &Story,
        persona: &Persona,
    ) -> PerspectiveRecord {
        PerspectiveRecord {
            id,
            status: Status::Queued,
            story: story.id.clone(),
            persona: persona_ref(persona),
            text: String::new(),
            unsupported: Vec::new(),
            tokens: 0,
            ms: 0,
            provenance: self.provenance(),
            usage: Default::default(),
            error: None,
        }
    }

    /// Writes one persona's perspective, streamed as a single turn (`speaker: "solo"`); always
    /// returns a record and always ends the events with `done`.
    pub async fn run_perspective(
        &self,
        id: String,
        story: &Story,
        persona: &Persona,
        events: &EventSink,
    ) -> PerspectiveRecord {
        let mut record = self.new_perspective(id, story, persona);
        record.status = Status::Running;
        let result = match self.prompts.perspective(
            story,
            persona,
            self.settings.words(),
            self.settings.brief_prompts,
        ) {
            Err(e) => Err(ErrorInfo {
                code: ErrorCode::TemplateError,
                message: e.to_string(),
            }),
            Ok(messages) => {
                let checker = self.claim_checker(story);
                let context = QuoteContext {
                    speaker: Some(persona),
                    answering: None,
                };
                self.speak(
                    1,
                    Speaker::Solo,
                    (persona, None),
                    messages,
                    &checker,
                    context,
                    events,
                )
                .await
                .map_err(|e| RunError::from(e).info())
            }
        };
        record.provenance.finished_at = Some(now_rfc3339());
        match result {
            Ok((turn, usage)) => {
                record.text = turn.text;
                record.unsupported = turn.unsupported;
                record.tokens = turn.tokens;
                record.ms = turn.ms;
                record.usage = usage;
                record.status = Status::Done;
            }
            Err(info) => {
                events.send(Event::Error {
                    code: info.code,
                    message: info.message.clone(),
                });
                record.error = Some(info);
                record.status = Status::Failed;
            }
        }
        events.send(Event::Done {
            status: record.status,
        });
        record
    }
}
