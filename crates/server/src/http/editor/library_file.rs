//! The editors' files named safely: a persona id, or a template's or policy file's name, never a path,
//! resolved inside the configured folders.

use std::path::PathBuf;

use crate::error::ApiError;
use crate::state::AppState;
use crate::store::AuditAction;
use crossfire_engine::id::LibraryId;

crossfire_engine::named_enum! {
    /// Which kind of editor's file.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
    pub enum FileKind("file kind") {
        /// `personas/{id}.toml`
        Persona = "persona",
        /// `prompts/{name}.j2`
        Template = "template",
        /// `policy/{name}.toml`: a part of the screening policy.
        Policy = "policy",
    }
}

impl FileKind {
    /// How a save of this kind is named in the audit log.
    pub fn saved(self) -> AuditAction {
        match self {
            FileKind::Persona => AuditAction::PersonaSave,
            FileKind::Template => AuditAction::TemplateSave,
            FileKind::Policy => AuditAction::PolicySave,
        }
    }
}

/// A file of the library, named safely: a persona id or a template's file name, never a path.
#[derive(Clone)]
pub struct LibraryFile {
    pub kind: FileKind,
    pub name: String,
    pub path: PathBuf,
}

impl LibraryFile {
    pub fn new(state: &AppState, kind: FileKind, name: &str) -> Result<LibraryFile, ApiError> {
        let path = match kind {
            FileKind::Persona => LibraryId::parse(name)
                .ok()
                .map(|id| id.file_in(&state.library().personas_dir, "toml")),
            FileKind::Template => {
                plain_file_name(name, ".j2").then(|| state.library().prompts_dir.join(name))
            }
            FileKind::Policy => {
                plain_file_name(name, ".toml").then(|| state.library().policy_dir.join(name))
            }
        };
        let path =
            path.ok_or_else(|| ApiError::NotFound(format!("no {} named `{name}`", kind.as_str())))?;
        Ok(LibraryFile {
            kind,
            name: name.to_string(),
            path,
        })
    }

    /// The file's text as saved now, if it exists.
    pub fn read(&self) -> Result<Option<String>, ApiError> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ApiError::Internal(format!("{}: {e}", self.path.display()))),
        }
    }
}

/// A file name of lowercase letters, digits and underscores with this extension: never a
/// path.
fn plain_file_name(name: &str, extension: &str) -> bool {
    name.strip_suffix(extension).is_some_and(|stem| {
        !stem.is_empty()
            && stem
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    })
}

/// A file's version: the hash of its bytes, as personas and runs record it.
pub fn version_of(text: &str) -> String {
    crossfire_engine::sha256_hex(text.as_bytes())
}
