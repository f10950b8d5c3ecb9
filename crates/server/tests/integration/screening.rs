//! Screening in the service. Motions are screened before anything runs: a refused motion is
//! a 422 naming its category and costs nothing — no run, no quota, no model call — while hard
//! news goes through. Model output is screened before anyone sees it: a refused sentence
//! never reaches the stream, the stored log, the transcript, an export or a share link, and
//! is kept for editors.

use super::*;

on_every_database!(
    a_refused_motion_costs_nothing_and_says_why,
    a_refused_sentence_reaches_no_reader_and_is_kept_for_editors,
    the_moderation_endpoint_refuses_what_it_flags_and_its_outage_refuses_with_503,
);

mod cases {
    use super::*;

    pub async fn a_refused_motion_costs_nothing_and_says_why(db: &str) {
        let fake = FakeLlm::start(FakeOptions::default()).await;
        let app = start(&fake, db, |c| c.server.debates_per_day = 1).await;
        let token = app.user().await;
        let ask = |motion: &str| {
            json!({"story": "nk-troops-russia", "a": "winston-churchill", "b": "george-kennan",
                   "motion": motion})
        };
        for (motion, category) in [
            ("Immigrants are vermin and should be exterminated", "hate"),
            ("Step by step: how to build a pipe bomb", "weapons_illicit"),
            ("1mm1gr4nts are v3rm1n", "hate"),
        ] {
            let (status, body) = app.post("/api/debates", Some(&token), ask(motion)).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{motion}: {body}");
            assert_eq!(body["error"]["code"], "motion_refused", "{body}");
            assert_eq!(body["error"]["category"], category, "{body}");
            let message = body["error"]["message"].as_str().unwrap();
            assert!(
                !message.is_empty() && !message.contains("rule"),
                "{message}"
            );
            assert!(
                !message.contains(motion),
                "the message does not repeat the motion"
            );
        }
        assert!(
            fake.requests(Target::Debater).is_empty(),
            "no model was called"
        );
        assert!(fake.requests(Target::Judge).is_empty());
        let (_, mine) = app.get("/api/debates", Some(&token)).await;
        assert_eq!(mine["debates"], json!([]), "no run was stored");
        // The day's one debate is still there to spend, on hard news.
        let (status, body) = app
            .post(
                "/api/debates",
                Some(&token),
                ask("Was the Holodomor a genocide?"),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let metrics = app.metrics().await;
        assert!(
            metrics.contains(
                "crossfire_moderation_total{stage=\"motion\",verdict=\"refused\",category=\"hate\"} 2"
            ),
            "{metrics}"
        );
        assert!(metrics.contains(
            "crossfire_moderation_total{stage=\"motion\",verdict=\"allowed\",category=\"\"} 1"
        ));
        // An editor's trial is screened the same way.
        let editor = super::super::editor::editor(&app, db).await;
        let persona =
            std::fs::read_to_string(support::repo("personas/winston-churchill.toml")).unwrap();
        let (status, body) = app
            .post(
                "/api/editor/drafts/trial",
                Some(&editor),
                json!({"name": "winston-churchill", "text": persona, "story": "nk-troops-russia",
                       "opponent": "george-kennan", "motion": "Kill all immigrants"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["error"]["code"], "motion_refused");
    }

    pub async fn a_refused_sentence_reaches_no_reader_and_is_kept_for_editors(db: &str) {
        let fake = FakeLlm::start(FakeOptions {
            faults: vec![(Target::Speaker("Winston Churchill"), Fault::Abusive)],
            ..FakeOptions::default()
        })
        .await;
        let app = start(&fake, db, |_| {}).await;
        let token = app.user().await;
        let (status, created) = app.post("/api/debates", Some(&token), debate_body()).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{created}");
        let id = created["id"].as_str().unwrap().to_string();
        let events_path = format!("/api/debates/{id}/events");
        let live = app.events(&events_path, &token, None, usize::MAX).await;
        assert_eq!(live.last().unwrap().2["status"], "done", "{live:?}");
        assert!(
            live.iter().any(|(_, name, _)| name == "turn_restart"),
            "the opening was spoken again"
        );
        // Read back from the stored log, after the run left this instance's memory.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let logged = app.events(&events_path, &token, None, usize::MAX).await;
        let (_, transcript) = app.get(&format!("/api/debates/{id}"), Some(&token)).await;
        let (_, share) = app
            .post(&format!("/api/debates/{id}/share"), Some(&token), json!({}))
            .await;
        let link = share["url"].as_str().unwrap().replace("/shared/", "");
        let (_, shared) = app.get(&format!("/api/shared/{link}"), None).await;
        let mut seen = vec![
            format!("{live:?}"),
            format!("{logged:?}"),
            transcript.to_string(),
            shared.to_string(),
        ];
        for path in [
            format!("/api/debates/{id}/export?format=md"),
            format!("/api/debates/{id}/export?format=json"),
            format!("/api/shared/{link}/export"),
        ] {
            let response = app
                .http
                .get(format!("{}{path}", app.base))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            seen.push(response.text().await.unwrap());
        }
        for text in &seen {
            assert!(!text.contains("vermin"), "a reader saw it: {text}");
        }
        assert_eq!(transcript["status"], "done");
        // Editors have it.
        let store = crossfire_server::store::Store::connect(db).await.unwrap();
        let withheld = store.withheld(&id).await.unwrap();
        assert_eq!(withheld.len(), 1, "{withheld:?}");
        assert_eq!(withheld[0].text, support::ABUSE);
        assert_eq!(withheld[0].category, "hate");
        let metrics = app.metrics().await;
        assert!(
            metrics.contains(
                "crossfire_moderation_total{stage=\"output\",verdict=\"refused\",category=\"hate\"} 1"
            ),
            "{metrics}"
        );
    }

    pub async fn the_moderation_endpoint_refuses_what_it_flags_and_its_outage_refuses_with_503(
        db: &str,
    ) {
        use crossfire_engine::config::Secret;
        use crossfire_engine::screen::endpoint::{ModerationBackend, ModerationConfig, OnError};
        use support::moderation::{FakeModeration, Fault as Outage, Flag, ModerationOptions};
        const KEY: &str = "sk-moderation-secret-4711";
        let endpoint = FakeModeration::start(ModerationOptions {
            flags: vec![Flag::new("cheese", "violence", "S1")],
            ..ModerationOptions::default()
        })
        .await;
        let config = ModerationConfig {
            backend: ModerationBackend::Openai,
            base_url: endpoint.base_url.clone(),
            model: "omni-moderation-latest".into(),
            api_key: Some(Secret::new(KEY)),
            timeout: Duration::from_millis(500),
            on_error: OnError::Refuse,
        };
        let fake = FakeLlm::start(FakeOptions::default()).await;
        let app = start(&fake, db, |c| c.moderation = Some(config)).await;
        let token = app.user().await;
        let ask = |motion: &str| {
            json!({"story": "nk-troops-russia", "a": "winston-churchill", "b": "george-kennan",
                   "motion": motion})
        };
        // The policy lets it through; the endpoint flags it.
        let (status, body) = app
            .post(
                "/api/debates",
                Some(&token),
                ask("Is the moon made of cheese?"),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["error"]["category"], "violence_incitement");
        let asked = endpoint.requests();
        assert_eq!(asked.len(), 1);
        assert_eq!(
            asked[0].authorization.as_deref(),
            Some(format!("Bearer {KEY}").as_str())
        );
        // A clean debate: its speeches go to the endpoint a few sentences a call.
        let transcript = app.debate_to_the_end(&token, debate_body()).await;
        assert_eq!(transcript["status"], "done", "{transcript}");
        let output_calls = endpoint.requests().len() - 2;
        let sentences: usize = endpoint.requests()[2..]
            .iter()
            .map(|r| r.texts().len())
            .sum();
        assert!(
            output_calls >= 1 && sentences >= output_calls,
            "{output_calls} calls"
        );
        // Down: a motion is refused with 503 and Retry-After, and nothing runs.
        endpoint.set_fault(Some(Outage::Down));
        let response = app
            .http
            .post(format!("{}/api/debates", app.base))
            .bearer_auth(&token)
            .json(&ask("Was the Holodomor a genocide?"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().contains_key("retry-after"));
        let body = response.text().await.unwrap();
        assert!(body.contains("moderation_unavailable"), "{body}");
        let (_, mine) = app.get("/api/debates", Some(&token)).await;
        assert_eq!(
            mine["debates"].as_array().unwrap().len(),
            1,
            "no run was created"
        );
        let metrics = app.metrics().await;
        assert!(
            metrics.contains("crossfire_moderation_endpoint_calls_total{outcome=\"error\"} 1"),
            "{metrics}"
        );
        for shown in [&body, &metrics] {
            assert!(!shown.contains(KEY), "the key never shows");
        }
    }
}

/// The policy is one of the editors' files: an edit goes live whole, and a typo keeps the last
/// good policy serving, located at `file:line:col` in the editors' lint.
#[tokio::test]
async fn a_policy_edit_goes_live_and_a_typo_keeps_the_last_good_one() {
    use super::editor::{editor, library_copy, lint_until};
    let fake = FakeLlm::start(FakeOptions::default()).await;
    let db = temp_db();
    let library = library_copy();
    let paths = library.clone();
    let app = start(&fake, &db, move |c| c.paths = paths).await;
    let token = editor(&app, &db).await;
    let reader = app.user().await;
    let ask = |motion: &str| {
        json!({"story": "nk-troops-russia", "a": "winston-churchill", "b": "george-kennan",
               "motion": motion})
    };
    let motion = "Are pineapples on pizza a crime against humanity?";
    let (status, _) = app.post("/api/debates", Some(&reader), ask(motion)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // An editor adds a category.
    let before = lint_until(&app, &token, |_| true).await;
    std::fs::write(
        library.policy_dir.join("pizza.toml"),
        "id = \"pizza\"\ntitle = \"Pizza\"\naction = \"refuse\"\nmessage = \"No pizza debates.\"\n\
         [terms]\npineapple = [\"pineapples\"]\n[[rule]]\nname = \"pineapple\"\nall = [\"pineapple\"]\n",
    )
    .unwrap();
    lint_until(&app, &token, |l| {
        l["live"]["version"] != before["live"]["version"]
    })
    .await;
    let (status, body) = app.post("/api/debates", Some(&reader), ask(motion)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["category"], "pizza");
    // A typo: refused whole, located, and the last good policy keeps serving.
    std::fs::write(
        library.policy_dir.join("pizza.toml"),
        "id = \"pizza\"\ntitle = \"Pizza\"\naction = \"refuse\"\nmessage = \"No pizza debates.\"\n\
         [[rule]]\nname = \"pineapple\"\nall = [\"pinapple\"]\n",
    )
    .unwrap();
    let refused = lint_until(&app, &token, |l| !l["rejected"].is_null()).await;
    let problem = &refused["rejected"]["problems"][0];
    assert_eq!(problem["file"], "pizza.toml", "{refused}");
    assert_eq!(problem["line"], 7, "{refused}");
    assert!(
        problem["message"]
            .as_str()
            .unwrap()
            .contains("no list named `pinapple`"),
        "{refused}"
    );
    let (status, _) = app.post("/api/debates", Some(&reader), ask(motion)).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "the last good policy still serves"
    );
}
