//! The bodies the API answers with, as types: handlers build them, and the OpenAPI document
//! describes them (docs/http-api.md).

use serde::Serialize;
use utoipa::ToSchema;

use crate::store::{User, VoteChoice, VotePhase};
use crossfire_engine::persona::PersonaKind;
use crossfire_engine::prompts::PreviewCall;
use crossfire_engine::transcript::{
    PersonaRef, PerspectiveRecord, Sides, Status, Transcript, Winner,
};

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
    /// The verdict's winner, once there is one.
    pub winner: Option<Winner>,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
}

/// A page of a reader's debates.
#[derive(Serialize, ToSchema)]
pub struct DebateList {
    pub debates: Vec<DebateSummary>,
    /// This page's number, from 1.
    pub page: u32,
    /// The next page's number, when there are more.
    pub next_page: Option<u32>,
}

/// A debate as its reader sees it: the transcript, the room's votes and its share link.
#[derive(Serialize, ToSchema)]
pub struct DebateBody {
    #[serde(flatten)]
    pub transcript: Transcript,
    pub votes: VoteTally,
    /// The public replay's path while the owner shares the debate.
    pub share: Option<String>,
    /// An editor's trial of a draft persona.
    pub trial: bool,
}

/// A shared debate, as anyone with its link reads it.
#[derive(Serialize, ToSchema)]
pub struct SharedDebate {
    #[serde(flatten)]
    pub transcript: Transcript,
    pub votes: VoteTally,
    pub story_title: String,
}

/// How many readers chose each side in one phase.
#[derive(Serialize, ToSchema, Default, Clone, Copy, PartialEq, Debug)]
pub struct VoteCounts {
    pub a: u32,
    pub b: u32,
    pub undecided: u32,
}

/// The room's votes on the motion, before and after the verdict.
#[derive(Serialize, ToSchema)]
pub struct VoteTally {
    pub before: VoteCounts,
    pub after: VoteCounts,
    /// The phase readers may vote in now, if any: `before` until the verdict, then `after`.
    pub open: Option<VotePhase>,
    /// The signed-in reader's own votes.
    pub mine: MyVotes,
    /// Each side's share of the room after, less its share before, in percentage points
    /// (when both phases have votes).
    pub swing: Option<Sides<f64>>,
}

/// One reader's votes.
#[derive(Serialize, ToSchema, Default)]
pub struct MyVotes {
    pub before: Option<VoteChoice>,
    pub after: Option<VoteChoice>,
}

/// A shared debate's link.
#[derive(Serialize, ToSchema)]
pub struct Share {
    /// The replay page's path: anyone with it may read the debate.
    pub url: String,
}

/// A persona file that passed the lint.
#[derive(Serialize, ToSchema)]
pub struct LintedPersona {
    pub id: String,
    pub name: String,
    pub version: String,
}

/// A problem in a persona file, located.
#[derive(Serialize, ToSchema, Debug, Clone)]
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

impl LintProblem {
    /// A problem at a place in a file.
    pub fn at(path: &std::path::Path, line: usize, column: usize, message: &str) -> LintProblem {
        LintProblem {
            file: path.file_name().map(|f| f.to_string_lossy().into_owned()),
            line,
            column,
            message: message.to_string(),
            text: format!("{}:{line}:{column}: {message}", path.display()),
        }
    }

    /// A problem with no place to point at (line and column 0).
    pub fn unlocated(text: String) -> LintProblem {
        LintProblem {
            file: None,
            line: 0,
            column: 0,
            message: text.clone(),
            text,
        }
    }
}

impl From<&crossfire_engine::persona::Problem> for LintProblem {
    fn from(p: &crossfire_engine::persona::Problem) -> LintProblem {
        LintProblem::at(&p.path, p.line, p.column, &p.message)
    }
}

impl From<&crossfire_engine::story::StoryError> for LintProblem {
    fn from(e: &crossfire_engine::story::StoryError) -> LintProblem {
        match e {
            crossfire_engine::story::StoryError::Invalid {
                path,
                line,
                column,
                message,
            } => LintProblem::at(path, *line, *column, message),
            other => LintProblem::unlocated(other.to_string()),
        }
    }
}

/// Which set of the editors' files is live, and what the last refused set had wrong.
#[derive(Serialize, ToSchema)]
pub struct LiveLint {
    pub live: LiveSummary,
    /// The last set read since the live one went live and refused, with its problems.
    pub rejected: Option<crate::live_set::Rejected>,
    /// Files left out of the live set when the service started.
    pub left_out: Vec<LintProblem>,
}

/// The set of stories, personas and templates serving now.
#[derive(Serialize, ToSchema)]
pub struct LiveSummary {
    /// A hash over every story, persona and template of the set.
    pub version: String,
    /// When it went live (RFC 3339).
    pub loaded_at: String,
    pub stories: usize,
    pub personas: usize,
    /// The templates' own version, as runs record it.
    pub templates: String,
}
