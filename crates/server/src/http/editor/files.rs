//! The editors' files themselves: a persona, template or policy file opened with its history
//! of saves, and saved (and in the audit log).
//!
//! A save writes a temporary file and renames it over the old one, so the live reload never
//! reads half a file; the version it replaces is kept under `.history/`, and the store records
//! who saved which version when.

use std::path::Path;

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use serde::{Deserialize, Serialize};

use super::drafts::check;
use super::library_file::{FileKind, LibraryFile, version_of};
use super::{Editor, off_runtime};
use crate::error::{ApiError, ApiJson, ErrorBody};
use crate::state::AppState;
use crate::store::Save;

/// An editor's file as saved, with its history of saves.
#[derive(Serialize, utoipa::ToSchema)]
pub struct FileSource {
    pub kind: FileKind,
    pub name: String,
    pub text: String,
    pub version: String,
    /// Newest first.
    pub saves: Vec<Save>,
}

/// `GET /api/editor/files/{kind}/{name}`: a persona or template to open in the editor.
#[utoipa::path(get, path = "/api/editor/files/{kind}/{name}", tag = "editor", params(("kind" = FileKind, Path), ("name" = String, Path, description = "A persona id, or a template's file name such as `opening.j2`")), security(("bearer" = [])),
    responses((status = 200, description = "The file as saved, and who saved it when", body = FileSource), (status = 403, description = "Editors only", body = ErrorBody), (status = 404, description = "No such file", body = ErrorBody)))]
pub async fn source(
    State(state): State<AppState>,
    _editor: Editor,
    UrlPath((kind, name)): UrlPath<(FileKind, String)>,
) -> Result<Json<FileSource>, ApiError> {
    let file = LibraryFile::new(&state, kind, &name)?;
    let reading = file.clone();
    let text = off_runtime(move || reading.read())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no {} named `{name}`", kind.as_str())))?;
    let saves = state.store.saves(kind.as_str(), &name).await?;
    Ok(Json(FileSource {
        kind,
        name,
        version: version_of(&text),
        text,
        saves,
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SaveFile {
    text: String,
    /// The version the draft was opened at: if the file changed since, the save is refused
    /// (409) rather than overwrite another editor's work.
    #[serde(default)]
    base_version: Option<String>,
}

/// A save, done.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Saved {
    pub version: String,
    pub previous_version: Option<String>,
}

/// `PUT /api/editor/files/{kind}/{name}`: saves a draft that has no problems; the live
/// reload then serves it.
#[utoipa::path(put, path = "/api/editor/files/{kind}/{name}", tag = "editor", params(("kind" = FileKind, Path), ("name" = String, Path)), request_body = SaveFile, security(("bearer" = [])),
    responses((status = 200, description = "Saved; the previous version is kept", body = Saved), (status = 403, description = "Editors only", body = ErrorBody), (status = 409, description = "The file changed since the draft was opened", body = ErrorBody), (status = 422, description = "The draft has problems", body = ErrorBody)))]
pub async fn save(
    State(state): State<AppState>,
    Editor(user): Editor,
    UrlPath((kind, name)): UrlPath<(FileKind, String)>,
    ApiJson(body): ApiJson<SaveFile>,
) -> Result<Json<Saved>, ApiError> {
    let file = LibraryFile::new(&state, kind, &name)?;
    if let Err(problems) = check(&state, &file, &body.text).await? {
        let texts: Vec<&str> = problems.iter().map(|p| p.text.as_str()).collect();
        return Err(ApiError::Invalid(format!(
            "the draft has problems: {}",
            texts.join("; ")
        )));
    }
    let reading = file.clone();
    let previous = off_runtime(move || reading.read()).await?;
    let previous_version = previous.as_deref().map(version_of);
    if let Some(base) = &body.base_version
        && previous_version.as_ref() != Some(base)
    {
        return Err(ApiError::Conflict(format!(
            "`{name}` changed since the draft was opened: open it again"
        )));
    }
    let version = version_of(&body.text);
    let path = file.path.clone();
    let text = body.text;
    tokio::task::spawn_blocking(move || write_keeping(&path, previous.as_deref(), &text))
        .await
        .map_err(|_| ApiError::Internal("the save task failed".into()))?
        .map_err(|e| ApiError::Internal(format!("{}: {e}", file.path.display())))?;
    state
        .store
        .record_save(
            kind.as_str(),
            &name,
            &version,
            previous_version.as_deref(),
            &user,
            kind.saved(),
        )
        .await?;
    tracing::info!(
        editor = user.id,
        "saved {} `{name}` version {}",
        kind.as_str(),
        &version[..12]
    );
    Ok(Json(Saved {
        version,
        previous_version,
    }))
}

/// Keeps the previous text under `.history/`, then writes the new one atomically.
fn write_keeping(path: &Path, previous: Option<&str>, text: &str) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some(previous) = previous {
        let history = dir.join(".history");
        std::fs::create_dir_all(&history)?;
        let kept = history.join(format!("{file_name}.{}", &version_of(previous)[..12]));
        std::fs::write(kept, previous)?;
    }
    let temporary = dir.join(format!(
        ".{file_name}.{}.tmp",
        crossfire_engine::transcript::new_id()
    ));
    std::fs::write(&temporary, text)?;
    std::fs::rename(&temporary, path)
}
