//! The claim check measured on a labelled claim set (`tests/claims/labelled.toml`): every
//! figure and quotation that must be flagged, and every one that must not. Precision (of
//! what it flags, how much is truly unsupported) at least 95 %, recall (of what is truly
//! unsupported, how much it flags) at least 90 %.

use std::collections::HashSet;

use crossfire_engine::claims::{ClaimChecker, QuoteContext};
use crossfire_testkit as support;
use serde::Deserialize;

#[derive(Deserialize)]
struct Set {
    case: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    speaker: String,
    speech: String,
    #[serde(default)]
    opponent: Option<String>,
    #[serde(default)]
    supported: Vec<String>,
    #[serde(default)]
    unsupported: Vec<String>,
}

#[test]
fn the_claim_check_meets_its_precision_and_recall_on_the_labelled_set() {
    let text =
        std::fs::read_to_string(support::repo("crates/engine/tests/claims/labelled.toml")).unwrap();
    let set: Set = toml::from_str(&text).unwrap();
    let story = support::story("nk-troops-russia");
    let checker = ClaimChecker::new(&story.full_text());
    let (mut tp, mut fp, mut fn_) = (0usize, 0usize, 0usize);
    let mut misses = Vec::new();
    let mut labels = 0;
    for (i, case) in set.case.iter().enumerate() {
        let persona = support::persona(&case.speaker);
        let context = QuoteContext {
            speaker: Some(&persona),
            answering: case.opponent.as_deref(),
        };
        let flagged: HashSet<String> = checker
            .check(&case.speech, context)
            .unsupported
            .into_iter()
            .collect();
        let truly: HashSet<&String> = case.unsupported.iter().collect();
        labels += case.supported.len() + case.unsupported.len();
        for item in &flagged {
            if truly.contains(item) {
                tp += 1;
            } else {
                fp += 1;
                misses.push(format!("case {i}: flagged {item}"));
            }
        }
        for item in &case.unsupported {
            if !flagged.contains(item) {
                fn_ += 1;
                misses.push(format!("case {i}: missed {item}"));
            }
        }
    }
    let precision = tp as f64 / (tp + fp).max(1) as f64;
    let recall = tp as f64 / (tp + fn_).max(1) as f64;
    eprintln!(
        "claim check on {} cases, {labels} labelled claims: precision {:.1}% ({tp}/{}), recall {:.1}% ({tp}/{})",
        set.case.len(),
        precision * 100.0,
        tp + fp,
        recall * 100.0,
        tp + fn_
    );
    for miss in &misses {
        eprintln!("  {miss}");
    }
    assert!(labels >= 80, "a set worth measuring: {labels} labels");
    assert!(precision >= 0.95, "precision {precision:.3}: {misses:?}");
    assert!(recall >= 0.90, "recall {recall:.3}: {misses:?}");
}

#[test]
fn quotations_name_their_source() {
    use crossfire_engine::claims::QuoteSource;
    let story = support::story("nk-troops-russia");
    let checker = ClaimChecker::new(&story.full_text());
    let churchill = support::persona("winston-churchill");
    let checked = checker.check(
        "Kim praised a \"sacred fight\"; you said \"shells for sons\"; and \"an iron curtain has descended\".",
        QuoteContext {
            speaker: Some(&churchill),
            answering: Some("I say it plainly: shells for sons."),
        },
    );
    assert!(checked.unsupported.is_empty(), "{:?}", checked.unsupported);
    let sources: Vec<_> = checked
        .quotes
        .iter()
        .map(|q| (q.source, q.reference.as_deref()))
        .collect();
    assert_eq!(
        sources,
        [
            (QuoteSource::Story, None),
            (QuoteSource::Opponent, None),
            (
                QuoteSource::Documented,
                Some("Fulton, Missouri, 5 March 1946")
            ),
        ]
    );
    // Another figure's documented line is no support for this one.
    let kennan = support::persona("george-kennan");
    let checked = checker.check(
        "As I wrote, \"an iron curtain has descended\".",
        QuoteContext {
            speaker: Some(&kennan),
            answering: None,
        },
    );
    assert_eq!(checked.unsupported, ["\"an iron curtain has descended\""]);
}
