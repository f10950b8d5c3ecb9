//! Running a policy's rules over a text: which categories' rules find something in it.

use super::Stage;
use super::index::TermRef;
use super::normalize::{Word, squeeze, words};
use super::policy::{Applies, Category, Policy, Rule};
use super::term::{LONG, Pattern, Term};

/// A rule that found something.
#[derive(Debug, Clone, Copy)]
pub struct Finding<'p> {
    pub category: &'p Category,
    /// The rule's name: for editors and logs, never for readers.
    pub rule: &'p str,
}

/// Where a list's term occurs: words `start..end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Occurrence {
    start: usize,
    end: usize,
    quoted: bool,
    negated: bool,
}

/// Words that turn what follows them around.
const NEGATIONS: &[&str] = &[
    "not", "no", "never", "nor", "neither", "cannot", "without", "dont", "doesnt", "didnt", "isnt",
    "arent", "wasnt", "werent", "cant", "wont", "shouldnt", "nobody", "none",
];

/// How many words before a term a negation reaches.
const NEGATION_REACH: usize = 3;

impl Policy {
    /// What the rules for `stage` find in `text`, a finding per category at most.
    pub fn screen(&self, text: &str, stage: Stage) -> Vec<Finding<'_>> {
        let mut words = self.split_run_together(words(text));
        // Text that is all one quotation is said, not mentioned.
        if words.iter().all(|w| w.quoted) {
            for word in &mut words {
                word.quoted = false;
            }
        }
        // Every list's occurrences at once: one look-up in the index per word serves them all,
        // and nearly every list is asked for by some rule.
        let occurrences = self.occurrences(&words);
        let mut findings = Vec::new();
        for category in &self.categories {
            let hit = category.rules.iter().find(|rule| {
                let applies = matches!(
                    (rule.applies, stage),
                    (Applies::Both, _)
                        | (Applies::Motion, Stage::Motion)
                        | (Applies::Output, Stage::Output)
                );
                applies && fires(rule, &occurrences)
            });
            if let Some(rule) = hit {
                findings.push(Finding {
                    category,
                    rule: &rule.name,
                });
            }
        }
        findings
    }

    /// Every place a term of each list occurs in `words`, by list: at each word, the list's
    /// first term (in the list's order) that matches from there. Only the terms the index
    /// names for a word are tried; the others cannot match it.
    fn occurrences(&self, words: &[Word]) -> Vec<Vec<Occurrence>> {
        let mut found = vec![Vec::new(); self.lists.len()];
        let mut candidates = Vec::new();
        for start in 0..words.len() {
            self.index.candidates(&words[start], &mut candidates);
            // Sorted by list, then term: the first match of a list is its first in order.
            let mut matched: Option<u32> = None;
            for &TermRef { list, term } in &candidates {
                if matched == Some(list) {
                    continue;
                }
                let term = &self.lists[list as usize][term as usize];
                if let Some(occurrence) = occurrence(term, words, start) {
                    found[list as usize].push(occurrence);
                    matched = Some(list);
                }
            }
        }
        found
    }

    /// Words written without spaces between them (`muslimsarevermin`), split where every
    /// piece is a word the policy names.
    fn split_run_together(&self, words: Vec<Word>) -> Vec<Word> {
        let mut out = Vec::with_capacity(words.len());
        for word in words {
            let pieces = match word.text.len() >= 10 && !self.dictionary.contains(&word.text) {
                true => self.word_break(&word.text),
                false => None,
            };
            match pieces {
                Some(pieces) => out.extend(pieces.into_iter().map(|text| Word {
                    text,
                    stretched: word.stretched,
                    quoted: word.quoted,
                    number: false,
                })),
                None => out.push(word),
            }
        }
        out
    }

    /// `text` as two or more words of the dictionary, if it is that.
    fn word_break(&self, text: &str) -> Option<Vec<String>> {
        let bytes = text.len();
        // best[i]: where the last word of a split of text[..i] starts.
        let mut best: Vec<Option<usize>> = vec![None; bytes + 1];
        best[0] = Some(0);
        for end in 1..=bytes {
            if !text.is_char_boundary(end) {
                continue;
            }
            // The longest word that ends here, so `yourself` is not `your self`.
            for start in 0..end {
                if best[start].is_none() || !text.is_char_boundary(start) {
                    continue;
                }
                let piece = &text[start..end];
                let known = self.dictionary.contains(piece)
                    || ["s", "es", "ed", "d", "ing"].iter().any(|ending| {
                        piece
                            .strip_suffix(ending)
                            .is_some_and(|p| self.dictionary.contains(p))
                    });
                if known && (piece.len() > 1 || piece == "a" || piece == "i") {
                    best[end] = Some(start);
                    break;
                }
            }
        }
        best[bytes]?;
        let mut pieces = Vec::new();
        let mut end = bytes;
        while end > 0 {
            let start = best[end]?;
            pieces.push(text[start..end].to_string());
            end = start;
        }
        pieces.reverse();
        (pieces.len() >= 2).then_some(pieces)
    }
}

/// Whether `rule` fires, given the occurrences of every list.
fn fires(rule: &Rule, occurrences: &[Vec<Occurrence>]) -> bool {
    if rule
        .unless
        .iter()
        .any(|&list| !occurrences[list].is_empty())
    {
        return false;
    }
    let said = |o: &Occurrence| !o.quoted;
    if rule
        .also
        .iter()
        .any(|&list| !occurrences[list].iter().any(said))
    {
        return false;
    }
    // The first list names who or what; a negation before any other list's term turns the
    // statement around ("immigrants are not vermin").
    let counts = |i: usize, o: &Occurrence| said(o) && (i == 0 || rule.negated || !o.negated);
    // Most rules stop here, before anything is collected: a list with nothing that counts.
    if rule
        .all
        .iter()
        .enumerate()
        .any(|(i, &list)| !occurrences[list].iter().any(|o| counts(i, o)))
    {
        return false;
    }
    let candidates: Vec<Vec<Occurrence>> = rule
        .all
        .iter()
        .enumerate()
        .map(|(i, &list)| {
            occurrences[list]
                .iter()
                .filter(|o| counts(i, o))
                .copied()
                .collect()
        })
        .collect();
    within_reach(&candidates, 0, None, usize::MAX, 0, rule)
}

/// Whether one occurrence of each remaining list (from `index`) fits the rule's window
/// together with those chosen so far (spanning `first..last`).
fn within_reach(
    candidates: &[Vec<Occurrence>],
    index: usize,
    previous: Option<Occurrence>,
    first: usize,
    last: usize,
    rule: &Rule,
) -> bool {
    let Some(options) = candidates.get(index) else {
        return true;
    };
    options.iter().any(|o| {
        if rule.ordered && previous.is_some_and(|p| o.start < p.end) {
            return false;
        }
        let (first, last) = (first.min(o.start), last.max(o.end));
        last - first <= rule.within + 1
            && within_reach(candidates, index + 1, Some(*o), first, last, rule)
    })
}

/// Every place a term of `list` occurs in `words`, trying every term at every word: what
/// [`Policy::occurrences`] finds with its index, the slow way, to test it against.
#[cfg(test)]
fn occurrences_of(list: &[Term], words: &[Word]) -> Vec<Occurrence> {
    (0..words.len())
        .filter_map(|start| list.iter().find_map(|term| occurrence(term, words, start)))
        .collect()
}

/// `term` in `words` from word `start`, if it is there.
fn occurrence(term: &Term, words: &[Word], start: usize) -> Option<Occurrence> {
    let end = start + term.len();
    let span = words.get(start..end)?;
    if !term
        .iter()
        .zip(span)
        .all(|(pattern, word)| matches(pattern, word))
    {
        return None;
    }
    let negated = words[start.saturating_sub(NEGATION_REACH)..start]
        .iter()
        .any(|w| NEGATIONS.contains(&w.text.as_str()));
    Some(Occurrence {
        start,
        end,
        quoted: span.iter().any(|w| w.quoted),
        negated,
    })
}

fn matches(pattern: &Pattern, word: &Word) -> bool {
    let text = word.text.as_str();
    match pattern {
        Pattern::Number => word.number,
        Pattern::Any => true,
        Pattern::Prefix(stem) => {
            text.starts_with(stem.as_str())
                || (word.stretched && squeeze(text).starts_with(&squeeze(stem)))
                || masked(text, stem, true)
                || slipped_prefix(text, stem)
        }
        Pattern::Word(term) => {
            text == term
                || (word.stretched && squeeze(text) == squeeze(term))
                || text
                    .strip_prefix(term.as_str())
                    .is_some_and(|rest| rest == "s" || rest == "es")
                || (term.ends_with('y') && text.strip_suffix("ies") == term.strip_suffix('y'))
                || term.strip_suffix('s') == Some(text)
                || masked(text, term, false)
                || one_slip(text, term)
        }
    }
}

/// A word with letters masked (`f*ggot`) that otherwise spells `term` (or starts with it).
fn masked(text: &str, term: &str, prefix: bool) -> bool {
    if !text.contains('*') {
        return false;
    }
    let (t, w): (Vec<char>, Vec<char>) = (text.chars().collect(), term.chars().collect());
    let same_length = t.len() == w.len() || (prefix && t.len() > w.len());
    same_length && w.iter().zip(&t).all(|(a, b)| *b == '*' || a == b)
        || (!prefix
            && t.len() == w.len() + 1
            && t.last() == Some(&'s')
            && w.iter().zip(&t).all(|(a, b)| *b == '*' || a == b))
}

/// A word that starts with `stem` but for one slip (`extrminated` for `exterminat*`).
fn slipped_prefix(text: &str, stem: &str) -> bool {
    let length = stem.len();
    if length < LONG {
        return false;
    }
    (length.saturating_sub(1)..=length + 1)
        .any(|n| text.get(..n).is_some_and(|start| one_slip(start, stem)))
}

/// A long word one slip away from `term`: a letter missing, added, changed or two swapped
/// (`extrminated`). Short words are left alone: too many are one letter from another. Compared
/// by bytes (folded text is nearly all ASCII), without allocating: it runs for every word
/// against every long term.
fn one_slip(text: &str, term: &str) -> bool {
    let (a, b) = (text.as_bytes(), term.as_bytes());
    if a.len() < LONG || b.len() < LONG || a.len().abs_diff(b.len()) > 1 {
        return false;
    }
    if a.iter().any(u8::is_ascii_digit) {
        return false;
    }
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (rest_a, rest_b) = (a.len() - prefix - suffix, b.len() - prefix - suffix);
    match (rest_a, rest_b) {
        (0, 0) | (1, 0) | (0, 1) | (1, 1) => true,
        (2, 2) => a[prefix] == b[prefix + 1] && a[prefix + 1] == b[prefix],
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn policy() -> Policy {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policy");
        Policy::load_dir(&dir).expect("the default policy")
    }

    /// The texts of the labelled sets, as a reader wrote them.
    fn labelled() -> Vec<String> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/integration/screening");
        let mut out = Vec::new();
        for set in ["labelled", "heldout", "final"] {
            let text = std::fs::read_to_string(dir.join(format!("{set}.toml"))).unwrap();
            let value: toml::Value = toml::from_str(&text).unwrap();
            for motion in value["motion"].as_array().unwrap() {
                out.push(motion["text"].as_str().unwrap().to_string());
            }
        }
        out
    }

    /// Each term's first word (or stem) as the fuzzy rules read it: plural, `-ies`, without
    /// its last letter, a letter missing, changed, doubled or swapped (first letters too), a
    /// letter masked, a letter stretched, continued as a prefix's word is.
    fn variants(policy: &Policy) -> Vec<String> {
        let mut out = Vec::new();
        for term in policy.lists.iter().flatten() {
            let Some(Pattern::Word(w) | Pattern::Prefix(w)) = term.first() else {
                continue;
            };
            let chars: Vec<char> = w.chars().collect();
            let n = chars.len();
            let with = |f: &dyn Fn(&mut Vec<char>)| {
                let mut c = chars.clone();
                f(&mut c);
                c.into_iter().collect::<String>()
            };
            out.extend([
                w.clone(),
                format!("{w}s"),
                format!("{w}es"),
                format!("{w}ing"),
                format!("{}ies", w.strip_suffix('y').unwrap_or(w)),
                with(&|c| {
                    c.pop();
                }),
            ]);
            for at in [0, n / 2, n.saturating_sub(1)] {
                if at < n {
                    out.push(with(&|c| {
                        c.remove(at);
                    }));
                    out.push(with(&|c| c[at] = 'x'));
                    out.push(with(&|c| c.insert(at, c[at])));
                    out.push(with(&|c| c[at] = '*'));
                    out.push(with(&|c| c.splice(at..at, [c[at], c[at]]).for_each(drop)));
                }
                if at + 1 < n {
                    out.push(with(&|c| c.swap(at, at + 1)));
                }
            }
        }
        // Lists share words: each variant once.
        out.sort();
        out.dedup();
        out
    }

    /// The index names every term whose first pattern matches a word: over every word of the
    /// labelled sets and every variant of the terms' first words.
    #[test]
    fn the_index_names_every_term_that_starts_at_a_word() {
        let policy = policy();
        let texts = labelled().into_iter().chain(variants(&policy));
        let mut candidates = Vec::new();
        let (mut words_seen, mut starts) = (0, 0);
        // Each word once (what it is quoted in does not change what it matches).
        let mut seen = std::collections::HashSet::new();
        for text in texts {
            for word in policy.split_run_together(words(&text)) {
                if !seen.insert((word.text.clone(), word.stretched, word.number)) {
                    continue;
                }
                words_seen += 1;
                policy.index.candidates(&word, &mut candidates);
                for (list, terms) in policy.lists.iter().enumerate() {
                    for (term, patterns) in terms.iter().enumerate() {
                        if !matches(&patterns[0], &word) {
                            continue;
                        }
                        starts += 1;
                        let at = TermRef {
                            list: list as u32,
                            term: term as u32,
                        };
                        assert!(
                            candidates.contains(&at),
                            "{patterns:?} starts at {word:?}, but the index leaves it out"
                        );
                    }
                }
            }
        }
        assert!(
            words_seen > 5_000 && starts > 5_000,
            "{words_seen} {starts}"
        );
    }

    /// What the index finds is what trying every term at every word finds, list by list: over
    /// the labelled sets, and the variants run together into sentences.
    #[test]
    fn indexed_occurrences_agree_with_trying_every_term() {
        let policy = policy();
        let variants = variants(&policy);
        let sentences = variants.chunks(7).map(|c| c.join(" not "));
        let mut found = 0;
        for text in labelled().into_iter().chain(sentences) {
            let words = policy.split_run_together(words(&text));
            let indexed = policy.occurrences(&words);
            for (list, terms) in policy.lists.iter().enumerate() {
                let every = occurrences_of(terms, &words);
                assert_eq!(indexed[list], every, "list {list} in {text:?}");
                found += every.len();
            }
        }
        assert!(found > 5_000, "only {found} occurrences");
    }
}
