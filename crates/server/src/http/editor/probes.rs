//! Persona probes: a live persona's probe set put to the model, its scorecard kept and
//! compared with the one before.

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use serde::Deserialize;

use super::{Editor, off_runtime};
use crate::error::{ApiError, ApiJson, ErrorBody};
use crate::state::AppState;
use crossfire_engine::id::LibraryId;

#[derive(Deserialize, utoipa::ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ProbeRequest {
    /// The story the probes ask about (default: the first story).
    #[serde(default)]
    story: Option<String>,
}

/// `POST /api/editor/probes/{id}`: puts a live persona's probe set to the model; the
/// scorecard is kept and compared with the one before (regressions first).
#[utoipa::path(post, path = "/api/editor/probes/{id}", tag = "editor", params(("id" = String, Path)), request_body = ProbeRequest, security(("bearer" = [])),
    responses((status = 200, description = "The scorecard, compared with the one before", body = crossfire_engine::probe::Scorecard), (status = 403, description = "Editors only", body = ErrorBody), (status = 404, description = "Unknown persona or story", body = ErrorBody), (status = 503, description = "The model failed", body = ErrorBody)))]
pub async fn run_probes(
    State(state): State<AppState>,
    _editor: Editor,
    UrlPath(id): UrlPath<String>,
    ApiJson(body): ApiJson<ProbeRequest>,
) -> Result<Json<crossfire_engine::probe::Scorecard>, ApiError> {
    let set = state.set();
    let persona = set.catalog.persona(&id)?.clone();
    let story = match &body.story {
        Some(story) => set.catalog.story(story)?.clone(),
        None => set
            .catalog
            .stories
            .values()
            .next()
            .cloned()
            .ok_or_else(|| ApiError::NotFound("there is no story to probe with".into()))?,
    };
    let card = set
        .engine
        .probe(&persona, &story)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let dir = state.library().personas_dir.clone();
    tokio::task::spawn_blocking(move || crossfire_engine::probe::record(&dir, card))
        .await
        .map_err(|_| ApiError::Internal("the probe task failed".into()))?
        .map(Json)
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// `GET /api/editor/probes/{id}`: the persona's latest scorecard.
#[utoipa::path(get, path = "/api/editor/probes/{id}", tag = "editor", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, description = "The latest scorecard", body = crossfire_engine::probe::Scorecard), (status = 403, description = "Editors only", body = ErrorBody), (status = 404, description = "No scorecard yet", body = ErrorBody)))]
pub async fn latest_probes(
    State(state): State<AppState>,
    _editor: Editor,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<crossfire_engine::probe::Scorecard>, ApiError> {
    let wanted =
        LibraryId::parse(&id).map_err(|_| ApiError::NotFound(format!("no persona `{id}`")))?;
    let dir = state.library().personas_dir.clone();
    off_runtime(move || Ok(crossfire_engine::probe::latest(&dir, &wanted)))
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no scorecard for `{id}` yet")))
}
