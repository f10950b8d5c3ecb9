//! The judge's calibration against the fake model: pairs of every kind, figures that add up,
//! the same result for the same seed, and verdicts of low confidence below 80 %.

use crossfire_engine::calibrate::{self, PairKind};
use crossfire_engine::event::EventSink;
use crossfire_testkit::{self as support, FakeLlm, FakeOptions, JudgeMode};

#[tokio::test]
async fn calibration_scores_each_kind_and_is_the_same_for_a_seed() {
    // A judge that always names the side it reads first: right half the time, and the
    // first-position figure shows why.
    let fake = FakeLlm::start(FakeOptions {
        judge: JudgeMode::FirstListed,
        ..FakeOptions::default()
    })
    .await;
    let engine = support::engine_for(&support::config_for(&fake.base_url));
    let stories = [
        support::story("nk-troops-russia"),
        support::story("fed-rate-cuts-2024"),
    ];
    let personas = [
        support::persona("winston-churchill"),
        support::persona("george-kennan"),
        support::persona("frederick-douglass"),
    ];
    let one = calibrate::calibrate(&engine, &stories, &personas, 6, 7)
        .await
        .unwrap();
    assert_eq!(one.pairs, 6);
    assert_eq!(one.kinds.len(), PairKind::ALL.len());
    assert!(one.kinds.iter().all(|k| k.pairs == 1), "{:?}", one.kinds);
    assert_eq!(
        one.swap_agreement, 0.0,
        "a first-listed judge never agrees with itself"
    );
    assert_eq!(one.first_position_wins, 1.0);
    assert_eq!(
        one.accuracy, 0.0,
        "every verdict of a self-contradicting judge is a tie"
    );
    assert!(one.length_preference.is_some());
    let two = calibrate::calibrate(&engine, &stories, &personas, 6, 7)
        .await
        .unwrap();
    assert_eq!(
        (two.kinds.clone(), two.accuracy, two.swap_agreement),
        (one.kinds.clone(), one.accuracy, one.swap_agreement)
    );
    let dir = std::env::temp_dir().join(format!(
        "crossfire-calibration-{}",
        crossfire_engine::transcript::new_id()
    ));
    calibrate::save(&dir, &one).unwrap();
    let method = one.judge_method.as_str();
    // JSON keeps a float to within its last digit, not always bit for bit.
    let kept = calibrate::last(&dir, &one.judge_model, method).unwrap();
    assert!((kept.seconds_per_pair - one.seconds_per_pair).abs() < 1e-9);
    let kept = calibrate::Calibration {
        seconds_per_pair: one.seconds_per_pair,
        ..kept
    };
    assert_eq!(kept, one);
    assert!(calibrate::last(&dir, "another-judge", method).is_none());
    assert!(calibrate::last(&dir, &one.judge_model, "another-method").is_none());
    assert!(matches!(
        calibrate::calibrate(&engine, &stories[..1], &personas, 1, 7).await,
        Err(calibrate::CalibrationError::TooFew)
    ));
}

#[tokio::test]
async fn verdicts_say_low_confidence_while_the_judge_calibrated_below_80_percent() {
    let fake = FakeLlm::start(FakeOptions::default()).await;
    let mut engine = support::engine_for(&support::config_for(&fake.base_url));
    let story = support::story("nk-troops-russia");
    let (a, b) = (
        support::persona("winston-churchill"),
        support::persona("george-kennan"),
    );
    let motion = story.default_motion();
    for (accuracy, low) in [(None, false), (Some(0.95), false), (Some(0.5), true)] {
        engine.judge_accuracy = accuracy;
        let t = engine
            .run_debate("x".into(), &story, &a, &b, &motion, &EventSink::discard())
            .await;
        let verdict = t.verdict.clone().unwrap();
        assert_eq!(verdict.low_confidence, low, "{accuracy:?}");
        let markdown = crossfire_engine::markdown::debate(&t, &story.title);
        assert_eq!(markdown.contains("Low confidence"), low);
    }
}
