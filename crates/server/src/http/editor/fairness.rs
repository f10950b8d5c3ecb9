//! The judge's fairness figures over the latest judged debates: for editors, and for
//! `/metrics`.

use axum::Json;
use axum::extract::State;

use super::Editor;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crossfire_engine::fairness::Fairness;
use crossfire_engine::transcript::Transcript;

/// How many of the latest judged debates the fairness figures cover.
const FAIRNESS_WINDOW: i64 = 1000;

/// The judge's fairness figures over the latest judged debates.
pub async fn fairness(state: &AppState) -> Result<Fairness, ApiError> {
    let results = state.store.judged_debates(FAIRNESS_WINDOW).await?;
    let transcripts: Vec<Transcript> = results
        .iter()
        .filter_map(|r| serde_json::from_str(r).ok())
        .collect();
    Ok(Fairness::of(&transcripts))
}

/// `GET /api/editor/fairness`: swap agreement, first-position and side-A win rates, and each
/// persona's record, over the latest 1,000 judged debates.
#[utoipa::path(get, path = "/api/editor/fairness", tag = "editor", security(("bearer" = [])),
    responses((status = 200, description = "The judge's fairness figures", body = Fairness), (status = 403, description = "Editors only", body = ErrorBody)))]
pub async fn figures(
    State(state): State<AppState>,
    _editor: Editor,
) -> Result<Json<Fairness>, ApiError> {
    Ok(Json(fairness(&state).await?))
}
