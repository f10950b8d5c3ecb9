//! The editors' queue of reports: the open cases, each with its reports counted by reason,
//! their notes, and the reported text in context (every speech, with the sentences screening
//! flagged marked, and what it withheld beside them). Resolving a case hides the debate or
//! perspective everywhere, dismisses the reports, or restores a hidden one.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Editor;
use crate::error::{ApiError, ApiJson, ApiQuery, ErrorBody};
use crate::http::reports::checked_note;
use crate::http::sharing;
use crate::runs::record_of;
use crate::state::AppState;
use crate::store::{
    Case, CaseState, Report, ReportReason, Resolution, ResolveRefused, Run, RunKind,
};
use crossfire_engine::event::{Speaker, Withheld};
use crossfire_engine::transcript::{ErrorInfo, PerspectiveRecord, Status, Transcript};

/// How many cases one page of the queue shows.
const QUEUE_LENGTH: i64 = 100;

/// Open cases (or hidden ones, to restore), oldest first.
#[derive(Serialize, ToSchema)]
pub struct ReportQueue {
    pub reports: Vec<ReportGroup>,
}

/// One debate's or perspective's reports, gathered: what an editor decides on.
#[derive(Serialize, ToSchema)]
pub struct ReportGroup {
    /// The case's id: what `POST /api/editor/reports/{id}/resolve` takes.
    pub id: String,
    pub state: CaseState,
    pub kind: RunKind,
    /// The debate's or perspective's id.
    pub run_id: String,
    /// Opened by screening, which refused some of the run's output, rather than by a reader.
    pub screened: bool,
    /// Milliseconds since the Unix epoch.
    pub opened_at: i64,
    /// Reports counted by reason, most frequent first.
    pub reasons: Vec<ReasonCount>,
    /// Every report, oldest first, with its note.
    pub notes: Vec<Report>,
    /// The motion, or whose perspective on what.
    pub title: String,
    pub story_title: String,
    pub status: Status,
    pub error: Option<ErrorInfo>,
    /// The share link, while its owner shares it.
    pub share: Option<String>,
    /// What readers were shown, speech by speech.
    pub speeches: Vec<Speech>,
    /// What screening kept from readers (refused) or let through and flagged.
    pub withheld: Vec<WithheldText>,
    /// For a resolved case: who resolved it, when, and their note.
    pub resolved_by: Option<String>,
    pub resolved_at: Option<i64>,
    pub note: Option<String>,
}

/// How many reports gave a reason.
#[derive(Serialize, ToSchema)]
pub struct ReasonCount {
    pub reason: ReportReason,
    pub count: usize,
}

/// A speech as readers saw it, in parts: the sentences screening flagged are parts of their
/// own, with the category.
#[derive(Serialize, ToSchema)]
pub struct Speech {
    pub round: u8,
    pub speaker: Speaker,
    pub name: String,
    pub parts: Vec<SpeechPart>,
}

#[derive(Serialize, ToSchema)]
pub struct SpeechPart {
    pub text: String,
    /// The policy category that flagged this part; none for the rest of the speech.
    pub flagged: Option<String>,
}

/// A sentence screening withheld or flagged.
#[derive(Serialize, ToSchema)]
pub struct WithheldText {
    pub round: u8,
    pub speaker: Speaker,
    pub text: String,
    pub category: String,
    pub rule: String,
    /// Refused, so never shown (the speech was written again, or the run failed).
    pub refused: bool,
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct QueueQuery {
    /// `open` (the default): cases waiting for an editor; `hidden`: runs kept down, to restore.
    state: Option<CaseState>,
}

/// `GET /api/editor/reports`: the queue.
#[utoipa::path(get, path = "/api/editor/reports", tag = "editor", params(QueueQuery), security(("bearer" = [])),
    responses((status = 200, description = "The cases, oldest first", body = ReportQueue), (status = 403, description = "Editors only", body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    _editor: Editor,
    ApiQuery(query): ApiQuery<QueueQuery>,
) -> Result<Json<ReportQueue>, ApiError> {
    let reports = queue(&state, query.state.unwrap_or(CaseState::Open)).await?;
    Ok(Json(ReportQueue { reports }))
}

/// The cases in `state`, each with its run in context.
pub async fn queue(state: &AppState, case_state: CaseState) -> Result<Vec<ReportGroup>, ApiError> {
    let cases = state.store.cases(case_state, QUEUE_LENGTH).await?;
    let mut groups = Vec::with_capacity(cases.len());
    for case in cases {
        // A case outlives nothing: its run is deleted with it.
        if let Some(run) = state.store.run(&case.run_id).await? {
            let withheld = state.store.withheld(&run.id).await?;
            groups.push(group(state, case, &run, withheld)?);
        }
    }
    Ok(groups)
}

fn group(
    state: &AppState,
    case: Case,
    run: &Run,
    withheld: Vec<Withheld>,
) -> Result<ReportGroup, ApiError> {
    let mut counts: BTreeMap<ReportReason, usize> = BTreeMap::new();
    for report in &case.reports {
        *counts.entry(report.reason).or_default() += 1;
    }
    let mut reasons: Vec<ReasonCount> = counts
        .into_iter()
        .map(|(reason, count)| ReasonCount { reason, count })
        .collect();
    reasons.sort_by_key(|r| std::cmp::Reverse(r.count));
    let flagged: Vec<&Withheld> = withheld.iter().filter(|w| !w.refused).collect();
    let (title, story, status, error, speeches) = match run.kind {
        RunKind::Debate => debate_context(&record_of(run)?, &flagged),
        RunKind::Perspective => perspective_context(&record_of(run)?, &flagged),
    };
    Ok(ReportGroup {
        id: case.id,
        state: case.state,
        kind: run.kind,
        run_id: run.id.clone(),
        screened: case.screened,
        opened_at: case.opened_at,
        reasons,
        notes: case.reports,
        title,
        story_title: sharing::story_title(state, &story),
        status,
        error,
        share: run.share_token.as_deref().map(sharing::link),
        speeches,
        withheld: withheld
            .into_iter()
            .map(|w| WithheldText {
                round: w.round,
                speaker: w.speaker,
                text: w.text,
                category: w.category,
                rule: w.rule,
                refused: w.refused,
            })
            .collect(),
        resolved_by: case.resolved_by,
        resolved_at: case.resolved_at,
        note: case.note,
    })
}

type Context = (String, String, Status, Option<ErrorInfo>, Vec<Speech>);

fn debate_context(t: &Transcript, flagged: &[&Withheld]) -> Context {
    let speeches = t
        .rounds
        .iter()
        .flat_map(|round| {
            round.turns.iter().map(|turn| Speech {
                round: round.round,
                speaker: turn.speaker,
                name: t.personas.get(turn.speaker).name.clone(),
                parts: mark(&turn.text, round.round, turn.speaker, flagged),
            })
        })
        .collect();
    (
        t.motion.clone(),
        t.story.clone(),
        t.status,
        t.error.clone(),
        speeches,
    )
}

fn perspective_context(p: &PerspectiveRecord, flagged: &[&Withheld]) -> Context {
    let speech = Speech {
        round: 1,
        speaker: Speaker::Solo,
        name: p.persona.name.clone(),
        parts: mark(&p.text, 1, Speaker::Solo, flagged),
    };
    (
        format!("{}'s perspective", p.persona.name),
        p.story.clone(),
        p.status,
        p.error.clone(),
        vec![speech],
    )
}

/// A speech split so that each sentence screening flagged in it is a part of its own.
fn mark(text: &str, round: u8, speaker: Speaker, flagged: &[&Withheld]) -> Vec<SpeechPart> {
    let mut spans: Vec<(usize, usize, &str)> = flagged
        .iter()
        .filter(|w| w.speaker == speaker && (w.round == round || speaker == Speaker::Solo))
        .filter_map(|w| {
            let sentence = w.text.trim();
            let start = text.find(sentence).filter(|_| !sentence.is_empty())?;
            Some((start, start + sentence.len(), w.category.as_str()))
        })
        .collect();
    spans.sort();
    let mut parts = Vec::new();
    let mut at = 0;
    for (start, end, category) in spans {
        if start < at {
            continue;
        }
        if start > at {
            parts.push(SpeechPart {
                text: text[at..start].to_string(),
                flagged: None,
            });
        }
        parts.push(SpeechPart {
            text: text[start..end].to_string(),
            flagged: Some(category.to_string()),
        });
        at = end;
    }
    if at < text.len() || parts.is_empty() {
        parts.push(SpeechPart {
            text: text[at..].to_string(),
            flagged: None,
        });
    }
    parts
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Resolve {
    pub action: Resolution,
    /// Why: in the audit log, and what the owner is told when it is hidden (at most 1,000
    /// characters).
    #[serde(default)]
    pub note: Option<String>,
}

/// `POST /api/editor/reports/{id}/resolve`: hide, dismiss or restore.
#[utoipa::path(post, path = "/api/editor/reports/{id}/resolve", tag = "editor", params(("id" = String, Path, description = "The case's id, from the queue")), request_body = Resolve, security(("bearer" = [])),
    responses((status = 200, description = "Resolved: the case as it stands now", body = ReportGroup), (status = 403, description = "Editors only", body = ErrorBody), (status = 404, description = "No such case", body = ErrorBody), (status = 409, description = "The case is not open (hide, dismiss) or not hidden (restore)", body = ErrorBody), (status = 422, description = "Unknown action, or a note over 1,000 characters", body = ErrorBody)))]
pub async fn resolve(
    State(state): State<AppState>,
    Editor(editor): Editor,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Resolve>,
) -> Result<Json<ReportGroup>, ApiError> {
    let note = checked_note(body.note)?;
    let case = match state
        .store
        .resolve(&id, body.action, &editor, note.as_deref())
        .await?
    {
        Ok(case) => case,
        Err(ResolveRefused::Unknown) => {
            return Err(ApiError::NotFound(format!("no report case `{id}`")));
        }
        Err(ResolveRefused::Already(now)) => {
            return Err(ApiError::Conflict(format!(
                "the case is {now}: it cannot be resolved that way"
            )));
        }
    };
    tracing::info!(editor = editor.id, case = %case.id, run = %case.run_id, "report case {}", case.state);
    let run = state
        .store
        .run(&case.run_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no report case `{id}`")))?;
    let withheld = state.store.withheld(&run.id).await?;
    Ok(Json(group(&state, case, &run, withheld)?))
}
