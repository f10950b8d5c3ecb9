//! What a policy's lists hold, compiled: terms of one or more word patterns, and the length
//! from which a word may be matched with one slip. The policy compiles them, the index finds
//! the candidates for a word, the matcher tries them.

/// One word of a term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Pattern {
    /// A word, folded; its plural (`-s`, `-es`) matches too.
    Word(String),
    /// `exterminat*`: any word that starts so.
    Prefix(String),
    /// `#number`: any number written in digits.
    Number,
    /// `?`: any one word.
    Any,
}

/// A term: one or more words in a row.
pub(super) type Term = Vec<Pattern>;

/// Words shorter than this are left alone by the one-slip match: too many are one letter
/// from another (`nigeria`).
pub(super) const LONG: usize = 8;
