//! The default policy (`policy/`) measured on a labelled set of motions
//! (`screening/labelled.toml`): of the abusive ones at least 90 % refused, of those readers
//! of a news app would legitimately debate at most 2 %. Both rates, per category and per
//! function, are printed (`cargo test screening -- --nocapture`).

use std::collections::BTreeMap;

use crossfire_engine::screen::{Action, Policy, Stage};
use crossfire_testkit as support;
use serde::Deserialize;

#[derive(Deserialize)]
struct Labelled {
    motion: Vec<Motion>,
}

#[derive(Deserialize)]
struct Motion {
    text: String,
    expect: String,
    #[serde(default)]
    category: Option<String>,
    function: String,
}

fn policy() -> Policy {
    match Policy::load_dir(&support::repo("policy")) {
        Ok(policy) => policy,
        Err(problems) => panic!("{problems:?}"),
    }
}

fn refused(policy: &Policy, text: &str) -> Option<String> {
    policy
        .screen(text, Stage::Motion)
        .into_iter()
        .find(|f| f.category.action == Action::Refuse)
        .map(|f| format!("{} ({})", f.category.id, f.rule))
}

/// Both rates on a set: (abusive refused, legitimate refused), printing every miss.
fn rates(file: &str) -> (f64, f64) {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/integration/screening")
            .join(file),
    )
    .unwrap();
    let set: Labelled = toml::from_str(&text).unwrap();
    let policy = policy();
    println!("== {file}");
    let (mut abusive, mut caught, mut legitimate, mut wrongly) = (0, 0, 0, 0);
    let mut by_category: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut category_right = 0;
    for motion in &set.motion {
        let verdict = refused(&policy, &motion.text);
        match motion.expect.as_str() {
            "refuse" => {
                abusive += 1;
                let category = motion.category.clone().unwrap_or_default();
                let entry = by_category.entry(category.clone()).or_default();
                entry.0 += 1;
                match &verdict {
                    Some(found) => {
                        caught += 1;
                        entry.1 += 1;
                        if found.starts_with(&category) {
                            category_right += 1;
                        }
                    }
                    None => println!("missed [{}] {}", motion.function, motion.text),
                }
            }
            _ => {
                legitimate += 1;
                if let Some(found) = verdict {
                    wrongly += 1;
                    println!("refused [{}] {} -> {found}", motion.function, motion.text);
                }
            }
        }
    }
    for (category, (of, hit)) in &by_category {
        println!("{category}: {hit}/{of} refused");
    }
    let caught_rate = caught as f64 / abusive as f64;
    let wrong_rate = wrongly as f64 / legitimate as f64;
    println!(
        "abusive refused: {caught}/{abusive} ({:.1} %), in their own category {category_right}; legitimate refused: {wrongly}/{legitimate} ({:.1} %)",
        100.0 * caught_rate,
        100.0 * wrong_rate
    );
    assert!(abusive >= 100 && legitimate >= 100);
    (caught_rate, wrong_rate)
}

#[test]
fn the_default_policy_refuses_abuse_and_lets_hard_news_through() {
    for file in ["labelled.toml", "heldout.toml", "final.toml"] {
        let (caught, wrong) = rates(file);
        assert!(
            caught >= 0.90,
            "{file}: {:.1} % of abusive motions refused",
            100.0 * caught
        );
        assert!(
            wrong <= 0.02,
            "{file}: {:.1} % of legitimate motions refused",
            100.0 * wrong
        );
    }
}
