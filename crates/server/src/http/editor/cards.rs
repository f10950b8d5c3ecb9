//! Character Cards (JSON, PNG or CHARX) imported as persona drafts, with a report of every
//! card field that had no home.

use axum::Json;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::Editor;
use crate::error::{ApiError, ApiQuery, ErrorBody};
use crossfire_engine::id::LibraryId;

#[derive(Deserialize, utoipa::IntoParams)]
pub struct CardQuery {
    /// The persona's id (default: made from the card's name).
    id: Option<String>,
}

/// A Character Card, imported as a draft persona (not saved).
#[derive(Serialize, utoipa::ToSchema)]
pub struct ImportedCard {
    pub id: String,
    /// `chara_card_v1`, `chara_card_v2` or `chara_card_v3`.
    pub spec: String,
    /// The persona file: open it as a draft, then save it.
    pub toml: String,
    /// Every card field that had no home, or was read only in part.
    pub report: Vec<String>,
}

/// `POST /api/editor/cards`: a Character Card (JSON, PNG or CHARX, as the request body)
/// mapped onto a persona draft, with a report of what had no home.
#[utoipa::path(post, path = "/api/editor/cards", tag = "editor", params(CardQuery), request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The card file, up to 8 MiB"), security(("bearer" = [])),
    responses((status = 200, description = "The persona draft and the report", body = ImportedCard), (status = 403, description = "Editors only", body = ErrorBody), (status = 413, description = "Over 8 MiB", body = ErrorBody), (status = 422, description = "Not a card", body = ErrorBody)))]
pub async fn import_card(
    _editor: Editor,
    ApiQuery(query): ApiQuery<CardQuery>,
    request: axum::extract::Request,
) -> Result<Json<ImportedCard>, ApiError> {
    let limit = crossfire_engine::card::MAX_CARD_BYTES;
    let bytes = axum::body::to_bytes(request.into_body(), limit)
        .await
        .map_err(|_| ApiError::BadBody {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: crate::error::ErrorCode::TooLarge,
            message: format!("a card may be up to {limit} bytes"),
        })?;
    if let Some(id) = &query.id
        && LibraryId::parse(id).is_err()
    {
        return Err(ApiError::Invalid(format!(
            "`{id}` is not a persona id ([a-z0-9-]{{1,64}})"
        )));
    }
    let imported = tokio::task::spawn_blocking(move || {
        crossfire_engine::card::import(&bytes, query.id.as_deref())
    })
    .await
    .map_err(|_| ApiError::Internal("the import task failed".into()))?
    .map_err(|e| ApiError::Invalid(e.to_string()))?;
    Ok(Json(ImportedCard {
        id: imported.persona.id,
        spec: imported.spec,
        toml: imported.toml,
        report: imported.report,
    }))
}
