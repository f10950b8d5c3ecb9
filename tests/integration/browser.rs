//! The reader's pages in a real browser: `crossfire serve` as its own process against the
//! fake model, driven by Debian's Chromium through playwright-core (tests/browser/arena.mjs).
//! `scripts/test` installs both; under CI a missing browser fails the test rather than
//! skipping it. Screenshots at phone and desktop width land in `target/screenshots/`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crossfire_testkit::database::temp_db;
use crossfire_testkit::http::{App, debate_body};
use crossfire_testkit::process::Instance;
use crossfire_testkit::{FakeLlm, FakeOptions, Fault, Target, repo};

const CHROMIUM: &str = "/usr/bin/chromium";

/// Story, persona and motion text that would run script or template code if any page let
/// it through: HTML, script tags, template syntax, right-to-left text and emoji.
const HOSTILE: &str = "<script>window.__pwned=1</script><img src=x onerror=\"window.__pwned=1\"> {{ 7*7 }} {% raw %} مرحبا بالعالم 🕊️";

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
    }
}

/// The shipped stories and personas, plus a hostile story and persona.
fn library() -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "crossfire-browser-{}",
        crossfire_engine::transcript::new_id()
    ));
    let (stories, personas) = (dir.join("stories"), dir.join("personas"));
    copy_dir(&repo("stories"), &stories);
    copy_dir(&repo("personas"), &personas);
    let story = serde_json::json!({
        "id": "hostile",
        "title": format!("Hostile {HOSTILE}"),
        "dek": HOSTILE,
        "overview": format!("{HOSTILE}\n\nA second paragraph."),
        "people": [{"name": HOSTILE, "role": "<b>role</b>"}],
        "scenarios": [{"title": HOSTILE, "summary": "x"}, {"title": "Calm", "summary": "y"}],
        "sources": [{"title": "javascript link", "url": "javascript:window.__pwned=1"}],
    });
    std::fs::write(stories.join("hostile.json"), story.to_string()).unwrap();
    let toml_string = |s: &str| serde_json::to_string(s).unwrap();
    let persona = format!(
        "id = \"hostile-persona\"\nname = {}\nkind = \"archetype\"\nrole = {}\nbio = {}\n\
         worldview = [{}]\nvoice = \"Plain.\"\ntags = [{}]\n",
        toml_string("Mx <img src=x onerror=\"window.__pwned=1\"> {{ 7*7 }} 🕊️"),
        toml_string(HOSTILE),
        toml_string(HOSTILE),
        toml_string(HOSTILE),
        toml_string("<i>tag</i>")
    );
    std::fs::write(personas.join("hostile-persona.toml"), persona).unwrap();
    (stories, personas)
}

/// Whether Chromium and playwright-core are here; under CI their absence fails the test
/// rather than skipping it.
fn browser_ready() -> bool {
    let ready =
        Path::new(CHROMIUM).exists() && repo("tests/browser/node_modules/playwright-core").exists();
    if !ready {
        assert!(
            std::env::var_os("CI").is_none(),
            "the browser tests need {CHROMIUM} and tests/browser/node_modules: run scripts/test"
        );
        eprintln!("not run: no Chromium or playwright-core here (scripts/test installs them)");
    }
    ready
}

const EDITOR: (&str, &str) = ("editor@example.com", "correct horse battery");

/// Signs up over HTTP; with `role`, promoted by the CLI as an operator would.
async fn account(
    instance: &Instance,
    db: &str,
    (email, password): (&str, &str),
    role: Option<&str>,
) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (status, body) = App::at(&instance.base)
        .post(
            "/api/auth/signup",
            None,
            serde_json::json!({"email": email, "password": password}),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
    if let Some(role) = role {
        let granted = tokio::process::Command::new(env!("CARGO_BIN_EXE_crossfire"))
            .args(["users", "grant", email, role])
            .env("CROSSFIRE_DATABASE_URL", db)
            .output()
            .await
            .unwrap();
        assert!(granted.status.success(), "{granted:?}");
    }
}

/// Runs a script of tests/browser against `instance` with `env`, then checks that each of
/// `shots` was taken (into `target/screenshots/`).
async fn run_script(script: &str, instance: &Instance, env: &[(&str, &str)], shots: &[&str]) {
    let screenshots = repo("target/screenshots");
    std::fs::create_dir_all(&screenshots).unwrap();
    let run = tokio::process::Command::new("node")
        .arg(repo("tests/browser").join(script))
        .env("BASE_URL", &instance.base)
        .env("CHROMIUM", CHROMIUM)
        .env("SCREENSHOTS", &screenshots)
        .env("EDITOR_EMAIL", EDITOR.0)
        .env("EDITOR_PASSWORD", EDITOR.1)
        .envs(env.iter().copied())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("the browser run ends within five minutes")
        .expect("node runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    eprintln!("{stdout}");
    assert!(
        output.status.success(),
        "browser run {script} failed:\n{stderr}"
    );
    for shot in shots {
        let file = screenshots.join(format!("{shot}.png"));
        let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        assert!(size > 10_000, "{} is missing or blank", file.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_signs_up_debates_votes_shares_and_asks_in_a_real_browser() {
    if !browser_ready() {
        return;
    }
    // Slow enough that a reader can vote and reload before the verdict. Douglass's first
    // speech is cut off half-way (so it restarts); Rachel Carson's endpoint is down (so her
    // debates fail).
    let fake = FakeLlm::start(FakeOptions {
        random_chunks: false,
        token_delay: Duration::from_millis(90),
        faults: vec![
            (Target::Speaker("Frederick Douglass"), Fault::CutStream),
            (Target::Speaker("Rachel Carson"), Fault::AlwaysDown),
        ],
        ..FakeOptions::default()
    })
    .await;
    let (stories, personas) = library();
    let config = stories.with_file_name("crossfire.toml");
    std::fs::write(&config, "[llm]\nmax_retries = 1\nretry_base_ms = 50\n").unwrap();
    let db = temp_db();
    let instance = Instance::start(
        env!("CARGO_BIN_EXE_crossfire"),
        &["--config", config.to_str().unwrap(), "--"],
        &[
            ("CROSSFIRE_LLM_BASE_URL", &fake.base_url),
            ("CROSSFIRE_DATABASE_URL", &db),
            ("CROSSFIRE_STORIES_DIR", stories.to_str().unwrap()),
            ("CROSSFIRE_PERSONAS_DIR", personas.to_str().unwrap()),
            // The run's sixth debate meets the daily limit.
            ("CROSSFIRE_DEBATES_PER_DAY", "5"),
        ],
    )
    .await;
    // An editor, for the editor page.
    account(&instance, &db, EDITOR, Some("editor")).await;
    run_script(
        "arena.mjs",
        &instance,
        &[("HOSTILE", HOSTILE)],
        &[
            "story-phone",
            "arena-phone",
            "arena-desktop",
            "story-desktop",
            "debate-phone",
            "debate-desktop",
            "verdict-phone",
            "verdict-desktop",
            "editor-phone",
            "editor-desktop",
        ],
    )
    .await;
}

/// A visitor reports a shared debate; an editor hides it from the queue; the link says it
/// was removed; its owner reads why; the audit page lists the action.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reported_debate_is_taken_down_by_an_editor_in_a_real_browser() {
    if !browser_ready() {
        return;
    }
    let fake = FakeLlm::start(FakeOptions::default()).await;
    let db = temp_db();
    let instance = Instance::start(
        env!("CARGO_BIN_EXE_crossfire"),
        &[],
        &[
            ("CROSSFIRE_LLM_BASE_URL", &fake.base_url),
            ("CROSSFIRE_DATABASE_URL", &db),
        ],
    )
    .await;
    account(&instance, &db, EDITOR, Some("editor")).await;
    let owner = ("owner@example.com", "correct horse staple");
    account(&instance, &db, owner, None).await;
    let app = App::at(&instance.base);
    let (_, session) = app
        .post(
            "/api/auth/login",
            None,
            serde_json::json!({"email": owner.0, "password": owner.1}),
        )
        .await;
    let token = session["token"].as_str().unwrap();
    let transcript = app.debate_to_the_end(token, debate_body()).await;
    let id = transcript["id"].as_str().unwrap();
    let (_, share) = app
        .post(
            &format!("/api/debates/{id}/share"),
            Some(token),
            serde_json::json!({}),
        )
        .await;
    run_script(
        "reports.mjs",
        &instance,
        &[
            ("SHARE_PATH", share["url"].as_str().unwrap()),
            ("DEBATE_ID", id),
            ("OWNER_EMAIL", owner.0),
            ("OWNER_PASSWORD", owner.1),
        ],
        &[
            "report-phone",
            "queue-phone",
            "queue-desktop",
            "queue-hidden-desktop",
            "audit-desktop",
            "audit-phone",
            "removed-phone",
            "removed-owner-desktop",
            "debates-removed-desktop",
        ],
    )
    .await;
}
