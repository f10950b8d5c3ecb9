//! Sharing a finished debate by link, and downloading it as Markdown or as its transcript.
//!
//! A share link carries a random token: anyone with it reads a read-only replay, anyone
//! without it still gets 404, and the owner can stop sharing at any time.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::CurrentUser;
use super::votes::{self, VoteTally};
use crate::error::{ApiError, ApiQuery, ErrorBody};
use crate::runs::{readable, record_of, still_up};
use crate::state::AppState;
use crate::store::{Run, RunKind};
use crossfire_engine::transcript::Transcript;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(share, unshare))
        .routes(routes!(export))
        .routes(routes!(shared))
        .routes(routes!(export_shared))
}

/// A shared debate, as anyone with its link reads it.
#[derive(Serialize, ToSchema)]
pub struct SharedDebate {
    #[serde(flatten)]
    pub transcript: Transcript,
    pub votes: VoteTally,
    pub story_title: String,
}

/// A shared debate's link.
#[derive(Serialize, ToSchema)]
pub struct Share {
    /// The replay page's path: anyone with it may read the debate.
    pub url: String,
}

/// The replay page's path for a share token.
pub fn link(token: &str) -> String {
    format!("/shared/{token}")
}

/// `POST /api/debates/{id}/share`: the link (the same one while it stays shared).
#[utoipa::path(post, path = "/api/debates/{id}/share", tag = "debates", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, description = "Shared: anyone with the link may read it", body = Share), (status = 404, description = "Not found, or not mine", body = ErrorBody), (status = 409, description = "Still running", body = ErrorBody), (status = 410, description = "The editors removed it (code `removed`)", body = ErrorBody)))]
pub async fn share(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<Share>, ApiError> {
    let run = readable(&state, &user, &id, RunKind::Debate).await?;
    if run.status.is_unfinished() {
        return Err(ApiError::Conflict(
            "a debate can be shared once it has finished".into(),
        ));
    }
    let token = match run.share_token {
        Some(token) => token,
        None => {
            let token = hex::encode(rand::random::<[u8; 16]>());
            state.store.set_share_token(&run.id, Some(&token)).await?;
            token
        }
    };
    Ok(Json(Share { url: link(&token) }))
}

/// `DELETE /api/debates/{id}/share`: the link stops working.
#[utoipa::path(delete, path = "/api/debates/{id}/share", tag = "debates", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 204, description = "No longer shared"), (status = 404, description = "Not found, or not mine", body = ErrorBody)))]
pub async fn unshare(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let run = readable(&state, &user, &id, RunKind::Debate).await?;
    state.store.set_share_token(&run.id, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The debate a share token names, taken down or not.
pub async fn shared_debate(state: &AppState, token: &str) -> Result<Option<Run>, ApiError> {
    let run = state.store.shared_run(token).await?;
    Ok(run.filter(|run| run.kind == RunKind::Debate))
}

/// A shared debate's run, by its token: 404 if none, 410 once editors took it down.
pub async fn shared_run(state: &AppState, token: &str) -> Result<Run, ApiError> {
    let run = shared_debate(state, token)
        .await?
        .ok_or_else(|| ApiError::NotFound("no shared debate at this link".into()))?;
    still_up(&run, None)?;
    Ok(run)
}

/// `GET /api/shared/{token}`: a shared debate, for anyone with its link.
#[utoipa::path(get, path = "/api/shared/{token}", tag = "debates", params(("token" = String, Path)),
    responses((status = 200, description = "The shared debate", body = SharedDebate), (status = 404, description = "No debate is shared at this link", body = ErrorBody), (status = 410, description = "The editors removed it (code `removed`)", body = ErrorBody)))]
pub async fn shared(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Json<SharedDebate>, ApiError> {
    let run = shared_run(&state, &token).await?;
    let transcript: Transcript = record_of(&run)?;
    let votes = votes::tally(&state, &run, &transcript, None).await?;
    Ok(Json(SharedDebate {
        story_title: story_title(&state, &transcript.story),
        transcript,
        votes,
    }))
}

/// A story's title, or its id when it is no longer in the catalog.
pub fn story_title(state: &AppState, story: &str) -> String {
    state
        .set()
        .catalog
        .stories
        .get(story)
        .map_or_else(|| story.to_string(), |story| story.title.clone())
}

/// The formats a debate downloads as.
#[derive(Debug, Clone, Copy, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    #[default]
    Md,
    Json,
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ExportQuery {
    /// `md` (the default) or `json`.
    format: Option<ExportFormat>,
}

/// `GET /api/debates/{id}/export`: my debate as a file.
#[utoipa::path(get, path = "/api/debates/{id}/export", tag = "debates", params(("id" = String, Path), ExportQuery), security(("bearer" = [])),
    responses((status = 200, description = "The debate as Markdown (text/markdown) or its transcript (application/json), as an attachment"), (status = 404, description = "Not found, or not mine", body = ErrorBody), (status = 410, description = "The editors removed it (code `removed`)", body = ErrorBody)))]
pub async fn export(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<ExportQuery>,
) -> Result<Response, ApiError> {
    let run = readable(&state, &user, &id, RunKind::Debate).await?;
    download(&state, &run, query.format.unwrap_or_default())
}

/// `GET /api/shared/{token}/export`: a shared debate as a file.
#[utoipa::path(get, path = "/api/shared/{token}/export", tag = "debates", params(("token" = String, Path), ExportQuery),
    responses((status = 200, description = "The debate as Markdown or its transcript, as an attachment"), (status = 404, description = "No debate is shared at this link", body = ErrorBody), (status = 410, description = "The editors removed it (code `removed`)", body = ErrorBody)))]
pub async fn export_shared(
    State(state): State<AppState>,
    Path(token): Path<String>,
    ApiQuery(query): ApiQuery<ExportQuery>,
) -> Result<Response, ApiError> {
    let run = shared_run(&state, &token).await?;
    download(&state, &run, query.format.unwrap_or_default())
}

fn download(state: &AppState, run: &Run, format: ExportFormat) -> Result<Response, ApiError> {
    let transcript: Transcript = record_of(run)?;
    let (kind, extension, body) = match format {
        ExportFormat::Md => (
            "text/markdown; charset=utf-8",
            "md",
            crossfire_engine::markdown::debate(&transcript, &story_title(state, &transcript.story)),
        ),
        ExportFormat::Json => (
            "application/json",
            "json",
            serde_json::to_string_pretty(&transcript)
                .map_err(|e| ApiError::Internal(format!("cannot encode: {e}")))?,
        ),
    };
    // The id is hex, so the file name needs no quoting beyond the quotes.
    let disposition = format!("attachment; filename=\"debate-{}.{extension}\"", run.id);
    Ok((
        [
            (header::CONTENT_TYPE, kind.to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}
