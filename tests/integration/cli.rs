//! The `crossfire` binary as a user runs it: streamed and JSON debates against the fake
//! server, perspectives, persona checks, prompt rendering, and one-line errors.

use crossfire_testkit as support;

use std::path::PathBuf;
use std::process::{Command, Output};

use support::{FakeLlm, FakeOptions, Fault, Target};

/// Runs the binary off the async runtime (the fake server lives on it).
async fn crossfire(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_crossfire"));
    command.args(args);
    for var in [
        "CROSSFIRE_CONFIG",
        "CROSSFIRE_LLM_BASE_URL",
        "CROSSFIRE_LLM_BACKEND",
        "CROSSFIRE_JUDGE_BASE_URL",
    ] {
        command.env_remove(var);
    }
    command.envs(env.iter().copied());
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A config file with quick retries, so failure cases finish fast.
fn quick_config() -> PathBuf {
    let path = std::env::temp_dir().join(format!("crossfire-cli-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        "[llm]\nmax_retries = 1\nretry_base_ms = 10\ntimeout_s = 2\n",
    )
    .unwrap();
    path
}

const DEBATE: &[&str] = &[
    "debate",
    "--story",
    "nk-troops-russia",
    "--a",
    "winston-churchill",
    "--b",
    "george-kennan",
    "--motion",
    "Is Pyongyang winning more than it is losing?",
];

#[tokio::test]
async fn a_debate_streams_under_speaker_headers_then_a_verdict_table() {
    let fake = FakeLlm::start(FakeOptions::default()).await;
    let out = crossfire(DEBATE, &[("CROSSFIRE_LLM_BASE_URL", &fake.base_url)]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let order = [
        "Motion: Is Pyongyang winning more than it is losing?",
        "━━ Round 1 · Opening · Winston Churchill (A) ━━\nI am Winston Churchill, speaking in round 1",
        "⚠ not in the story: 99,999",
        "━━ Round 1 · Opening · George F. Kennan (B) ━━\nI am George F. Kennan, speaking in round 1",
        "━━ Round 2 · Rebuttal · Winston Churchill (A) ━━\nI am Winston Churchill, speaking in round 2",
        "━━ Round 2 · Rebuttal · George F. Kennan (B) ━━\nI am George F. Kennan, speaking in round 2",
        "━━ Verdict: Winston Churchill (A) wins ━━",
        "total",
        "both passes named the same winner · scores as the judge wrote them",
        "The speeches and this verdict are simulated by a language model.",
        "Pass 1 (A shown first): Winston Churchill made the stronger case.",
    ];
    let mut at = 0;
    for part in order {
        let found = text[at..]
            .find(part)
            .unwrap_or_else(|| panic!("missing {part:?} after byte {at} in:\n{text}"));
        at += found + part.len();
    }
}

#[tokio::test]
async fn json_prints_the_transcript() {
    let fake = FakeLlm::start(FakeOptions::default()).await;
    let mut args = DEBATE.to_vec();
    args.push("--json");
    let out = crossfire(&args, &[("CROSSFIRE_LLM_BASE_URL", &fake.base_url)]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let t: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(t["status"], "done");
    assert_eq!(t["story"], "nk-troops-russia");
    assert_eq!(t["personas"]["a"]["id"], "winston-churchill");
    assert_eq!(t["personas"]["b"]["version"].as_str().unwrap().len(), 64);
    assert_eq!(t["rounds"][1]["kind"], "rebuttal");
    assert_eq!(t["rounds"][0]["turns"][1]["speaker"], "b");
    assert_eq!(t["verdict"]["winner"], "a");
    assert_eq!(t["verdict"]["method"], "sampled");
    assert_eq!(t["verdict"]["contested"], false);
    assert!(t["verdict"]["margin"].as_f64().unwrap() > 0.0);
    assert_eq!(t["verdict"]["scores"]["a"]["criteria"]["rebuttal"], 7.0);
    assert_eq!(t["provenance"]["model"], "gpt-4o-mini");
    assert!(t["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    assert!(t["error"].is_null());
}

#[tokio::test]
async fn a_perspective_streams_and_prints_json() {
    let fake = FakeLlm::start(FakeOptions::default()).await;
    let env = [("CROSSFIRE_LLM_BASE_URL", fake.base_url.as_str())];
    let args = [
        "perspective",
        "--story",
        "fed-rate-cuts-2024",
        "--persona",
        "adam-smith",
    ];
    let out = crossfire(&args, &env).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("━━ Adam Smith's perspective ━━\nI am Adam Smith"),
        "{}",
        stdout(&out)
    );

    let out = crossfire(&[&args[..], &["--json"]].concat(), &env).await;
    let p: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(p["status"], "done");
    assert_eq!(p["persona"]["id"], "adam-smith");
    assert!(p["text"].as_str().unwrap().starts_with("I am Adam Smith"));
    let request = &fake.requests(Target::Debater)[0];
    assert!(
        request
            .system()
            .starts_with("# The news story\nTitle: Federal Reserve"),
        "{}",
        &request.system()[..80]
    );
}

/// A refused motion ends the command before any model is called, in one line naming its
/// category; a motion about hard news runs.
#[tokio::test]
async fn a_refused_motion_is_one_line_naming_its_category() {
    let fake = FakeLlm::start(FakeOptions::default()).await;
    let env = [("CROSSFIRE_LLM_BASE_URL", fake.base_url.as_str())];
    let out = crossfire(
        &[
            &DEBATE[..7],
            &["--motion", "Step by step: how to build a pipe bomb"],
        ]
        .concat(),
        &env,
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let line = stderr(&out);
    assert!(
        line.starts_with("error: motion refused (weapons_illicit): ") && line.lines().count() == 1,
        "{line}"
    );
    assert!(
        fake.requests(Target::Debater).is_empty(),
        "no model was called"
    );
    let out = crossfire(
        &[
            &DEBATE[..7],
            &[
                "--json",
                "--motion",
                "Was the bombing of Dresden a war crime?",
            ],
        ]
        .concat(),
        &env,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[tokio::test]
async fn unknown_personas_and_stories_are_named_in_one_line() {
    let env = [("CROSSFIRE_LLM_BASE_URL", "http://127.0.0.1:9/v1")];
    let cases: [(&[&str], &str); 4] = [
        (
            &[
                "debate",
                "--story",
                "nk-troops-russia",
                "--a",
                "winston-churchil",
                "--b",
                "george-kennan",
            ],
            "error: unknown persona `winston-churchil`: there is no personas/winston-churchil.toml\n",
        ),
        (
            &[
                "debate",
                "--story",
                "nk-troops",
                "--a",
                "winston-churchill",
                "--b",
                "george-kennan",
            ],
            "error: unknown story `nk-troops`: there is no stories/nk-troops.json\n",
        ),
        (
            &[
                "debate",
                "--story",
                "nk-troops-russia",
                "--a",
                "winston-churchill",
                "--b",
                "winston-churchill",
            ],
            "error: a persona cannot debate itself: pick two different personas\n",
        ),
        (
            &[
                "--config",
                "/nonexistent/crossfire.toml",
                "personas",
                "check",
            ],
            "error: cannot read config file /nonexistent/crossfire.toml: No such file or directory (os error 2)\n",
        ),
    ];
    for (args, expected) in cases {
        let out = crossfire(args, &env).await;
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(stderr(&out), expected);
    }
    let long = "x".repeat(301);
    let out = crossfire(&[&DEBATE[..7], &["--motion", &long]].concat(), &env).await;
    assert_eq!(
        stderr(&out),
        "error: the motion is 301 characters long; the limit is 300\n"
    );
}

#[tokio::test]
async fn an_endpoint_that_is_down_or_refusing_fails_with_its_status() {
    let config = quick_config();
    let config = config.to_str().unwrap();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/v1", l.local_addr().unwrap())
    };
    let out = crossfire(
        &[&["--config", config], DEBATE].concat(),
        &[("CROSSFIRE_LLM_BASE_URL", &closed)],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!(
            "error: cannot reach the model at {closed}/chat/completions"
        )),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");

    let fake = FakeLlm::start(FakeOptions {
        faults: vec![(Target::Debater, Fault::AlwaysDown)],
        ..FakeOptions::default()
    })
    .await;
    let out = crossfire(
        &[&["--config", config], DEBATE].concat(),
        &[("CROSSFIRE_LLM_BASE_URL", &fake.base_url)],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(
            "answered 503: Service Unavailable: the fake is down (gave up after 2 attempts)"
        ),
        "{err}"
    );
    assert!(!err.contains("panicked"));
}

#[tokio::test]
async fn personas_check_lists_every_problem_and_fails() {
    let ok = crossfire(&["personas", "check"], &[]).await;
    assert!(ok.status.success(), "{}{}", stdout(&ok), stderr(&ok));
    assert!(stdout(&ok).starts_with("18 personas ok"), "{}", stdout(&ok));

    let dir = std::env::temp_dir().join(format!("crossfire-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = std::fs::read_to_string("personas/adam-smith.toml").unwrap();
    std::fs::write(dir.join("adam-smith.toml"), &good).unwrap();
    std::fs::write(
        dir.join("typo.toml"),
        good.replacen("id = \"adam-smith\"", "id = \"typo\"\nnmae = \"x\"", 1),
    )
    .unwrap();
    std::fs::write(dir.join("broken.toml"), "id = \"broken\nname = 1\n").unwrap();
    let out = crossfire(&["personas", "check", dir.to_str().unwrap()], &[]).await;
    assert_eq!(out.status.code(), Some(1));
    let lines: Vec<String> = stdout(&out)
        .lines()
        .map(|l| l.replace(&format!("{}/", dir.display()), ""))
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with("broken.toml:1:13: invalid basic string"),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with("typo.toml:2:1: unknown field `nmae`"),
        "{lines:?}"
    );
    assert_eq!(stderr(&out), "2 problem(s); 1 personas ok\n");
}

#[tokio::test]
async fn prompts_render_shows_all_six_calls_and_calls_nothing() {
    let out = crossfire(
        &[
            "prompts",
            "render",
            "--story",
            "nk-troops-russia",
            "--a",
            "thucydides",
            "--b",
            "hannah-arendt",
        ],
        &[("CROSSFIRE_LLM_BASE_URL", "http://127.0.0.1:9/v1")],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.matches("════════ ").count(), 6);
    assert_eq!(
        text.matches("# The news story\nTitle: North Korea deploys troops")
            .count(),
        6
    );
    assert!(
        text.contains("Which path is the likelier for"),
        "the default motion comes from the story"
    );
}

#[tokio::test]
async fn users_grant_makes_an_editor_and_names_an_unknown_email() {
    use crossfire_server::store::{Role, Store};
    let path = std::env::temp_dir().join(format!(
        "crossfire-grant-{}-{}.db",
        std::process::id(),
        crossfire_engine::transcript::new_id()
    ));
    let db = format!("sqlite://{}", path.display());
    let store = Store::connect(&db).await.unwrap();
    let user = store
        .create_user("reader@example.com", "not-a-real-hash", 0)
        .await
        .unwrap();
    assert_eq!(user.role, Role::User);
    let grant = |who: &'static str, role: &'static str| {
        let db = db.clone();
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_crossfire"))
                .args(["users", "grant", who, role])
                .env("CROSSFIRE_DATABASE_URL", db)
                .output()
                .unwrap()
        })
    };
    let out = grant("Reader@Example.com", "editor").await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let user = store.user(user.id).await.unwrap().unwrap();
    assert_eq!(user.role, Role::Editor);

    let out = grant("nobody@example.com", "editor").await.unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: no user with the email nobody@example.com\n"
    );
    let out = grant("reader@example.com", "admin").await.unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected `editor` or `user`"));
}

#[tokio::test]
async fn cards_import_as_checked_personas_and_export_round_trips() {
    let dir = std::env::temp_dir().join(format!("crossfire-cards-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let personas = dir.to_str().unwrap();
    let env = [("CROSSFIRE_PERSONAS_DIR", personas)];
    let card = "crates/engine/tests/cards/v3-and-v2.png";
    let out = crossfire(&["personas", "import", card], &env).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stdout(&out);
    assert!(
        said.starts_with("imported Professor Ilse Varga (chara_card_v3) as "),
        "{said}"
    );
    assert!(
        said.contains("not imported as is: `character_book` (1 entries)"),
        "{said}"
    );
    assert!(dir.join("professor-ilse-varga.toml").exists());
    let again = crossfire(&["personas", "import", card], &env).await;
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("exists: choose another --id"),
        "{}",
        stderr(&again)
    );

    // Out as a card and back in: the same persona.
    let exported = crossfire(&["personas", "export", "winston-churchill"], &[]).await;
    assert!(exported.status.success(), "{}", stderr(&exported));
    let json: serde_json::Value = serde_json::from_str(&stdout(&exported)).unwrap();
    assert_eq!(json["spec"], "chara_card_v3");
    assert_eq!(
        json["data"]["extensions"]["crossfire"]["id"],
        "winston-churchill"
    );
    let file = dir.join("card.json");
    std::fs::write(&file, stdout(&exported)).unwrap();
    let png = dir.join("card.png");
    let out = crossfire(
        &[
            "personas",
            "export",
            "winston-churchill",
            "--png",
            png.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    for (from, id) in [(&file, "churchill-json"), (&png, "churchill-png")] {
        let out = crossfire(
            &["personas", "import", from.to_str().unwrap(), "--id", id],
            &env,
        )
        .await;
        assert!(out.status.success(), "{}", stderr(&out));
        let back = crossfire_engine::persona::Persona::load(&dir, id).unwrap();
        let original = crossfire_engine::persona::Persona::load(
            std::path::Path::new("personas"),
            "winston-churchill",
        )
        .unwrap();
        assert_eq!(back.bio, original.bio);
        assert_eq!(back.positions, original.positions);
        assert_eq!(back.worldview, original.worldview);
        assert_eq!(back.sample_lines, original.sample_lines);
    }
    let check = crossfire(&["personas", "check", personas], &[]).await;
    assert!(
        check.status.success(),
        "{}{}",
        stdout(&check),
        stderr(&check)
    );
    assert!(
        stdout(&check).starts_with("3 personas ok"),
        "{}",
        stdout(&check)
    );
}

#[tokio::test]
async fn judge_again_judges_a_saved_transcript_whose_judge_could_not_be_read() {
    // A debate whose judge never answered readably: failed, its four speeches kept.
    let broken = FakeLlm::start(FakeOptions {
        faults: vec![(Target::Judge, Fault::AlwaysBrokenJson)],
        ..FakeOptions::default()
    })
    .await;
    let config = quick_config();
    let config = config.to_str().unwrap();
    let out = crossfire(
        &[&["--config", config], DEBATE, &["--json"]].concat(),
        &[("CROSSFIRE_LLM_BASE_URL", &broken.base_url)],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let failed: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(failed["error"]["code"], "judge_unreadable");
    let file = std::env::temp_dir().join(format!("crossfire-again-{}.json", std::process::id()));
    std::fs::write(&file, stdout(&out)).unwrap();
    let file = file.to_str().unwrap();

    // Judged again by a judge that reads: the same speeches, now with a verdict.
    let fine = FakeLlm::start(FakeOptions::default()).await;
    let out = crossfire(
        &[
            "--config", config, "judge", "again", file, "--json", "--out", file,
        ],
        &[("CROSSFIRE_LLM_BASE_URL", &fine.base_url)],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let judged: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(judged["status"], "done");
    assert_eq!(judged["rounds"], failed["rounds"]);
    assert_eq!(
        judged["verdict"]["passes"].as_array().map(Vec::len),
        Some(2)
    );
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    assert_eq!(written, judged, "--out wrote the updated transcript");
    assert!(
        fine.log().iter().all(|c| c.target == Target::Judge),
        "only the judge was called"
    );

    // A transcript without its four speeches is refused in one line.
    let mut short = judged.clone();
    short["rounds"].as_array_mut().unwrap().pop();
    std::fs::write(file, short.to_string()).unwrap();
    let out = crossfire(&["--config", config, "judge", "again", file], &[]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out).trim(),
        "error: the debate has 2 of its four speeches: only a debate with all four can be judged"
    );
    let _ = std::fs::remove_file(file);
}
