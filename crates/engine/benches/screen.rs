//! Screening a motion with the default policy (goal: under 1 ms): every motion of the three
//! labelled sets screened many times over, timed per motion (median, p99 and the slowest),
//! and a speech's worth of sentences as one output batch.
//!
//!     cargo bench -p crossfire-engine --bench screen

use std::time::Instant;

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
}
