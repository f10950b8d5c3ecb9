//! Screening in the service. Motions are screened before anything runs: a refused motion is
//! a 422 naming its category and costs nothing — no run, no quota, no model call — while hard
//! news goes through. Model output is screened before anyone sees it: a refused sentence
//! never reaches the stream, the stored log, the transcript, an export or a share link, and
//! is kept for editors.

use super::*;

on_every_database!(
    a_refused_motion_costs_nothing_and_says_why,
    a_refused_sentence_reaches_no_reader_and_is_kept_for_editors,
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
}
