//! Debates and perspectives: created by signed-in users, run in background tasks whatever
//! the clients do, stored with their event logs, and streamed as Server-Sent Events.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::AppState;
use super::auth::CurrentUser;
use super::bodies::{Accepted, DebateBody, DebateList, DebateSummary, PerspectiveBody};
use super::error::{ApiError, ApiJson, ApiQuery, ErrorBody};
use super::live::{self, Follower, Owner};
use super::metrics::Metrics;
use super::{sharing, votes};
use crate::store::{Finish, Quota, Run, RunKind, StoreError, StoredEvent, User, now_ms};
use crossfire_engine::event::EventKind;
use crossfire_engine::event::{Event, EventSink};
use crossfire_engine::transcript::{
    ErrorCode, ErrorInfo, PerspectiveRecord, Round, RoundKind, Status, Transcript, Turn,
};

#[derive(Deserialize, utoipa::ToSchema)]
pub struct NewDebate {
    story: String,
    a: String,
    b: String,
    #[serde(default)]
    motion: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct NewPerspective {
    story: String,
    persona: String,
}

/// `POST /api/debates`: 202 at once; the debate runs in the background.
#[utoipa::path(post, path = "/api/debates", tag = "debates", request_body = NewDebate, security(("bearer" = [])),
    responses((status = 202, description = "Accepted: the debate runs in the background", body = Accepted), (status = 401, description = "Not signed in", body = ErrorBody), (status = 403, description = "Living persona not allowed", body = ErrorBody), (status = 404, description = "Unknown story or persona", body = ErrorBody), (status = 422, description = "Same persona twice, empty or long motion", body = ErrorBody), (status = 429, description = "Daily quota reached (Retry-After)", body = ErrorBody)))]
pub async fn create_debate(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiJson(body): ApiJson<NewDebate>,
) -> Result<Response, ApiError> {
    // The whole run uses the set live now, whatever reloads come while it runs.
    let set = state.set();
    let engine = set.engine.clone();
    let story = set.catalog.story(&body.story)?.clone();
    let a = set.catalog.persona(&body.a)?.clone();
    let b = set.catalog.persona(&body.b)?.clone();
    let motion = engine.check_debate(&story, &a, &b, body.motion.as_deref())?;
    let id = crossfire_engine::transcript::new_id();
    // The stored result starts as the queued transcript: what GET shows while it runs.
    let queued = engine.new_transcript(id.clone(), &story, &a, &b, &motion);
    let run = Run::queued(&id, RunKind::Debate, user.id, None, to_json(&queued)?);
    launch(
        &state,
        run,
        Some(state.config.debates_per_day),
        move |id, sink| async move {
            let t = engine.run_debate(id, &story, &a, &b, &motion, &sink).await;
            outcome(&t)
        },
    )
    .await?;
    let accepted = Accepted {
        events: format!("/api/debates/{id}/events"),
        id,
        status: Status::Queued,
        cached: None,
    };
    Ok((StatusCode::ACCEPTED, Json(accepted)).into_response())
}

/// `POST /api/perspectives`: the cached perspective (200) or a new one (202).
#[utoipa::path(post, path = "/api/perspectives", tag = "perspectives", request_body = NewPerspective, security(("bearer" = [])),
    responses((status = 200, description = "Cached: the perspective, `cached: true`", body = PerspectiveBody), (status = 202, description = "Accepted (`cached: false`): it runs in the background", body = Accepted), (status = 404, description = "Unknown story or persona", body = ErrorBody), (status = 429, description = "Daily quota reached", body = ErrorBody)))]
pub async fn create_perspective(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiJson(body): ApiJson<NewPerspective>,
) -> Result<Response, ApiError> {
    let set = state.set();
    let engine = set.engine.clone();
    let story = set.catalog.story(&body.story)?.clone();
    let persona = set.catalog.persona(&body.persona)?.clone();
    engine.check_persona(&persona)?;
    // Same story content, persona version, templates and model: the same perspective.
    let key = crossfire_engine::sha256_hex(
        format!(
            "{}\n{}\n{}\n{}",
            story.version,
            persona.version,
            engine.prompts.version(),
            engine.debater.name()
        )
        .as_bytes(),
    );
    if let Some(cached) = state.store.cached(&key).await? {
        let body = PerspectiveBody {
            record: record_of(&cached)?,
            cached: Some(true),
        };
        return Ok((StatusCode::OK, Json(body)).into_response());
    }
    let id = crossfire_engine::transcript::new_id();
    let queued = engine.new_perspective(id.clone(), &story, &persona);
    let run = Run::queued(
        &id,
        RunKind::Perspective,
        user.id,
        Some(key),
        to_json(&queued)?,
    );
    launch(
        &state,
        run,
        Some(state.config.perspectives_per_day),
        move |id, sink| async move {
            let p = engine.run_perspective(id, &story, &persona, &sink).await;
            outcome(&p)
        },
    )
    .await?;
    let accepted = Accepted {
        events: format!("/api/perspectives/{id}/events"),
        id,
        status: Status::Queued,
        cached: Some(false),
    };
    Ok((StatusCode::ACCEPTED, Json(accepted)).into_response())
}

fn to_json(record: &impl serde::Serialize) -> Result<String, ApiError> {
    serde_json::to_string(record).map_err(|e| ApiError::Internal(format!("cannot encode: {e}")))
}

/// Stores a new run claimed by this instance, charging today's quota (if it has one).
async fn create_run(state: &AppState, run: &Run, per_day: Option<u32>) -> Result<(), ApiError> {
    let now = time::OffsetDateTime::now_utc();
    let day = now.date().to_string();
    match state
        .store
        .create_run(
            run,
            per_day.map(|limit| Quota { day: &day, limit }),
            state.claim(),
        )
        .await
    {
        Err(StoreError::QuotaExceeded { limit }) => {
            let midnight = now.date().next_day().map(|d| d.midnight().assume_utc());
            let wait = midnight.map_or(3600, |m| (m - now).whole_seconds().max(1) as u64);
            Err(ApiError::TooMany {
                message: format!(
                    "the daily limit of {limit} {}s is reached",
                    run.kind.as_str()
                ),
                retry_after: wait,
            })
        }
        other => Ok(other?),
    }
}

/// What a run's work returns: its status, error and result JSON.
pub(crate) type Outcome = serde_json::Result<(Status, Option<ErrorInfo>, String)>;

/// The outcome of a run whose engine work ended with `record`.
pub(crate) fn outcome(record: &impl Record) -> Outcome {
    let (status, error) = record.state();
    serde_json::to_string(record).map(|json| (status, error, json))
}

/// Stores a new run (charging today's quota), then executes it in its own task, which goes
/// on whatever its clients do.
pub(crate) async fn launch<F, Fut>(
    state: &AppState,
    run: Run,
    per_day: Option<u32>,
    work: F,
) -> Result<(), ApiError>
where
    F: FnOnce(String, EventSink) -> Fut + Send + 'static,
    Fut: Future<Output = Outcome> + Send,
{
    create_run(state, &run, per_day).await?;
    let owner = Owner {
        user_id: run.user_id,
        kind: run.kind,
    };
    // Open before the client hears of the run, so a follower arriving at once finds it.
    let live = state.hub.open(&run.id, owner);
    let sink = live.sink();
    start(state, &run, live, sink, work);
    Ok(())
}

/// Executes a stored run opened in the hub as `live` in its own task, its engine reporting
/// to `sink`.
pub(crate) fn start<F, Fut>(
    state: &AppState,
    run: &Run,
    live: Arc<live::LiveRun>,
    sink: EventSink,
    work: F,
) where
    F: FnOnce(String, EventSink) -> Fut + Send + 'static,
    Fut: Future<Output = Outcome> + Send,
{
    let task_state = state.clone();
    let (id, kind) = (run.id.clone(), run.kind);
    state.spawn_run(async move {
        execute(&task_state, kind, &id, live, work(id.clone(), sink)).await;
    });
}

/// Waits for a run's engine work, then stores its result.
async fn execute(
    state: &AppState,
    kind: RunKind,
    id: &str,
    live: Arc<live::LiveRun>,
    work: impl Future<Output = Outcome>,
) {
    // The run shows as running once its first event is stored.
    let finish = match work.await {
        Ok((status, error, result)) => {
            state.metrics.run_finished(kind.as_str(), status.as_str());
            Some(Finish {
                status,
                result,
                error,
                at: now_ms(),
            })
        }
        Err(e) => {
            tracing::error!(run = id, "cannot serialize the result: {e}");
            None
        }
    };
    live.finish(&state.hub, finish).await;
}

/// A run's stored record: a debate's transcript or a perspective.
pub(crate) trait Record: DeserializeOwned + serde::Serialize {
    /// Sets what the run's row knows best: its id, status and error (which change when a run
    /// is interrupted).
    fn set_state(&mut self, run: &Run);

    /// The record's status and error, for its row.
    fn state(&self) -> (Status, Option<ErrorInfo>);

    /// Takes the turns an interrupted run's log shows finished (by round).
    fn keep_turns(&mut self, turns: &[(u8, Turn)]);
}

/// The turns a run's log shows finished, with their rounds, as their `turn_end` told them.
pub(crate) fn finished_turns(events: &[StoredEvent]) -> Vec<(u8, Turn)> {
    #[derive(Deserialize)]
    struct Ended {
        round: u8,
        #[serde(flatten)]
        turn: Turn,
    }
    events
        .iter()
        .filter(|e| e.name == EventKind::TurnEnd.as_str())
        .filter_map(|e| serde_json::from_str::<Ended>(&e.data).ok())
        .map(|e| (e.round, e.turn))
        .collect()
}

/// What a run's row knows best, set on its record's own fields.
fn set_row_state(run: &Run, id: &mut String, status: &mut Status, error: &mut Option<ErrorInfo>) {
    *id = run.id.clone();
    *status = run.status;
    if run.error.is_some() {
        *error = run.error.clone();
    }
}

impl Record for Transcript {
    fn set_state(&mut self, run: &Run) {
        set_row_state(run, &mut self.id, &mut self.status, &mut self.error);
    }

    fn state(&self) -> (Status, Option<ErrorInfo>) {
        (self.status, self.error.clone())
    }

    fn keep_turns(&mut self, turns: &[(u8, Turn)]) {
        for (number, kind) in [(1, RoundKind::Opening), (2, RoundKind::Rebuttal)] {
            let of_round: Vec<Turn> = turns
                .iter()
                .filter(|(round, _)| *round == number)
                .map(|(_, turn)| turn.clone())
                .collect();
            if !of_round.is_empty() && !self.rounds.iter().any(|r| r.round == number) {
                self.rounds.push(Round {
                    round: number,
                    kind,
                    turns: of_round,
                });
            }
        }
    }
}

impl Record for PerspectiveRecord {
    fn set_state(&mut self, run: &Run) {
        set_row_state(run, &mut self.id, &mut self.status, &mut self.error);
    }

    fn state(&self) -> (Status, Option<ErrorInfo>) {
        (self.status, self.error.clone())
    }

    fn keep_turns(&mut self, turns: &[(u8, Turn)]) {
        if let Some((_, turn)) = turns.first()
            && self.text.is_empty()
        {
            self.text = turn.text.clone();
            self.unsupported = turn.unsupported.clone();
            self.tokens = turn.tokens;
        }
    }
}

/// The stored record of a run, as it stands.
pub(crate) fn record_of<R: Record>(run: &Run) -> Result<R, ApiError> {
    let mut record: R = serde_json::from_str(&run.result)
        .map_err(|e| ApiError::Internal(format!("run {}: unreadable result: {e}", run.id)))?;
    record.set_state(run);
    Ok(record)
}

/// Whether a user may read a run of `kind` (owned by `owner`) at an address for `wanted`:
/// their own debates, and any perspective, as perspectives are shared through the cache.
fn may_read(user: &User, wanted: RunKind, kind: RunKind, owner: i64) -> bool {
    kind == wanted && (kind == RunKind::Perspective || owner == user.id)
}

/// A run of this kind that this user may read; anything else is 404.
pub(crate) async fn readable(
    state: &AppState,
    user: &User,
    id: &str,
    kind: RunKind,
) -> Result<Run, ApiError> {
    match state.store.run(id).await? {
        Some(run) if may_read(user, kind, run.kind, run.user_id) => Ok(run),
        _ => Err(not_found(kind, id)),
    }
}

pub(crate) fn not_found(kind: RunKind, id: &str) -> ApiError {
    ApiError::NotFound(format!("no {} `{id}`", kind.as_str()))
}

/// Whether a run may still produce events (here or on another instance).
fn unfinished(run: &Run) -> bool {
    run.status.is_unfinished()
}

/// `GET /api/debates/{id}`
#[utoipa::path(get, path = "/api/debates/{id}", tag = "debates", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, description = "The transcript (docs/events.md), the room's votes and the share link", body = DebateBody), (status = 404, description = "Not found, or not mine", body = ErrorBody)))]
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

/// `GET /api/perspectives/{id}`: a user's own, or a cached one they were given.
#[utoipa::path(get, path = "/api/perspectives/{id}", tag = "perspectives", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, description = "The perspective", body = PerspectiveRecord), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn get_perspective(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<PerspectiveRecord>, ApiError> {
    let run = readable(&state, &user, &id, RunKind::Perspective).await?;
    Ok(Json(record_of(&run)?))
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
#[utoipa::path(get, path = "/api/debates/{id}/events", tag = "debates", params(("id" = String, Path), ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this event")), security(("bearer" = [])),
    responses((status = 200, description = "Server-Sent Events: turn_start, token, turn_end, turn_restart, verdict, error, done", content_type = "text/event-stream"), (status = 404, description = "Not found, or not mine", body = ErrorBody)))]
pub async fn debate_events(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    events(&state, &user, &id, RunKind::Debate, &headers).await
}

/// `GET /api/perspectives/{id}/events`
#[utoipa::path(get, path = "/api/perspectives/{id}/events", tag = "perspectives", params(("id" = String, Path), ("Last-Event-ID" = Option<i64>, Header)), security(("bearer" = [])),
    responses((status = 200, description = "Server-Sent Events: turn_start, token, turn_end, turn_restart, error, done", content_type = "text/event-stream"), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn perspective_events(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    events(&state, &user, &id, RunKind::Perspective, &headers).await
}

/// The events of a run this user may read, as SSE.
async fn events(
    state: &AppState,
    user: &User,
    id: &str,
    kind: RunKind,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    // A run executing here needs no trip to the database to be followed.
    let unfinished = match state.hub.owner(id) {
        Some(owner) if may_read(user, kind, owner.kind, owner.user_id) => true,
        Some(_) => return Err(not_found(kind, id)),
        None => unfinished(&readable(state, user, id, kind).await?),
    };
    stream(state, id, unfinished, headers).await
}

/// The run's events as SSE, after `Last-Event-ID` if given.
async fn stream(
    state: &AppState,
    run_id: &str,
    unfinished: bool,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let mut after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .unwrap_or(0);
    // Followers here hear events before they are stored. After a crash, a client may have
    // heard events the log never got (it goes on past a gap): it starts again from the first
    // event, told to drop what it has.
    let reset = after > 0
        && match state.hub.lost(run_id, after) {
            Some(lost) => lost,
            None => !state.store.has_event(run_id, after).await?,
        };
    if reset {
        after = 0;
    }
    let follower = Follower::start(&state.hub, run_id, after, unfinished).await?;
    let sse = Sse::new(sse_stream(follower, reset, state.metrics.clone()))
        .keep_alive(KeepAlive::default());
    // Proxies must not buffer a live stream.
    Ok((
        [("x-accel-buffering", "no"), ("cache-control", "no-cache")],
        sse,
    )
        .into_response())
}

/// The follower's events as SSE, after a `reset` (no id) when the client must start over.
fn sse_stream(
    follower: Follower,
    reset: bool,
    metrics: Arc<Metrics>,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    let open = StreamOpen::new(metrics);
    let reset = reset.then(|| Ok(SseEvent::default().event("reset").data("{}")));
    let events = futures::stream::unfold((follower, open), |(mut follower, open)| async move {
        let event = follower.next().await?;
        let sse = SseEvent::default()
            .id(event.seq.to_string())
            .event(event.name)
            .data(event.data);
        Some((Ok(sse), (follower, open)))
    });
    futures::stream::iter(reset).chain(events)
}

/// Counts a stream as open for as long as it lives (a client that goes away drops it).
struct StreamOpen(Arc<Metrics>);

impl StreamOpen {
    fn new(metrics: Arc<Metrics>) -> StreamOpen {
        metrics.stream_gauge(1);
        StreamOpen(metrics)
    }
}

impl Drop for StreamOpen {
    fn drop(&mut self) {
        self.0.stream_gauge(-1);
    }
}

/// Marks the runs this instance holds that are still unfinished past the shutdown grace
/// period as failed with reason `interrupted`, and ends their event logs.
pub async fn interrupt_unfinished(state: &AppState) -> Result<usize, StoreError> {
    let runs = state.store.unfinished_runs_of(&state.instance).await?;
    let count = runs.len();
    // Many at a time: their events then share commits, and a shutdown with thousands of
    // runs in flight does not wait for each in turn.
    let interrupted: Vec<Result<(), StoreError>> = futures::stream::iter(runs)
        .map(|run| {
            let state = state.clone();
            async move { interrupt(&state, &run).await }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    interrupted.into_iter().collect::<Result<(), _>>()?;
    Ok(count)
}

async fn interrupt(state: &AppState, run: &Run) -> Result<(), StoreError> {
    interrupt_for(state, run, "the service stopped before this finished").await
}

/// Ends a run nobody executes any more as `interrupted`, saying `why`.
pub(crate) async fn interrupt_for(
    state: &AppState,
    run: &Run,
    why: &str,
) -> Result<(), StoreError> {
    let reason = ErrorInfo {
        code: ErrorCode::Interrupted,
        message: why.into(),
    };
    // A run still executing here adds nothing more, and what it queued is stored first.
    let last = state.hub.seal(&run.id);
    // Its transcript keeps every turn its stream showed finished.
    let logged = match state.hub.events_of(&run.id) {
        Some(events) => events,
        None => state.store.events_after(&run.id, 0).await?,
    };
    let events = [
        Event::Error {
            code: reason.code,
            message: reason.message.clone(),
        },
        Event::Done {
            status: Status::Failed,
        },
    ];
    let finish = Finish {
        status: Status::Failed,
        result: interrupted_result(run, &reason, &finished_turns(&logged)),
        error: Some(reason),
        at: now_ms(),
    };
    live::end_log(&state.store, &run.id, last, &events, finish).await
}

/// A run's stored result, marked failed for `reason`. A result that cannot be read is kept
/// as it is: the row's status and error say what happened.
fn interrupted_result(run: &Run, reason: &ErrorInfo, turns: &[(u8, Turn)]) -> String {
    fn failed<R: Record>(run: &Run, reason: &ErrorInfo, turns: &[(u8, Turn)]) -> Option<String> {
        let mut record: R = record_of(run).ok()?;
        record.keep_turns(turns);
        let failed = Run {
            status: Status::Failed,
            error: Some(reason.clone()),
            ..run.clone()
        };
        record.set_state(&failed);
        serde_json::to_string(&record).ok()
    }
    let rewritten = match run.kind {
        RunKind::Debate => failed::<Transcript>(run, reason, turns),
        RunKind::Perspective => failed::<PerspectiveRecord>(run, reason, turns),
    };
    rewritten.unwrap_or_else(|| run.result.clone())
}
