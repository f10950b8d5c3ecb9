//! Stories and personas, loaded once at start-up and served read-only.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};

use super::AppState;
use super::bodies::{LintProblem, PersonaList, PersonaSummary, StoryList, StorySummary};
use super::error::{ApiError, ErrorBody};
use crossfire_engine::config::Library;
use crossfire_engine::persona::Persona;
use crossfire_engine::story::Story;

/// The validated stories and personas of this instance.
pub struct Catalog {
    pub stories: BTreeMap<String, Story>,
    pub personas: BTreeMap<String, Persona>,
    /// Problems of files left out, located, for editors.
    pub problems: Vec<LintProblem>,
}

impl Catalog {
    /// Loads the configured folders; bad files are left out and their problems kept.
    pub fn load(library: &Library) -> Result<Catalog, String> {
        let mut problems = Vec::new();
        let mut stories = BTreeMap::new();
        let loaded = Story::load_dir(&library.stories_dir, library.story_max_bytes)
            .map_err(|e| e.to_string())?;
        for story in loaded {
            match story {
                Ok(s) => {
                    stories.insert(s.id.clone(), s);
                }
                Err(e) => problems.push(LintProblem::from(&e)),
            }
        }
        let (found, persona_problems) =
            Persona::check_dir(&library.personas_dir).map_err(|e| e.to_string())?;
        problems.extend(persona_problems.iter().map(LintProblem::from));
        let personas = found.into_iter().map(|p| (p.id.clone(), p)).collect();
        Ok(Catalog {
            stories,
            personas,
            problems,
        })
    }

    pub fn story(&self, id: &str) -> Result<&Story, ApiError> {
        self.stories
            .get(id)
            .ok_or_else(|| ApiError::NotFound(format!("unknown story `{id}`")))
    }

    pub fn persona(&self, id: &str) -> Result<&Persona, ApiError> {
        self.personas
            .get(id)
            .ok_or_else(|| ApiError::NotFound(format!("unknown persona `{id}`")))
    }
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
