//! The audit log, for editors: every editor action, newest first, a page at a time.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Editor;
use crate::error::{ApiError, ApiQuery, ErrorBody};
use crate::state::AppState;
use crate::store::AuditEntry;

/// Entries a page holds unless asked for fewer.
const PAGE: u32 = 50;

/// A page of the audit log.
#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    /// Newest first.
    pub entries: Vec<AuditEntry>,
    /// The `before` of the next (older) page, when there is one.
    pub next_before: Option<i64>,
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct AuditQuery {
    /// Entries older than this `seq` (from the previous page's `next_before`).
    before: Option<i64>,
    /// Entries per page: 1 to 200, 50 by default.
    limit: Option<u32>,
}

/// `GET /api/editor/audit`: who did what, when.
#[utoipa::path(get, path = "/api/editor/audit", tag = "editor", params(AuditQuery), security(("bearer" = [])),
    responses((status = 200, description = "A page of the log, newest first", body = AuditPage), (status = 403, description = "Editors only", body = ErrorBody)))]
pub async fn log(
    State(state): State<AppState>,
    _editor: Editor,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    Ok(Json(page(&state, query.before, query.limit).await?))
}

/// A page of the log: `limit` entries older than `before`.
pub async fn page(
    state: &AppState,
    before: Option<i64>,
    limit: Option<u32>,
) -> Result<AuditPage, ApiError> {
    let limit = limit.unwrap_or(PAGE).clamp(1, 200);
    // One more than a page tells whether another follows.
    let mut entries = state.store.audit_log(before, i64::from(limit) + 1).await?;
    let more = entries.len() > limit as usize;
    entries.truncate(limit as usize);
    let next_before = more.then(|| entries.last().map(|e| e.seq)).flatten();
    Ok(AuditPage {
        entries,
        next_before,
    })
}
