//! Editors' tools, all behind the editor role: the lint of their files on disk and live
//! ([`lint`]), a preview of the prompts a debate would send ([`preview`]), drafts checked
//! before saving ([`drafts`]), the files themselves with their history ([`files`]), trial
//! runs of a draft persona ([`trial`]), Character Card import ([`cards`]), persona probes
//! ([`probes`]), the judge's fairness figures ([`fairness`]), readers' reports
//! ([`reports`]) and the audit log of what editors did ([`audit`]).

pub mod audit;
pub mod cards;
pub mod drafts;
pub mod fairness;
pub mod files;
pub mod library_file;
pub mod lint;
pub mod preview;
pub mod probes;
pub mod reports;
pub mod trial;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::CurrentUser;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{Role, User};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(lint::personas))
        .routes(routes!(lint::live))
        .routes(routes!(fairness::figures))
        .routes(routes!(files::source, files::save))
        .routes(routes!(drafts::check_draft))
        .routes(routes!(trial::trial))
        .routes(routes!(cards::import_card))
        .routes(routes!(probes::run_probes, probes::latest_probes))
        .routes(routes!(preview::preview))
        .routes(routes!(reports::list))
        .routes(routes!(reports::resolve))
        .routes(routes!(audit::log))
}

/// A signed-in user with the editor role; others are answered 403.
pub struct Editor(pub User);

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

/// Reads the files and renders: file system work, done off the async runtime.
pub(crate) async fn off_runtime<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| ApiError::Internal("the editor task failed".to_string()))?
}
