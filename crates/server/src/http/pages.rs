//! Web pages for people: stories with their Debate Arena and perspectives, debates live and
//! shared, a reader's list, sign-in and the editor. Rendered from minijinja templates with
//! HTML auto-escaping; the pages' script inserts all API text as text, and a strict
//! Content-Security-Policy allows no inline script.

use std::sync::LazyLock;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use minijinja::{Environment, context};
use serde::{Deserialize, Serialize};

use super::auth::MaybeUser;
use super::{assets, editor, sharing};
use crate::error::ApiError;
use crate::library::LiveSet;
use crate::runs::{self, record_of};
use crate::state::AppState;
use crate::store::{CaseState, Role, Run, RunKind, User};
use crossfire_engine::persona::{Persona, PersonaKind};
use crossfire_engine::screen::Policy;
use crossfire_engine::transcript::{PersonaRef, Transcript};

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.add_filter("utc", utc);
    for (name, source) in [
        ("base.html", include_str!("../../web/templates/base.html")),
        ("cards.html", include_str!("../../web/templates/cards.html")),
        ("index.html", include_str!("../../web/templates/index.html")),
        ("story.html", include_str!("../../web/templates/story.html")),
        (
            "debate.html",
            include_str!("../../web/templates/debate.html"),
        ),
        (
            "debates.html",
            include_str!("../../web/templates/debates.html"),
        ),
        ("login.html", include_str!("../../web/templates/login.html")),
        (
            "editor.html",
            include_str!("../../web/templates/editor.html"),
        ),
        (
            "missing.html",
            include_str!("../../web/templates/missing.html"),
        ),
        (
            "removed.html",
            include_str!("../../web/templates/removed.html"),
        ),
        (
            "reports.html",
            include_str!("../../web/templates/reports.html"),
        ),
        ("audit.html", include_str!("../../web/templates/audit.html")),
    ] {
        if let Err(e) = env.add_template(name, source) {
            // The templates are compiled into the binary; a test renders every page.
            tracing::error!("page template {name}: {e}");
        }
    }
    env
});

/// A stored time (ms since the epoch) as people read it: `2026-12-07 10:45 UTC`.
fn utc(ms: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

/// Who is signed in, as the header shows them.
#[derive(Serialize)]
struct Viewer {
    email: String,
    editor: bool,
}

fn viewer(user: &Option<User>) -> minijinja::Value {
    let viewer = user.as_ref().map(|u| Viewer {
        email: u.email.clone(),
        editor: u.role == Role::Editor,
    });
    to_value(&viewer)
}

/// Anything serializable, as a template value.
fn to_value(value: &impl Serialize) -> minijinja::Value {
    minijinja::Value::from(minijinja::value::Serde(value))
}

fn page(name: &str, ctx: minijinja::Value) -> Result<Response, ApiError> {
    page_with_status(StatusCode::OK, name, ctx)
}

fn page_with_status(
    status: StatusCode,
    name: &str,
    ctx: minijinja::Value,
) -> Result<Response, ApiError> {
    // Every page links the stylesheet and its own script by their hashed names.
    // Our own constant URLs: marked safe, so `/` is not escaped.
    let link =
        |path: &str| assets::url(path).map(|url| minijinja::Value::from_safe_string(url.into()));
    let script = ctx
        .get_attr("page")
        .ok()
        .and_then(|page| link(&format!("js/{page}.js")));
    let ctx = context! { stylesheet => link("style.css"), page_script => script, ..ctx };
    let html = TEMPLATES
        .get_template(name)
        .and_then(|t| t.render(ctx))
        .map_err(|e| ApiError::Internal(format!("page {name}: {e}")))?;
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    Ok(response)
}

/// The page for an address that names nothing (404).
fn missing(user: &Option<User>, what: &str) -> Result<Response, ApiError> {
    page_with_status(
        StatusCode::NOT_FOUND,
        "missing.html",
        context! { page => "missing", user => viewer(user), what },
    )
}

/// The page for a run editors took down (410): its owner reads their note.
fn removed(user: &Option<User>, run: &Run) -> Result<Response, ApiError> {
    let owner = user.as_ref().is_some_and(|u| u.id == run.user_id);
    let why = run
        .removed
        .as_ref()
        .and_then(|r| r.note.as_deref())
        .filter(|_| owner);
    page_with_status(
        StatusCode::GONE,
        "removed.html",
        context! { page => "missing", user => viewer(user), what => run.kind.as_str(), why },
    )
}

/// Sign-in first, then back to `path`.
fn sign_in_then(path: &str) -> Response {
    Redirect::to(&format!("/login?next={}", urlencode(path))).into_response()
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A persona as its card shows it.
#[derive(Serialize)]
struct PersonaCard<'a> {
    id: &'a str,
    name: &'a str,
    initials: String,
    lived: Option<&'a str>,
    role: &'a str,
    kind: PersonaKind,
    tags: &'a [String],
}

impl<'a> PersonaCard<'a> {
    fn of(p: &'a Persona) -> PersonaCard<'a> {
        PersonaCard {
            id: &p.id,
            name: &p.name,
            initials: initials(&p.name),
            lived: p.lived.as_deref(),
            role: &p.role,
            kind: p.kind,
            tags: &p.tags,
        }
    }
}

/// The first letters of a name's first and last words: "Winston Churchill" → "WC".
fn initials(name: &str) -> String {
    let words: Vec<&str> = name.split_whitespace().collect();
    let first = |w: &&str| w.chars().next();
    [words.first().and_then(first), words.last().and_then(first)]
        .into_iter()
        .take(if words.len() > 1 { 2 } else { 1 })
        .flatten()
        .flat_map(char::to_uppercase)
        .collect()
}

/// The personas this deployment lets readers pick, as cards.
fn cards(set: &LiveSet) -> Vec<PersonaCard<'_>> {
    set.catalog
        .personas
        .values()
        .filter(|p| set.engine.check_persona(p).is_ok())
        .map(PersonaCard::of)
        .collect()
}

/// A side's card: the catalog's persona, or just the name the transcript recorded.
fn side_card<'a>(set: &'a LiveSet, side: &'a PersonaRef) -> PersonaCard<'a> {
    match set.catalog.personas.get(&side.id) {
        Some(p) => PersonaCard::of(p),
        None => PersonaCard {
            id: &side.id,
            name: &side.name,
            initials: initials(&side.name),
            lived: None,
            role: "",
            kind: PersonaKind::Historical,
            tags: &[],
        },
    }
}

/// `GET /`
pub async fn index(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
) -> Result<Response, ApiError> {
    let set = state.set();
    let stories: Vec<_> = set.catalog.stories.values().map(to_value).collect();
    page(
        "index.html",
        context! { page => "index", user => viewer(&user), stories },
    )
}

/// `GET /stories/{id}`: every section the story has, the Arena and the perspectives.
pub async fn story(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let set = state.set();
    let Some(story) = set.catalog.stories.get(&id) else {
        return missing(&user, "story");
    };
    if user.is_some() {
        runs::prefill::story_opened(&state, story);
    }
    let paragraphs: Vec<String> = story
        .overview
        .split("\n\n")
        .filter(|p| !p.trim().is_empty())
        .map(String::from)
        .collect();
    page(
        "story.html",
        context! {
            page => "story",
            user => viewer(&user),
            story => to_value(story),
            paragraphs,
            personas => to_value(&cards(&set)),
            suggestions => story.motion_suggestions(),
            here => format!("/stories/{}", urlencode(&story.id)),
        },
    )
}

/// A debate's page, live or replayed: its story, motion and the two sides' cards; the
/// script streams or fills in the rest.
fn debate_page(
    state: &AppState,
    user: &Option<User>,
    run: &Run,
    shared: Option<&str>,
) -> Result<Response, ApiError> {
    let transcript: Transcript = record_of(run)?;
    let set = state.set();
    let mine = user.as_ref().is_some_and(|u| u.id == run.user_id);
    page(
        "debate.html",
        context! {
            page => "debate",
            user => viewer(user),
            id => &run.id,
            shared,
            mine,
            status => transcript.status.as_str(),
            motion => &transcript.motion,
            story_id => &transcript.story,
            story_title => sharing::story_title(state, &transcript.story),
            a => to_value(&side_card(&set, &transcript.personas.a)),
            b => to_value(&side_card(&set, &transcript.personas.b)),
        },
    )
}

/// `GET /debates/{id}`: a reader's own debate.
pub async fn debate(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let Some(reader) = &user else {
        return Ok(sign_in_then(&format!("/debates/{id}")));
    };
    match state.store.run(&id).await? {
        Some(run) if run.kind == RunKind::Debate && run.user_id == reader.id => match run.removed {
            Some(_) => removed(&user, &run),
            None => debate_page(&state, &user, &run, None),
        },
        _ => missing(&user, "debate"),
    }
}

/// `GET /shared/{token}`: a shared debate's read-only replay, for anyone with the link.
pub async fn shared(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    match sharing::shared_debate(&state, &token).await? {
        Some(run) if run.removed.is_some() => removed(&None, &run),
        Some(run) => debate_page(&state, &user, &run, Some(&token)),
        None => missing(&user, "shared debate"),
    }
}

/// `GET /debates`: the reader's debates.
pub async fn debates(MaybeUser(user): MaybeUser) -> Result<Response, ApiError> {
    if user.is_none() {
        return Ok(sign_in_then("/debates"));
    }
    page(
        "debates.html",
        context! { page => "debates", user => viewer(&user) },
    )
}

#[derive(Deserialize)]
pub struct Next {
    next: Option<String>,
}

/// Where to go after signing in: a path on this site, else the front page.
fn next_path(next: Option<String>) -> String {
    next.filter(|n| n.starts_with('/') && !n.starts_with("//") && !n.contains('\\'))
        .unwrap_or_else(|| "/".to_string())
}

/// `GET /login`
pub async fn login(
    MaybeUser(user): MaybeUser,
    Query(q): Query<Next>,
) -> Result<Response, ApiError> {
    auth_page("login", "/signup", &user, q)
}

/// `GET /signup`
pub async fn signup(
    MaybeUser(user): MaybeUser,
    Query(q): Query<Next>,
) -> Result<Response, ApiError> {
    auth_page("signup", "/login", &user, q)
}

/// The sign-in or sign-up form, with a link to the other that keeps where to go next.
fn auth_page(mode: &str, other: &str, user: &Option<User>, q: Next) -> Result<Response, ApiError> {
    let next = next_path(q.next);
    page(
        "login.html",
        context! { page => "login", mode, user => viewer(user), other => format!("{other}?next={}", urlencode(&next)), next },
    )
}

/// `GET /editor`
pub async fn editor(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
) -> Result<Response, ApiError> {
    let set = state.set();
    let stories: Vec<_> = set.catalog.stories.values().map(to_value).collect();
    let personas: Vec<_> = set.catalog.personas.values().map(to_value).collect();
    let templates = set.engine.prompts.names();
    // The folder is read off the async runtime, as the editor's other file work is.
    let dir = state.library().policy_dir.clone();
    let policies: Vec<String> = editor::off_runtime(move || {
        Ok(Policy::read_sources(&dir)
            .unwrap_or_default()
            .iter()
            .filter_map(|(path, _)| path.file_name().map(|f| f.to_string_lossy().into_owned()))
            .collect())
    })
    .await?;
    page(
        "editor.html",
        context! { page => "editor", user => viewer(&user), stories, personas, templates, policies },
    )
}

#[derive(Deserialize)]
pub struct QueueQuery {
    state: Option<String>,
}

/// Whether the signed-in user is an editor; `None` when nobody is signed in.
fn is_editor(user: &Option<User>) -> Option<bool> {
    user.as_ref().map(|u| u.role == Role::Editor)
}

/// `GET /editor/reports`: the queue of reports, open or hidden.
pub async fn reports(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    Query(q): Query<QueueQuery>,
) -> Result<Response, ApiError> {
    let Some(allowed) = is_editor(&user) else {
        return Ok(sign_in_then("/editor/reports"));
    };
    let case_state = match q.state.as_deref() {
        Some("hidden") => CaseState::Hidden,
        _ => CaseState::Open,
    };
    let groups = match allowed {
        true => editor::reports::queue(&state, case_state).await?,
        false => Vec::new(),
    };
    page_with_status(
        if allowed {
            StatusCode::OK
        } else {
            StatusCode::FORBIDDEN
        },
        "reports.html",
        context! { page => "reports", user => viewer(&user), allowed, state => case_state.as_str(), groups => to_value(&groups) },
    )
}

#[derive(Deserialize)]
pub struct AuditQuery {
    before: Option<i64>,
}

/// `GET /editor/audit`: the audit log, a page at a time.
pub async fn audit(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    Query(q): Query<AuditQuery>,
) -> Result<Response, ApiError> {
    let Some(allowed) = is_editor(&user) else {
        return Ok(sign_in_then("/editor/audit"));
    };
    let (entries, next_before) = match allowed {
        true => {
            let page = editor::audit::page(&state, q.before, None).await?;
            (page.entries, page.next_before)
        }
        false => (Vec::new(), None),
    };
    page_with_status(
        if allowed {
            StatusCode::OK
        } else {
            StatusCode::FORBIDDEN
        },
        "audit.html",
        context! { page => "audit", user => viewer(&user), allowed, entries => to_value(&entries), next_before },
    )
}

#[cfg(test)]
mod tests {
    use super::{initials, next_path, urlencode};

    #[test]
    fn initials_take_the_first_and_last_words() {
        assert_eq!(initials("Winston Churchill"), "WC");
        assert_eq!(initials("Niccolò di Bernardo dei Machiavelli"), "NM");
        assert_eq!(initials("Confucius"), "C");
        assert_eq!(initials("  "), "");
        assert_eq!(initials("ibn Khaldun"), "IK");
    }

    #[test]
    fn only_paths_on_this_site_are_followed_after_sign_in() {
        assert_eq!(next_path(Some("/stories/x".into())), "/stories/x");
        for away in ["//evil.example", "https://evil.example", "/\\evil", ""] {
            assert_eq!(next_path(Some(away.into())), "/", "{away}");
        }
        assert_eq!(urlencode("/debates/a b?c"), "/debates/a%20b%3Fc");
    }
}
