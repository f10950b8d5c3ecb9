//! A problem in an editor's file, located (`file:line:col: message`): what the lint, the
//! live reload and a draft's check report.

use serde::Serialize;
use utoipa::ToSchema;

/// A problem in a persona file, located.
#[derive(Serialize, ToSchema, Debug, Clone)]
pub struct LintProblem {
    pub file: Option<String>,
    pub line: usize,
    pub column: usize,
    pub message: String,
    /// `file:line:col: message`.
    pub text: String,
}

impl LintProblem {
    /// A problem at a place in a file.
    pub fn at(path: &std::path::Path, line: usize, column: usize, message: &str) -> LintProblem {
        LintProblem {
            file: path.file_name().map(|f| f.to_string_lossy().into_owned()),
            line,
            column,
            message: message.to_string(),
            text: format!("{}:{line}:{column}: {message}", path.display()),
        }
    }

    /// A problem with no place to point at (line and column 0).
    pub fn unlocated(text: String) -> LintProblem {
        LintProblem {
            file: None,
            line: 0,
            column: 0,
            message: text.clone(),
            text,
        }
    }
}

impl From<&crossfire_engine::persona::Problem> for LintProblem {
    fn from(p: &crossfire_engine::persona::Problem) -> LintProblem {
        LintProblem::at(&p.path, p.line, p.column, &p.message)
    }
}

impl From<&crossfire_engine::story::StoryError> for LintProblem {
    fn from(e: &crossfire_engine::story::StoryError) -> LintProblem {
        match e {
            crossfire_engine::story::StoryError::Invalid {
                path,
                line,
                column,
                message,
            } => LintProblem::at(path, *line, *column, message),
            other => LintProblem::unlocated(other.to_string()),
        }
    }
}
