//! Web pages for people: stories, the Debate Arena, perspectives, sign-in and the editor.
//! Rendered from minijinja templates with HTML auto-escaping; the pages' script inserts all
//! API text as text, and a strict Content-Security-Policy allows no inline script.

use std::sync::LazyLock;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use minijinja::value::Serde;
use minijinja::{Environment, context};

use super::AppState;
use super::error::ApiError;

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    for (name, source) in [
        ("base.html", include_str!("../web/templates/base.html")),
        ("index.html", include_str!("../web/templates/index.html")),
        ("story.html", include_str!("../web/templates/story.html")),
        ("debate.html", include_str!("../web/templates/debate.html")),
        (
            "debates.html",
            include_str!("../web/templates/debates.html"),
        ),
        ("login.html", include_str!("../web/templates/login.html")),
        ("editor.html", include_str!("../web/templates/editor.html")),
    ] {
        if let Err(e) = env.add_template(name, source) {
            // The templates are compiled into the binary; a test renders every page.
            tracing::error!("page template {name}: {e}");
        }
    }
    env
});

fn page(name: &str, ctx: minijinja::Value) -> Result<Response, ApiError> {
    let html = TEMPLATES
        .get_template(name)
        .and_then(|t| t.render(ctx))
        .map_err(|e| ApiError::Internal(format!("page {name}: {e}")))?;
    let mut response = Html(html).into_response();
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

fn stories_and_personas(state: &AppState) -> (Vec<minijinja::Value>, Vec<minijinja::Value>) {
    let stories = state
        .catalog
        .stories
        .values()
        .map(|s| minijinja::Value::from(Serde(s)))
        .collect();
    let personas = state
        .catalog
        .personas
        .values()
        .map(|p| minijinja::Value::from(Serde(p)))
        .collect();
    (stories, personas)
}

/// `GET /`
pub async fn index(State(state): State<AppState>) -> Result<Response, ApiError> {
    let (stories, _) = stories_and_personas(&state);
    page("index.html", context! { page => "index", stories })
}

/// `GET /stories/{id}`
pub async fn story(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let story = state.catalog.story(&id)?.clone();
    let (_, personas) = stories_and_personas(&state);
    let paragraphs: Vec<String> = story.overview.split("\n\n").map(String::from).collect();
    page(
        "story.html",
        context! { page => "story", story => Serde(&story), paragraphs, personas, default_motion => story.default_motion() },
    )
}

/// `GET /debates/{id}`: the live view; the script loads the debate (signed in).
pub async fn debate(Path(id): Path<String>) -> Result<Response, ApiError> {
    page("debate.html", context! { page => "debate", id })
}

/// `GET /debates`
pub async fn debates() -> Result<Response, ApiError> {
    page("debates.html", context! { page => "debates" })
}

/// `GET /login`
pub async fn login() -> Result<Response, ApiError> {
    page("login.html", context! { page => "login" })
}

/// `GET /editor`
pub async fn editor(State(state): State<AppState>) -> Result<Response, ApiError> {
    let (stories, personas) = stories_and_personas(&state);
    page(
        "editor.html",
        context! { page => "editor", stories, personas },
    )
}

/// `GET /static/{file}`
pub async fn asset(Path(file): Path<String>) -> Result<Response, ApiError> {
    let (body, kind) = match file.as_str() {
        "app.js" => (
            include_str!("../web/static/app.js"),
            "text/javascript; charset=utf-8",
        ),
        "style.css" => (
            include_str!("../web/static/style.css"),
            "text/css; charset=utf-8",
        ),
        _ => return Err(ApiError::NotFound("no such file".to_string())),
    };
    Ok((
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response())
}
