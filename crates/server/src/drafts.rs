//! Editors' drafts: a persona or template as it stands in the editor, checked (every problem
//! located), previewed as the prompts it would produce, tried in a trial run, and saved.
//!
//! A save writes a temporary file and renames it over the old one, so the live reload never
//! reads half a file; the version it replaces is kept under `.history/`, and the store records
//! who saved which version when.

use std::path::{Path, PathBuf};

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::bodies::{Accepted, LintProblem, Preview};
use super::editor::{Editor, off_runtime};
use super::error::{ApiError, ApiJson, ApiQuery, ErrorBody};
use super::live_set::LiveSet;
use super::runs::{launch, outcome};
use crate::store::{Run, RunKind, Save};
use crossfire_engine::persona::Persona;
use crossfire_engine::prompts::{PromptError, Prompts};
use crossfire_engine::transcript::Status;

/// Which kind of editor's file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    /// `personas/{id}.toml`
    Persona,
    /// `prompts/{name}.j2`
    Template,
}

impl FileKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::Persona => "persona",
            FileKind::Template => "template",
        }
    }
}

/// A file of the library, named safely: a persona id or a template's file name, never a path.
#[derive(Clone)]
struct LibraryFile {
    kind: FileKind,
    name: String,
    path: PathBuf,
}

impl LibraryFile {
    fn new(state: &AppState, kind: FileKind, name: &str) -> Result<LibraryFile, ApiError> {
        let (dir, file) = match kind {
            FileKind::Persona if crossfire_engine::is_valid_id(name) => {
                (&state.library().personas_dir, format!("{name}.toml"))
            }
            FileKind::Template
                if name.strip_suffix(".j2").is_some_and(|stem| {
                    !stem.is_empty()
                        && stem
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                }) =>
            {
                (&state.library().prompts_dir, name.to_string())
            }
            _ => {
                return Err(ApiError::NotFound(format!(
                    "no {} named `{name}`",
                    kind.as_str()
                )));
            }
        };
        Ok(LibraryFile {
            kind,
            name: name.to_string(),
            path: dir.join(file),
        })
    }

    /// The file's text as saved now, if it exists.
    fn read(&self) -> Result<Option<String>, ApiError> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ApiError::Internal(format!("{}: {e}", self.path.display()))),
        }
    }
}

/// A file's version: the hash of its bytes, as personas and runs record it.
fn version_of(text: &str) -> String {
    crossfire_engine::sha256_hex(text.as_bytes())
}

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
pub struct Draft {
    kind: FileKind,
    /// The persona id, or the template's file name.
    name: String,
    /// The draft as it stands.
    text: String,
    /// To preview the prompts the draft produces: a story id.
    #[serde(default)]
    story: Option<String>,
    /// The other side: for a persona draft, its opponent (default: another persona); for a
    /// template draft, side B (default: the second persona).
    #[serde(default)]
    opponent: Option<String>,
    /// For a template draft, side A (default: the first persona).
    #[serde(default)]
    persona: Option<String>,
    #[serde(default)]
    motion: Option<String>,
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
enum Checked {
    Persona(Persona),
    Templates(Prompts),
}

/// Reads a draft the way the live reload will read the saved file, off the async runtime (a
/// template draft is read with the other templates on disk).
async fn check(
    state: &AppState,
    file: &LibraryFile,
    text: &str,
) -> Result<Result<Checked, Vec<LintProblem>>, ApiError> {
    let (file, text) = (file.clone(), text.to_string());
    let dir = state.library().prompts_dir.clone();
    off_runtime(move || Ok(read_draft(&dir, &file, &text))).await
}

fn read_draft(dir: &Path, file: &LibraryFile, text: &str) -> Result<Checked, Vec<LintProblem>> {
    match file.kind {
        FileKind::Persona => Persona::parse(&file.path, text.as_bytes(), Some(&file.name))
            .map(Checked::Persona)
            .map_err(|problems| problems.iter().map(LintProblem::from).collect()),
        FileKind::Template => {
            let mut files = Prompts::read_sources(dir)
                .map_err(|e| vec![LintProblem::unlocated(e.to_string())])?;
            files.retain(|(name, _)| *name != file.name);
            files.push((file.name.clone(), text.to_string()));
            files.sort();
            Prompts::from_sources(dir, files)
                .map(Checked::Templates)
                .map_err(|e| vec![template_problem(&file.path, text, &e)])
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
            preview: match draft.story {
                Some(_) => Some(preview_of(&set, &checked, &draft)?),
                None => None,
            },
        },
    };
    Ok(Json(report))
}

/// A draft persona to try: in a perspective on `story`, or in a debate against `opponent`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Trial {
    /// The persona's id.
    name: String,
    text: String,
    story: String,
    #[serde(default)]
    opponent: Option<String>,
    #[serde(default)]
    motion: Option<String>,
}

/// `POST /api/editor/drafts/trial`: runs a draft persona as it stands, streamed like any
/// run and kept out of readers' lists and the perspective cache.
#[utoipa::path(post, path = "/api/editor/drafts/trial", tag = "editor", request_body = Trial, security(("bearer" = [])),
    responses((status = 202, description = "Accepted: the trial runs in the background", body = Accepted), (status = 403, description = "Editors only", body = ErrorBody), (status = 404, description = "Unknown story or opponent", body = ErrorBody), (status = 422, description = "The draft has problems", body = ErrorBody)))]
pub async fn trial(
    State(state): State<AppState>,
    Editor(user): Editor,
    ApiJson(body): ApiJson<Trial>,
) -> Result<Response, ApiError> {
    let file = LibraryFile::new(&state, FileKind::Persona, &body.name)?;
    let Ok(Checked::Persona(draft)) = check(&state, &file, &body.text).await? else {
        return Err(ApiError::Invalid(
            "the draft has problems: check it first".into(),
        ));
    };
    let set = state.set();
    let engine = set.engine.clone();
    let story = set.catalog.story(&body.story)?.clone();
    let id = crossfire_engine::transcript::new_id();
    let kind = match &body.opponent {
        Some(opponent) => {
            let b = set.catalog.persona(opponent)?.clone();
            let motion = engine.check_debate(&story, &draft, &b, body.motion.as_deref())?;
            let queued = engine.new_transcript(id.clone(), &story, &draft, &b, &motion);
            let run = trial_run(&id, RunKind::Debate, user.id, &queued)?;
            launch(&state, run, None, move |id, sink| async move {
                let t = engine
                    .run_debate(id, &story, &draft, &b, &motion, &sink)
                    .await;
                outcome(&t)
            })
            .await?;
            "debates"
        }
        None => {
            engine.check_persona(&draft)?;
            let queued = engine.new_perspective(id.clone(), &story, &draft);
            let run = trial_run(&id, RunKind::Perspective, user.id, &queued)?;
            launch(&state, run, None, move |id, sink| async move {
                let p = engine.run_perspective(id, &story, &draft, &sink).await;
                outcome(&p)
            })
            .await?;
            "perspectives"
        }
    };
    let accepted = Accepted {
        events: format!("/api/{kind}/{id}/events"),
        id,
        status: Status::Queued,
        cached: None,
    };
    Ok((StatusCode::ACCEPTED, Json(accepted)).into_response())
}

fn trial_run(
    id: &str,
    kind: RunKind,
    user_id: i64,
    queued: &impl Serialize,
) -> Result<Run, ApiError> {
    let result = serde_json::to_string(queued)
        .map_err(|e| ApiError::Internal(format!("cannot encode: {e}")))?;
    Ok(Run {
        trial: true,
        ..Run::queued(id, kind, user_id, None, result)
    })
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
            user.id,
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
        && !crossfire_engine::is_valid_id(id)
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

#[derive(Deserialize, utoipa::ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ProbeRequest {
    /// The story the probes ask about (default: the first story).
    #[serde(default)]
    story: Option<String>,
}

/// `POST /api/editor/probes/{id}`: puts a live persona's probe set to the model; the
/// scorecard is kept and compared with the one before (regressions first).
#[utoipa::path(post, path = "/api/editor/probes/{id}", tag = "editor", params(("id" = String, Path)), request_body = ProbeRequest, security(("bearer" = [])),
    responses((status = 200, description = "The scorecard, compared with the one before", body = crossfire_engine::probe::Scorecard), (status = 403, description = "Editors only", body = ErrorBody), (status = 404, description = "Unknown persona or story", body = ErrorBody), (status = 503, description = "The model failed", body = ErrorBody)))]
pub async fn run_probes(
    State(state): State<AppState>,
    _editor: Editor,
    UrlPath(id): UrlPath<String>,
    ApiJson(body): ApiJson<ProbeRequest>,
) -> Result<Json<crossfire_engine::probe::Scorecard>, ApiError> {
    let set = state.set();
    let persona = set.catalog.persona(&id)?.clone();
    let story = match &body.story {
        Some(story) => set.catalog.story(story)?.clone(),
        None => set
            .catalog
            .stories
            .values()
            .next()
            .cloned()
            .ok_or_else(|| ApiError::NotFound("there is no story to probe with".into()))?,
    };
    let card = set
        .engine
        .probe(&persona, &story)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let dir = state.library().personas_dir.clone();
    tokio::task::spawn_blocking(move || crossfire_engine::probe::record(&dir, card))
        .await
        .map_err(|_| ApiError::Internal("the probe task failed".into()))?
        .map(Json)
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// `GET /api/editor/probes/{id}`: the persona's latest scorecard.
#[utoipa::path(get, path = "/api/editor/probes/{id}", tag = "editor", params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, description = "The latest scorecard", body = crossfire_engine::probe::Scorecard), (status = 403, description = "Editors only", body = ErrorBody), (status = 404, description = "No scorecard yet", body = ErrorBody)))]
pub async fn latest_probes(
    State(state): State<AppState>,
    _editor: Editor,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<crossfire_engine::probe::Scorecard>, ApiError> {
    if !crossfire_engine::is_valid_id(&id) {
        return Err(ApiError::NotFound(format!("no persona `{id}`")));
    }
    let dir = state.library().personas_dir.clone();
    let wanted = id.clone();
    off_runtime(move || Ok(crossfire_engine::probe::latest(&dir, &wanted)))
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no scorecard for `{id}` yet")))
}
