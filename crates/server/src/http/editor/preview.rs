//! What a debate would send: the six calls rendered from the files on disk, or from a
//! draft with the live set.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Editor, off_runtime};
use crate::error::{ApiError, ApiJson, ErrorBody};
use crate::state::AppState;
use crossfire_engine::id::LibraryId;
use crossfire_engine::persona::Persona;
use crossfire_engine::prompts::{PreviewCall, Prompts};
use crossfire_engine::story::Story;

/// The six calls of a debate as the templates render them now.
#[derive(Serialize, ToSchema)]
pub struct Preview {
    pub templates: String,
    pub motion: String,
    pub calls: Vec<PreviewCall>,
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

fn render_preview(
    paths: &crossfire_engine::config::Library,
    settings: &crossfire_engine::debate::Settings,
    body: &PreviewRequest,
) -> Result<Preview, ApiError> {
    let editor_error = |e: &dyn std::fmt::Display| ApiError::Invalid(e.to_string());
    // Ids only: `Story::load` also takes paths, which must not reach files outside the folder.
    let story_id = LibraryId::parse(&body.story)
        .map_err(|_| ApiError::NotFound(format!("unknown story `{}`", body.story)))?;
    let story =
        Story::load(&paths.stories_dir, story_id.as_str(), paths.story_max_bytes).map_err(|e| {
            match e {
                crossfire_engine::story::StoryError::NotFound { .. }
                | crossfire_engine::story::StoryError::BadReference(_) => {
                    ApiError::NotFound(e.to_string())
                }
                e => editor_error(&e),
            }
        })?;
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
