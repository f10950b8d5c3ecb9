//! Motions screened before anything runs: a refused motion is a 422 naming its category and
//! costs nothing — no run, no quota, no model call — while hard news goes through.

use super::*;

on_every_database!(a_refused_motion_costs_nothing_and_says_why);

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
}
