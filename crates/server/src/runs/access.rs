//! Who may read a run: its owner reads their debates; any signed-in reader reads a
//! perspective, as perspectives are shared through the cache. Anything else is 404, so a
//! run's existence is not given away. A run editors took down is 410 to everyone; its owner
//! is told the editors' note.

use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{Run, RunKind, User};

/// Whether a user may read a run of `kind` (owned by `owner`) at an address for `wanted`.
pub fn may_read(user: &User, wanted: RunKind, kind: RunKind, owner: i64) -> bool {
    kind == wanted && (kind == RunKind::Perspective || owner == user.id)
}

/// A run of this kind that this user may read and editors have not taken down; anything
/// else is 404, or 410 once taken down.
pub async fn readable(
    state: &AppState,
    user: &User,
    id: &str,
    kind: RunKind,
) -> Result<Run, ApiError> {
    match state.store.run(id).await? {
        Some(run) if may_read(user, kind, run.kind, run.user_id) => {
            still_up(&run, Some(user))?;
            Ok(run)
        }
        _ => Err(not_found(kind, id)),
    }
}

/// Fails with 410 `removed` if editors took the run down: its owner hears why, anyone else
/// only that it was.
pub fn still_up(run: &Run, reader: Option<&User>) -> Result<(), ApiError> {
    let Some(removal) = &run.removed else {
        return Ok(());
    };
    let what = run.kind.as_str();
    let owner = reader.is_some_and(|u| u.id == run.user_id);
    Err(ApiError::Removed(match (&removal.note, owner) {
        (Some(note), true) if !note.trim().is_empty() => {
            format!("the editors removed this {what}: {}", note.trim())
        }
        _ => format!("the editors removed this {what}"),
    }))
}

pub fn not_found(kind: RunKind, id: &str) -> ApiError {
    ApiError::NotFound(format!("no {} `{id}`", kind.as_str()))
}
