//! The policy's terms indexed by what their first word can match, so that at each word of a
//! text only the few terms that may start there are tried, not all of them (hundreds, in tens
//! of lists, at every word of every sentence a model writes).
//!
//! The index only narrows: every term it names is still matched in full by the matcher's own
//! rules. It must never leave out a term whose first pattern matches a word, so each of those
//! rules (`matches` in `matcher.rs`) has its way in here:
//!
//! - a word spelled as the term, or as its plural (`-s`, `-es`, `-y` to `-ies`), or as the
//!   term without its final `s`: looked up by the word's own spelling and those stems;
//! - a prefix (`exterminat*`): looked up by each of the word's beginnings a stem is as long as;
//! - one slip in a long word (a letter missing, added, changed, or two swapped): such a word
//!   and term agree on their first three bytes or their last three (at most two bytes in the
//!   middle differ, and both are at least [`LONG`] long), looked up by both;
//! - one slip in the beginning of a long word, for a long prefix: the few long stems, each
//!   checked the same way against the word's possible beginnings;
//! - a stretched word (compared squeezed) or a masked one (`f*ggot`, compared letter by
//!   letter): every term, as before the index; such words are rare;
//! - a first pattern of any word (`?`) or any number (`#number`): tried at every word.

use std::collections::HashMap;

use super::normalize::Word;
use super::term::{LONG, Pattern, Term};

/// A term of a list: `lists[list][term]`. Ordered so that sorted references are in list
/// order, then each list's order, the order the matcher tries them in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct TermRef {
    pub list: u32,
    pub term: u32,
}

/// A long prefix, with what a slipped beginning of a word must share with it.
#[derive(Debug, Clone)]
struct LongStem {
    head: [u8; 3],
    tail: [u8; 3],
    len: usize,
    at: TermRef,
}

/// See the module's documentation.
#[derive(Debug, Clone, Default)]
pub(super) struct TermIndex {
    /// Terms whose first pattern is a word, by that word.
    words: HashMap<String, Vec<TermRef>>,
    /// Terms whose first word ends in `s`, by that word without it (`term.strip_suffix('s')`).
    without_s: HashMap<String, Vec<TermRef>>,
    /// Terms whose first word ends in `y`, by that word without it (for `-ies`).
    without_y: HashMap<String, Vec<TermRef>>,
    /// Terms whose first word is long, by its first three bytes and by its last three.
    long_heads: HashMap<[u8; 3], Vec<TermRef>>,
    long_tails: HashMap<[u8; 3], Vec<TermRef>>,
    /// Terms whose first pattern is a prefix, by the stem; and the stems' lengths, ascending.
    stems: HashMap<String, Vec<TermRef>>,
    stem_lengths: Vec<usize>,
    long_stems: Vec<LongStem>,
    /// Terms starting with any word or any number: tried everywhere.
    everywhere: Vec<TermRef>,
    /// Every term, in order: for stretched and masked words.
    all: Vec<TermRef>,
}

/// The first three bytes of `text`, if it has that many.
fn head(text: &[u8]) -> Option<[u8; 3]> {
    text.first_chunk().copied()
}

/// The last three bytes of `text`, if it has that many.
fn tail(text: &[u8]) -> Option<[u8; 3]> {
    text.last_chunk().copied()
}

impl TermIndex {
    pub fn new(lists: &[Vec<Term>]) -> TermIndex {
        let mut index = TermIndex::default();
        for (list, terms) in lists.iter().enumerate() {
            for (term, patterns) in terms.iter().enumerate() {
                let at = TermRef {
                    list: list as u32,
                    term: term as u32,
                };
                index.all.push(at);
                match patterns.first() {
                    Some(Pattern::Word(word)) => index.add_word(word, at),
                    Some(Pattern::Prefix(stem)) => index.add_stem(stem, at),
                    Some(Pattern::Number | Pattern::Any) => index.everywhere.push(at),
                    None => {}
                }
            }
        }
        index.stem_lengths.sort_unstable();
        index.stem_lengths.dedup();
        index
    }

    fn add_word(&mut self, word: &str, at: TermRef) {
        let entry = |map: &mut HashMap<String, Vec<TermRef>>, key: &str| {
            map.entry(key.to_string()).or_default().push(at);
        };
        entry(&mut self.words, word);
        if let Some(stem) = word.strip_suffix('s') {
            entry(&mut self.without_s, stem);
        }
        if let Some(stem) = word.strip_suffix('y') {
            entry(&mut self.without_y, stem);
        }
        let bytes = word.as_bytes();
        if bytes.len() >= LONG {
            // Both exist: a long word has three bytes at each end.
            for (map, key) in [
                (&mut self.long_heads, head(bytes)),
                (&mut self.long_tails, tail(bytes)),
            ] {
                map.entry(key.expect("a long word")).or_default().push(at);
            }
        }
    }

    fn add_stem(&mut self, stem: &str, at: TermRef) {
        self.stems.entry(stem.to_string()).or_default().push(at);
        self.stem_lengths.push(stem.len());
        let bytes = stem.as_bytes();
        if let (true, Some(head), Some(tail)) = (bytes.len() >= LONG, head(bytes), tail(bytes)) {
            self.long_stems.push(LongStem {
                head,
                tail,
                len: bytes.len(),
                at,
            });
        }
    }

    /// The terms that may start at `word`, in list order, into `out` (cleared first): every
    /// term whose first pattern matches `word`, and perhaps a few more.
    pub fn candidates(&self, word: &Word, out: &mut Vec<TermRef>) {
        out.clear();
        let text = word.text.as_str();
        if word.stretched || text.contains('*') {
            out.extend_from_slice(&self.all);
            return;
        }
        let mut add = |found: Option<&Vec<TermRef>>| {
            if let Some(found) = found {
                out.extend_from_slice(found);
            }
        };
        add(self.words.get(text));
        // The word is the term's plural, or the term is the word's.
        if let Some(stem) = text.strip_suffix('s') {
            add(self.words.get(stem));
        }
        if let Some(stem) = text.strip_suffix("es") {
            add(self.words.get(stem));
        }
        if let Some(stem) = text.strip_suffix("ies") {
            add(self.without_y.get(stem));
        }
        add(self.without_s.get(text));
        // The word begins with a stem.
        for &length in self.stem_lengths.iter().take_while(|&&l| l <= text.len()) {
            if let Some(start) = text.get(..length) {
                add(self.stems.get(start));
            }
        }
        let bytes = text.as_bytes();
        // One slip in a long word: one_slip compares words of LONG bytes and more.
        if bytes.len() >= LONG {
            add(head(bytes).and_then(|h| self.long_heads.get(&h)));
            add(tail(bytes).and_then(|t| self.long_tails.get(&t)));
        }
        for stem in &self.long_stems {
            if stem.may_slip(bytes) {
                out.push(stem.at);
            }
        }
        out.extend_from_slice(&self.everywhere);
        out.sort_unstable();
        out.dedup();
    }
}

impl LongStem {
    /// Whether a beginning of `text` a byte shorter, as long, or a byte longer than the stem
    /// might be one slip from it (`slipped_prefix`): it shares the stem's first three bytes,
    /// or ends in its last three.
    fn may_slip(&self, text: &[u8]) -> bool {
        head(text) == Some(self.head)
            || (self.len - 1..=self.len + 1)
                .any(|n| text.get(..n).and_then(tail) == Some(self.tail))
    }
}
