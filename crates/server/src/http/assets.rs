//! The pages' stylesheet and scripts, compiled into the binary and served under
//! content-hashed names (`/static/js/debate.3f9a1c0b2e.js`) that may be cached for a year.
//!
//! The scripts are ES modules, one per page, importing shared ones by relative path. No build
//! step: at first use each module's imports are rewritten to the hashed names of what they
//! import, and its own hash is taken over that rewritten text, so a change to a shared
//! module gives every page that imports it a new name too.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// The files as written: path under `web/static/`, text.
const SOURCES: &[(&str, &str)] = &[
    ("style.css", include_str!("../../web/static/style.css")),
    (
        "js/common.js",
        include_str!("../../web/static/js/common.js"),
    ),
    ("js/site.js", include_str!("../../web/static/js/site.js")),
    ("js/index.js", include_str!("../../web/static/js/index.js")),
    ("js/story.js", include_str!("../../web/static/js/story.js")),
    (
        "js/debate.js",
        include_str!("../../web/static/js/debate.js"),
    ),
    (
        "js/debates.js",
        include_str!("../../web/static/js/debates.js"),
    ),
    ("js/login.js", include_str!("../../web/static/js/login.js")),
    (
        "js/editor.js",
        include_str!("../../web/static/js/editor.js"),
    ),
    (
        "js/missing.js",
        include_str!("../../web/static/js/missing.js"),
    ),
    (
        "js/report.js",
        include_str!("../../web/static/js/report.js"),
    ),
    (
        "js/reports.js",
        include_str!("../../web/static/js/reports.js"),
    ),
    ("js/audit.js", include_str!("../../web/static/js/audit.js")),
];

/// A hashed name's cache lifetime: its content never changes.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// A plain name's: it changes with each release.
const SHORT: &str = "public, max-age=300";

/// One file as served.
struct Asset {
    /// `/static/...` under its hashed name.
    url: String,
    /// Its text, imports rewritten.
    text: String,
}

static ASSETS: LazyLock<BTreeMap<&'static str, Asset>> = LazyLock::new(|| {
    let mut done = BTreeMap::new();
    for (path, _) in SOURCES {
        build(path, &mut done, 0);
    }
    done
});

/// Builds `path` after the modules it imports (to a depth that no real import chain reaches).
fn build(path: &'static str, done: &mut BTreeMap<&'static str, Asset>, depth: usize) {
    let Some((_, source)) = SOURCES.iter().find(|(p, _)| *p == path) else {
        return;
    };
    if done.contains_key(path) || depth > SOURCES.len() {
        return;
    }
    let mut text = source.to_string();
    if let Some(dir) = path.rsplit_once('/').map(|(dir, _)| dir) {
        for (other, _) in SOURCES {
            let Some(file) = other.strip_prefix(dir).and_then(|f| f.strip_prefix('/')) else {
                continue;
            };
            let import = format!("\"./{file}\"");
            if other != &path && text.contains(&import) {
                build(other, done, depth + 1);
                if let Some(hashed) = done.get(other).and_then(|a| a.url.rsplit('/').next()) {
                    text = text.replace(&import, &format!("\"./{hashed}\""));
                }
            }
        }
    }
    let hash = &crossfire_engine::sha256_hex(text.as_bytes())[..10];
    let url = match path.rsplit_once('.') {
        Some((stem, extension)) => format!("/static/{stem}.{hash}.{extension}"),
        None => format!("/static/{path}.{hash}"),
    };
    done.insert(path, Asset { url, text });
}

/// The URL to link a file by (`style.css`, `js/story.js`), if there is such a file.
pub fn url(path: &str) -> Option<&'static str> {
    ASSETS.get(path).map(|a| a.url.as_str())
}

/// `GET /static/{file}` and `GET /static/js/{file}`: by plain or hashed name.
pub async fn serve(Path(file): Path<String>) -> Result<Response, ApiError> {
    serve_path(&file)
}

pub async fn serve_script(Path(file): Path<String>) -> Result<Response, ApiError> {
    serve_path(&format!("js/{file}"))
}

fn serve_path(wanted: &str) -> Result<Response, ApiError> {
    let found = ASSETS.iter().find_map(|(path, asset)| {
        if *path == wanted {
            Some((asset, SHORT))
        } else if asset.url.strip_prefix("/static/") == Some(wanted) {
            Some((asset, IMMUTABLE))
        } else {
            None
        }
    });
    let Some((asset, cache)) = found else {
        return Err(ApiError::NotFound("no such file".to_string()));
    };
    let kind = match wanted.ends_with(".css") {
        true => "text/css; charset=utf-8",
        false => "text/javascript; charset=utf-8",
    };
    Ok((
        [(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, cache)],
        asset.text.clone(),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_import_names_a_hashed_module_that_is_served() {
        for (path, asset) in ASSETS.iter() {
            assert!(asset.url.starts_with("/static/"), "{path}");
            for line in asset.text.lines().filter(|l| l.starts_with("import ")) {
                let target = line.rsplit('"').nth(1).unwrap_or_default();
                let file = target.trim_start_matches("./");
                let served = ASSETS
                    .values()
                    .any(|a| a.url.ends_with(&format!("/{file}")));
                assert!(
                    served,
                    "{path} imports {target}, which is not a hashed name"
                );
            }
        }
        assert!(url("js/debate.js").is_some_and(|u| u.starts_with("/static/js/debate.")));
        assert_eq!(url("js/nothing.js"), None);
    }

    #[test]
    fn a_change_to_a_shared_module_renames_the_pages_that_import_it() {
        let page = ASSETS
            .get("js/login.js")
            .map(|a| a.text.clone())
            .unwrap_or_default();
        let common = url("js/common.js").unwrap_or_default();
        let hashed = common.rsplit('/').next().unwrap_or_default();
        assert!(page.contains(hashed), "login.js imports {hashed}");
    }
}
