//! Readers' reports: anyone who can read a debate or perspective may report it to the
//! editors, with a reason and an optional note. A shared link's visitors report through the
//! link, limited per address; reporting twice counts once.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{CurrentUser, MaybeUser, client_ip};
use super::sharing::shared_run;
use crate::error::{ApiError, ApiJson, ErrorBody};
use crate::runs::readable;
use crate::state::AppState;
use crate::store::{ReportReason, Run, RunKind};

/// The longest note a report or an editor's decision may carry, in characters.
const MAX_NOTE: usize = 1000;

/// A reader's or editor's note, trimmed (none if empty); longer than [`MAX_NOTE`]: 422.
pub(super) fn checked_note(note: Option<String>) -> Result<Option<String>, ApiError> {
    let note = note.map(|n| n.trim().to_string()).filter(|n| !n.is_empty());
    if note.as_ref().is_some_and(|n| n.chars().count() > MAX_NOTE) {
        return Err(ApiError::Invalid(format!(
            "a note may be at most {MAX_NOTE} characters long"
        )));
    }
    Ok(note)
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(report_debate))
        .routes(routes!(report_perspective))
        .routes(routes!(report_shared))
}

/// A reader's report.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReport {
    pub reason: ReportReason,
    /// What the reader wants the editors to know: at most 1,000 characters.
    #[serde(default)]
    pub note: Option<String>,
}

/// A report, received.
#[derive(Serialize, ToSchema)]
pub struct ReportReceipt {
    /// Always true: the editors will see it.
    pub received: bool,
    /// False when this reader had already reported it (it counts once).
    pub counted: bool,
}

/// `POST /api/debates/{id}/reports`: my debate, reported to the editors.
#[utoipa::path(post, path = "/api/debates/{id}/reports", tag = "reports", params(("id" = String, Path)), request_body = NewReport, security(("bearer" = [])),
    responses((status = 201, description = "Reported", body = ReportReceipt), (status = 200, description = "Already reported by me: counted once", body = ReportReceipt), (status = 404, description = "Not found, or not mine", body = ErrorBody), (status = 410, description = "Already removed by the editors", body = ErrorBody), (status = 422, description = "Unknown reason, or a note over 1,000 characters", body = ErrorBody), (status = 429, description = "Too many reports (Retry-After)", body = ErrorBody)))]
pub async fn report_debate(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NewReport>,
) -> Result<Response, ApiError> {
    let run = readable(&state, &user, &id, RunKind::Debate).await?;
    let reporter = format!("user:{}", user.id);
    file(&state, &run, &reporter, reporter.clone(), body).await
}

/// `POST /api/perspectives/{id}/reports`: a perspective, reported to the editors.
#[utoipa::path(post, path = "/api/perspectives/{id}/reports", tag = "reports", params(("id" = String, Path)), request_body = NewReport, security(("bearer" = [])),
    responses((status = 201, description = "Reported", body = ReportReceipt), (status = 200, description = "Already reported by me: counted once", body = ReportReceipt), (status = 404, description = "No such perspective", body = ErrorBody), (status = 410, description = "Already removed by the editors", body = ErrorBody), (status = 422, description = "Unknown reason, or a note over 1,000 characters", body = ErrorBody), (status = 429, description = "Too many reports (Retry-After)", body = ErrorBody)))]
pub async fn report_perspective(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NewReport>,
) -> Result<Response, ApiError> {
    let run = readable(&state, &user, &id, RunKind::Perspective).await?;
    let reporter = format!("user:{}", user.id);
    file(&state, &run, &reporter, reporter.clone(), body).await
}

/// `POST /api/shared/{token}/reports`: a shared debate, reported by anyone with the link.
#[utoipa::path(post, path = "/api/shared/{token}/reports", tag = "reports", params(("token" = String, Path)), request_body = NewReport,
    responses((status = 201, description = "Reported", body = ReportReceipt), (status = 200, description = "Already reported from here: counted once", body = ReportReceipt), (status = 404, description = "No debate is shared at this link", body = ErrorBody), (status = 410, description = "Already removed by the editors", body = ErrorBody), (status = 422, description = "Unknown reason, or a note over 1,000 characters", body = ErrorBody), (status = 429, description = "Too many reports from this address (Retry-After)", body = ErrorBody)))]
pub async fn report_shared(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(token): Path<String>,
    ApiJson(body): ApiJson<NewReport>,
) -> Result<Response, ApiError> {
    let run = shared_run(&state, &token).await?;
    // Limited per address; a signed-in reader counts once as themselves, anyone else as
    // their address, kept hashed.
    let ip = client_ip(&headers, peer, state.config.client_ip_header.as_deref());
    let address = format!(
        "address:{}",
        &crossfire_engine::sha256_hex(ip.to_string().as_bytes())[..32]
    );
    let reporter = match &user {
        Some(user) => format!("user:{}", user.id),
        None => address.clone(),
    };
    file(&state, &run, &reporter, address, body).await
}

/// Checks and stores a report of `run` by `reporter`, counted against `limited` (a reader,
/// or an address).
async fn file(
    state: &AppState,
    run: &Run,
    reporter: &str,
    limited: String,
    body: NewReport,
) -> Result<Response, ApiError> {
    let note = checked_note(body.note)?;
    state.report_limiter.check(&[limited])?;
    let counted = state
        .store
        .report(&run.id, reporter, body.reason, note.as_deref())
        .await?;
    if counted {
        tracing::info!(run = %run.id, reason = %body.reason, "reported");
    }
    let status = if counted {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let receipt = ReportReceipt {
        received: true,
        counted,
    };
    Ok((status, Json(receipt)).into_response())
}
