//! The lint of the editors' files: every persona file as it is on disk now, and the set
//! live now with why the last edit did not go live.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::{Editor, off_runtime};
use crate::error::{ApiError, ErrorBody};
use crate::library::{LintProblem, Rejected};
use crate::state::AppState;
use crossfire_engine::persona::Persona;

/// A persona file that passed the lint.
#[derive(Serialize, ToSchema)]
pub struct LintedPersona {
    pub id: String,
    pub name: String,
    pub version: String,
}

#[derive(Serialize, ToSchema)]
pub struct Lint {
    pub ok: Vec<LintedPersona>,
    pub problems: Vec<LintProblem>,
}

/// Which set of the editors' files is live, and what the last refused set had wrong.
#[derive(Serialize, ToSchema)]
pub struct LiveLint {
    pub live: LiveSummary,
    /// The last set read since the live one went live and refused, with its problems.
    pub rejected: Option<Rejected>,
    /// Files left out of the live set when the service started.
    pub left_out: Vec<LintProblem>,
}

/// The set of stories, personas and templates serving now.
#[derive(Serialize, ToSchema)]
pub struct LiveSummary {
    /// A hash over every story, persona and template of the set.
    pub version: String,
    /// When it went live (RFC 3339).
    pub loaded_at: String,
    pub stories: usize,
    pub personas: usize,
    /// The templates' own version, as runs record it.
    pub templates: String,
}

/// `GET /api/editor/personas`: every persona file checked now, with its problems.
#[utoipa::path(get, path = "/api/editor/personas", tag = "editor", security(("bearer" = [])),
    responses((status = 200, description = "The personas that pass and every problem, located", body = Lint), (status = 403, description = "Editors only", body = ErrorBody)))]
pub async fn personas(
    State(state): State<AppState>,
    _editor: Editor,
) -> Result<Json<Lint>, ApiError> {
    let dir = state.library().personas_dir.clone();
    let (personas, problems) = off_runtime(move || {
        Persona::check_dir(&dir).map_err(|e| ApiError::Internal(e.to_string()))
    })
    .await?;
    let ok = personas
        .iter()
        .map(|p| LintedPersona {
            id: p.id.clone(),
            name: p.name.clone(),
            version: p.version.clone(),
        })
        .collect();
    let problems = problems.iter().map(LintProblem::from).collect();
    Ok(Json(Lint { ok, problems }))
}

/// `GET /api/editor/lint`: the set live now, and why the last edit did not go live.
#[utoipa::path(get, path = "/api/editor/lint", tag = "editor", security(("bearer" = [])),
    responses((status = 200, description = "The live set, and the problems of the last set refused", body = LiveLint), (status = 403, description = "Editors only", body = ErrorBody)))]
pub async fn live(State(state): State<AppState>, _editor: Editor) -> Json<LiveLint> {
    let set = state.set();
    Json(LiveLint {
        live: LiveSummary {
            version: set.version.clone(),
            loaded_at: set.loaded_at.clone(),
            stories: set.catalog.stories.len(),
            personas: set.catalog.personas.len(),
            templates: set.engine.prompts.version().to_string(),
        },
        rejected: state.live.rejected(),
        left_out: set.catalog.problems.clone(),
    })
}
