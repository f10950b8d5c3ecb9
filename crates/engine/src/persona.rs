//! Personas: the historical figures and archetypes who debate, one TOML file each (docs/files.md).

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::id::LibraryId;
use crate::location::{find_key, line_col};

/// A persona, as an editor wrote it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Persona {
    pub id: String,
    pub name: String,
    pub kind: PersonaKind,
    #[serde(default)]
    pub lived: Option<String>,
    pub role: String,
    pub bio: String,
    pub worldview: Vec<String>,
    pub voice: String,
    #[serde(default)]
    pub signature_phrases: Vec<String>,
    #[serde(default)]
    pub sample_lines: Vec<String>,
    #[serde(default)]
    pub knowledge_horizon: Option<String>,
    #[serde(default)]
    pub debate_style: Option<String>,
    #[serde(default)]
    pub positions: Vec<Position>,
    #[serde(default)]
    pub avoid: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// SHA-256 of the file's bytes: every result records the versions it used.
    #[serde(skip_deserializing)]
    pub version: String,
}

/// What every output showing a living person's persona says of it.
pub const LIVING_NOTICE: &str =
    "a simulated imitation of a living person, written by a language model: not their words";

/// What sort of figure a persona is.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum PersonaKind {
    Historical,
    Archetype,
    /// A living person: refused unless the deployment allows them, and then labelled.
    Living,
}

/// A documented stance of the persona, with where it is documented.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Position {
    pub topic: String,
    pub stance: String,
    pub source: String,
}

/// One problem in a persona file, located for the editor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.path.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

/// Why a persona could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PersonaError {
    #[error("unknown persona `{id}`: there is no {}", path.display())]
    NotFound { id: String, path: PathBuf },
    #[error("`{0}` is not a persona id ([a-z0-9-]{{1,64}})")]
    BadId(String),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid { problems: Vec<Problem> },
}

const MAX_WORLDVIEW: usize = 8;

impl Persona {
    /// Loads the persona with this id from `dir`.
    pub fn load(dir: &Path, id: &str) -> Result<Persona, PersonaError> {
        let valid = LibraryId::parse(id).map_err(|_| PersonaError::BadId(id.to_string()))?;
        let path = valid.file_in(dir, "toml");
        if !path.exists() {
            return Err(PersonaError::NotFound {
                id: id.to_string(),
                path,
            });
        }
        Persona::load_file(&path)
    }

    /// Loads and validates one persona file.
    pub fn load_file(path: &Path) -> Result<Persona, PersonaError> {
        let bytes = std::fs::read(path).map_err(|source| PersonaError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let stem = path.file_stem().and_then(|s| s.to_str());
        Persona::parse(path, &bytes, stem).map_err(|problems| PersonaError::Invalid { problems })
    }

    /// Parses a persona file's bytes, reporting every problem found with its location.
    /// `expected_id` is the file stem that the id must equal, if any.
    pub fn parse(
        path: &Path,
        bytes: &[u8],
        expected_id: Option<&str>,
    ) -> Result<Persona, Vec<Problem>> {
        let problem = |offset: usize, text: &str, message: String| {
            let (line, column) = line_col(text, offset);
            Problem {
                path: path.to_path_buf(),
                line,
                column,
                message,
            }
        };
        let text = match std::str::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => {
                return Err(vec![problem(
                    e.valid_up_to(),
                    "",
                    format!("not UTF-8 text: {e}"),
                )]);
            }
        };
        let mut persona: Persona = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            vec![problem(offset, text, e.message().trim().replace('\n', " "))]
        })?;

        let mut problems = Vec::new();
        let mut check = |ok: bool, key: &str, message: String| {
            if !ok {
                problems.push(problem(find_key(text, key).unwrap_or(0), text, message));
            }
        };
        check(
            LibraryId::parse(&persona.id).is_ok(),
            "id",
            format!("`id`: `{}` is not [a-z0-9-]{{1,64}}", persona.id),
        );
        if let Some(stem) = expected_id {
            check(
                persona.id == stem,
                "id",
                format!("`id`: `{}` must equal the file name `{stem}`", persona.id),
            );
        }
        for (key, value) in [
            ("name", &persona.name),
            ("role", &persona.role),
            ("bio", &persona.bio),
            ("voice", &persona.voice),
        ] {
            check(!value.trim().is_empty(), key, format!("`{key}` is empty"));
        }
        check(
            !persona.role.contains('\n'),
            "role",
            "`role` must be one line".to_string(),
        );
        check(
            (1..=MAX_WORLDVIEW).contains(&persona.worldview.len()),
            "worldview",
            format!(
                "`worldview` must hold 1 to {MAX_WORLDVIEW} beliefs, not {}",
                persona.worldview.len()
            ),
        );
        if !problems.is_empty() {
            return Err(problems);
        }
        persona.version = crate::sha256_hex(bytes);
        Ok(persona)
    }

    /// Checks every `*.toml` file in `dir`: the personas that load, and all problems found.
    pub fn check_dir(dir: &Path) -> Result<(Vec<Persona>, Vec<Problem>), PersonaError> {
        let entries = std::fs::read_dir(dir).map_err(|source| PersonaError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        paths.sort();
        let mut personas = Vec::new();
        let mut problems = Vec::new();
        for path in paths {
            match Persona::load_file(&path) {
                Ok(p) => personas.push(p),
                Err(PersonaError::Invalid { problems: found }) => problems.extend(found),
                Err(e) => problems.push(Problem {
                    path: path.clone(),
                    line: 1,
                    column: 1,
                    message: e.to_string(),
                }),
            }
        }
        Ok((personas, problems))
    }

    /// Who the persona is, in one line: "Winston Churchill (1874–1965)".
    pub fn display_name(&self) -> String {
        match &self.lived {
            Some(lived) => format!("{} ({lived})", self.name),
            None => self.name.clone(),
        }
    }
}
