//! The stories and personas of one live set, validated, by id; files with problems are
//! left out and their problems kept for editors.

use std::collections::BTreeMap;

use super::LintProblem;
use crate::error::ApiError;
use crossfire_engine::config::Library;
use crossfire_engine::persona::Persona;
use crossfire_engine::story::Story;

/// The validated stories and personas of this instance.
pub struct Catalog {
    pub stories: BTreeMap<String, Story>,
    pub personas: BTreeMap<String, Persona>,
    /// Problems of files left out, located, for editors.
    pub problems: Vec<LintProblem>,
}

impl Catalog {
    /// Loads the configured folders; bad files are left out and their problems kept.
    pub fn load(library: &Library) -> Result<Catalog, String> {
        let mut problems = Vec::new();
        let mut stories = BTreeMap::new();
        let loaded = Story::load_dir(&library.stories_dir, library.story_max_bytes)
            .map_err(|e| e.to_string())?;
        for story in loaded {
            match story {
                Ok(s) => {
                    stories.insert(s.id.clone(), s);
                }
                Err(e) => problems.push(LintProblem::from(&e)),
            }
        }
        let (found, persona_problems) =
            Persona::check_dir(&library.personas_dir).map_err(|e| e.to_string())?;
        problems.extend(persona_problems.iter().map(LintProblem::from));
        let personas = found.into_iter().map(|p| (p.id.clone(), p)).collect();
        Ok(Catalog {
            stories,
            personas,
            problems,
        })
    }

    pub fn story(&self, id: &str) -> Result<&Story, ApiError> {
        self.stories
            .get(id)
            .ok_or_else(|| ApiError::NotFound(format!("unknown story `{id}`")))
    }

    pub fn persona(&self, id: &str) -> Result<&Persona, ApiError> {
        self.personas
            .get(id)
            .ok_or_else(|| ApiError::NotFound(format!("unknown persona `{id}`")))
    }
}
