//! Screening a motion with the default policy (goal: under 1 ms): every motion of the three
//! labelled sets screened many times over, timed per motion (median, p99 and the slowest),
//! and a speech's worth of sentences as one output batch. Then what the service pays for
//! every sentence a model writes: the prompt-echo check and the policy's output screen, over
//! speech-like sentences (every persona's biography, worldview, sample lines and positions,
//! spoken against another persona), with a digest of the verdicts so that two builds can be
//! compared for identical results.
//!
//!     cargo bench -p crossfire-engine --bench screen

use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Instant;

use crossfire_engine::persona::Persona;
use crossfire_engine::screen::echo::{Voices, check_sentence};
use crossfire_engine::screen::{Policy, Stage};
use crossfire_testkit as support;

const ROUNDS: usize = 20;

fn main() {
    let policy = Policy::load_dir(&support::repo("policy")).expect("the default policy loads");
    let mut motions = Vec::new();
    for set in ["labelled", "heldout", "final"] {
        let path = support::repo(&format!(
            "crates/engine/tests/integration/screening/{set}.toml"
        ));
        let text = std::fs::read_to_string(path).expect("the labelled set");
        let value: toml::Value = toml::from_str(&text).expect("TOML");
        for motion in value["motion"].as_array().into_iter().flatten() {
            if let Some(text) = motion["text"].as_str() {
                motions.push(text.to_string());
            }
        }
    }
    // Warm up (the first call folds nothing it has not folded before, but pages fault in).
    for motion in &motions {
        std::hint::black_box(policy.screen(motion, Stage::Motion));
    }
    let mut times = Vec::with_capacity(motions.len() * ROUNDS);
    let mut slowest = (0.0, "");
    for _ in 0..ROUNDS {
        for motion in &motions {
            let started = Instant::now();
            std::hint::black_box(policy.screen(motion, Stage::Motion));
            let ms = started.elapsed().as_secs_f64() * 1e3;
            times.push(ms);
            if ms > slowest.0 {
                slowest = (ms, motion.as_str());
            }
        }
    }
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    println!(
        "a motion ({} motions × {ROUNDS}): median {:.4} ms, p99 {:.4} ms, slowest {:.4} ms",
        motions.len(),
        at(0.5),
        at(0.99),
        times[times.len() - 1]
    );
    println!("the slowest: {:?}", slowest.1);
    let speech = "We shall defend our island, whatever the cost may be. We shall fight on the \
                  beaches, we shall fight on the landing grounds. The price of greatness is \
                  responsibility. Never in the field of human conflict was so much owed by so \
                  many to so few. ";
    let sentences: Vec<&str> = speech.split_inclusive(". ").collect();
    let started = Instant::now();
    for _ in 0..1000 {
        for sentence in &sentences {
            std::hint::black_box(policy.screen(sentence, Stage::Output));
        }
    }
    println!(
        "a sentence of a speech: {:.4} ms",
        started.elapsed().as_secs_f64() * 1e3 / (1000 * sentences.len()) as f64
    );
    output_sentences(&policy, &motions);
}

/// Rounds over the speech-like sentences.
const OUTPUT_ROUNDS: usize = 10;

/// A sentence as a model would write it, with who speaks it and against whom.
struct Spoken {
    sentence: String,
    speaker: String,
    opponent: String,
}

/// Every persona's prose, a sentence at a time, each spoken by that persona against the next.
fn speech_sentences() -> Vec<Spoken> {
    let dir = support::repo("personas");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("the personas")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    let personas: Vec<Persona> = paths
        .iter()
        .map(|p| Persona::load_file(p).expect("a persona loads"))
        .collect();
    let mut out = Vec::new();
    for (k, persona) in personas.iter().enumerate() {
        let opponent = &personas[(k + 1) % personas.len()];
        let mut prose = vec![persona.bio.clone(), persona.voice.clone()];
        prose.extend(persona.worldview.iter().cloned());
        prose.extend(persona.sample_lines.iter().cloned());
        prose.extend(persona.positions.iter().map(|p| p.stance.clone()));
        prose.extend(persona.debate_style.iter().cloned());
        for text in &prose {
            for sentence in text.split_inclusive(['.', '!', '?']) {
                let sentence = sentence.trim();
                if sentence.chars().any(char::is_alphanumeric) {
                    out.push(Spoken {
                        sentence: sentence.to_string(),
                        speaker: persona.name.clone(),
                        opponent: opponent.name.clone(),
                    });
                }
            }
        }
    }
    out
}

/// What the service does with each sentence a model writes: the echo check, then the policy.
fn screen_output(policy: &Policy, spoken: &Spoken) -> String {
    let voices = Voices {
        speaker: &spoken.speaker,
        opponent: Some(&spoken.opponent),
    };
    let echo = check_sentence(&spoken.sentence, &voices);
    let findings = policy.screen(&spoken.sentence, Stage::Output);
    let rules: Vec<&str> = findings.iter().map(|f| f.rule).collect();
    format!("{echo:?} {rules:?}")
}

/// Lines of the shipped templates without their variables, alone and woven into a speaker's
/// words, and the labelled motions as if a model wrote them: not timed, but in the digest, so
/// that the echo check's cuts and rewrites and the policy's findings are compared too.
fn echoes_and_motions(motions: &[String]) -> Vec<Spoken> {
    let dir = support::repo("prompts");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("the prompts")
        .map(|e| e.expect("an entry").path())
        .collect();
    paths.sort();
    let spoken = |sentence: String| Spoken {
        sentence,
        speaker: "Winston Churchill".into(),
        opponent: "Frederick Douglass".into(),
    };
    let mut out = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(path).expect("a template");
        for line in text
            .lines()
            .filter(|l| !l.contains('{') && !l.trim().is_empty())
        {
            out.push(spoken(line.to_string()));
            out.push(spoken(format!("We shall fight on, and {line}")));
            out.push(spoken(format!(
                "Frederick Douglass: {line}\nWe shall never surrender."
            )));
        }
    }
    out.extend(motions.iter().cloned().map(spoken));
    out
}

/// Times [`screen_output`] per sentence, and prints a digest of every verdict.
fn output_sentences(policy: &Policy, motions: &[String]) {
    let spoken = speech_sentences();
    let mut digest = DefaultHasher::new();
    let (mut cut, mut rewritten, mut found) = (0, 0, 0);
    for s in spoken.iter().chain(&echoes_and_motions(motions)) {
        let verdict = screen_output(policy, s);
        cut += usize::from(verdict.starts_with("Cut"));
        rewritten += usize::from(verdict.starts_with("Rewrite"));
        found += usize::from(!verdict.ends_with("[]"));
        verdict.hash(&mut digest);
    }
    let mut times = Vec::with_capacity(spoken.len() * OUTPUT_ROUNDS);
    for _ in 0..OUTPUT_ROUNDS {
        for s in &spoken {
            let started = Instant::now();
            std::hint::black_box(screen_output(policy, s));
            times.push(started.elapsed().as_secs_f64() * 1e3);
        }
    }
    let total: f64 = times.iter().sum();
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    println!(
        "an output sentence, echo check + policy ({} sentences × {OUTPUT_ROUNDS}): mean {:.4} ms, \
         median {:.4} ms, p99 {:.4} ms, slowest {:.4} ms",
        spoken.len(),
        total / times.len() as f64,
        at(0.5),
        at(0.99),
        times[times.len() - 1]
    );
    println!(
        "verdicts digest {:016x}: {cut} cut, {rewritten} to be written again, {found} found by the policy",
        digest.finish()
    );
}
