//! The catalog's routes: the stories and personas live now, read-only.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crossfire_engine::persona::{Persona, PersonaKind};
use crossfire_engine::story::Story;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(stories))
        .routes(routes!(story))
        .routes(routes!(personas))
        .routes(routes!(persona))
}

/// One story in the catalog's list.
#[derive(Serialize, ToSchema)]
pub struct StorySummary {
    pub id: String,
    pub title: String,
    pub dek: Option<String>,
    pub updated: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct StoryList {
    pub stories: Vec<StorySummary>,
}

/// One persona in the catalog's list.
#[derive(Serialize, ToSchema)]
pub struct PersonaSummary {
    pub id: String,
    pub name: String,
    pub kind: PersonaKind,
    pub lived: Option<String>,
    pub role: String,
    pub tags: Vec<String>,
    pub version: String,
}

#[derive(Serialize, ToSchema)]
pub struct PersonaList {
    pub personas: Vec<PersonaSummary>,
}

/// `GET /api/stories`
#[utoipa::path(get, path = "/api/stories", tag = "catalog", responses((status = 200, description = "Every story, by id", body = StoryList)))]
pub async fn stories(State(state): State<AppState>) -> Json<StoryList> {
    let stories = state
        .set()
        .catalog
        .stories
        .values()
        .map(|s| StorySummary {
            id: s.id.clone(),
            title: s.title.clone(),
            dek: s.dek.clone(),
            updated: s.updated.clone(),
        })
        .collect();
    Json(StoryList { stories })
}

/// `GET /api/stories/{id}`
#[utoipa::path(get, path = "/api/stories/{id}", tag = "catalog", params(("id" = String, Path)),
    responses((status = 200, description = "The story (docs/files.md)", body = Story), (status = 404, description = "Unknown story", body = ErrorBody)))]
pub async fn story(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Story>, ApiError> {
    Ok(Json(state.set().catalog.story(&id)?.clone()))
}

/// `GET /api/personas`
#[utoipa::path(get, path = "/api/personas", tag = "catalog", responses((status = 200, description = "Every persona, by id", body = PersonaList)))]
pub async fn personas(State(state): State<AppState>) -> Json<PersonaList> {
    let personas = state
        .set()
        .catalog
        .personas
        .values()
        .map(|p| PersonaSummary {
            id: p.id.clone(),
            name: p.name.clone(),
            kind: p.kind,
            lived: p.lived.clone(),
            role: p.role.clone(),
            tags: p.tags.clone(),
            version: p.version.clone(),
        })
        .collect();
    Json(PersonaList { personas })
}

/// `GET /api/personas/{id}`
#[utoipa::path(get, path = "/api/personas/{id}", tag = "catalog", params(("id" = String, Path)),
    responses((status = 200, description = "The persona (docs/files.md) with its version", body = Persona), (status = 404, description = "Unknown persona", body = ErrorBody)))]
pub async fn persona(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Persona>, ApiError> {
    Ok(Json(state.set().catalog.persona(&id)?.clone()))
}
