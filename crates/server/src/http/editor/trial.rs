//! Trial runs: a draft persona as it stands, in a perspective or a debate, streamed like any
//! run and kept out of readers' lists and the perspective cache.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::Editor;
use super::drafts::{Checked, check};
use super::library_file::{FileKind, LibraryFile};
use crate::error::{ApiError, ApiJson, ErrorBody};
use crate::runs::screening::screen_motion;
use crate::runs::{self, Accepted, Launch, RunSpec};
use crate::state::AppState;

/// A draft persona to try: in a perspective on `story`, or in a debate against `opponent`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Trial {
    /// The persona's id.
    name: String,
    text: String,
    story: String,
    #[serde(default)]
    opponent: Option<String>,
    #[serde(default)]
    motion: Option<String>,
}

/// `POST /api/editor/drafts/trial`: runs a draft persona as it stands, streamed like any
/// run and kept out of readers' lists and the perspective cache.
#[utoipa::path(post, path = "/api/editor/drafts/trial", tag = "editor", request_body = Trial, security(("bearer" = [])),
    responses((status = 202, description = "Accepted: the trial runs in the background", body = Accepted), (status = 403, description = "Editors only", body = ErrorBody), (status = 404, description = "Unknown story or opponent", body = ErrorBody), (status = 422, description = "The draft has problems", body = ErrorBody)))]
pub async fn trial(
    State(state): State<AppState>,
    Editor(user): Editor,
    ApiJson(body): ApiJson<Trial>,
) -> Result<Response, ApiError> {
    let file = LibraryFile::new(&state, FileKind::Persona, &body.name)?;
    let Ok(Checked::Persona(draft)) = check(&state, &file, &body.text).await? else {
        return Err(ApiError::Invalid(
            "the draft has problems: check it first".into(),
        ));
    };
    let set = state.set();
    let story = set.catalog.story(&body.story)?.clone();
    let spec = match &body.opponent {
        Some(opponent) => {
            let b = set.catalog.persona(opponent)?.clone();
            let motion = set
                .engine
                .check_debate(&story, &draft, &b, body.motion.as_deref())?;
            if body.motion.is_some() {
                screen_motion(&set.engine, &motion, user.id).await?;
            }
            RunSpec::Debate {
                story,
                a: draft,
                b,
                motion,
            }
        }
        None => {
            set.engine.check_persona(&draft)?;
            RunSpec::Perspective {
                story,
                persona: draft,
            }
        }
    };
    let launch = Launch {
        spec,
        engine: set.engine.clone(),
        user_id: user.id,
        cache_key: None,
        trial: true,
        per_day: None,
    };
    let accepted = runs::launch(&state, launch).await?;
    Ok((StatusCode::ACCEPTED, Json(accepted)).into_response())
}
