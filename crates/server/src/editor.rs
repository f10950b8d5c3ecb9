//! Editors' tools: the lint status of the persona files as they are on disk now, and a
//! preview of the exact prompts a debate would send with the current files.

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use serde::Deserialize;

use super::AppState;
use super::auth::CurrentUser;
use super::bodies::{Lint, LintProblem, LintedPersona, LiveLint, LiveSummary, Preview};
use super::error::{ApiError, ApiJson, ErrorBody};
use crate::store::Role;
use crossfire_engine::fairness::Fairness;
use crossfire_engine::persona::Persona;
use crossfire_engine::prompts::Prompts;
use crossfire_engine::story::Story;
use crossfire_engine::transcript::Transcript;

/// A signed-in user with the editor role; others are answered 403.
pub struct Editor(pub crate::store::User);

impl FromRequestParts<AppState> for Editor {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let CurrentUser(user) = CurrentUser::from_request_parts(parts, state).await?;
        if user.role != Role::Editor {
            return Err(ApiError::Forbidden("editors only".to_string()));
        }
        Ok(Editor(user))
    }
}

/// `GET /api/editor/personas`: every persona file checked now, with its problems.
#[utoipa::path(get, path = "/api/editor/personas", tag = "editor", security(("bearer" = [])),
    responses((status = 200, description = "The personas that pass and every problem, located", body = Lint), (status = 403, description = "Editors only", body = ErrorBody)))]
pub async fn lint(State(state): State<AppState>, _editor: Editor) -> Result<Json<Lint>, ApiError> {
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
pub async fn live_lint(State(state): State<AppState>, _editor: Editor) -> Json<LiveLint> {
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
pub async fn fairness_figures(
    State(state): State<AppState>,
    _editor: Editor,
) -> Result<Json<Fairness>, ApiError> {
    Ok(Json(fairness(&state).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct PreviewRequest {
    story: String,
    a: String,
    b: String,
    #[serde(default)]
    motion: Option<String>,
}

/// `POST /api/editor/preview`: the six calls of a debate, rendered from the files on disk.
#[utoipa::path(post, path = "/api/editor/preview", tag = "editor", request_body = PreviewRequest, security(("bearer" = [])),
    responses((status = 200, description = "The six calls, rendered", body = Preview), (status = 403, description = "Editors only", body = ErrorBody), (status = 422, description = "A template or persona error, explained", body = ErrorBody)))]
pub async fn preview(
    State(state): State<AppState>,
    _editor: Editor,
    ApiJson(body): ApiJson<PreviewRequest>,
) -> Result<Json<Preview>, ApiError> {
    let settings = state.set().engine.settings;
    let library = state.library().clone();
    off_runtime(move || render_preview(&library, &settings, &body))
        .await
        .map(Json)
}

/// Reads the files and renders: file system work, done off the async runtime.
pub(crate) async fn off_runtime<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| ApiError::Internal("the editor task failed".to_string()))?
}

fn render_preview(
    paths: &crossfire_engine::config::Library,
    settings: &crossfire_engine::debate::Settings,
    body: &PreviewRequest,
) -> Result<Preview, ApiError> {
    let editor_error = |e: &dyn std::fmt::Display| ApiError::Invalid(e.to_string());
    // Ids only: `Story::load` also takes paths, which must not reach files outside the folder.
    if !crossfire_engine::is_valid_id(&body.story) {
        return Err(ApiError::NotFound(format!(
            "unknown story `{}`",
            body.story
        )));
    }
    let story = Story::load(&paths.stories_dir, &body.story, paths.story_max_bytes).map_err(
        |e| match e {
            crossfire_engine::story::StoryError::NotFound { .. }
            | crossfire_engine::story::StoryError::BadReference(_) => {
                ApiError::NotFound(e.to_string())
            }
            e => editor_error(&e),
        },
    )?;
    let load = |id: &str| {
        Persona::load(&paths.personas_dir, id).map_err(|e| match e {
            crossfire_engine::persona::PersonaError::NotFound { .. }
            | crossfire_engine::persona::PersonaError::BadId(_) => {
                ApiError::NotFound(e.to_string())
            }
            e => editor_error(&e),
        })
    };
    let (a, b) = (load(&body.a)?, load(&body.b)?);
    let motion = match &body.motion {
        Some(m) => crossfire_engine::motion::check_motion(m)?.to_string(),
        None => story.default_motion(),
    };
    let prompts = Prompts::load(&paths.prompts_dir).map_err(|e| editor_error(&e))?;
    let setup = settings.setup(&story, &a, &b, &motion);
    let calls = prompts.preview(&setup).map_err(|e| editor_error(&e))?;
    Ok(Preview {
        templates: prompts.version().to_string(),
        motion,
        calls,
    })
}
