//! Editors' tools: lint and previews of the files on disk, live edits, drafts checked,
//! previewed, tried and saved, and the judge's fairness figures.

use super::*;

on_every_database!(editors_see_lint_status_and_previews_of_the_files_on_disk,);

mod cases {
    use super::*;

    pub async fn editors_see_lint_status_and_previews_of_the_files_on_disk(db: &str) {
        let fake = FakeLlm::start(FakeOptions::default()).await;
        let dir = std::env::temp_dir().join(format!(
            "crossfire-editor-{}",
            crossfire_engine::transcript::new_id()
        ));
        let (personas, prompts) = (dir.join("personas"), dir.join("prompts"));
        for (from, to) in [("personas", &personas), ("prompts", &prompts)] {
            std::fs::create_dir_all(to).unwrap();
            for entry in std::fs::read_dir(support::repo(from)).unwrap() {
                let path = entry.unwrap().path();
                std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
            }
        }
        let (p, q) = (personas.clone(), prompts.clone());
        let app = start(&fake, db, move |c| {
            c.paths.personas_dir = p;
            c.paths.prompts_dir = q;
            c.server.cors_origins = vec!["https://app.example".into()];
        })
        .await;
        let token = app.user().await;
        assert_eq!(
            app.get("/api/editor/personas", Some(&token)).await.0,
            StatusCode::FORBIDDEN
        );

        let (_, me) = app
            .post(
                "/api/auth/login",
                None,
                json!({"email": "x@y.z", "password": "nobody-here"}),
            )
            .await;
        assert!(me["error"].is_object());
        let store = crossfire_server::store::Store::connect(db).await.unwrap();
        let user = store
            .session_user(&crossfire_engine::sha256_hex(token.as_bytes()), 0)
            .await
            .unwrap()
            .unwrap();
        assert!(
            store
                .set_role(&user.email, crossfire_server::store::Role::Editor, "test")
                .await
                .unwrap()
        );

        // An editor breaks a persona after start-up: the lint shows it at once.
        std::fs::write(personas.join("typo.toml"), "id = \"typo\"\nnmae = \"x\"\n").unwrap();
        let (status, lint) = app.get("/api/editor/personas", Some(&token)).await;
        assert_eq!(status, StatusCode::OK, "{lint}");
        assert_eq!(lint["ok"].as_array().unwrap().len(), 18);
        assert_eq!(lint["problems"][0]["file"], "typo.toml");
        assert_eq!(lint["problems"][0]["line"], 2);
        assert!(
            lint["problems"][0]["message"]
                .as_str()
                .unwrap()
                .starts_with("unknown field `nmae`")
        );

        let outside =
            json!({"story": "/etc/../tmp/x.json", "a": "winston-churchill", "b": "george-kennan"});
        assert_eq!(
            app.post("/api/editor/preview", Some(&token), outside)
                .await
                .0,
            StatusCode::NOT_FOUND,
            "paths are not ids"
        );
        let ask = json!({"story": "nk-troops-russia", "a": "winston-churchill", "b": "george-kennan", "motion": "Who gains?"});
        let (status, preview) = app
            .post("/api/editor/preview", Some(&token), ask.clone())
            .await;
        assert_eq!(status, StatusCode::OK, "{preview}");
        let calls = preview["calls"].as_array().unwrap();
        assert_eq!(calls.len(), 6);
        assert_eq!(calls[4]["name"], "judge, pass 1 (A first)");
        assert!(
            calls[0]["messages"][0]["content"]
                .as_str()
                .unwrap()
                .contains("<motion>\nWho gains?\n</motion>")
        );

        // A template change shows up in the next preview, and a broken one is explained.
        let opening = std::fs::read_to_string(prompts.join("opening.j2")).unwrap();
        std::fs::write(
            prompts.join("opening.j2"),
            opening.replace("Round 1 of 2", "ROUND ONE"),
        )
        .unwrap();
        let (_, preview) = app
            .post("/api/editor/preview", Some(&token), ask.clone())
            .await;
        assert!(
            preview["calls"][0]["messages"][1]["content"]
                .as_str()
                .unwrap()
                .starts_with("ROUND ONE")
        );
        std::fs::write(
            prompts.join("opening.j2"),
            "{% block system %}{{ me.name }{% endblock %}",
        )
        .unwrap();
        let (status, error) = app.post("/api/editor/preview", Some(&token), ask).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .contains("opening.j2"),
            "{error}"
        );

        // Requests carry ids, and only the configured origin may call from a browser.
        let response = app
            .http
            .get(format!("{}/api/stories", app.base))
            .header("origin", "https://app.example")
            .send()
            .await
            .unwrap();
        assert!(response.headers().contains_key("x-request-id"));
        assert_eq!(
            response.headers()["access-control-allow-origin"],
            "https://app.example"
        );
        let response = app
            .http
            .get(format!("{}/api/stories", app.base))
            .header("origin", "https://evil.example")
            .send()
            .await
            .unwrap();
        assert!(
            !response
                .headers()
                .contains_key("access-control-allow-origin")
        );
    }
}

/// A copy of the shipped stories, personas, templates and policy that a test may edit.
pub(super) fn library_copy() -> Library {
    let dir = std::env::temp_dir().join(format!(
        "crossfire-library-{}",
        crossfire_engine::transcript::new_id()
    ));
    for folder in ["personas", "prompts", "stories", "policy"] {
        std::fs::create_dir_all(dir.join(folder)).unwrap();
        for entry in std::fs::read_dir(support::repo(folder)).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, dir.join(folder).join(path.file_name().unwrap())).unwrap();
        }
    }
    Library {
        personas_dir: dir.join("personas"),
        prompts_dir: dir.join("prompts"),
        stories_dir: dir.join("stories"),
        policy_dir: dir.join("policy"),
        story_max_bytes: crossfire_engine::story::DEFAULT_MAX_BYTES,
    }
}

/// A signed-in editor's token.
pub(super) async fn editor(app: &App, db: &str) -> String {
    let token = app.user().await;
    let store = crossfire_server::store::Store::connect(db).await.unwrap();
    let user = store
        .session_user(&crossfire_engine::sha256_hex(token.as_bytes()), 0)
        .await
        .unwrap()
        .unwrap();
    store
        .set_role(&user.email, crossfire_server::store::Role::Editor, "test")
        .await
        .unwrap();
    token
}

/// Polls the live set until `done` says so (or ten seconds pass).
pub(super) async fn lint_until(app: &App, token: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, lint) = app.get("/api/editor/lint", Some(token)).await;
        assert_eq!(status, StatusCode::OK, "{lint}");
        if done(&lint) {
            return lint;
        }
        assert!(std::time::Instant::now() < deadline, "not reloaded: {lint}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Editing the files while debates run: an edit goes live whole, debates keep the set they
/// started with, a typo keeps the last good set and says where it is, and its fix goes live.
#[tokio::test]
async fn edits_go_live_whole_and_a_typo_keeps_the_last_good_set() {
    // Each call waits before it answers, so the first debate is still running when the edit
    // goes live.
    let fake = FakeLlm::start(FakeOptions {
        latency: Duration::from_millis(400),
        ..FakeOptions::default()
    })
    .await;
    let db = temp_db();
    let library = library_copy();
    let paths = library.clone();
    let app = start(&fake, &db, move |c| c.paths = paths).await;
    let token = editor(&app, &db).await;
    let before = lint_until(&app, &token, |_| true).await;
    assert_eq!(before["rejected"], Value::Null);
    assert_eq!(before["live"]["personas"], 18);
    let old = before["live"]["version"].as_str().unwrap().to_string();
    let (_, churchill) = app.get("/api/personas/winston-churchill", None).await;

    let (_, first) = app.post("/api/debates", Some(&token), debate_body()).await;
    let first = first["id"].as_str().unwrap().to_string();

    // One edit of a persona and a template, saved while the first debate runs.
    let persona_file = library.personas_dir.join("winston-churchill.toml");
    let original = std::fs::read_to_string(&persona_file).unwrap();
    let edited = original.replacen("role = \"", "role = \"Edited: ", 1);
    let template = library.prompts_dir.join("opening.j2");
    let mut opening = std::fs::read_to_string(&template).unwrap();
    opening.push_str("\n{# edited #}\n");
    let saved = std::time::Instant::now();
    std::fs::write(&persona_file, &edited).unwrap();
    std::fs::write(&template, &opening).unwrap();
    let after = lint_until(&app, &token, |l| l["live"]["version"] != old.as_str()).await;
    eprintln!("from save to live: {} ms", saved.elapsed().as_millis());
    assert_ne!(after["live"]["templates"], before["live"]["templates"]);
    let (_, now) = app.get("/api/personas/winston-churchill", None).await;
    assert!(
        now["role"].as_str().unwrap().starts_with("Edited: "),
        "{now}"
    );

    let (_, second) = app.post("/api/debates", Some(&token), debate_body()).await;
    let second = second["id"].as_str().unwrap().to_string();
    for id in [&first, &second] {
        app.events(
            &format!("/api/debates/{id}/events"),
            &token,
            None,
            usize::MAX,
        )
        .await;
    }
    let (_, one) = app
        .get(&format!("/api/debates/{first}"), Some(&token))
        .await;
    let (_, two) = app
        .get(&format!("/api/debates/{second}"), Some(&token))
        .await;
    assert_eq!(one["status"], "done");
    assert_eq!(one["personas"]["a"]["version"], churchill["version"]);
    assert_eq!(one["provenance"]["templates"], before["live"]["templates"]);
    assert_eq!(two["personas"]["a"]["version"], now["version"]);
    assert_eq!(two["provenance"]["templates"], after["live"]["templates"]);
    // Each debate's prompts came from one set: the first never saw the edited role.
    let edited_prompts = fake
        .requests(Target::Debater)
        .iter()
        .filter(|r| r.system().contains("Edited: "))
        .count();
    assert_eq!(
        edited_prompts, 4,
        "the second debate's four speeches, and no others"
    );

    // A typo: the last good set stays live, and the problem says where it is.
    let live = after["live"]["version"].as_str().unwrap().to_string();
    std::fs::write(&persona_file, edited.replacen("role = \"", "role = ", 1)).unwrap();
    let refused = lint_until(&app, &token, |l| !l["rejected"].is_null()).await;
    assert_eq!(refused["live"]["version"], live.as_str());
    let problem = &refused["rejected"]["problems"][0];
    assert_eq!(problem["file"], "winston-churchill.toml", "{refused}");
    assert!(problem["line"].as_u64().unwrap() > 1, "{problem}");
    assert!(problem["column"].as_u64().unwrap() > 0, "{problem}");
    assert!(
        problem["text"]
            .as_str()
            .unwrap()
            .contains("winston-churchill.toml:"),
        "{problem}"
    );
    let (status, _) = app.get("/api/personas/winston-churchill", None).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "still served from the last good set"
    );

    // Fixed: it goes live, and the refusal is gone.
    std::fs::write(&persona_file, &original).unwrap();
    let fixed = lint_until(&app, &token, |l| l["rejected"].is_null()).await;
    assert_ne!(fixed["live"]["version"], live.as_str());
    let (_, back) = app.get("/api/personas/winston-churchill", None).await;
    assert_eq!(back["version"], churchill["version"]);
}

/// An editor opens a persona, drafts with a typo and sees where it is, previews and tries
/// the fixed draft, and saves it: atomically, keeping the previous version, recorded, live.
#[tokio::test]
async fn editors_check_preview_try_and_save_drafts() {
    let fake = FakeLlm::start(FakeOptions::default()).await;
    let db = temp_db();
    let library = library_copy();
    let paths = library.clone();
    let app = start(&fake, &db, move |c| c.paths = paths).await;
    let token = editor(&app, &db).await;
    let reader = app.user().await;
    let file = "/api/editor/files/persona/winston-churchill";
    assert_eq!(app.get(file, Some(&reader)).await.0, StatusCode::FORBIDDEN);
    for bad in [
        "/api/editor/files/persona/..%2Fsecret",
        "/api/editor/files/template/..%2F..%2Fetc%2Fpasswd",
        "/api/editor/files/template/opening.toml",
    ] {
        assert_eq!(
            app.get(bad, Some(&token)).await.0,
            StatusCode::NOT_FOUND,
            "{bad}"
        );
    }
    let (status, opened) = app.get(file, Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{opened}");
    let original = opened["text"].as_str().unwrap().to_string();
    let base = opened["version"].as_str().unwrap().to_string();
    assert_eq!(opened["saves"], json!([]));

    // A typo, located.
    let check = |text: &str| {
        json!({"kind": "persona", "name": "winston-churchill", "text": text,
               "story": "nk-troops-russia", "opponent": "george-kennan"})
    };
    let typo = original.replacen("role = \"", "role = ", 1);
    let (_, report) = app
        .post("/api/editor/drafts/check", Some(&token), check(&typo))
        .await;
    let problem = &report["problems"][0];
    assert_eq!(problem["file"], "winston-churchill.toml", "{report}");
    assert_eq!(problem["line"], 5, "{report}");
    assert!(problem["column"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["preview"], Value::Null);

    // Fixed: no problems, and the prompts it would produce.
    let draft = original.replacen("role = \"", "role = \"Drafted: ", 1);
    let (_, report) = app
        .post("/api/editor/drafts/check", Some(&token), check(&draft))
        .await;
    assert_eq!(report["problems"], json!([]), "{report}");
    let prompts = report["preview"]["calls"].to_string();
    assert!(prompts.contains("Drafted: "), "{report}");

    // A template draft's syntax error, located in that template.
    let (_, report) = app
        .post(
            "/api/editor/drafts/check",
            Some(&token),
            json!({"kind": "template", "name": "opening.j2", "text": "Hello\n{{ broken"}),
        )
        .await;
    let problem = &report["problems"][0];
    assert_eq!(problem["file"], "opening.j2", "{report}");
    assert_eq!(problem["line"], 2, "{report}");

    // A trial: streamed like any run, kept out of the editor's list.
    let (status, accepted) = app
        .post(
            "/api/editor/drafts/trial",
            Some(&token),
            json!({"name": "winston-churchill", "text": draft, "story": "nk-troops-russia",
                   "opponent": "george-kennan"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let events = app
        .events(
            accepted["events"].as_str().unwrap(),
            &token,
            None,
            usize::MAX,
        )
        .await;
    assert_eq!(events.last().unwrap().2["status"], "done");
    let id = accepted["id"].as_str().unwrap();
    let (_, trial) = app.get(&format!("/api/debates/{id}"), Some(&token)).await;
    assert_eq!(trial["trial"], true);
    assert_eq!(
        trial["personas"]["a"]["version"],
        crossfire_engine::sha256_hex(draft.as_bytes())
    );
    let (_, mine) = app.get("/api/debates", Some(&token)).await;
    assert_eq!(mine["debates"], json!([]), "trials stay out of the list");
    let (status, _) = app
        .post(
            "/api/editor/drafts/trial",
            Some(&token),
            json!({"name": "winston-churchill", "text": typo, "story": "nk-troops-russia"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // Saving: a draft with problems is refused, a stale one too; a good one goes live.
    let put = |body: Value, who: &str| {
        app.http
            .put(format!("{}{file}", app.base))
            .bearer_auth(who)
            .json(&body)
            .send()
    };
    let refused = put(json!({"text": typo}), &token).await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let stale = put(json!({"text": draft, "base_version": "0"}), &token)
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::CONFLICT);
    let theirs = put(json!({"text": draft}), &reader).await.unwrap();
    assert_eq!(theirs.status(), StatusCode::FORBIDDEN);
    let before = lint_until(&app, &token, |_| true).await;
    let saved = put(json!({"text": draft, "base_version": base}), &token)
        .await
        .unwrap();
    assert_eq!(saved.status(), StatusCode::OK);
    let saved: Value = saved.json().await.unwrap();
    assert_eq!(saved["previous_version"], base.as_str());
    let on_disk = library.personas_dir.join("winston-churchill.toml");
    assert_eq!(std::fs::read_to_string(&on_disk).unwrap(), draft);
    let kept = library
        .personas_dir
        .join(".history")
        .join(format!("winston-churchill.toml.{}", &base[..12]));
    assert_eq!(std::fs::read_to_string(kept).unwrap(), original);
    let (_, reopened) = app.get(file, Some(&token)).await;
    assert_eq!(reopened["version"], saved["version"]);
    assert_eq!(reopened["saves"][0]["previous_version"], base.as_str());
    assert!(
        reopened["saves"][0]["by"]
            .as_str()
            .unwrap()
            .starts_with("reader-")
    );
    lint_until(&app, &token, |l| {
        l["live"]["version"] != before["live"]["version"]
    })
    .await;
    let (_, live) = app.get("/api/personas/winston-churchill", None).await;
    assert!(
        live["role"].as_str().unwrap().starts_with("Drafted: "),
        "{live}"
    );

    // A Character Card uploaded becomes a draft persona, with what had no home reported.
    let upload = |bytes: Vec<u8>, who: &str, query: &str| {
        app.http
            .post(format!("{}/api/editor/cards{query}", app.base))
            .bearer_auth(who)
            .body(bytes)
            .send()
    };
    let card = std::fs::read(support::repo("crates/engine/tests/cards/v3.charx")).unwrap();
    let imported = upload(card.clone(), &token, "?id=ilse").await.unwrap();
    assert_eq!(imported.status(), StatusCode::OK);
    let imported: Value = imported.json().await.unwrap();
    assert_eq!(imported["id"], "ilse");
    assert_eq!(imported["spec"], "chara_card_v3");
    assert!(
        imported["toml"]
            .as_str()
            .unwrap()
            .contains("name = \"Professor Ilse Varga\"")
    );
    assert!(
        imported["report"].to_string().contains("character_book"),
        "{imported}"
    );
    let (_, report) = app
        .post(
            "/api/editor/drafts/check",
            Some(&token),
            json!({"kind": "persona", "name": "ilse", "text": imported["toml"]}),
        )
        .await;
    assert_eq!(
        report["problems"],
        json!([]),
        "an imported card is a draft that lints"
    );
    assert_eq!(
        upload(b"not a card".to_vec(), &token, "")
            .await
            .unwrap()
            .status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        upload(card, &reader, "").await.unwrap().status(),
        StatusCode::FORBIDDEN
    );

    // Probes of a live persona: a scorecard, kept, and the next one compared with it.
    let probes = "/api/editor/probes/george-kennan";
    assert_eq!(app.get(probes, Some(&token)).await.0, StatusCode::NOT_FOUND);
    let (status, card) = app.post(probes, Some(&token), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{card}");
    assert_eq!(card["persona"]["id"], "george-kennan");
    assert_eq!(card["comparison"], Value::Null);
    let positions = &card["rates"][2];
    assert_eq!(positions["category"], "positions");
    assert!(positions["total"].as_u64().unwrap() > 0);
    assert_eq!(positions["passed"], positions["total"]);
    assert_eq!(app.get(probes, Some(&token)).await.1, card);
    let (_, again) = app
        .post(probes, Some(&token), json!({"story": "fed-rate-cuts-2024"}))
        .await;
    assert_eq!(again["comparison"]["regressions"], json!([]), "{again}");
    assert_eq!(
        app.post(probes, Some(&reader), json!({})).await.0,
        StatusCode::FORBIDDEN
    );
}

/// The judge's fairness figures over real debates, in `/metrics` and for editors: the fake
/// judge always prefers Churchill, whichever side he is on and whichever side it reads first.
#[tokio::test]
async fn fairness_figures_count_swap_agreement_position_side_and_persona() {
    let fake = FakeLlm::start(FakeOptions::default()).await;
    let db = temp_db();
    let app = start(&fake, &db, |_| {}).await;
    let token = editor(&app, &db).await;
    let (_, empty) = app.get("/api/editor/fairness", Some(&token)).await;
    assert_eq!(empty["debates"], 0);
    assert_eq!(empty["swap_agreement"], Value::Null);
    for (a, b) in [
        ("winston-churchill", "george-kennan"),
        ("george-kennan", "winston-churchill"),
    ] {
        let body = json!({"story": "nk-troops-russia", "a": a, "b": b});
        assert_eq!(app.debate_to_the_end(&token, body).await["status"], "done");
    }
    let (status, f) = app.get("/api/editor/fairness", Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{f}");
    assert_eq!(f["debates"], 2);
    assert_eq!(f["swap_agreement"], 1.0);
    assert_eq!(
        f["first_position_wins"], 0.5,
        "each side read first in one of two passes"
    );
    assert_eq!(f["side_a_wins"], 0.5);
    assert_eq!(
        f["personas"],
        json!([
            {"id": "george-kennan", "debates": 2, "wins": 0, "win_rate": 0.0},
            {"id": "winston-churchill", "debates": 2, "wins": 2, "win_rate": 1.0}
        ])
    );
    let metrics = app.metrics().await;
    for line in [
        "crossfire_judge_debates 2",
        "crossfire_judge_swap_agreement 1",
        "crossfire_judge_first_position_wins 0.5",
        "crossfire_judge_side_a_wins 0.5",
        "crossfire_persona_win_rate{persona=\"winston-churchill\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
    let reader = app.user().await;
    assert_eq!(
        app.get("/api/editor/fairness", Some(&reader)).await.0,
        StatusCode::FORBIDDEN
    );
}
