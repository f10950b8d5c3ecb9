//! Story and persona ids. An id names a file in its folder (`personas/{id}.toml`), so only
//! a [`LibraryId`] — checked to be `[a-z0-9-]{1,64}` when parsed — builds such a path: no
//! id a reader, an editor or a card supplies can reach outside the folder.

use std::fmt;
use std::path::{Path, PathBuf};

/// A valid story or persona id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LibraryId(String);

/// Text that is not a story or persona id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an id ([a-z0-9-]{{1,64}})")]
pub struct BadId(pub String);

impl LibraryId {
    /// `id`, if it is `[a-z0-9-]{1,64}`.
    pub fn parse(id: &str) -> Result<LibraryId, BadId> {
        let valid = (1..=64).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        match valid {
            true => Ok(LibraryId(id.to_string())),
            false => Err(BadId(id.to_string())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The file `{id}.{extension}` in `dir`.
    pub fn file_in(&self, dir: &Path, extension: &str) -> PathBuf {
        dir.join(format!("{}.{extension}", self.0))
    }
}

impl std::str::FromStr for LibraryId {
    type Err = BadId;

    fn from_str(id: &str) -> Result<LibraryId, BadId> {
        LibraryId::parse(id)
    }
}

impl fmt::Display for LibraryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_lowercase_letters_digits_and_hyphens_make_an_id() {
        for good in [
            "winston-churchill",
            "a",
            "nk-troops-russia",
            &"x".repeat(64),
        ] {
            assert_eq!(
                LibraryId::parse(good).map(|id| id.to_string()),
                Ok(good.to_string())
            );
        }
        for bad in [
            "",
            "../etc/passwd",
            "a/b",
            "Churchill",
            "x.toml",
            "é",
            &"x".repeat(65),
        ] {
            assert_eq!(LibraryId::parse(bad), Err(BadId(bad.to_string())), "{bad}");
        }
    }

    #[test]
    fn an_id_names_a_file_inside_its_folder() {
        let id = LibraryId::parse("ada-lovelace").unwrap();
        let path = id.file_in(Path::new("personas"), "toml");
        assert_eq!(path, Path::new("personas/ada-lovelace.toml"));
    }
}
