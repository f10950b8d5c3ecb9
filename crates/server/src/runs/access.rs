//! Who may read a run: its owner reads their debates; any signed-in reader reads a
//! perspective, as perspectives are shared through the cache. Anything else is 404, so a
//! run's existence is not given away.

use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{Run, RunKind, User};

/// Whether a user may read a run of `kind` (owned by `owner`) at an address for `wanted`.
pub fn may_read(user: &User, wanted: RunKind, kind: RunKind, owner: i64) -> bool {
    kind == wanted && (kind == RunKind::Perspective || owner == user.id)
}

/// A run of this kind that this user may read; anything else is 404.
pub async fn readable(
    state: &AppState,
    user: &User,
    id: &str,
    kind: RunKind,
) -> Result<Run, ApiError> {
    match state.store.run(id).await? {
        Some(run) if may_read(user, kind, run.kind, run.user_id) => Ok(run),
        _ => Err(not_found(kind, id)),
    }
}

pub fn not_found(kind: RunKind, id: &str) -> ApiError {
    ApiError::NotFound(format!("no {} `{id}`", kind.as_str()))
}
