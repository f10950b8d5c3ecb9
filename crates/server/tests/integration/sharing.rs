//! Readers' votes, share links and exports of a debate.

use super::*;

on_every_database!(readers_vote_before_and_after_and_share_and_export_a_debate,);

mod cases {
    use super::*;

    pub async fn readers_vote_before_and_after_and_share_and_export_a_debate(db: &str) {
        // Slow enough that the vote before has time to open and close.
        let fake = FakeLlm::start(FakeOptions {
            latency: Duration::from_millis(300),
            ..FakeOptions::default()
        })
        .await;
        let app = start(&fake, db, |_| {}).await;
        let (owner, stranger) = (app.user().await, app.user().await);
        let (_, created) = app.post("/api/debates", Some(&owner), debate_body()).await;
        let id = created["id"].as_str().unwrap().to_string();
        let votes = format!("/api/debates/{id}/votes");
        let vote = |phase: &str, choice: &str| json!({"phase": phase, "choice": choice});

        let (status, tally) = app.post(&votes, Some(&owner), vote("before", "a")).await;
        assert_eq!(status, StatusCode::OK, "{tally}");
        assert_eq!(tally["before"], json!({"a": 1, "b": 0, "undecided": 0}));
        assert_eq!(tally["mine"]["before"], "a");
        assert_eq!(tally["open"], "before");
        // Changeable while its phase is open: still one vote.
        let (_, tally) = app
            .post(&votes, Some(&owner), vote("before", "undecided"))
            .await;
        assert_eq!(tally["before"], json!({"a": 0, "b": 0, "undecided": 1}));
        let (status, body) = app.post(&votes, Some(&owner), vote("after", "b")).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["error"]["code"], "conflict");
        let (status, _) = app
            .post(&votes, Some(&owner), vote("before", "maybe"))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let (status, _) = app.post(&votes, Some(&stranger), vote("before", "a")).await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "a private debate takes only its owner's vote"
        );
        let share = format!("/api/debates/{id}/share");
        let (status, _) = app.post(&share, Some(&owner), json!({})).await;
        assert_eq!(
            status,
            StatusCode::CONFLICT,
            "a running debate cannot be shared"
        );

        let events = app
            .events(
                &format!("/api/debates/{id}/events"),
                &owner,
                None,
                usize::MAX,
            )
            .await;
        assert_eq!(events.last().unwrap().2["status"], "done");
        let (status, _) = app.post(&votes, Some(&owner), vote("before", "a")).await;
        assert_eq!(
            status,
            StatusCode::CONFLICT,
            "the vote before closed with the verdict"
        );
        let (status, tally) = app.post(&votes, Some(&owner), vote("after", "a")).await;
        assert_eq!(status, StatusCode::OK, "{tally}");
        assert_eq!(tally["swing"], json!({"a": 100.0, "b": 0.0}));
        let (_, debate) = app.get(&format!("/api/debates/{id}"), Some(&owner)).await;
        assert_eq!(
            debate["votes"]["after"],
            json!({"a": 1, "b": 0, "undecided": 0})
        );
        assert_eq!(
            debate["votes"]["mine"],
            json!({"before": "undecided", "after": "a"})
        );
        assert_eq!(debate["share"], Value::Null);
        assert_eq!(
            debate["rounds"].as_array().unwrap().len(),
            2,
            "the transcript is flattened in"
        );

        // Shared: one link, readable by anyone with it; other readers may vote after.
        let (status, shared) = app.post(&share, Some(&stranger), json!({})).await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "only the owner shares: {shared}"
        );
        let (status, shared) = app.post(&share, Some(&owner), json!({})).await;
        assert_eq!(status, StatusCode::OK, "{shared}");
        let url = shared["url"].as_str().unwrap().to_string();
        assert!(url.starts_with("/shared/") && url.len() > 30, "{url}");
        assert_eq!(
            app.post(&share, Some(&owner), json!({})).await.1["url"],
            url.as_str()
        );
        let token = url.trim_start_matches("/shared/");
        let (status, replay) = app.get(&format!("/api/shared/{token}"), None).await;
        assert_eq!(status, StatusCode::OK, "{replay}");
        assert_eq!(replay["id"], id.as_str());
        assert_eq!(
            replay["story_title"],
            "North Korea deploys troops to fight Russia's war in Ukraine"
        );
        assert_eq!(
            replay["votes"]["mine"],
            json!({"before": null, "after": null})
        );
        let (status, tally) = app.post(&votes, Some(&stranger), vote("after", "b")).await;
        assert_eq!(status, StatusCode::OK, "{tally}");
        assert_eq!(tally["after"], json!({"a": 1, "b": 1, "undecided": 0}));
        assert_eq!(
            app.get(&format!("/api/debates/{id}"), Some(&stranger))
                .await
                .0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            app.get("/api/shared/0123456789abcdef0123456789abcdef", None)
                .await
                .0,
            StatusCode::NOT_FOUND
        );

        // Exports: Markdown and JSON, as attachments, for the owner and through the link.
        let download = |path: String, token: Option<String>| {
            let mut request = app.http.get(format!("{}{path}", app.base));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            request.send()
        };
        let md = download(
            format!("/api/debates/{id}/export?format=md"),
            Some(owner.clone()),
        )
        .await
        .unwrap();
        assert_eq!(md.status(), StatusCode::OK);
        assert_eq!(md.headers()["content-type"], "text/markdown; charset=utf-8");
        assert_eq!(
            md.headers()["content-disposition"],
            format!("attachment; filename=\"debate-{id}.md\"").as_str()
        );
        let text = md.text().await.unwrap();
        assert!(
            text.starts_with("# Is Pyongyang winning more than it is losing?\n"),
            "{text}"
        );
        assert!(
            text.contains("## Round 2 · Rebuttal") && text.contains("## Verdict"),
            "{text}"
        );
        assert!(text.contains("Simulated"), "{text}");
        let json_export = download(format!("/api/shared/{token}/export?format=json"), None)
            .await
            .unwrap();
        assert_eq!(json_export.status(), StatusCode::OK);
        let exported: Value = json_export.json().await.unwrap();
        assert_eq!(exported["id"], id.as_str());
        assert_eq!(exported["verdict"], debate["verdict"]);
        let theirs = download(format!("/api/debates/{id}/export"), Some(stranger.clone()))
            .await
            .unwrap();
        assert_eq!(theirs.status(), StatusCode::NOT_FOUND);

        // Unshared: the link stops working.
        let gone = app
            .http
            .delete(format!("{}{share}", app.base))
            .bearer_auth(&owner)
            .send()
            .await
            .unwrap();
        assert_eq!(gone.status(), StatusCode::NO_CONTENT);
        assert_eq!(
            app.get(&format!("/api/shared/{token}"), None).await.0,
            StatusCode::NOT_FOUND
        );
        let (status, _) = app.post(&votes, Some(&stranger), vote("after", "a")).await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "no longer shared, no more strangers' votes"
        );
    }
}
