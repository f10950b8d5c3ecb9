//! The judge for small local models: scores read from what the model computes well, how
//! likely it finds each speech under different contexts (as BARTScore does), with the claim
//! check for evidence and an era check for fidelity. A 135M model asked to write scores
//! copies or guesses; asked how likely a text is, it answers with what it learnt.
//!
//! For each side, in nats (natural-log probability, summed over the speech's tokens):
//! - **argument**: how much likelier its opening is with its sentences in order than
//!   reversed (it holds together), and under its own story than under the library's other
//!   stories (it is about this story, not any);
//! - **evidence**: the claim check: figures and quotations nothing supports;
//! - **rebuttal**: how much likelier its rebuttal, less the sentences it copies from the
//!   opponent's opening, is given that opening than without it (it answers what was said),
//!   less a penalty for the share of it that says its own opening again;
//! - **fidelity**: the era check: what the figure speaks of that came after their time.
//!
//! Measures tried and dropped, as the calibration bench chose (docs/events.md#verdict): a
//! voice measure (how much likelier the opening is under its own persona's portrait than the
//! opponent's); two of being about the story against no story (how much likelier the opening
//! is given the story than without it; how many of the story's names it uses), which a small
//! model's speeches seldom show; and the rebuttal's order, which added time and no accuracy.
//!
//! Sums, not means: filler adds tokens that no context makes likelier, so it neither helps
//! nor hurts, and a padded speech is judged as the speech it pads. Each side is scored on
//! its own, so the order the sides are read in cannot change a score.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;

use crate::claims::{ClaimChecker, QuoteContext};
use crate::era;
use crate::event::Speaker;
use crate::llm::{LanguageModel, LlmError, Message, Role};
use crate::persona::Persona;
use crate::prompts::DebateSetup;
use crate::speech::sentences;
use crate::story::Story;
use crate::transcript::{Criteria, CriteriaReasons, JudgePass, Round, ScoreMethod, Sides, Winner};

// The weights below were chosen on `crossfire judge calibrate` runs (seeds 7 to 53) and
// checked on others (docs/benchmarks.md).
/// Nats at which a measure's score is three quarters of the way from the middle to the
/// top (or bottom) of the scale: small enough that a speech that reads no better in order
/// (or after the opponent) falls well behind one that does, large enough that among
/// speeches that all do, the differences stay small.
const COHERENCE_SCALE: f64 = 40.0;
const REBUTTAL_SCALE: f64 = 20.0;
/// Nats of coherence one nat of being about the story is worth: an opening's first
/// sentences differ in likelihood between stories by a few nats, in order and reversed by
/// tens.
const TOPIC_WEIGHT: f64 = 2.0;
/// Nats past which an opening is about its story beyond doubt: more would let a speech
/// about its story outweigh every fault it has.
const TOPIC_CAP: f64 = 8.0;
/// Points one unsupported claim costs the evidence score, and one anachronism fidelity.
const PER_UNSUPPORTED: f64 = 1.0;
const PER_ANACHRONISM: f64 = 3.0;
/// A total margin below this is a tie.
const TIE_BELOW: f64 = 0.25;
/// How much of the story's overview, and of the opening a rebuttal answers, the contexts
/// carry: enough to be about them, short enough that each read is quick.
const STORY_CHARS: usize = 400;
const ANSWERED_CHARS: usize = 400;
/// How much of each speech is read: its opening sentences, where a small model's speech
/// holds together or falls apart (the claim and era checks read it whole).
const READ_CHARS: usize = 650;
/// How much of the opening is read for whether it is about its story.
const TOPIC_CHARS: usize = 400;

/// Likelihoods already computed, by context and text: a calibration judges the same
/// speeches again and again, degraded on one side only.
#[derive(Debug, Default)]
pub struct Memo(Mutex<HashMap<u64, f64>>);

/// Entries a memo keeps before starting over.
const MEMO_ENTRIES: usize = 4096;

impl Memo {
    async fn likelihood(
        &self,
        model: &dyn LanguageModel,
        messages: &[Message],
        text: &str,
    ) -> Result<f64, LlmError> {
        let mut hasher = DefaultHasher::new();
        for m in messages {
            m.role.as_str().hash(&mut hasher);
            m.content.hash(&mut hasher);
        }
        text.hash(&mut hasher);
        let key = hasher.finish();
        if let Some(&known) = self.lock().get(&key) {
            return Ok(known);
        }
        let value = model.likelihood(messages, text).await?.logprob;
        let mut memo = self.lock();
        if memo.len() >= MEMO_ENTRIES {
            memo.clear();
        }
        memo.insert(key, value);
        Ok(value)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, f64>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What the model's likelihoods and the checks found for one side.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Findings {
    coherence: f64,
    topicality: f64,
    engagement: f64,
    /// The share of the rebuttal's sentences that say its own opening again.
    repeated: f64,
    unsupported: usize,
    anachronisms: usize,
}

/// Judges `rounds` by likelihood: the two passes (sides in either order) the rubric judge
/// would give, which here cannot disagree.
pub async fn judge(
    read: &Reading<'_>,
    setup: &DebateSetup<'_>,
    rounds: &[Round],
) -> Result<Vec<JudgePass>, LlmError> {
    // The era check reads the story whole.
    let story_text = setup.story.full_text();
    let (a, b) = futures::future::try_join(
        findings(read, setup, rounds, Speaker::A, &story_text),
        findings(read, setup, rounds, Speaker::B, &story_text),
    )
    .await?;
    tracing::debug!(?a, ?b, "likelihood judge findings");
    let scores = Sides {
        a: criteria(&a),
        b: criteria(&b),
    };
    let reasons = Sides {
        a: reasons(&a),
        b: reasons(&b),
    };
    let margin = scores.a.total() - scores.b.total();
    let winner = if margin.abs() < TIE_BELOW {
        Winner::Tie
    } else if margin > 0.0 {
        Winner::A
    } else {
        Winner::B
    };
    let rationale = rationale(&scores, setup);
    Ok([[Speaker::A, Speaker::B], [Speaker::B, Speaker::A]]
        .into_iter()
        .map(|order| JudgePass {
            order,
            winner,
            scores: scores.clone(),
            reasons: reasons.clone(),
            rationale: rationale.clone(),
            repaired: false,
            method: ScoreMethod::Likelihood,
        })
        .collect())
}

/// What a verdict reads with: the model, what it already read, the claim check, and the
/// library's stories (the debate's own among them or not).
pub struct Reading<'a> {
    pub model: &'a dyn LanguageModel,
    pub memo: &'a Memo,
    pub checker: &'a ClaimChecker,
    pub library: &'a [Story],
}

/// What the model's likelihoods and the checks find for `side`.
async fn findings(
    read: &Reading<'_>,
    setup: &DebateSetup<'_>,
    rounds: &[Round],
    side: Speaker,
    story_text: &str,
) -> Result<Findings, LlmError> {
    let spoken = |round: u8, speaker: Speaker| turn(rounds, round, speaker);
    let other = side.opponent();
    let (persona, opponent) = (setup.persona(side), setup.persona(other));
    let mut found = Findings::default();
    let (story, motion) = (setup.story, setup.motion);
    // Every read is planned first and all are asked for together: the model computes each
    // context's prefix once and reads the texts after it side by side.
    let mut reads = Reads::default();
    let opening = plan_opening(&mut reads, read, setup, rounds, side);
    // The rebuttal's, less what it copies, in the plain context and after the opening it
    // answers: words copied from the opening are likelier after it without answering it.
    let engagement = match (spoken(2, side), spoken(1, other)) {
        (Some(rebuttal), Some(answered)) => {
            let answer = uncopied(clip(rebuttal, READ_CHARS), answered);
            (!answer.is_empty()).then(|| {
                let after = context(story, motion, persona, Some((opponent, answered)));
                let plain = context(story, motion, persona, None);
                (reads.plan(plain, answer.clone()), reads.plan(after, answer))
            })
        }
        _ => None,
    };
    let values = reads.read(read).await?;
    let OpeningReads { coherence, topic } = opening;
    if let Some((own, reversed)) = coherence {
        found.coherence = values[own] - values[reversed];
    }
    if let Some((own, after)) = engagement {
        found.engagement = values[after] - values[own];
    }
    // A rebuttal that says its own opening again answers nothing, however it reads.
    if let (Some(rebuttal), Some(opening)) = (spoken(2, side), spoken(1, side)) {
        found.repeated = repeated_share(clip(rebuttal, READ_CHARS), opening);
    }
    if let Some((here, elsewhere)) = topic {
        let elsewhere: Vec<f64> = elsewhere.iter().map(|&i| values[i]).collect();
        found.topicality = values[here] - log_mean_exp(&elsewhere);
        tracing::debug!(
            here = values[here],
            ?elsewhere,
            "likelihood judge topic reads"
        );
    }
    for (round, answering) in [(1, None), (2, spoken(1, other))] {
        if let Some(text) = spoken(round, side) {
            let context = QuoteContext {
                speaker: Some(persona),
                answering,
            };
            found.unsupported += read.checker.check(text, context).unsupported.len();
            found.anachronisms += era::anachronisms(text, persona, story_text).len();
        }
    }
    Ok(found)
}

/// `speaker`'s turn in `round`, if it was spoken.
fn turn(rounds: &[Round], round: u8, speaker: Speaker) -> Option<&str> {
    rounds
        .iter()
        .filter(|r| r.round == round)
        .flat_map(|r| &r.turns)
        .find(|t| t.speaker == speaker)
        .map(|t| t.text.as_str())
}

/// Likelihood reads planned to be asked for together, each a context and a text.
#[derive(Default)]
struct Reads(Vec<(Vec<Message>, String)>);

impl Reads {
    /// Plans a read; its value will be at the returned index.
    fn plan(&mut self, messages: Vec<Message>, text: String) -> usize {
        self.0.push((messages, text));
        self.0.len() - 1
    }

    /// Every planned read's log-likelihood, in order.
    async fn read(&self, read: &Reading<'_>) -> Result<Vec<f64>, LlmError> {
        futures::future::try_join_all(
            self.0
                .iter()
                .map(|(messages, text)| read.memo.likelihood(read.model, messages, text)),
        )
        .await
    }
}

/// Where an opening's reads are in a plan.
struct OpeningReads {
    /// Its first sentences in order, and reversed.
    coherence: Option<(usize, usize)>,
    /// Its start under its story, and under each of the library's others.
    topic: Option<(usize, Vec<usize>)>,
}

/// Plans the reads of `side`'s opening.
fn plan_opening(
    reads: &mut Reads,
    read: &Reading<'_>,
    setup: &DebateSetup<'_>,
    rounds: &[Round],
    side: Speaker,
) -> OpeningReads {
    let (story, persona) = (setup.story, setup.persona(side));
    let opening = turn(rounds, 1, side).map(|s| clip(s, READ_CHARS));
    let coherence = opening.map(|opening| {
        let reversed: Vec<String> = sentences(opening).into_iter().rev().collect();
        let plain = || context(story, setup.motion, persona, None);
        (
            reads.plan(plain(), opening.to_string()),
            reads.plan(plain(), reversed.join(" ")),
        )
    });
    let others: Vec<&Story> = read.library.iter().filter(|s| s.id != story.id).collect();
    let topic = opening.filter(|_| !others.is_empty()).map(|opening| {
        let head = clip(opening, TOPIC_CHARS).to_string();
        let here = reads.plan(topic_context(story), head.clone());
        let elsewhere: Vec<usize> = others
            .iter()
            .map(|other| reads.plan(topic_context(other), head.clone()))
            .collect();
        (here, elsewhere)
    });
    OpeningReads { coherence, topic }
}

/// The context a speech is read in: the story and motion, its speaker's portrait, and the
/// opening it answers (if any). The story comes first, so the contexts of one debate share
/// their longest prefix and the model computes it once.
fn context(
    story: &Story,
    motion: &str,
    persona: &Persona,
    answering: Option<(&Persona, &str)>,
) -> Vec<Message> {
    let mut user = format!("{}\n\nMotion: {motion}\n\n", about(story));
    user.push_str(&portrait(persona));
    if let Some((opponent, opening)) = answering {
        let opening = clip(opening, ANSWERED_CHARS);
        user.push_str(&format!("\n\n{} said: {opening}", opponent.name));
    }
    user.push_str(&format!("\n\nWrite {}'s speech.", persona.name));
    messages(user)
}

/// The context in which a speech is read for how much it is about `story`: the story alone,
/// so that under another story only the story differs.
fn topic_context(story: &Story) -> Vec<Message> {
    messages(format!("{}\n\nWrite a speech about it.", about(story)))
}

/// The story as the contexts give it: title, dek and the start of its overview.
fn about(story: &Story) -> String {
    let mut out = format!("News story: {}.", story.title);
    if let Some(dek) = &story.dek {
        out.push_str(&format!(" {dek}"));
    }
    out.push_str(&format!(" {}", clip(&story.overview, STORY_CHARS)));
    out
}

fn messages(user: String) -> Vec<Message> {
    vec![
        Message::new(Role::System, SYSTEM),
        Message::new(Role::User, user),
    ]
}

/// What every context's system message says.
const SYSTEM: &str = "Speeches in a debate between figures of history about a news story.";

/// Nats of engagement a rebuttal loses when it says its own opening again, all of it.
const REPEATED_OPENING: f64 = 20.0;

/// Words in a row that make a sentence a copy when the opening it answers has them too.
const COPIED_RUN: usize = 5;

/// `speech` without its sentences that repeat `opening`: those of which more than half the
/// runs of five words are the opening's.
fn uncopied(speech: &str, opening: &str) -> String {
    let all = sentences(speech);
    let copies = Copies::of(opening);
    let kept: Vec<&String> = all.iter().filter(|s| !copies.in_sentence(s)).collect();
    match kept.len() == all.len() {
        true => speech.to_string(),
        false => kept.into_iter().cloned().collect::<Vec<_>>().join(" "),
    }
}

/// The share of `speech`'s sentences that repeat `earlier`.
fn repeated_share(speech: &str, earlier: &str) -> f64 {
    let all = sentences(speech);
    let copies = Copies::of(earlier);
    let repeated = all.iter().filter(|s| copies.in_sentence(s)).count();
    repeated as f64 / all.len().max(1) as f64
}

/// A text's runs of [`COPIED_RUN`] words, to tell a sentence that repeats it.
struct Copies(std::collections::HashSet<Vec<String>>);

impl Copies {
    fn of(text: &str) -> Copies {
        Copies(
            words(text)
                .windows(COPIED_RUN)
                .map(<[String]>::to_vec)
                .collect(),
        )
    }

    /// Whether more than half of `sentence`'s runs of words are the text's.
    fn in_sentence(&self, sentence: &str) -> bool {
        let words = words(sentence);
        let runs = words.windows(COPIED_RUN);
        let total = runs.len();
        let copied = runs.filter(|run| self.0.contains(*run)).count();
        copied * 2 > total
    }
}

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Who a persona is and how they speak, as the likelihood contexts give it.
fn portrait(p: &Persona) -> String {
    let mut out = format!("The speaker: {}", p.name);
    if let Some(lived) = &p.lived {
        out.push_str(&format!(" ({lived})"));
    }
    out.push_str(&format!(", {}. Voice: {}", p.role, p.voice));
    if let Some(line) = p.sample_lines.first() {
        out.push_str(&format!(" For example: \"{line}\""));
    }
    out
}

/// `text` cut to at most `max` bytes, at a sentence end where there is one.
fn clip(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let head = &text[..end];
    head.rfind(". ").map_or(head, |at| &head[..=at])
}

/// The log of the mean of `exp(x)` over `xs`, without overflow.
fn log_mean_exp(xs: &[f64]) -> f64 {
    let max = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = xs.iter().map(|x| (x - max).exp()).sum();
    max + (sum / xs.len() as f64).ln()
}

/// From the middle of the 1–10 scale towards its ends as `x` grows in either direction.
fn squash(x: f64, scale: f64) -> f64 {
    // tanh(x / scale * atanh(0.75)): at `scale`, three quarters of the way.
    (5.5 + 4.5 * (x / scale * 0.973).tanh()).clamp(1.0, 10.0)
}

fn criteria(f: &Findings) -> Criteria {
    Criteria {
        argument: squash(
            f.coherence + TOPIC_WEIGHT * f.topicality.min(TOPIC_CAP),
            COHERENCE_SCALE,
        ),
        evidence: (10.0 - PER_UNSUPPORTED * f.unsupported as f64).max(1.0),
        rebuttal: squash(f.engagement - REPEATED_OPENING * f.repeated, REBUTTAL_SCALE),
        fidelity: (10.0 - PER_ANACHRONISM * f.anachronisms as f64).max(1.0),
    }
}

fn reasons(f: &Findings) -> CriteriaReasons {
    let claims = |n: usize, one: &str, many: &str| match n {
        0 => format!("no {many}"),
        1 => format!("1 {one}"),
        n => format!("{n} {many}"),
    };
    CriteriaReasons {
        argument: format!(
            "The opening reads {:+.1} nats likelier in order than reversed, and {:+.1} \
             likelier under its story than under the library's others",
            f.coherence, f.topicality
        ),
        evidence: format!(
            "The claim check found {}",
            claims(f.unsupported, "unsupported claim", "unsupported claims")
        ),
        rebuttal: if f.repeated > 0.0 {
            format!(
                "The rebuttal reads {:+.1} nats likelier given the opponent's opening, and \
                 {:.0} % of it says its own opening again (-{:.1})",
                f.engagement,
                f.repeated * 100.0,
                REPEATED_OPENING * f.repeated
            )
        } else {
            format!(
                "The rebuttal reads {:+.1} nats likelier given the opponent's opening",
                f.engagement
            )
        },
        fidelity: format!(
            "The era check found {}",
            claims(f.anachronisms, "anachronism", "anachronisms")
        ),
    }
}

/// Who led on what, in words.
fn rationale(scores: &Sides<Criteria>, setup: &DebateSetup<'_>) -> String {
    let leads = |side: Speaker| {
        let (own, other) = match side {
            Speaker::A => (&scores.a, &scores.b),
            _ => (&scores.b, &scores.a),
        };
        own.named()
            .into_iter()
            .zip(other.named())
            .filter(|((_, mine), (_, theirs))| mine - theirs >= 0.5)
            .map(|((name, _), _)| name)
            .collect::<Vec<_>>()
    };
    let mut parts = Vec::new();
    for side in [Speaker::A, Speaker::B] {
        let led = leads(side);
        if !led.is_empty() {
            parts.push(format!(
                "{} leads on {}",
                setup.persona(side).name,
                led.join(", ")
            ));
        }
    }
    let summary = if parts.is_empty() {
        "The two sides score alike on every criterion".to_string()
    } else {
        parts.join("; ")
    };
    format!(
        "{summary}. Scored from the judge model's likelihoods and the claim and era checks, \
         not written by the model."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squash_is_centred_monotone_and_bounded() {
        assert_eq!(squash(0.0, 10.0), 5.5);
        assert!((squash(10.0, 10.0) - 8.875).abs() < 0.01);
        assert!(squash(-10.0, 10.0) < squash(-5.0, 10.0));
        assert!(squash(1e9, 1.0) <= 10.0 && squash(-1e9, 1.0) >= 1.0);
    }

    #[test]
    fn a_rebuttal_that_says_its_opening_again_is_told_apart() {
        let opening = "We shall defend our island whatever the cost may be. We shall never \
                       surrender to the tyrant who threatens every free nation.";
        assert_eq!(repeated_share(opening, opening), 1.0);
        let answer = "My opponent says the treaty holds. It does not hold, for the tyrant \
                      breaks every treaty he signs. We shall defend our island whatever the \
                      cost may be.";
        assert!((repeated_share(answer, opening) - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(
            repeated_share("An answer of its own, in words all new.", opening),
            0.0
        );
    }

    #[test]
    fn a_rebuttal_is_read_without_the_sentences_it_copies() {
        let opening = "The war is lost for the north and its soldiers. We must say so plainly.";
        let rebuttal = "You said the war is lost for the north and its soldiers. \
                        I say the north has gained a foothold.";
        assert_eq!(
            uncopied(rebuttal, opening),
            "I say the north has gained a foothold."
        );
        assert_eq!(uncopied("Short. Answers.", opening), "Short. Answers.");
    }

    #[test]
    fn log_mean_exp_is_the_log_of_the_mean_likelihood_without_overflow() {
        assert!((log_mean_exp(&[0.0, 3f64.ln()]) - 2f64.ln()).abs() < 1e-12);
        assert!((log_mean_exp(&[-5.0]) + 5.0).abs() < 1e-12);
        assert!((log_mean_exp(&[-2000.0, -2000.0]) + 2000.0).abs() < 1e-9);
    }

    #[test]
    fn clip_cuts_at_a_sentence_end_on_a_char_boundary() {
        assert_eq!(clip("One. Two. Three.", 12), "One. Two.");
        assert_eq!(clip("short", 100), "short");
        let accented = "é".repeat(10);
        assert!(clip(&accented, 5).len() <= 5);
    }
}
