//! A reader's debates: started, listed, read, followed live and judged again. Sharing,
//! exports and votes have their own modules.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::CurrentUser;
use super::sharing;
use super::votes::{self, VoteTally};
use crate::error::{ApiError, ApiJson, ApiQuery, ErrorBody};
use crate::runs::screening::screen_motion;
use crate::runs::stream::{self, EventsQuery};
use crate::runs::{self, Accepted, Launch, RunSpec, readable, record_of};
use crate::state::AppState;
use crate::store::{Role, RunKind};
use crossfire_engine::transcript::{PersonaRef, Sides, Status, Transcript, Winner};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_debate, list_debates))
        .routes(routes!(get_debate))
        .routes(routes!(debate_events))
        .routes(routes!(judge_again))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct NewDebate {
    story: String,
    a: String,
    b: String,
    #[serde(default)]
    motion: Option<String>,
}

/// One of a reader's debates, as listed.
#[derive(Serialize, ToSchema)]
pub struct DebateSummary {
    pub id: String,
    pub status: Status,
    pub story: String,
    pub motion: String,
    pub personas: Sides<PersonaRef>,
    /// The verdict's winner, once there is one.
    pub winner: Option<Winner>,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    /// Set when the editors took it down: what its owner is told (it no longer opens).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removed: Option<String>,
}

/// A page of a reader's debates.
#[derive(Serialize, ToSchema)]
pub struct DebateList {
    pub debates: Vec<DebateSummary>,
    /// This page's number, from 1.
    pub page: u32,
    /// The next page's number, when there are more.
    pub next_page: Option<u32>,
}

/// A debate as its reader sees it: the transcript, the room's votes and its share link.
#[derive(Serialize, ToSchema)]
pub struct DebateBody {
    #[serde(flatten)]
    pub transcript: Transcript,
    pub votes: VoteTally,
    /// The public replay's path while the owner shares the debate.
    pub share: Option<String>,
    /// An editor's trial of a draft persona.
    pub trial: bool,
}

/// `POST /api/debates`: 202 at once; the debate runs in the background.
#[utoipa::path(post, path = "/api/debates", tag = "debates", request_body = NewDebate, security(("bearer" = [])),
    responses((status = 202, description = "Accepted: the debate runs in the background", body = Accepted), (status = 401, description = "Not signed in", body = ErrorBody), (status = 403, description = "Living persona not allowed", body = ErrorBody), (status = 404, description = "Unknown story or persona", body = ErrorBody), (status = 422, description = "Same persona twice, empty or long motion, or a motion the screening policy refuses (`motion_refused`, with its `category`)", body = ErrorBody), (status = 429, description = "Daily quota reached (Retry-After)", body = ErrorBody), (status = 503, description = "The moderation endpoint does not answer (`moderation_unavailable`), or today's model token budget is spent (`budget_exhausted`, until the next UTC day); with Retry-After", body = ErrorBody)))]
pub async fn create_debate(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiJson(body): ApiJson<NewDebate>,
) -> Result<Response, ApiError> {
    // The whole run uses the set live now, whatever reloads come while it runs.
    let set = state.set();
    let story = set.catalog.story(&body.story)?.clone();
    let a = set.catalog.persona(&body.a)?.clone();
    let b = set.catalog.persona(&body.b)?.clone();
    let motion = set
        .engine
        .check_debate(&story, &a, &b, body.motion.as_deref())?;
    // The story's own motion is the editors'; a reader's is screened.
    if body.motion.is_some() {
        screen_motion(&set.engine, &motion, user.id).await?;
    }
    let launch = Launch {
        spec: RunSpec::Debate {
            story,
            a,
            b,
            motion,
        },
        engine: set.engine.clone(),
        user_id: user.id,
        cache_key: None,
        trial: false,
        per_day: Some(state.config.debates_per_day),
    };
    let accepted = runs::launch(&state, launch).await?;
    Ok((StatusCode::ACCEPTED, Json(accepted)).into_response())
}

/// `GET /api/debates/{id}`
#[utoipa::path(get, path = "/api/debates/{id}", tag = "debates", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, description = "The transcript (docs/events.md), the room's votes and the share link", body = DebateBody), (status = 404, description = "Not found, or not mine", body = ErrorBody), (status = 410, description = "The editors removed it (code `removed`; the message gives their note)", body = ErrorBody)))]
pub async fn get_debate(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<DebateBody>, ApiError> {
    let run = readable(&state, &user, &id, RunKind::Debate).await?;
    let transcript: Transcript = record_of(&run)?;
    let votes = votes::tally(&state, &run, &transcript, Some(user.id)).await?;
    Ok(Json(DebateBody {
        transcript,
        votes,
        share: run.share_token.as_deref().map(sharing::link),
        trial: run.trial,
    }))
}

/// How many debates a page of `GET /api/debates` lists.
const DEBATES_PER_PAGE: u32 = 20;

/// Which page of a list to answer.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct PageQuery {
    /// From 1 (the newest).
    page: Option<u32>,
}

/// `GET /api/debates`: mine, newest first, a page at a time.
#[utoipa::path(get, path = "/api/debates", tag = "debates", params(PageQuery), security(("bearer" = [])),
    responses((status = 200, description = "Mine, newest first", body = DebateList), (status = 401, description = "Not signed in", body = ErrorBody)))]
pub async fn list_debates(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<DebateList>, ApiError> {
    let page = query.page.unwrap_or(1).max(1);
    let offset = i64::from(page - 1) * i64::from(DEBATES_PER_PAGE);
    // One more than a page tells whether another follows.
    let mut runs = state
        .store
        .runs_of(
            user.id,
            RunKind::Debate,
            i64::from(DEBATES_PER_PAGE) + 1,
            offset,
        )
        .await?;
    let more = runs.len() > DEBATES_PER_PAGE as usize;
    runs.truncate(DEBATES_PER_PAGE as usize);
    let debates = runs
        .iter()
        .map(|run| {
            let t: Transcript = record_of(run)?;
            Ok(DebateSummary {
                id: t.id,
                status: t.status,
                story: t.story,
                motion: t.motion,
                personas: t.personas,
                winner: t.verdict.map(|v| v.winner),
                created_at: run.created_at,
                removed: runs::still_up(run, Some(&user))
                    .err()
                    .map(|e| e.to_string()),
            })
        })
        .collect::<Result<_, ApiError>>()?;
    Ok(Json(DebateList {
        debates,
        page,
        next_page: more.then_some(page + 1),
    }))
}

/// `GET /api/debates/{id}/events`
#[utoipa::path(get, path = "/api/debates/{id}/events", tag = "debates", params(("id" = String, Path), ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this event"), EventsQuery), security(("bearer" = [])),
    responses((status = 200, description = "Server-Sent Events: turn_start, token, turn_end, turn_restart, verdict, error, done", content_type = "text/event-stream"), (status = 404, description = "Not found, or not mine", body = ErrorBody), (status = 410, description = "The editors removed it (code `removed`)", body = ErrorBody)))]
pub async fn debate_events(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<EventsQuery>,
) -> Result<Response, ApiError> {
    stream::events(&state, &user, &id, RunKind::Debate, &headers, &query).await
}

/// `POST /api/debates/{id}/verdict`: the judging again, on the four stored speeches.
#[utoipa::path(post, path = "/api/debates/{id}/verdict", tag = "debates", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 202, description = "Judging: follow `events` (the log goes on after its end) for `verdict` and `done`", body = Accepted), (status = 404, description = "Not found, or neither mine nor am I an editor", body = ErrorBody), (status = 409, description = "Running, without four speeches, or already judged by the judge configured now", body = ErrorBody), (status = 410, description = "The editors removed it (code `removed`)", body = ErrorBody), (status = 503, description = "Today's model token budget is spent (`budget_exhausted`, Retry-After)", body = ErrorBody)))]
pub async fn judge_again(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    // Its owner, or an editor.
    let run = match state.store.run(&id).await? {
        Some(run)
            if run.kind == RunKind::Debate
                && (run.user_id == user.id || user.role == Role::Editor) =>
        {
            run
        }
        _ => return Err(runs::not_found(RunKind::Debate, &id)),
    };
    runs::still_up(&run, Some(&user))?;
    let accepted = runs::judge_again(&state, &run).await?;
    Ok((StatusCode::ACCEPTED, Json(accepted)).into_response())
}
