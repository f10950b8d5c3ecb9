//! Screening: what readers write and what models write, checked against the editors'
//! policy before anyone is shown it (docs/files.md#policy, docs/http-api.md#screening).
//!
//! A policy is categories of unfit text — hate, threats, incitement, self-harm, sexual
//! content and minors, weapons and illicit instructions, defamation of private people —
//! after the MLCommons hazard taxonomy behind Llama Guard 3 and OpenAI's moderation
//! categories. Each category's rules say that a target occurs with an act (a protected group
//! with dehumanisation or a call to kill, a child with sexualisation), not merely that a word
//! appears, and name the frames that defuse them: history, policy, counter-speech, quotation,
//! negation. Text is folded first ([`normalize`]), so disguised spellings read plainly.

pub mod echo;
pub mod endpoint;
mod index;
mod matcher;
pub mod normalize;
mod policy;
mod screener;
mod term;

pub use matcher::Finding;
pub use policy::{Action, Applies, Category, Policy};
pub use screener::{Refusal, ScreenError, ScreenObserver, Screener, Verdict};

/// Whose text is screened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// A reader's motion or question, before anything runs.
    Motion,
    /// A sentence a model wrote, before anyone is shown it.
    Output,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Motion => "motion",
            Stage::Output => "output",
        }
    }
}
