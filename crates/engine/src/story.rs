//! Stories: the structured news pages that debates and perspectives are about (docs/files.md).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::id::LibraryId;
use crate::location::{find_key, line_col};

/// Default size limit of a story file.
pub const DEFAULT_MAX_BYTES: usize = 64 * 1024;

/// A story page, as the app shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Story {
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub dek: Option<String>,
    #[serde(default)]
    pub updated: Option<String>,
    pub overview: String,
    #[serde(default)]
    pub key_indicators: Vec<KeyIndicator>,
    #[serde(default)]
    pub people: Vec<Person>,
    #[serde(default)]
    pub organizations: Vec<Organization>,
    #[serde(default)]
    pub timeline: Vec<TimelineEvent>,
    #[serde(default)]
    pub scenarios: Vec<Scenario>,
    #[serde(default)]
    pub historical_context: Vec<HistoricalParallel>,
    #[serde(default)]
    pub sources: Vec<Source>,
    /// SHA-256 of the file's bytes: results record which content they were made from.
    #[serde(skip)]
    pub version: String,
}

/// A headline figure of the story, e.g. "6,000+ troops killed or wounded".
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct KeyIndicator {
    pub value: String,
    pub label: String,
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Person {
    pub name: String,
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Organization {
    pub name: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TimelineEvent {
    #[serde(default)]
    pub date: String,
    pub title: String,
    #[serde(default)]
    pub category: String,
    #[serde(default)]
    pub summary: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub title: String,
    #[serde(default)]
    pub discussed_by: Vec<String>,
    #[serde(default)]
    pub summary: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HistoricalParallel {
    pub title: String,
    #[serde(default)]
    pub period: String,
    #[serde(default)]
    pub what_happened: String,
    #[serde(default)]
    pub outcome: String,
    #[serde(default)]
    pub relevance: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub title: String,
    #[serde(default)]
    pub url: String,
}

/// Why a story could not be loaded. Every variant names the file, and where it can the field.
#[derive(Debug, thiserror::Error)]
pub enum StoryError {
    #[error("unknown story `{id}`: there is no {}", path.display())]
    NotFound { id: String, path: PathBuf },
    #[error("`{0}` is not a story id ([a-z0-9-]{{1,64}}) or a path to a .json file")]
    BadReference(String),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {size} bytes is over the {limit}-byte limit for a story", path.display())]
    TooLarge {
        path: PathBuf,
        size: usize,
        limit: usize,
    },
    #[error("{}:{line}:{column}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

impl Story {
    /// Loads a story by id (from `dir`) or by path (anything with a `/` or a `.json` suffix).
    pub fn load(dir: &Path, reference: &str, max_bytes: usize) -> Result<Story, StoryError> {
        let path = if reference.contains('/') || reference.ends_with(".json") {
            PathBuf::from(reference)
        } else if let Ok(id) = LibraryId::parse(reference) {
            let path = id.file_in(dir, "json");
            if !path.exists() {
                return Err(StoryError::NotFound {
                    id: reference.to_string(),
                    path,
                });
            }
            path
        } else {
            return Err(StoryError::BadReference(reference.to_string()));
        };
        Story::load_file(&path, max_bytes)
    }

    /// Loads and validates one story file.
    pub fn load_file(path: &Path, max_bytes: usize) -> Result<Story, StoryError> {
        let bytes = std::fs::read(path).map_err(|source| StoryError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if bytes.len() > max_bytes {
            return Err(StoryError::TooLarge {
                path: path.to_path_buf(),
                size: bytes.len(),
                limit: max_bytes,
            });
        }
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        Story::parse(path, &bytes, Some(stem))
    }

    /// Parses story JSON; `expected_id` is the file stem the id must equal, if any.
    pub fn parse(
        path: &Path,
        bytes: &[u8],
        expected_id: Option<&str>,
    ) -> Result<Story, StoryError> {
        let invalid = |line, column, message: String| StoryError::Invalid {
            path: path.to_path_buf(),
            line,
            column,
            message,
        };
        let text = std::str::from_utf8(bytes)
            .map_err(|e| invalid(1, 1, format!("not UTF-8 text: {e}")))?;
        let mut story: Story = serde_json::from_str(text).map_err(|e| {
            let (line, column) = json_error_position(text, &e);
            let message = e.to_string();
            let message = message
                .rsplit_once(" at line ")
                .map_or(&*message, |(m, _)| m);
            invalid(line, column, message.to_string())
        })?;
        let at = |key: &str| line_col(text, find_key(text, key).unwrap_or(0));
        if LibraryId::parse(&story.id).is_err() {
            let (line, column) = at("id");
            return Err(invalid(
                line,
                column,
                format!("field `id`: `{}` is not [a-z0-9-]{{1,64}}", story.id),
            ));
        }
        if let Some(stem) = expected_id
            && stem != story.id
        {
            let (line, column) = at("id");
            return Err(invalid(
                line,
                column,
                format!(
                    "field `id`: `{}` must equal the file name `{stem}`",
                    story.id
                ),
            ));
        }
        for (field, value) in [("title", &story.title), ("overview", &story.overview)] {
            if value.trim().is_empty() {
                let (line, column) = at(field);
                return Err(invalid(line, column, format!("field `{field}` is empty")));
            }
        }
        story.version = crate::sha256_hex(bytes);
        Ok(story)
    }

    /// Loads every `*.json` story in `dir`, sorted by id; the errors of bad files are kept.
    pub fn load_dir(
        dir: &Path,
        max_bytes: usize,
    ) -> Result<Vec<Result<Story, StoryError>>, StoryError> {
        let entries = std::fs::read_dir(dir).map_err(|source| StoryError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        Ok(paths
            .iter()
            .map(|p| Story::load_file(p, max_bytes))
            .collect())
    }

    /// A motion for a debate when the reader sets none.
    pub fn default_motion(&self) -> String {
        let motion = match self.scenarios.as_slice() {
            [first, second, ..] => format!(
                "Which path is the likelier for \"{}\": {} or {}?",
                self.title, first.title, second.title
            ),
            _ => format!(
                "\"{}\": on balance, is this a change for the better or for the worse?",
                self.title
            ),
        };
        motion
            .chars()
            .take(crate::motion::MAX_MOTION_CHARS)
            .collect()
    }

    /// Motions a reader might pick: the default first, then alternatives drawn from the
    /// story's scenarios and historical parallels (at most four, each within the motion limit).
    pub fn motion_suggestions(&self) -> Vec<String> {
        let mut motions = vec![self.default_motion()];
        for scenario in self.scenarios.iter().take(2) {
            motions.push(format!(
                "Should the world prepare for this outcome: {}?",
                scenario.title
            ));
        }
        if let Some(parallel) = self.historical_context.first() {
            motions.push(format!(
                "Does {} show where \"{}\" leads?",
                parallel.title, self.title
            ));
        }
        if motions.len() == 1 {
            motions.push(format!(
                "\"{}\": should governments act now rather than wait?",
                self.title
            ));
        }
        let mut seen = std::collections::HashSet::new();
        motions
            .into_iter()
            .map(|m| {
                m.chars()
                    .take(crate::motion::MAX_MOTION_CHARS)
                    .collect::<String>()
            })
            .filter(|m| seen.insert(m.clone()))
            .take(4)
            .collect()
    }

    /// Every piece of text in the story, for checking claims against it.
    pub fn full_text(&self) -> String {
        let mut parts: Vec<&str> = vec![&self.title, &self.overview];
        parts.extend(self.dek.as_deref());
        parts.extend(self.updated.as_deref());
        for k in &self.key_indicators {
            parts.extend([k.value.as_str(), &k.label]);
            parts.extend(k.note.as_deref());
        }
        for p in &self.people {
            parts.extend([p.name.as_str(), &p.role]);
            parts.extend(p.note.as_deref());
        }
        for o in &self.organizations {
            parts.extend([o.name.as_str(), &o.kind, &o.status, &o.description]);
        }
        for t in &self.timeline {
            parts.extend([t.date.as_str(), &t.title, &t.category, &t.summary]);
        }
        for s in &self.scenarios {
            parts.extend([s.title.as_str(), &s.summary]);
            parts.extend(s.discussed_by.iter().map(String::as_str));
        }
        for h in &self.historical_context {
            parts.extend([
                h.title.as_str(),
                &h.period,
                &h.what_happened,
                &h.outcome,
                &h.relevance,
            ]);
        }
        for s in &self.sources {
            parts.push(&s.title);
        }
        parts.join("\n")
    }
}

/// Where a JSON error is. serde_json reports the position after the offending key; for an
/// unknown field the editor wants the key itself.
fn json_error_position(text: &str, e: &serde_json::Error) -> (usize, usize) {
    let (line, column) = (e.line(), e.column());
    let message = e.to_string();
    let field = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next());
    let Some(field) = field else {
        return (line, column);
    };
    let Some(line_text) = text.lines().nth(line.saturating_sub(1)) else {
        return (line, column);
    };
    let end = line_text
        .char_indices()
        .nth(column)
        .map_or(line_text.len(), |(i, _)| i);
    match line_text[..end].rfind(&format!("\"{field}\"")) {
        Some(start) => (line, line_text[..start].chars().count() + 1),
        None => (line, column),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped(id: &str) -> Story {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../stories")
            .join(format!("{id}.json"));
        Story::load_file(&path, DEFAULT_MAX_BYTES).unwrap()
    }

    #[test]
    fn motion_suggestions_start_with_the_default_and_draw_on_scenarios_and_history() {
        let story = shipped("nk-troops-russia");
        let motions = story.motion_suggestions();
        assert_eq!(motions[0], story.default_motion());
        assert!((3..=4).contains(&motions.len()), "{motions:?}");
        assert!(
            motions[1].contains(&story.scenarios[0].title),
            "{motions:?}"
        );
        assert!(
            motions
                .iter()
                .any(|m| m.contains(&story.historical_context[0].title))
        );
        let unique: std::collections::HashSet<_> = motions.iter().collect();
        assert_eq!(unique.len(), motions.len(), "no motion twice");
        for m in &motions {
            assert!(crate::motion::check_motion(m).is_ok(), "{m}");
        }
    }

    #[test]
    fn a_story_with_nothing_but_an_overview_still_gets_alternatives() {
        let mut story = shipped("nk-troops-russia");
        story.scenarios.clear();
        story.historical_context.clear();
        story.title = "A quiet story".into();
        assert_eq!(story.motion_suggestions().len(), 2);
        story.title = "x".repeat(400);
        let motions = story.motion_suggestions();
        assert!(!motions.is_empty());
        assert!(
            motions
                .iter()
                .all(|m| crate::motion::check_motion(m).is_ok())
        );
    }
}
