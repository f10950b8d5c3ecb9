//! Persona probes against the fake model: a scorecard per category, kept beside the persona
//! files, and an edit that loses a position shows as a regression.

use crossfire_engine::probe::{self, Category};
use crossfire_testkit::{self as support, FakeLlm, FakeOptions, Fault, Target};

#[tokio::test]
async fn probes_make_a_scorecard_and_a_lost_position_is_a_regression() {
    let fake = FakeLlm::start(FakeOptions::default()).await;
    let engine = support::engine_for(&support::config_for(&fake.base_url));
    let story = support::story("nk-troops-russia");
    let orwell = support::persona("george-orwell");
    let dir = std::env::temp_dir().join(format!(
        "crossfire-probes-{}",
        crossfire_engine::transcript::new_id()
    ));

    let first = engine.probe(&orwell, &story).await.unwrap();
    let expected = 2 + orwell.avoid.len() + orwell.positions.len() + 1;
    assert_eq!(first.results.len(), expected);
    assert!(first.results.iter().all(|r| r.pass), "{:?}", first.results);
    let positions = first
        .rates
        .iter()
        .find(|r| r.category == Category::Positions)
        .unwrap();
    assert_eq!(
        (positions.passed, positions.total),
        (orwell.positions.len(), orwell.positions.len())
    );
    assert_eq!(first.persona.version, orwell.version);
    assert_eq!(first.probe_set, probe::PROBE_SET);
    // The answer reached the examiner as data under its heading.
    let examined = fake.requests(Target::Judge);
    assert_eq!(examined.len(), expected);
    assert!(
        examined[0].user().contains("## Answer\nI am George Orwell"),
        "{}",
        examined[0].user()
    );
    let first = probe::record(&dir, first).unwrap();
    assert!(first.comparison.is_none());
    assert_eq!(
        probe::latest(&dir, &"george-orwell".parse().unwrap()).unwrap(),
        first
    );

    // The planted regression: an edit drops a documented position.
    let mut edited = orwell.clone();
    let lost = edited.positions.remove(0);
    edited.version = "edited".into();
    let second = probe::record(&dir, engine.probe(&edited, &story).await.unwrap()).unwrap();
    let comparison = second.comparison.clone().unwrap();
    assert_eq!(comparison.previous_persona_version, orwell.version);
    assert_eq!(comparison.regressions.len(), 1, "{comparison:?}");
    assert_eq!(
        comparison.regressions[0].id,
        format!("positions/{}", lost.topic)
    );
    assert!(comparison.regressions[0].what.contains("no longer asked"));

    // A probe that fails now after passing before is a regression too.
    let fake = FakeLlm::start(FakeOptions {
        faults: vec![(Target::Judge, Fault::NonJson)],
        ..FakeOptions::default()
    })
    .await;
    let engine = support::engine_for(&support::config_for(&fake.base_url));
    let third = probe::record(&dir, engine.probe(&edited, &story).await.unwrap()).unwrap();
    let failed: Vec<_> = third.results.iter().filter(|r| !r.pass).collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].reason, "the examiner's reply could not be read");
    let regressions = third.comparison.unwrap().regressions;
    assert_eq!(regressions.len(), 1);
    assert!(regressions[0].what.starts_with("passed before, fails now"));
}
