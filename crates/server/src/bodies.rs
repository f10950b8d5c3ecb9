//! The bodies the API answers with, as types: handlers build them, and the OpenAPI document
//! describes them (docs/http-api.md).

use serde::Serialize;
use utoipa::ToSchema;

use crate::store::User;
use crossfire_engine::persona::PersonaKind;
use crossfire_engine::prompts::PreviewCall;
use crossfire_engine::transcript::{PersonaRef, PerspectiveRecord, Sides, Status};

/// A new session: its token (also set as a cookie) and who it is for.
#[derive(Serialize, ToSchema)]
pub struct Session {
    pub token: String,
    pub user: User,
}

/// `{"status": "ok"}` from `/healthz`.
#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
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

/// A run accepted: it runs in the background; follow `events`.
#[derive(Serialize, ToSchema)]
pub struct Accepted {
    pub id: String,
    pub status: Status,
    /// The event stream's path.
    pub events: String,
    /// Perspectives only: `false` (a cached one is answered whole, with `cached: true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cached: Option<bool>,
}

/// A perspective as `GET` and a cache hit answer it.
#[derive(Serialize, ToSchema)]
pub struct PerspectiveBody {
    #[serde(flatten)]
    pub record: PerspectiveRecord,
    /// Present (and `true`) when the answer came from the cache.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cached: Option<bool>,
}

/// One of a reader's debates, as listed.
#[derive(Serialize, ToSchema)]
pub struct DebateSummary {
    pub id: String,
    pub status: Status,
    pub story: String,
    pub motion: String,
    pub personas: Sides<PersonaRef>,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
}

#[derive(Serialize, ToSchema)]
pub struct DebateList {
    pub debates: Vec<DebateSummary>,
}

/// A persona file that passed the lint.
#[derive(Serialize, ToSchema)]
pub struct LintedPersona {
    pub id: String,
    pub name: String,
    pub version: String,
}

/// A problem in a persona file, located.
#[derive(Serialize, ToSchema)]
pub struct LintProblem {
    pub file: Option<String>,
    pub line: usize,
    pub column: usize,
    pub message: String,
    /// `file:line:col: message`.
    pub text: String,
}

#[derive(Serialize, ToSchema)]
pub struct Lint {
    pub ok: Vec<LintedPersona>,
    pub problems: Vec<LintProblem>,
}

/// The six calls of a debate as the templates render them now.
#[derive(Serialize, ToSchema)]
pub struct Preview {
    pub templates: String,
    pub motion: String,
    pub calls: Vec<PreviewCall>,
}
