//! Editors' drafts: a persona or template as it stands in the editor, checked the way the
//! live reload will read it (every problem located), with the prompts it would produce.

use std::path::Path;

use crossfire_engine::config::Library;
use crossfire_engine::screen::Policy;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::library_file::{FileKind, LibraryFile, version_of};
use super::preview::Preview;
use super::{Editor, off_runtime};
use crate::error::{ApiError, ApiJson, ErrorBody};
use crate::library::{LintProblem, LiveSet};
use crate::state::AppState;
use crossfire_engine::persona::Persona;
use crossfire_engine::prompts::{PromptError, Prompts};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Draft {
    pub(super) kind: FileKind,
    /// The persona id, or the template's file name.
    pub(super) name: String,
    /// The draft as it stands.
    pub(super) text: String,
    /// To preview the prompts the draft produces: a story id.
    #[serde(default)]
    pub(super) story: Option<String>,
    /// The other side: for a persona draft, its opponent (default: another persona); for a
    /// template draft, side B (default: the second persona).
    #[serde(default)]
    pub(super) opponent: Option<String>,
    /// For a template draft, side A (default: the first persona).
    #[serde(default)]
    pub(super) persona: Option<String>,
    #[serde(default)]
    pub(super) motion: Option<String>,
}

/// What a draft would do: its problems, located, and (when it has none and a story was
/// given) the prompts it would produce.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DraftReport {
    pub problems: Vec<LintProblem>,
    /// The draft's version, when it has no problems.
    pub version: Option<String>,
    pub preview: Option<Preview>,
}

/// A draft, read: a persona, or a set of templates with the draft in it.
pub(super) enum Checked {
    Persona(Persona),
    Templates(Prompts),
    /// A policy file: nothing to preview.
    Policy,
}

/// Reads a draft the way the live reload will read the saved file, off the async runtime (a
/// template draft is read with the other templates on disk).
pub(super) async fn check(
    state: &AppState,
    file: &LibraryFile,
    text: &str,
) -> Result<Result<Checked, Vec<LintProblem>>, ApiError> {
    let (file, text) = (file.clone(), text.to_string());
    let library = state.library().clone();
    off_runtime(move || Ok(read_draft(&library, &file, &text))).await
}

fn read_draft(
    library: &Library,
    file: &LibraryFile,
    text: &str,
) -> Result<Checked, Vec<LintProblem>> {
    match file.kind {
        FileKind::Persona => Persona::parse(&file.path, text.as_bytes(), Some(&file.name))
            .map(Checked::Persona)
            .map_err(|problems| problems.iter().map(LintProblem::from).collect()),
        FileKind::Template => {
            let dir = &library.prompts_dir;
            let mut files = Prompts::read_sources(dir)
                .map_err(|e| vec![LintProblem::unlocated(e.to_string())])?;
            files.retain(|(name, _)| *name != file.name);
            files.push((file.name.clone(), text.to_string()));
            files.sort();
            Prompts::from_sources(dir, files)
                .map(Checked::Templates)
                .map_err(|e| vec![template_problem(&file.path, text, &e)])
        }
        FileKind::Policy => {
            let mut files = Policy::read_sources(&library.policy_dir)
                .map_err(|e| vec![LintProblem::unlocated(e)])?;
            files.retain(|(path, _)| *path != file.path);
            files.push((file.path.clone(), text.to_string()));
            files.sort();
            Policy::from_sources(&files)
                .map(|_| Checked::Policy)
                .map_err(|problems| problems.iter().map(LintProblem::from).collect())
        }
    }
}

/// A template error, located in the draft where minijinja says.
fn template_problem(path: &Path, text: &str, error: &PromptError) -> LintProblem {
    match error {
        PromptError::Template(e) => {
            let line = e.line().unwrap_or(0);
            let column = e
                .range()
                .map(|r| crossfire_engine::location::line_col(text, r.start).1)
                .unwrap_or(usize::from(line > 0));
            let message = e.detail().unwrap_or("template error").to_string();
            match e.name() {
                Some(name) if path.file_name().is_some_and(|f| f == name) => {
                    LintProblem::at(path, line, column, &message)
                }
                Some(name) => LintProblem::at(&path.with_file_name(name), line, column, &message),
                None => LintProblem::unlocated(error.to_string()),
            }
        }
        other => LintProblem::unlocated(other.to_string()),
    }
}

/// The six calls of a debate on `story` with this draft in it.
fn preview_of(set: &LiveSet, checked: &Checked, draft: &Draft) -> Result<Preview, ApiError> {
    let story = set
        .catalog
        .story(draft.story.as_deref().unwrap_or_default())?;
    let other = |not: &str| {
        set.catalog
            .personas
            .keys()
            .find(|id| id.as_str() != not)
            .cloned()
            .unwrap_or_default()
    };
    let invalid = |e: &dyn std::fmt::Display| ApiError::Invalid(e.to_string());
    let motion = match &draft.motion {
        Some(m) => crossfire_engine::motion::check_motion(m)?.to_string(),
        None => story.default_motion(),
    };
    let settings = set.engine.settings;
    let (prompts, a, b) = match checked {
        Checked::Persona(persona) => {
            let opponent = draft.opponent.clone().unwrap_or_else(|| other(&persona.id));
            let b = set.catalog.persona(&opponent)?;
            (set.engine.prompts.as_ref(), persona, b)
        }
        Checked::Policy => {
            return Err(ApiError::Invalid(
                "a policy file has no prompts to preview".into(),
            ));
        }
        Checked::Templates(prompts) => {
            let first = set
                .catalog
                .personas
                .keys()
                .next()
                .cloned()
                .unwrap_or_default();
            let a = set
                .catalog
                .persona(draft.persona.as_deref().unwrap_or(&first))?;
            let b_id = draft.opponent.clone().unwrap_or_else(|| other(&a.id));
            (prompts, a, set.catalog.persona(&b_id)?)
        }
    };
    let setup = settings.setup(story, a, b, &motion);
    let calls = prompts.preview(&setup).map_err(|e| invalid(&e))?;
    Ok(Preview {
        templates: prompts.version().to_string(),
        motion,
        calls,
    })
}

/// `POST /api/editor/drafts/check`: a draft's problems, located, and the prompts it makes.
#[utoipa::path(post, path = "/api/editor/drafts/check", tag = "editor", request_body = Draft, security(("bearer" = [])),
    responses((status = 200, description = "The draft's problems (none: it would go live) and, with a story, its prompts", body = DraftReport), (status = 403, description = "Editors only", body = ErrorBody), (status = 404, description = "Unknown story or persona", body = ErrorBody)))]
pub async fn check_draft(
    State(state): State<AppState>,
    _editor: Editor,
    ApiJson(draft): ApiJson<Draft>,
) -> Result<Json<DraftReport>, ApiError> {
    let file = LibraryFile::new(&state, draft.kind, &draft.name)?;
    let set = state.set();
    let report = match check(&state, &file, &draft.text).await? {
        Err(problems) => DraftReport {
            problems,
            version: None,
            preview: None,
        },
        Ok(checked) => DraftReport {
            problems: Vec::new(),
            version: Some(version_of(&draft.text)),
            preview: match (&draft.story, &checked) {
                (None, _) | (_, Checked::Policy) => None,
                (Some(_), _) => Some(preview_of(&set, &checked, &draft)?),
            },
        },
    };
    Ok(Json(report))
}
