//! `crossfire serve` as its own process: instances sharing a PostgreSQL database, and a
//! graceful shutdown on SIGTERM.

use std::time::Duration;

use crossfire_engine::transcript::{ErrorCode, Status};
use crossfire_testkit::database::{fresh_postgres_database, postgres_admin_url, temp_db};
use crossfire_testkit::http::{App, debate_body};
use crossfire_testkit::process::Instance;
use crossfire_testkit::{FakeLlm, FakeOptions};
use reqwest::StatusCode;

async fn spawn_instance(fake: &FakeLlm, db: &str) -> Instance {
    spawn_instance_with_grace(fake, db, 30).await
}

async fn spawn_instance_with_grace(fake: &FakeLlm, db: &str, grace_s: u64) -> Instance {
    let grace = grace_s.to_string();
    Instance::start(
        env!("CARGO_BIN_EXE_crossfire"),
        &["--", "--grace-s", &grace],
        &[
            ("CROSSFIRE_LLM_BASE_URL", &fake.base_url),
            ("CROSSFIRE_DATABASE_URL", db),
        ],
    )
    .await
}

/// A fresh PostgreSQL database and a fake model streaming a token every `token_delay`; `None`
/// (the test does not run) without a PostgreSQL server, which under CI fails instead.
async fn postgres_and_fake(token_delay: Duration) -> Option<(String, FakeLlm)> {
    let Some(admin) = postgres_admin_url() else {
        eprintln!("not run: CROSSFIRE_TEST_DATABASE_URL is not set");
        return None;
    };
    let db = fresh_postgres_database(&admin).await;
    let fake = FakeLlm::start(FakeOptions {
        random_chunks: false,
        token_delay,
        ..FakeOptions::default()
    })
    .await;
    Some((db, fake))
}

#[tokio::test]
async fn a_client_of_another_instance_follows_a_debate_live_on_postgres() {
    let Some((db, fake)) = postgres_and_fake(Duration::from_millis(8)).await else {
        return;
    };
    let (one, two) = futures::join!(spawn_instance(&fake, &db), spawn_instance(&fake, &db));
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (app_one, app_two) = (App::at(&one.base), App::at(&two.base));

    let token = app_one.user().await;
    let (status, created) = app_one
        .post("/api/debates", Some(&token), debate_body())
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created}");
    let path = created["events"].as_str().unwrap().to_string();

    // Instance two does not run the debate; it follows it through the database.
    let started = std::time::Instant::now();
    let first = app_two.events(&path, &token, None, 1).await;
    let first_at = started.elapsed();
    let rest = app_two
        .events(&path, &token, Some(first[0].0), usize::MAX)
        .await;
    let done_at = started.elapsed();
    let all: Vec<_> = first.into_iter().chain(rest).collect();
    let ids: Vec<i64> = all.iter().map(|e| e.0).collect();
    assert_eq!(
        ids,
        (1..=ids.len() as i64).collect::<Vec<_>>(),
        "no gap, no duplicate"
    );
    assert_eq!(all.last().unwrap().1, "done");
    assert!(
        done_at - first_at > Duration::from_millis(500),
        "events arrived live, not all at the end: first at {first_at:?}, done at {done_at:?}"
    );
    let replay = app_one.events(&path, &token, None, usize::MAX).await;
    assert_eq!(replay, all, "both instances tell the same story");
}

/// Two instances on one PostgreSQL database: the second's start leaves the first's running
/// debate alone; when the first is killed, the second takes the debate over once the first's
/// claim lapses, and finishes it.
#[tokio::test]
async fn another_instance_takes_over_the_debates_of_one_that_crashed_on_postgres() {
    let Some((db, fake)) = postgres_and_fake(Duration::from_millis(40)).await else {
        return;
    };
    let envs = [
        ("CROSSFIRE_LLM_BASE_URL", fake.base_url.as_str()),
        ("CROSSFIRE_DATABASE_URL", db.as_str()),
        ("CROSSFIRE_RUN_LEASE_S", "1"),
    ];
    let spawn = || Instance::start(env!("CARGO_BIN_EXE_crossfire"), &[], &envs);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let one = spawn().await;
    let app_one = App::at(&one.base);
    let token = app_one.user().await;
    let (_, created) = app_one
        .post("/api/debates", Some(&token), debate_body())
        .await;
    let id = created["id"].as_str().unwrap().to_string();
    let path = format!("/api/debates/{id}/events");
    app_one.events(&path, &token, None, 1).await;

    let two = spawn().await;
    let app_two = App::at(&two.base);
    // Longer than a lease: the first instance renews its claim, so nothing is taken over.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, running) = app_two
        .get(&format!("/api/debates/{id}"), Some(&token))
        .await;
    assert_eq!(running["status"], "running", "{running}");
    let taken = |metrics: &str, n: u32| {
        metrics.contains(&format!(
            "crossfire_runs_taken_over_total{{outcome=\"resumed\"}} {n}"
        ))
    };
    assert!(taken(&app_two.metrics().await, 0), "left to the first");

    one.signal("KILL");
    let events = app_two.events(&path, &token, None, usize::MAX).await;
    assert_eq!(events.last().unwrap().2["status"], "done", "{events:?}");
    let ids: Vec<i64> = events.iter().map(|e| e.0).collect();
    assert!(
        ids.windows(2).any(|w| w[1] - w[0] > 1_000),
        "the log goes on past the crash gap: {ids:?}"
    );
    let (_, transcript) = app_two
        .get(&format!("/api/debates/{id}"), Some(&token))
        .await;
    assert_eq!(transcript["status"], "done", "{transcript}");
    assert!(
        taken(&app_two.metrics().await, 1),
        "taken over by the second"
    );
}

/// SIGTERM: the instance stops accepting, lets the running debate finish within the grace
/// period and exits; with no grace, what is left is marked interrupted.
#[tokio::test]
async fn sigterm_lets_running_debates_finish_within_the_grace_period() {
    let fake = FakeLlm::start(FakeOptions {
        latency: Duration::from_millis(300),
        ..FakeOptions::default()
    })
    .await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    for (grace_s, expected) in [(30, Status::Done), (0, Status::Failed)] {
        let db = temp_db();
        let mut instance = spawn_instance_with_grace(&fake, &db, grace_s).await;
        let app = App::at(&instance.base);
        let token = app.user().await;
        let (_, created) = app.post("/api/debates", Some(&token), debate_body()).await;
        let id = created["id"].as_str().unwrap().to_string();
        tokio::time::sleep(Duration::from_millis(100)).await;
        instance.signal("TERM");
        let exit = tokio::time::timeout(Duration::from_secs(30), instance.child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(exit.success(), "grace {grace_s}: {exit}");
        let refused = app.http.get(format!("{}/healthz", app.base)).send().await;
        assert!(refused.is_err(), "no longer accepting");
        let wal = format!("{}-wal", db.trim_start_matches("sqlite://"));
        assert!(
            !std::path::Path::new(&wal).exists(),
            "a clean exit folds the write-ahead log back into the database: {wal}"
        );

        let store = crossfire_server::store::Store::connect(&db).await.unwrap();
        let run = store.run(&id).await.unwrap().unwrap();
        assert_eq!(run.status, expected, "grace {grace_s}");
        if expected == Status::Failed {
            let error = run.error.expect("a failed run says why");
            assert_eq!(error.code, ErrorCode::Interrupted);
        }
        let events = store.events_after(&id, 0).await.unwrap();
        assert_eq!(events.last().unwrap().name, "done", "the log always ends");
    }
}

#[tokio::test]
async fn the_service_says_low_confidence_when_the_judges_last_calibration_fell_short() {
    let fake = FakeLlm::start(FakeOptions::default()).await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    for (accuracy, expected) in [(0.55, true), (0.95, false)] {
        let cache = std::env::temp_dir().join(format!(
            "crossfire-test-cache-{}-{}",
            std::process::id(),
            crossfire_engine::transcript::new_id()
        ));
        let calibrations = cache.join("crossfire/calibration");
        std::fs::create_dir_all(&calibrations).unwrap();
        let calibration = serde_json::json!({
            "judge_model": "gpt-4o-mini", "judge_method": "rubric",
            "debater_model": "gpt-4o-mini", "seed": 7, "pairs": 12, "kinds": [],
            "accuracy": accuracy, "swap_agreement": 1.0, "first_position_wins": 0.5,
            "length_preference": 0.5, "seconds_per_pair": 1.0,
            "created_at": "2026-12-01T00:00:00Z"
        });
        std::fs::write(
            calibrations.join("gpt-4o-mini.rubric.json"),
            calibration.to_string(),
        )
        .unwrap();
        let db = temp_db();
        let cache_home = cache.to_str().unwrap();
        let instance = Instance::start(
            env!("CARGO_BIN_EXE_crossfire"),
            &[],
            &[
                ("CROSSFIRE_LLM_BASE_URL", &fake.base_url),
                ("CROSSFIRE_DATABASE_URL", &db),
                ("XDG_CACHE_HOME", cache_home),
            ],
        )
        .await;
        let app = App::at(&instance.base);
        let token = app.user().await;
        let transcript = app.debate_to_the_end(&token, debate_body()).await;
        assert_eq!(transcript["status"], "done", "{transcript}");
        assert_eq!(
            transcript["verdict"]["low_confidence"]
                .as_bool()
                .unwrap_or(false),
            expected,
            "accuracy {accuracy}: {}",
            transcript["verdict"]
        );
        let _ = std::fs::remove_dir_all(&cache);
    }
}

/// The value of an unlabelled counter in Prometheus text.
fn counter(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} is in /metrics"))
}

#[tokio::test]
async fn a_reader_opening_a_story_has_the_embedded_model_compute_its_debates_beginning() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config =
        std::env::temp_dir().join(format!("crossfire-prefill-{}.toml", std::process::id()));
    // Nothing from earlier runs on disk: the beginning is computed here.
    std::fs::write(&config, "[embedded]\ndisk_cache_mb = 0\n").unwrap();
    let db = temp_db();
    let instance = Instance::start(
        env!("CARGO_BIN_EXE_crossfire"),
        &["--config", config.to_str().unwrap(), "--"],
        &[
            ("CROSSFIRE_LLM_BACKEND", "embedded"),
            ("CROSSFIRE_DATABASE_URL", &db),
        ],
    )
    .await;
    let app = App::at(&instance.base);
    let prefills = |metrics: &str| {
        (
            counter(metrics, "crossfire_story_prefills_total"),
            counter(metrics, "crossfire_story_prefill_tokens_total"),
        )
    };
    let settled = |want: u64| {
        let app = &app;
        async move {
            for _ in 0..600 {
                let now = prefills(&app.metrics().await);
                if now.0 >= want {
                    return now;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("no story prefill after a minute");
        }
    };

    let reader = app.user().await;
    let (status, _) = app.text("/stories/nk-troops-russia", Some(&reader)).await;
    assert_eq!(status, StatusCode::OK);
    let (count, tokens) = settled(1).await;
    // The story block and the rules: hundreds of tokens, before who speaks.
    assert_eq!(count, 1);
    assert!(tokens > 300, "{tokens} tokens prefilled");

    // Opened again, or by a visitor (who cannot debate), nothing is computed; another story
    // a reader opens, after those, is.
    app.text("/stories/nk-troops-russia", Some(&reader)).await;
    app.text("/stories/global-temperature-1-5c", None).await;
    app.text("/stories/fed-rate-cuts-2024", Some(&reader)).await;
    let (_, more) = settled(2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        prefills(&app.metrics().await),
        (2, more),
        "only the reader's"
    );
    assert!(more > tokens + 300, "{more} tokens for two stories");
    let _ = std::fs::remove_file(config);
}
