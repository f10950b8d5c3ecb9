//! Perspectives: one figure's view of a story, cached by story, persona, templates and model
//! so readers asking the same thing share one.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::CurrentUser;
use crate::error::{ApiError, ApiJson, ApiQuery, ErrorBody};
use crate::runs::stream::{self, EventsQuery};
use crate::runs::{self, Accepted, Launch, RunSpec, readable, record_of};
use crate::state::AppState;
use crate::store::RunKind;
use crossfire_engine::transcript::PerspectiveRecord;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_perspective))
        .routes(routes!(get_perspective))
        .routes(routes!(perspective_events))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct NewPerspective {
    story: String,
    persona: String,
}

/// A perspective as `GET` and a cache hit answer it.
#[derive(Serialize, ToSchema)]
pub struct PerspectiveBody {
    #[serde(flatten)]
    pub record: PerspectiveRecord,
    /// Present (and `true`) when the answer came from the cache.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cached: Option<bool>,
}

/// `POST /api/perspectives`: the cached perspective (200) or a new one (202).
#[utoipa::path(post, path = "/api/perspectives", tag = "perspectives", request_body = NewPerspective, security(("bearer" = [])),
    responses((status = 200, description = "Cached: the perspective, `cached: true`", body = PerspectiveBody), (status = 202, description = "Accepted (`cached: false`): it runs in the background", body = Accepted), (status = 404, description = "Unknown story or persona", body = ErrorBody), (status = 429, description = "Daily quota reached", body = ErrorBody), (status = 503, description = "Today's model token budget is spent (code `budget_exhausted`, Retry-After: the next UTC day)", body = ErrorBody)))]
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
    let launch = Launch {
        spec: RunSpec::Perspective { story, persona },
        engine,
        user_id: user.id,
        cache_key: Some(key),
        trial: false,
        per_day: Some(state.config.perspectives_per_day),
    };
    let accepted = Accepted {
        cached: Some(false),
        ..runs::launch(&state, launch).await?
    };
    Ok((StatusCode::ACCEPTED, Json(accepted)).into_response())
}

/// `GET /api/perspectives/{id}`: a user's own, or a cached one they were given.
#[utoipa::path(get, path = "/api/perspectives/{id}", tag = "perspectives", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, description = "The perspective", body = PerspectiveRecord), (status = 404, description = "Not found", body = ErrorBody), (status = 410, description = "The editors removed it (code `removed`)", body = ErrorBody)))]
pub async fn get_perspective(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<PerspectiveRecord>, ApiError> {
    let run = readable(&state, &user, &id, RunKind::Perspective).await?;
    Ok(Json(record_of(&run)?))
}

/// `GET /api/perspectives/{id}/events`
#[utoipa::path(get, path = "/api/perspectives/{id}/events", tag = "perspectives", params(("id" = String, Path), ("Last-Event-ID" = Option<i64>, Header), EventsQuery), security(("bearer" = [])),
    responses((status = 200, description = "Server-Sent Events: turn_start, token, turn_end, turn_restart, error, done", content_type = "text/event-stream"), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn perspective_events(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<EventsQuery>,
) -> Result<Response, ApiError> {
    stream::events(&state, &user, &id, RunKind::Perspective, &headers, &query).await
}
