//! The judge's calibration: pairs of debates in which one side is known to be worse, built
//! from the shipped stories and personas with speeches the configured debater writes, then
//! degraded by program; the judge is scored on whether it picks the better side.
//!
//! Kinds of degradation: sentences shuffled; speeches written for another story; invented
//! figures inserted; anachronisms inserted (the figure "remembers" what came after them); a
//! rebuttal that ignores the opponent (the opening said again). And equal-quality pairs
//! with one side padded with filler, which measure a preference for length, not accuracy.
//! Every choice the program makes comes from the seed.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::debate::{Engine, RunError};
use crate::fairness::PassTally;
use crate::llm::Usage;
use crate::persona::Persona;
use crate::speech::sentences;
use crate::story::Story;
use crate::transcript::{Round, Speaker, Status, Transcript, Winner};

/// Why a calibration could not finish.
#[derive(Debug, thiserror::Error)]
pub enum CalibrationError {
    #[error("calibration needs two stories and two personas")]
    TooFew,
    #[error("a calibration debate failed: {0}")]
    Debate(String),
    #[error("the judge failed: {0}")]
    Judge(#[from] RunError),
}

crate::named_enum! {
    /// How a pair's worse side was made worse.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum PairKind("pair kind") {
        Shuffled = "shuffled",
        OffTopic = "off_topic",
        InventedFigures = "invented_figures",
        Anachronism = "anachronism",
        IgnoresOpponent = "ignores_opponent",
        /// Equal quality, one side padded: counts towards the length preference only.
        Padded = "padded",
    }
}

/// Accuracy on one kind of pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KindScore {
    pub kind: PairKind,
    pub pairs: usize,
    /// Verdicts that named the better side (a tie is not).
    pub correct: usize,
    pub accuracy: f64,
}

/// A judge's calibration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub judge_model: String,
    /// `rubric` or `likelihood`: a judge model's calibration holds for one method.
    #[serde(default)]
    pub judge_method: String,
    pub debater_model: String,
    pub seed: u64,
    pub pairs: usize,
    /// By kind; `padded` pairs have no better side and show 0 correct.
    pub kinds: Vec<KindScore>,
    /// Over every kind but `padded`.
    pub accuracy: f64,
    /// Share of verdicts whose two passes named the same winner.
    pub swap_agreement: f64,
    /// Share of decided passes won by the side read first.
    pub first_position_wins: f64,
    /// Of the padded pairs, the share the padded side won, a tie counting half.
    pub length_preference: Option<f64>,
    pub seconds_per_pair: f64,
    pub created_at: String,
}

/// Pairs one debate serves: each kind twice, once with each side made worse.
const PAIRS_PER_DEBATE: usize = 2 * PairKind::ALL.len();

const FILLER: &str = " Let me say it once more, for it bears repeating, and I will say it at \
length: what I have said is what I have said, and I stand by every word of it.";

const INVENTED: &str = " By my own count, 73,412 men and $91.7 billion went into it by 1931, \
and 58% of them never came home.";

const ANACHRONISM: &str = " I remember it well: I watched the whole thing unfold live on my \
smartphone, and I posted my thoughts online the same evening.";

/// Inserts `text` after the first sentence.
fn insert(speech: &str, text: &str) -> String {
    let mut parts = sentences(speech);
    let at = parts.len().min(1);
    parts.insert(at, text.trim().to_string());
    parts.join(" ")
}

/// Makes side `worse` of `rounds` worse, by `kind`; `elsewhere` are the rounds of a debate
/// on another story.
fn degrade(
    rounds: &mut [Round],
    worse: Speaker,
    kind: PairKind,
    elsewhere: &[Round],
    rng: &mut StdRng,
) {
    let opening = rounds
        .iter()
        .find(|r| r.round == 1)
        .and_then(|r| r.turns.iter().find(|t| t.speaker == worse))
        .map(|t| t.text.clone())
        .unwrap_or_default();
    for round in rounds.iter_mut() {
        let number = round.round;
        for turn in round.turns.iter_mut().filter(|t| t.speaker == worse) {
            turn.text = match kind {
                PairKind::Shuffled => {
                    let mut parts = sentences(&turn.text);
                    let original = parts.clone();
                    parts.shuffle(rng);
                    // A shuffle that kept the order (one in two, for two sentences) would
                    // leave no worse side.
                    if parts == original {
                        parts.rotate_left(1);
                    }
                    parts.join(" ")
                }
                PairKind::OffTopic => elsewhere
                    .iter()
                    .find(|r| r.round == number)
                    .and_then(|r| r.turns.iter().find(|t| t.speaker == worse))
                    .map_or_else(|| turn.text.clone(), |t| t.text.clone()),
                PairKind::InventedFigures => insert(&turn.text, INVENTED),
                PairKind::Anachronism => insert(&turn.text, ANACHRONISM),
                PairKind::IgnoresOpponent if number == 2 => opening.clone(),
                PairKind::IgnoresOpponent => turn.text.clone(),
                PairKind::Padded => format!("{}{}{}", turn.text, FILLER, FILLER),
            };
        }
    }
}

/// Runs `pairs` calibration pairs on `stories` and `personas` (two stories at least, for the
/// off-topic kind), reproducibly for `seed`.
pub async fn calibrate(
    engine: &Engine,
    stories: &[Story],
    personas: &[Persona],
    pairs: usize,
    seed: u64,
) -> Result<Calibration, CalibrationError> {
    if stories.len() < 2 || personas.len() < 2 {
        return Err(CalibrationError::TooFew);
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let started = Instant::now();
    let mut scores: Vec<KindScore> = PairKind::ALL
        .iter()
        .map(|&kind| KindScore {
            kind,
            pairs: 0,
            correct: 0,
            accuracy: 0.0,
        })
        .collect();
    let mut passes = PassTally::default();
    let (mut padded_won, mut padded) = (0.0, 0);
    // Speeches are what a calibration spends its time on: one debate serves every kind
    // twice, once with each side made worse. Stories go round in a seeded order, so
    // consecutive debates differ and off-topic pairs have speeches from another story.
    let mut order: Vec<&Story> = stories.iter().collect();
    order.shuffle(&mut rng);
    let mut debates = Vec::new();
    for d in 0..pairs.div_ceil(PAIRS_PER_DEBATE) {
        debates.push(base_debate(engine, order[d % order.len()], personas, &mut rng).await?);
    }
    if debates.len() == 1 && pairs > 1 {
        debates.push(base_debate(engine, order[1], personas, &mut rng).await?);
    }
    for i in 0..pairs {
        let kind = PairKind::ALL[i % PairKind::ALL.len()];
        let base = &debates[i / PAIRS_PER_DEBATE];
        let story = order
            .iter()
            .find(|s| s.id == base.story)
            .expect("the debate's story");
        let elsewhere = debates
            .iter()
            .find(|t| t.story != story.id)
            .map(|t| t.rounds.clone())
            .unwrap_or_default();
        let pick = |id: &str| personas.iter().find(|p| p.id == id).expect("a persona");
        let (a, b) = (pick(&base.personas.a.id), pick(&base.personas.b.id));
        let worse = match (i / PairKind::ALL.len()) % 2 {
            0 => Speaker::A,
            _ => Speaker::B,
        };
        let mut rounds = base.rounds.clone();
        degrade(&mut rounds, worse, kind, &elsewhere, &mut rng);
        let motion = base.motion.clone();
        let setup = engine.settings.setup(story, a, b, &motion);
        let verdict = engine
            .judge_rounds(&setup, &rounds, &mut Usage::default())
            .await?;
        passes.add(&verdict);
        let better = match worse {
            Speaker::A => Winner::B,
            _ => Winner::A,
        };
        let score = &mut scores[i % PairKind::ALL.len()];
        score.pairs += 1;
        if kind == PairKind::Padded {
            padded += 1;
            // The padded side is the "worse" one here: did it win?
            padded_won += match verdict.winner {
                Winner::Tie => 0.5,
                w if w == better => 0.0,
                _ => 1.0,
            };
        } else {
            score.correct += usize::from(verdict.winner == better);
        }
    }
    for score in &mut scores {
        score.accuracy = if score.pairs > 0 {
            score.correct as f64 / score.pairs as f64
        } else {
            0.0
        };
    }
    let graded: Vec<&KindScore> = scores
        .iter()
        .filter(|s| s.kind != PairKind::Padded)
        .collect();
    let graded_pairs: usize = graded.iter().map(|s| s.pairs).sum();
    let graded_correct: usize = graded.iter().map(|s| s.correct).sum();
    let share = |part: usize, whole: usize| {
        if whole > 0 {
            part as f64 / whole as f64
        } else {
            0.0
        }
    };
    Ok(Calibration {
        judge_model: engine.judge.name().to_string(),
        judge_method: engine.judge_method_name().to_string(),
        debater_model: engine.debater.name().to_string(),
        seed,
        pairs,
        accuracy: share(graded_correct, graded_pairs),
        kinds: scores,
        swap_agreement: passes.swap_agreement().unwrap_or(0.0),
        first_position_wins: passes.first_position_wins().unwrap_or(0.0),
        length_preference: (padded > 0).then(|| padded_won / padded as f64),
        seconds_per_pair: started.elapsed().as_secs_f64() / pairs.max(1) as f64,
        created_at: crate::transcript::now_rfc3339(),
    })
}

/// A debate of two personas picked by `rng` on `story`, unjudged.
async fn base_debate(
    engine: &Engine,
    story: &Story,
    personas: &[Persona],
    rng: &mut StdRng,
) -> Result<Transcript, CalibrationError> {
    let a = rng.random_range(0..personas.len());
    let b = (a + 1 + rng.random_range(0..personas.len() - 1)) % personas.len();
    let motion = story.default_motion();
    let debate = engine
        .run_unjudged(story, &personas[a], &personas[b], &motion)
        .await;
    match debate.status {
        Status::Done => Ok(debate),
        _ => Err(CalibrationError::Debate(
            debate.error.map_or_else(String::new, |e| e.message),
        )),
    }
}

/// Where a judge's last calibration is kept: `<dir>/<judge model, as a file name>.<method>.json`.
pub fn path_for(dir: &Path, judge_model: &str, method: &str) -> PathBuf {
    let name: String = judge_model
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    dir.join(format!("{name}.{method}.json"))
}

/// Keeps a calibration as its judge's last.
pub fn save(dir: &Path, calibration: &Calibration) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = path_for(dir, &calibration.judge_model, &calibration.judge_method);
    std::fs::write(
        &path,
        serde_json::to_string_pretty(calibration).unwrap_or_default(),
    )?;
    Ok(path)
}

/// The last calibration of this judge model by this method, if there is one.
pub fn last(dir: &Path, judge_model: &str, method: &str) -> Option<Calibration> {
    let text = std::fs::read_to_string(path_for(dir, judge_model, method)).ok()?;
    serde_json::from_str(&text).ok()
}
