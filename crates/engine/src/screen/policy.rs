//! The editors' policy files (`policy/*.toml`): categories of unfit text, each with an action
//! and the rules that detect it, and the lists of terms the rules name. A set of files is read
//! whole or not at all, every problem located at `file:line:col` (docs/files.md#policy).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::index::TermIndex;
use super::normalize::{fold_word, words};
use super::term::{Pattern, Term};
use crate::location::line_col;
use crate::persona::Problem;

/// What happens to text a category's rules find.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Never shown: a motion gets 422, a sentence of output is generated again.
    Refuse,
    /// Let through, and kept for editors to look at.
    Flag,
}

/// Where a rule applies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Applies {
    /// Motions and model output.
    #[default]
    Both,
    /// Only what readers write.
    Motion,
    /// Only what models write.
    Output,
}

/// A file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    /// Present in a category's file; a file of shared term lists has none.
    id: Option<Spanned<String>>,
    title: Option<String>,
    /// The public taxonomy it follows, for editors.
    #[serde(default)]
    taxonomy: String,
    action: Option<Action>,
    /// What a reader is told: what to change, never which rule matched.
    message: Option<String>,
    #[serde(default)]
    terms: BTreeMap<String, Spanned<Vec<String>>>,
    #[serde(default)]
    rule: Vec<RuleFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    name: String,
    /// Lists that must all occur, within `within` words of each other.
    all: Spanned<Vec<String>>,
    /// Lists that must also occur, anywhere in the text.
    also: Option<Spanned<Vec<String>>>,
    /// Lists any of whose terms, anywhere, keeps the rule from firing (counter-speech,
    /// history, policy).
    unless: Option<Spanned<Vec<String>>>,
    within: Option<usize>,
    /// The lists of `all` must occur in their order.
    #[serde(default)]
    ordered: bool,
    /// Whether a term right after a negation (`not vermin`) still counts. Off by default:
    /// "immigrants are not vermin" is not hate.
    #[serde(default)]
    negated: bool,
    #[serde(default)]
    applies: Applies,
}

/// A rule, compiled: lists by index into [`Policy::lists`].
#[derive(Debug, Clone)]
pub(super) struct Rule {
    pub name: String,
    pub all: Vec<usize>,
    pub also: Vec<usize>,
    pub unless: Vec<usize>,
    pub within: usize,
    pub ordered: bool,
    pub negated: bool,
    pub applies: Applies,
}

/// A category of unfit text.
#[derive(Debug, Clone)]
pub struct Category {
    /// `hate`, `self_harm`, …: what APIs, metrics and logs call it.
    pub id: String,
    pub title: String,
    pub taxonomy: String,
    pub action: Action,
    pub message: String,
    pub(super) rules: Vec<Rule>,
}

/// A whole policy, compiled.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub categories: Vec<Category>,
    pub(super) lists: Vec<Vec<Term>>,
    /// The lists' terms by what their first word can match.
    pub(super) index: TermIndex,
    /// Every word the lists name, to split words run together (`muslimsarevermin`).
    pub(super) dictionary: HashSet<String>,
    /// A hash over the files.
    pub version: String,
}

/// How many words apart a rule's terms may be unless it says.
const DEFAULT_WITHIN: usize = 12;

/// Words the dictionary also holds, so that run-together text splits at them.
const GLUE: &[&str] = &[
    "a", "all", "an", "and", "are", "at", "be", "by", "do", "for", "from", "go", "has", "have",
    "he", "her", "here", "him", "his", "i", "if", "in", "is", "it", "just", "me", "my", "no",
    "not", "now", "of", "on", "our", "out", "she", "so", "that", "the", "their", "them", "then",
    "there", "these", "they", "this", "those", "to", "up", "us", "was", "we", "were", "who",
    "will", "with", "you", "your",
];

impl Policy {
    /// Reads every `*.toml` in `dir`: the policy, or every problem found.
    pub fn load_dir(dir: &Path) -> Result<Policy, Vec<Problem>> {
        let sources = Policy::read_sources(dir).map_err(|message| {
            vec![Problem {
                path: dir.to_path_buf(),
                line: 1,
                column: 1,
                message,
            }]
        })?;
        Policy::from_sources(&sources)
    }

    /// The paths and texts of every `*.toml` in `dir`, sorted by path.
    pub fn read_sources(dir: &Path) -> Result<Vec<(PathBuf, String)>, String> {
        let entries =
            std::fs::read_dir(dir).map_err(|e| format!("cannot read the policy folder: {e}"))?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        paths.sort();
        paths
            .into_iter()
            .map(|path| match std::fs::read_to_string(&path) {
                Ok(text) => Ok((path, text)),
                Err(e) => Err(format!("{}: {e}", path.display())),
            })
            .collect()
    }

    /// Compiles a policy from its files' paths and texts.
    pub fn from_sources(sources: &[(PathBuf, String)]) -> Result<Policy, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut parsed = Vec::new();
        for (path, text) in sources {
            match toml::from_str::<PolicyFile>(text) {
                Ok(file) => parsed.push((path, text.as_str(), file)),
                Err(e) => problems.push(located(
                    path,
                    text,
                    e.span().map_or(0, |s| s.start),
                    e.message().trim().replace('\n', " "),
                )),
            }
        }
        // Every list first, so a rule may name a list of any file.
        let mut names: HashMap<String, usize> = HashMap::new();
        let mut lists = Vec::new();
        let mut dictionary: HashSet<String> = GLUE.iter().map(|w| w.to_string()).collect();
        for (path, text, file) in &parsed {
            for (name, terms) in &file.terms {
                let at = terms.span().start;
                if names.contains_key(name) {
                    problems.push(located(
                        path,
                        text,
                        at,
                        format!("the list `{name}` is defined twice"),
                    ));
                    continue;
                }
                let mut compiled = Vec::new();
                for term in terms.get_ref() {
                    match compile_term(term) {
                        Ok(t) => {
                            for pattern in &t {
                                if let Pattern::Word(w) | Pattern::Prefix(w) = pattern {
                                    dictionary.insert(w.clone());
                                }
                            }
                            compiled.push(t);
                        }
                        Err(why) => problems.push(located(
                            path,
                            text,
                            at,
                            format!("list `{name}`: term `{term}` {why}"),
                        )),
                    }
                }
                names.insert(name.clone(), lists.len());
                lists.push(compiled);
            }
        }
        let mut categories: Vec<Category> = Vec::new();
        for (path, text, file) in parsed {
            let Some(id) = &file.id else {
                if !file.rule.is_empty() {
                    problems.push(located(
                        path,
                        text,
                        0,
                        "rules belong to a category: this file has no `id`".into(),
                    ));
                }
                continue;
            };
            let at_id = id.span().start;
            let valid_id = !id.get_ref().is_empty()
                && id
                    .get_ref()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !valid_id {
                problems.push(located(
                    path,
                    text,
                    at_id,
                    format!("`id`: `{}` is not [a-z0-9_]+", id.get_ref()),
                ));
            }
            if categories.iter().any(|c| &c.id == id.get_ref()) {
                problems.push(located(
                    path,
                    text,
                    at_id,
                    format!("the category `{}` is defined twice", id.get_ref()),
                ));
            }
            let mut need = |value: &Option<String>, key: &str| match value {
                Some(v) if !v.trim().is_empty() => v.clone(),
                _ => {
                    problems.push(located(
                        path,
                        text,
                        at_id,
                        format!("a category needs a `{key}`"),
                    ));
                    String::new()
                }
            };
            let title = need(&file.title, "title");
            let message = need(&file.message, "message");
            let Some(action) = file.action else {
                problems.push(located(
                    path,
                    text,
                    at_id,
                    "a category needs an `action`: \"refuse\" or \"flag\"".into(),
                ));
                continue;
            };
            let mut rules = Vec::new();
            for rule in &file.rule {
                let mut lookup = |lists: Option<&Spanned<Vec<String>>>| -> Vec<usize> {
                    let Some(lists) = lists else {
                        return Vec::new();
                    };
                    lists
                        .get_ref()
                        .iter()
                        .filter_map(|name| match names.get(name) {
                            Some(i) => Some(*i),
                            None => {
                                problems.push(located(
                                    path,
                                    text,
                                    lists.span().start,
                                    format!("rule `{}`: no list named `{name}`", rule.name),
                                ));
                                None
                            }
                        })
                        .collect()
                };
                let all = lookup(Some(&rule.all));
                let also = lookup(rule.also.as_ref());
                let unless = lookup(rule.unless.as_ref());
                if rule.all.get_ref().is_empty() {
                    problems.push(located(
                        path,
                        text,
                        rule.all.span().start,
                        format!("rule `{}`: `all` names no list", rule.name),
                    ));
                }
                rules.push(Rule {
                    name: rule.name.clone(),
                    all,
                    also,
                    unless,
                    within: rule.within.unwrap_or(DEFAULT_WITHIN),
                    ordered: rule.ordered,
                    negated: rule.negated,
                    applies: rule.applies,
                });
            }
            categories.push(Category {
                id: id.get_ref().clone(),
                title,
                taxonomy: file.taxonomy.clone(),
                action,
                message,
                rules,
            });
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let mut hashed = String::new();
        for (path, text) in sources {
            hashed.push_str(
                &path
                    .file_name()
                    .map(|f| f.to_string_lossy())
                    .unwrap_or_default(),
            );
            hashed.push('\n');
            hashed.push_str(text);
        }
        Ok(Policy {
            categories,
            index: TermIndex::new(&lists),
            lists,
            dictionary,
            version: crate::sha256_hex(hashed.as_bytes()),
        })
    }

    /// The category with this id.
    pub fn category(&self, id: &str) -> Option<&Category> {
        self.categories.iter().find(|c| c.id == id)
    }
}

fn located(path: &Path, text: &str, offset: usize, message: String) -> Problem {
    let (line, column) = line_col(text, offset);
    Problem {
        path: path.to_path_buf(),
        line,
        column,
        message,
    }
}

/// A term as written (`wipe out`, `exterminat*`, `#number ? street`), compiled: its words
/// folded as text is, so `self-harm` is two words as it is in text.
fn compile_term(term: &str) -> Result<Term, &'static str> {
    let mut patterns = Vec::new();
    for part in term.split_whitespace() {
        match part {
            "#number" => patterns.push(Pattern::Number),
            "?" => patterns.push(Pattern::Any),
            _ => match part.strip_suffix('*') {
                Some(stem) => {
                    let stem = fold_word(stem);
                    if stem.is_empty() {
                        return Err("has an empty prefix");
                    }
                    patterns.push(Pattern::Prefix(stem));
                }
                None => patterns.extend(words(part).into_iter().map(|w| Pattern::Word(w.text))),
            },
        }
    }
    match patterns.is_empty() {
        true => Err("is empty"),
        false => Ok(patterns),
    }
}
