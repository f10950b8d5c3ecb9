//! Prompt templates: minijinja files in `prompts/` that editors tune without recompiling
//! (docs/files.md).
//!
//! Each call template defines a `system` and a `user` block. Story, persona and motion text
//! only ever reach the templates as *values*, never as template source, so `{{ 7*7 }}` in a
//! story reaches the model as those characters.

mod kept;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Object, Serde};
use minijinja::{Environment, UndefinedBehavior, Value, context};
use serde::Serialize;

use self::kept::{Kept, Vars};
use crate::cache::ByVersion;
use crate::event::Speaker;
use crate::llm::{Message, Role};
use crate::persona::Persona;
use crate::story::Story;
use crate::transcript::{Round, RoundKind, Turn};

/// The templates a debate and a perspective need.
pub const REQUIRED: &[&str] = &["opening.j2", "rebuttal.j2", "judge.j2", "perspective.j2"];

/// Why prompts could not be loaded or rendered.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: missing template {name} (needed: {})", dir.display(), REQUIRED.join(", "))]
    Missing { dir: PathBuf, name: String },
    #[error("template error: {0:#}")]
    Template(#[from] minijinja::Error),
}

/// A loaded, validated set of templates.
pub struct Prompts {
    env: Environment<'static>,
    version: String,
    values: ValueCache,
    kept: Kept,
    /// Renders where the kept-blocks path failed but the plain one succeeded: each is a bug
    /// in the block cache, logged and counted (`/metrics`), never silent.
    fallbacks: AtomicU64,
}

/// What every prompt of one debate is about.
#[derive(Debug, Clone, Copy)]
pub struct DebateSetup<'a> {
    pub story: &'a Story,
    pub a: &'a Persona,
    pub b: &'a Persona,
    /// The question, as the reader wrote it.
    pub motion: &'a str,
    /// How long a speech should be, in words.
    pub words: u32,
    /// Short prompts for small models: templates leave out the story's detail (`brief`).
    pub brief: bool,
    /// `brief` for the judge's prompt: a short rubric, bare scores without reasons.
    pub judge_brief: bool,
}

impl DebateSetup<'_> {
    pub fn persona(&self, speaker: Speaker) -> &Persona {
        match speaker {
            Speaker::B => self.b,
            Speaker::A | Speaker::Solo => self.a,
        }
    }
}

/// One call of a previewed debate.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PreviewCall {
    pub name: String,
    pub messages: Vec<Message>,
}

/// One side as the judge sees it: a neutral label, never "A" or "first".
#[derive(Serialize)]
struct JudgedSide<'a> {
    label: String,
    persona: Value,
    opening: &'a str,
    rebuttal: &'a str,
    unsupported: Vec<&'a str>,
}

impl Prompts {
    /// Loads every `*.j2` file of `dir`, checks the required ones are there and compile.
    pub fn load(dir: &Path) -> Result<Prompts, PromptError> {
        Prompts::from_sources(dir, Prompts::read_sources(dir)?)
    }

    /// The `.j2` files of a folder as (name, source) pairs, sorted by name.
    pub fn read_sources(dir: &Path) -> Result<Vec<(String, String)>, PromptError> {
        let io = |source| PromptError::Io {
            path: dir.to_path_buf(),
            source,
        };
        let mut files: Vec<(String, String)> = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name.ends_with(".j2") {
                let source = std::fs::read_to_string(&path).map_err(|source| PromptError::Io {
                    path: path.clone(),
                    source,
                })?;
                files.push((name.to_string(), source));
            }
        }
        files.sort();
        Ok(files)
    }

    /// Builds the set from (name, source) pairs; `dir` only names them in errors.
    pub fn from_sources(dir: &Path, files: Vec<(String, String)>) -> Result<Prompts, PromptError> {
        for name in REQUIRED {
            if !files.iter().any(|(n, _)| n == name) {
                return Err(PromptError::Missing {
                    dir: dir.to_path_buf(),
                    name: name.to_string(),
                });
            }
        }
        let mut hashed = Vec::new();
        for (name, source) in &files {
            hashed.extend_from_slice(name.as_bytes());
            hashed.push(0);
            hashed.extend_from_slice(source.as_bytes());
            hashed.push(0);
        }
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // Block tags on their own lines leave no blank lines behind.
        env.set_syntax(
            SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                .build()?,
        );
        env.add_filter("untrusted", untrusted);
        for (name, source) in files {
            env.add_template_owned(name, source)?;
        }
        for name in REQUIRED {
            env.add_template_owned(format!("{name}{BLOCKS}"), blocks_of(name))?;
        }
        // Compile everything now, so a broken template is reported at load, not mid-debate.
        for name in REQUIRED {
            env.get_template(name)?;
        }
        Ok(Prompts {
            env,
            version: crate::sha256_hex(&hashed),
            values: ValueCache::default(),
            kept: Kept::default(),
            fallbacks: AtomicU64::new(0),
        })
    }

    /// How many renders fell back from the kept blocks to a plain render (should be 0).
    pub fn cache_fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    /// SHA-256 over the names and sources of all templates: results record it.
    /// The templates' file names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.env.templates().map(|(n, _)| n.to_string()).collect();
        names.sort();
        names
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    /// Where a speech ends if the model starts writing its prompt's markup back, at most four:
    /// `</response>`, then the closing tags the templates wrap the speeches in (what a small
    /// model copies), then their other closing tags, by name.
    pub fn stop_sequences(&self) -> Vec<String> {
        let mut tags = std::collections::BTreeSet::new();
        for (_, template) in self.env.templates() {
            let source = template.source();
            for (at, _) in source.match_indices("</") {
                let name: String = source[at + 2..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                let tag = format!("</{name}>");
                if !name.is_empty() && source[at..].starts_with(&tag) {
                    tags.insert(tag);
                }
            }
        }
        let mut stops = vec!["</response>".to_string()];
        let (speeches, others): (Vec<String>, Vec<String>) =
            tags.into_iter().partition(|tag| tag.contains("opening"));
        stops.extend(
            speeches
                .into_iter()
                .chain(others)
                .filter(|t| t != "</response>"),
        );
        stops.truncate(4);
        stops
    }

    /// The messages of an opening speech.
    pub fn opening(
        &self,
        setup: &DebateSetup,
        speaker: Speaker,
    ) -> Result<Vec<Message>, PromptError> {
        self.render("opening.j2", self.debater_vars(setup, speaker))
    }

    /// The messages of a rebuttal, which answers the opponent's opening.
    pub fn rebuttal(
        &self,
        setup: &DebateSetup,
        speaker: Speaker,
        own_opening: &str,
        opponent_opening: &str,
    ) -> Result<Vec<Message>, PromptError> {
        let vars = self
            .debater_vars(setup, speaker)
            .unkept("own_opening", own_opening)
            .unkept("opponent_opening", opponent_opening);
        self.render("rebuttal.j2", vars)
    }

    /// The messages of one judging pass, the sides shown in `order` under neutral labels.
    pub fn judge(
        &self,
        setup: &DebateSetup,
        order: [Speaker; 2],
        rounds: &[Round],
    ) -> Result<Vec<Message>, PromptError> {
        self.render("judge.j2", self.judge_vars(setup, order, rounds))
    }

    /// The messages of a persona's perspective on a story.
    pub fn perspective(
        &self,
        story: &Story,
        persona: &Persona,
        words: u32,
        brief: bool,
    ) -> Result<Vec<Message>, PromptError> {
        let vars = Vars::default()
            .versioned("story", self.values.story(story), &story.version)
            .versioned("me", self.values.persona(persona), &persona.version)
            .with("words", words)
            .with("brief", brief);
        self.render("perspective.j2", vars)
    }

    /// The six calls of a debate as they will be made, with placeholders for speeches that
    /// do not exist yet: what editors look at after changing a template or persona.
    pub fn preview(&self, setup: &DebateSetup) -> Result<Vec<PreviewCall>, PromptError> {
        let placeholder = |speaker: Speaker, round: &str| Turn {
            speaker,
            text: format!(
                "[{}'s {round} will appear here]",
                setup.persona(speaker).name
            ),
            unsupported: vec![],
            tokens: 0,
            ms: 0,
            truncated: false,
            quotes: Vec::new(),
        };
        let round = |round, kind, name| Round {
            round,
            kind,
            turns: vec![placeholder(Speaker::A, name), placeholder(Speaker::B, name)],
        };
        let rounds = [
            round(1, RoundKind::Opening, "opening"),
            round(2, RoundKind::Rebuttal, "rebuttal"),
        ];
        let (open_a, open_b) = (&rounds[0].turns[0].text, &rounds[0].turns[1].text);
        let calls = [
            ("opening, side A", self.opening(setup, Speaker::A)?),
            ("opening, side B", self.opening(setup, Speaker::B)?),
            (
                "rebuttal, side A",
                self.rebuttal(setup, Speaker::A, open_a, open_b)?,
            ),
            (
                "rebuttal, side B",
                self.rebuttal(setup, Speaker::B, open_b, open_a)?,
            ),
            (
                "judge, pass 1 (A first)",
                self.judge(setup, [Speaker::A, Speaker::B], &rounds)?,
            ),
            (
                "judge, pass 2 (B first)",
                self.judge(setup, [Speaker::B, Speaker::A], &rounds)?,
            ),
        ];
        Ok(calls
            .into_iter()
            .map(|(name, messages)| PreviewCall {
                name: name.to_string(),
                messages,
            })
            .collect())
    }

    /// What every call of a debate sees: the story and the motion.
    fn debate_vars(&self, setup: &DebateSetup) -> Vars {
        Vars::default()
            .versioned(
                "story",
                self.values.story(setup.story),
                &setup.story.version,
            )
            .with("motion", setup.motion)
    }

    /// What a debater's templates see.
    fn debater_vars(&self, setup: &DebateSetup, speaker: Speaker) -> Vars {
        let (me, opponent) = (setup.persona(speaker), setup.persona(speaker.opponent()));
        self.debate_vars(setup)
            .versioned("me", self.values.persona(me), &me.version)
            .versioned("opponent", self.values.persona(opponent), &opponent.version)
            .with("words", setup.words)
            .with("brief", setup.brief)
    }

    /// What the judge's template sees: the sides in `order` under neutral labels.
    fn judge_vars(&self, setup: &DebateSetup, order: [Speaker; 2], rounds: &[Round]) -> Vars {
        let sides: Vec<JudgedSide> = order
            .iter()
            .enumerate()
            .map(|(i, &speaker)| {
                let turn = |round: usize| {
                    rounds
                        .get(round)
                        .and_then(|r| r.turns.iter().find(|t| t.speaker == speaker))
                };
                JudgedSide {
                    label: format!("Speaker {}", i + 1),
                    persona: self.values.persona(setup.persona(speaker)),
                    opening: turn(0).map_or("", |t| &t.text),
                    rebuttal: turn(1).map_or("", |t| &t.text),
                    unsupported: [turn(0), turn(1)]
                        .into_iter()
                        .flatten()
                        .flat_map(|t| t.unsupported.iter().map(String::as_str))
                        .collect(),
                }
            })
            .collect();
        self.debate_vars(setup)
            .unkept("sides", Value::from(Serde(&sides)))
            .with("brief", setup.judge_brief)
    }

    /// Renders a template's `system` and `user` blocks into chat messages, reusing kept
    /// texts.
    fn render(&self, name: &'static str, vars: Vars) -> Result<Vec<Message>, PromptError> {
        let vars = Arc::new(vars);
        let kept = MESSAGE_BLOCKS.map(|(block, _)| self.kept.get(name, block, &vars));
        let texts = match kept {
            [Some(system), Some(user)] => [system, user],
            kept => match self.render_blocks(name, &vars, kept) {
                Ok(texts) => texts,
                // The plain render names the error in the editor's own file; if it succeeds
                // instead, the block cache is wrong, and that must show.
                Err(blocks_error) => {
                    let texts = self.render_plain(name, Value::from_dyn_object(vars))?;
                    self.fallbacks.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        "prompt cache: rendering the blocks of {name} failed ({blocks_error:#}) \
                         where a plain render succeeds; used the plain render"
                    );
                    texts
                }
            },
        };
        Ok(MESSAGE_BLOCKS
            .into_iter()
            .zip(texts)
            .map(|((_, role), text)| Message::new(role, text))
            .collect())
    }

    /// The blocks not `kept`, rendered once each and kept with what they read: the
    /// template's top level runs first (its imports and `set`s are what the blocks see, so
    /// what it reads counts for every block), through a child template whose blocks stay
    /// empty until the switch is on.
    fn render_blocks(
        &self,
        name: &'static str,
        vars: &Arc<Vars>,
        kept: [Option<String>; 2],
    ) -> Result<[String; 2], minijinja::Error> {
        let template = self.env.get_template(&format!("{name}{BLOCKS}"))?;
        let switch = Arc::new(BlockSwitch::default());
        let ctx = context! {
            __crossfire_blocks => Value::from_dyn_object(switch.clone()),
            ..Value::from_dyn_object(vars.clone())
        };
        vars.take_read();
        let mut captured = template.render_captured(ctx)?;
        let top_level_read = vars.take_read();
        switch.0.store(true, Ordering::Relaxed);
        let mut texts = kept;
        for ((block, _), text) in MESSAGE_BLOCKS.into_iter().zip(&mut texts) {
            if text.is_none() {
                let rendered = tidy(&captured.with_state_mut(|state| state.render_block(block))?);
                let read = top_level_read | vars.take_read();
                self.kept.put(name, block, vars, read, &rendered);
                *text = Some(rendered);
            }
        }
        Ok(texts.map(Option::unwrap_or_default))
    }

    /// The blocks, rendered after a full render of the template: twice the work.
    fn render_plain(&self, name: &str, ctx: Value) -> Result<[String; 2], minijinja::Error> {
        let template = self.env.get_template(name)?;
        let mut captured = template.render_captured(ctx)?;
        let mut texts = [String::new(), String::new()];
        for ((block, _), text) in MESSAGE_BLOCKS.into_iter().zip(&mut texts) {
            *text = tidy(&captured.with_state_mut(|state| state.render_block(block))?);
        }
        Ok(texts)
    }
}

/// The blocks of a call template, and the messages they become.
const MESSAGE_BLOCKS: [(&str, Role); 2] = [("system", Role::System), ("user", Role::User)];

/// Stories and personas as template values, converted once for each version: the six
/// prompts of a debate show the same three, and converting them each time showed in
/// profiles.
#[derive(Default)]
struct ValueCache {
    stories: ByVersion<Value>,
    personas: ByVersion<Value>,
}

impl ValueCache {
    fn story(&self, story: &Story) -> Value {
        self.stories
            .get(&story.version, || Value::from(Serde(story)))
    }

    fn persona(&self, persona: &Persona) -> Value {
        self.personas
            .get(&persona.version, || Value::from(Serde(persona)))
    }
}

/// The suffix of the child template through which a call template is rendered.
const BLOCKS: &str = "#blocks";

/// A child of call template `name` whose blocks render their parent's only when switched on.
fn blocks_of(name: &str) -> String {
    let block = |b: &str| {
        format!(
            "{{% block {b} %}}{{% if __crossfire_blocks %}}{{{{ super() }}}}{{% endif %}}{{% endblock %}}"
        )
    };
    format!(
        "{{% extends {name:?} %}}{}{}",
        block("system"),
        block("user")
    )
}

/// False while a template's top level runs, true while its blocks are rendered.
#[derive(Debug, Default)]
struct BlockSwitch(AtomicBool);

impl Object for BlockSwitch {
    fn is_true(self: &Arc<Self>) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// User text inside a prompt: the delimiters the templates put around it cannot be forged.
fn untrusted(text: String) -> String {
    text.replace('<', "‹").replace('>', "›")
}

/// Trims the block and squeezes runs of blank lines that conditionals leave behind.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank = 0;
    for line in text.trim().lines() {
        let line = line.trim_end();
        blank = if line.is_empty() { blank + 1 } else { 0 };
        if blank < 2 {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn persona(id: &str) -> Persona {
        Persona::load(
            Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../personas")),
            id,
        )
        .unwrap()
    }

    fn story() -> Story {
        Story::load(
            Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../stories")),
            "nk-troops-russia",
            64 * 1024,
        )
        .unwrap()
    }

    #[test]
    fn blocks_render_as_they_would_after_a_full_render() {
        let prompts = Prompts::load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../prompts"
        )))
        .unwrap();
        let story = story();
        let (a, b) = (persona("winston-churchill"), persona("frederick-douglass"));
        for brief in [false, true] {
            let setup = DebateSetup {
                story: &story,
                a: &a,
                b: &b,
                motion: "Is <b>{{ 7*7 }}</b> winning?",
                words: 120,
                brief,
                judge_brief: brief,
            };
            let turn = |speaker, text: &str| Turn {
                speaker,
                text: text.into(),
                unsupported: vec!["99,999".into()],
                tokens: 3,
                ms: 1,
                truncated: false,
                quotes: Vec::new(),
            };
            let rounds: Vec<Round> = [RoundKind::Opening, RoundKind::Rebuttal]
                .into_iter()
                .zip(1..)
                .map(|(kind, round)| Round {
                    round,
                    kind,
                    turns: vec![turn(Speaker::A, "Never."), turn(Speaker::B, "{% raw %}")],
                })
                .collect();
            let calls = || {
                [
                    ("opening.j2", prompts.debater_vars(&setup, Speaker::A)),
                    ("opening.j2", prompts.debater_vars(&setup, Speaker::B)),
                    (
                        "rebuttal.j2",
                        prompts
                            .debater_vars(&setup, Speaker::B)
                            .unkept("own_opening", "Never.")
                            .unkept("opponent_opening", "{% raw %}"),
                    ),
                    (
                        "judge.j2",
                        prompts.judge_vars(&setup, [Speaker::B, Speaker::A], &rounds),
                    ),
                    (
                        "perspective.j2",
                        Vars::default()
                            .unkept("story", Value::from(Serde(&story)))
                            .unkept("me", Value::from(Serde(&a)))
                            .with("words", 80)
                            .with("brief", brief),
                    ),
                ]
            };
            // Stories and personas converted once and kept are what a fresh conversion gives.
            let fresh = Vars::default()
                .unkept("story", Value::from(Serde(&story)))
                .with("motion", setup.motion)
                .unkept("me", Value::from(Serde(&b)))
                .unkept("opponent", Value::from(Serde(&a)))
                .with("words", setup.words)
                .with("brief", brief);
            let (_, cached) = calls().into_iter().nth(1).unwrap();
            assert_eq!(
                prompts
                    .render_blocks("opening.j2", &Arc::new(fresh), [None, None])
                    .unwrap(),
                prompts
                    .render_blocks("opening.j2", &Arc::new(cached), [None, None])
                    .unwrap()
            );
            let texts = |calls: Vec<PreviewCall>| -> Vec<String> {
                calls
                    .into_iter()
                    .flat_map(|c| c.messages.into_iter().map(|m| m.content))
                    .collect()
            };
            assert_eq!(
                texts(prompts.preview(&setup).unwrap()),
                texts(prompts.preview(&setup).unwrap())
            );
            for ((name, vars), (_, same)) in calls().into_iter().zip(calls()) {
                let rendered = prompts
                    .render_blocks(name, &Arc::new(vars), [None, None])
                    .unwrap();
                let plain = prompts
                    .render_plain(name, Value::from_dyn_object(Arc::new(same)))
                    .unwrap();
                assert_eq!(rendered, plain, "{name}, brief {brief}");
                assert!(
                    rendered.iter().all(|text| !text.trim().is_empty()),
                    "{name}"
                );
            }
        }
    }

    /// A kept block is reused only when everything it read, directly or through the
    /// template's top level, is the same.
    #[test]
    fn kept_blocks_follow_what_the_template_read() {
        let plain = "{% block system %}s{% endblock %}{% block user %}u{% endblock %}";
        let opening = "{% set w = words %}\n\
            {% block system %}{% if brief %}{{ motion }}{% else %}{{ w }} words{% endif %}{% endblock %}\n\
            {% block user %}{{ story.title }}{% endblock %}";
        let files = REQUIRED
            .iter()
            .map(|&name| {
                let source = if name == "opening.j2" { opening } else { plain };
                (name.to_string(), source.to_string())
            })
            .collect();
        let prompts = Prompts::from_sources(Path::new("test"), files).unwrap();
        let story = story();
        let (a, b) = (persona("winston-churchill"), persona("frederick-douglass"));
        let system = |motion: &str, words: u32, brief: bool| {
            let setup = DebateSetup {
                story: &story,
                a: &a,
                b: &b,
                motion,
                words,
                brief,
                judge_brief: brief,
            };
            let messages = prompts.opening(&setup, Speaker::A).unwrap();
            assert_eq!(messages[1].content, story.title);
            messages[0].content.clone()
        };
        assert_eq!(system("X", 120, true), "X");
        assert_eq!(system("X", 120, false), "120 words");
        assert_eq!(prompts.kept.len(), 3, "two system texts and one user text");
        // The motion is not read without `brief`: the kept texts serve.
        assert_eq!(system("Y", 120, false), "120 words");
        assert_eq!(prompts.kept.len(), 3, "found, not rendered again");
        assert_eq!(system("Y", 120, true), "Y");
        // `words` is read at the top level, through `w`.
        assert_eq!(system("Y", 90, false), "90 words");
        assert_eq!(system("X", 90, true), "X");
        assert_eq!(system("X", 120, true), "X");
    }

    #[test]
    fn a_speech_stops_where_the_templates_close_a_tag() {
        let prompts = Prompts::load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../prompts"
        )))
        .unwrap();
        let stops = prompts.stop_sequences();
        assert_eq!(stops[0], "</response>");
        assert!(
            stops.contains(&"</opponent_opening>".to_string()),
            "{stops:?}"
        );
        assert!(stops.len() <= 4);
    }
}
