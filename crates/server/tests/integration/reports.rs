//! Readers' reports, the editors' queue, takedowns, the audit log, and the daily token
//! budget.

use super::*;

on_every_database!(
    a_reported_debate_is_hidden_everywhere_restored_and_audited,
    a_reported_perspective_is_hidden_from_every_reader_and_the_cache,
    a_run_screening_refused_output_of_reaches_the_queue_by_itself,
    a_spent_budget_refuses_new_debates_until_the_next_day,
);

/// A shared link's visitors may report about ten times an hour from one address; another
/// address is counted apart.
#[tokio::test]
async fn reports_through_a_shared_link_are_limited_per_address() {
    let fake = FakeLlm::start(FakeOptions::default()).await;
    let db = temp_db();
    let app = start(&fake, &db, |s| {
        s.server.client_ip_header = Some("x-forwarded-for".into());
    })
    .await;
    let (_, token) = cases::shared_debate(&app).await;
    let path = format!("{}/api/shared/{token}/reports", app.base);
    let send = |address: &'static str| {
        app.http
            .post(&path)
            .header("x-forwarded-for", address)
            .json(&json!({"reason": "other"}))
            .send()
    };
    for n in 0..10 {
        let response = send("203.0.113.7").await.unwrap();
        let expected = if n == 0 {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        assert_eq!(response.status(), expected, "report {n}");
    }
    let refused = send("203.0.113.7").await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&wait), "{wait}");
    let other = send("198.51.100.2").await.unwrap();
    assert_eq!(
        other.status(),
        StatusCode::CREATED,
        "another address counts apart"
    );
}

/// Editors tune the screening policy in the editor: a broken draft is located, a good one
/// goes live (a motion it names is refused) and the save is in the audit log.
#[tokio::test]
async fn a_policy_file_saved_in_the_editor_goes_live_and_is_audited() {
    let fake = FakeLlm::start(FakeOptions::default()).await;
    let db = temp_db();
    let library = super::editor::library_copy();
    let paths = library.clone();
    let app = start(&fake, &db, move |c| c.paths = paths).await;
    let editor = super::editor::editor(&app, &db).await;
    let before = super::editor::lint_until(&app, &editor, |_| true).await;
    let old = before["live"]["version"].as_str().unwrap().to_string();
    let file = "/api/editor/files/policy/local.toml";
    let put = |text: &str| {
        app.http
            .put(format!("{}{file}", app.base))
            .bearer_auth(&editor)
            .json(&json!({"text": text}))
            .send()
    };
    let broken = put("id = \"local\"\ntitle = \n").await.unwrap();
    assert_eq!(broken.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let message = broken.json::<Value>().await.unwrap()["error"]["message"].to_string();
    assert!(message.contains("local.toml:2:"), "located: {message}");
    let policy = "id = \"local\"\ntitle = \"Local\"\ntaxonomy = \"house rule\"\naction = \"refuse\"\n\
                  message = \"Not here.\"\n\n[terms]\nword = [\"zorblax\"]\n\n[[rule]]\nname = \"the word\"\nall = [\"word\"]\n";
    let saved = put(policy).await.unwrap();
    assert_eq!(
        saved.status(),
        StatusCode::OK,
        "{}",
        saved.text().await.unwrap()
    );
    super::editor::lint_until(&app, &editor, |l| l["live"]["version"] != old.as_str()).await;
    let reader = app.user().await;
    let mut body = debate_body();
    body["motion"] = json!("Should zorblax be taught in schools?");
    let (status, refused) = app.post("/api/debates", Some(&reader), body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["error"]["category"], "local");
    let (_, log) = app.get("/api/editor/audit", Some(&editor)).await;
    assert_eq!(log["entries"][0]["action"], "policy_save", "{log}");
    assert_eq!(log["entries"][0]["target"], "local.toml");
    let (_, source) = app.get(file, Some(&editor)).await;
    assert_eq!(source["saves"].as_array().unwrap().len(), 1);
}

mod cases {
    use super::*;

    /// A finished debate, shared: its id and its share token.
    pub async fn shared_debate(app: &App) -> (String, String) {
        let owner = app.user().await;
        shared_debate_of(app, &owner).await
    }

    pub async fn shared_debate_of(app: &App, owner: &str) -> (String, String) {
        let transcript = app.debate_to_the_end(owner, debate_body()).await;
        let id = transcript["id"].as_str().unwrap().to_string();
        let (status, share) = app
            .post(&format!("/api/debates/{id}/share"), Some(owner), json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{share}");
        let token = share["url"].as_str().unwrap().replace("/shared/", "");
        (id, token)
    }

    pub async fn a_reported_debate_is_hidden_everywhere_restored_and_audited(db: &str) {
        let fake = FakeLlm::start(FakeOptions::default()).await;
        let app = start(&fake, db, |_| {}).await;
        let owner = app.user().await;
        let (id, token) = shared_debate_of(&app, &owner).await;
        let (_, transcript) = app.get(&format!("/api/debates/{id}"), Some(&owner)).await;
        let speech = transcript["rounds"][0]["turns"][0]["text"]
            .as_str()
            .unwrap()
            .to_string();
        let shared_reports = format!("/api/shared/{token}/reports");

        // Anyone with the link reports; twice counts once.
        let report = json!({"reason": "hateful", "note": "  It mocks a people.  "});
        let (status, receipt) = app.post(&shared_reports, None, report.clone()).await;
        assert_eq!(status, StatusCode::CREATED, "{receipt}");
        assert_eq!(receipt, json!({"received": true, "counted": true}));
        let (status, receipt) = app.post(&shared_reports, None, report).await;
        assert_eq!(status, StatusCode::OK, "{receipt}");
        assert_eq!(receipt["counted"], false);
        for (body, what) in [
            (json!({"reason": "boring"}), "an unknown reason"),
            (
                json!({"reason": "other", "note": "x".repeat(1001)}),
                "a long note",
            ),
            (json!({"note": "no reason"}), "no reason"),
        ] {
            let (status, answer) = app.post(&shared_reports, None, body).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{what}: {answer}");
        }
        // The owner reports their own debate; a stranger cannot reach it.
        let own = format!("/api/debates/{id}/reports");
        let (status, _) = app
            .post(&own, Some(&owner), json!({"reason": "misinformation"}))
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let stranger = app.user().await;
        let (status, _) = app
            .post(&own, Some(&stranger), json!({"reason": "other"}))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        // The queue: editors only, the debate once, its reasons counted, in context.
        let (status, _) = app.get("/api/editor/reports", Some(&stranger)).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let editor = super::super::editor::editor(&app, db).await;
        let (status, queue) = app.get("/api/editor/reports", Some(&editor)).await;
        assert_eq!(status, StatusCode::OK, "{queue}");
        let groups = queue["reports"].as_array().unwrap();
        assert_eq!(groups.len(), 1, "{queue}");
        let group = &groups[0];
        assert_eq!(group["run_id"], id);
        assert_eq!(group["kind"], "debate");
        assert_eq!(group["state"], "open");
        assert_eq!(group["screened"], false);
        assert_eq!(
            group["reasons"],
            json!([{"reason": "hateful", "count": 1}, {"reason": "misinformation", "count": 1}])
        );
        assert_eq!(group["notes"][0]["note"], "It mocks a people.");
        assert_eq!(group["speeches"].as_array().unwrap().len(), 4);
        assert_eq!(group["speeches"][0]["parts"][0]["text"], speech.as_str());
        let case = group["id"].as_str().unwrap().to_string();
        // The queue's page: editors only, the case on it.
        for (token, status) in [
            (&stranger, StatusCode::FORBIDDEN),
            (&editor, StatusCode::OK),
        ] {
            let (answered, html) = app.text("/editor/reports", Some(token)).await;
            assert_eq!(answered, status);
            assert_eq!(html.contains(&case), status == StatusCode::OK);
        }
        let resolve = format!("/api/editor/reports/{case}/resolve");
        let (status, _) = app
            .post(&resolve, Some(&stranger), json!({"action": "hide"}))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = app
            .post(&resolve, Some(&editor), json!({"action": "delete"}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let (status, _) = app
            .post(
                "/api/editor/reports/nope/resolve",
                Some(&editor),
                json!({"action": "hide"}),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        // Hidden: gone everywhere at once, the text nowhere, the owner told why.
        let why = "It singles out a people with contempt.";
        let (status, hidden) = app
            .post(
                &resolve,
                Some(&editor),
                json!({"action": "hide", "note": why}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{hidden}");
        assert_eq!(hidden["state"], "hidden");
        for path in [
            format!("/api/shared/{token}"),
            format!("/api/shared/{token}/export"),
            format!("/api/shared/{token}/export?format=json"),
            format!("/shared/{token}"),
        ] {
            let (status, body) = app.text(&path, None).await;
            assert_eq!(status, StatusCode::GONE, "{path}");
            assert!(!body.contains(&speech[..40]), "{path} shows the speech");
            assert!(!body.contains(why), "{path} shows the editors' note");
            if path.starts_with("/api") {
                let body: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(body["error"]["code"], "removed", "{path}");
            }
        }
        let (status, body) = app.get(&format!("/api/debates/{id}"), Some(&owner)).await;
        assert_eq!(status, StatusCode::GONE);
        assert!(
            body["error"]["message"].as_str().unwrap().contains(why),
            "the owner is told why: {body}"
        );
        let (status, _) = app
            .post(&format!("/api/debates/{id}/share"), Some(&owner), json!({}))
            .await;
        assert_eq!(status, StatusCode::GONE, "the owner can no longer share it");
        let (_, list) = app.get("/api/debates", Some(&owner)).await;
        assert!(
            list["debates"][0]["removed"]
                .as_str()
                .unwrap()
                .contains(why),
            "{list}"
        );
        let (status, page) = app.text(&format!("/debates/{id}"), Some(&owner)).await;
        assert_eq!(status, StatusCode::GONE);
        assert!(page.contains("removed by the editors") && page.contains(why));
        let (status, _) = app
            .post(&shared_reports, None, json!({"reason": "other"}))
            .await;
        assert_eq!(status, StatusCode::GONE, "nothing left to report");
        let (status, _) = app
            .post(&resolve, Some(&editor), json!({"action": "hide"}))
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "hidden already");
        let (_, open) = app.get("/api/editor/reports", Some(&editor)).await;
        assert_eq!(open["reports"], json!([]));

        // Restored: the link works again.
        let (_, kept) = app
            .get("/api/editor/reports?state=hidden", Some(&editor))
            .await;
        assert_eq!(kept["reports"][0]["id"], case.as_str());
        assert_eq!(kept["reports"][0]["note"], why);
        let (status, _) = app
            .post(
                &resolve,
                Some(&editor),
                json!({"action": "restore", "note": "On appeal: a quotation."}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = app.text(&format!("/api/shared/{token}"), None).await;
        assert_eq!(status, StatusCode::OK);

        // Reported again, dismissed: it stays up, the queue is empty.
        let (status, _) = app
            .post(&shared_reports, None, json!({"reason": "violent"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "a new case counts anew");
        let (_, queue) = app.get("/api/editor/reports", Some(&editor)).await;
        let second = queue["reports"][0]["id"].as_str().unwrap().to_string();
        assert_ne!(second, case);
        let (status, _) = app
            .post(
                &format!("/api/editor/reports/{second}/resolve"),
                Some(&editor),
                json!({"action": "dismiss"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let (_, queue) = app.get("/api/editor/reports", Some(&editor)).await;
        assert_eq!(queue["reports"], json!([]));
        let (status, _) = app.text(&format!("/api/shared/{token}"), None).await;
        assert_eq!(status, StatusCode::OK);

        // The audit log: every action, newest first, by whom, on what, paged.
        let (status, _) = app.get("/api/editor/audit", Some(&stranger)).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, log) = app.get("/api/editor/audit", Some(&editor)).await;
        assert_eq!(status, StatusCode::OK, "{log}");
        let entries = log["entries"].as_array().unwrap();
        let actions: Vec<&str> = entries
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        assert_eq!(actions, ["dismiss", "restore", "hide", "role_grant"]);
        let (_, me) = app.get("/api/auth/me", Some(&editor)).await;
        assert_eq!(entries[2]["by"], me["email"]);
        assert_eq!(entries[2]["target"], id);
        assert_eq!(entries[2]["note"], why);
        assert_eq!(entries[3]["target"], me["email"]);
        assert_eq!(entries[3]["note"], "editor");
        let (_, first) = app.get("/api/editor/audit?limit=2", Some(&editor)).await;
        assert_eq!(first["entries"].as_array().unwrap().len(), 2);
        let before = first["next_before"].as_i64().unwrap();
        let (_, rest) = app
            .get(
                &format!("/api/editor/audit?limit=2&before={before}"),
                Some(&editor),
            )
            .await;
        assert_eq!(rest["entries"][0]["action"], "hide");
        assert_eq!(rest["next_before"], Value::Null);
        let (status, html) = app.text("/editor/audit", Some(&editor)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            html.contains(why) && html.contains(&id),
            "the audit page lists the hide"
        );

        // Append-only in the database itself.
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(db).await.unwrap();
        for statement in [
            "UPDATE audit_log SET note = 'changed'",
            "DELETE FROM audit_log",
        ] {
            assert!(
                sqlx::query(statement).execute(&pool).await.is_err(),
                "{statement} went through"
            );
        }
        pool.close().await;
    }

    pub async fn a_reported_perspective_is_hidden_from_every_reader_and_the_cache(db: &str) {
        let fake = FakeLlm::start(FakeOptions::default()).await;
        let app = start(&fake, db, |_| {}).await;
        let (asker, other) = (app.user().await, app.user().await);
        let ask = json!({"story": "nk-troops-russia", "persona": "abraham-lincoln"});
        let (status, created) = app
            .post("/api/perspectives", Some(&asker), ask.clone())
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{created}");
        let id = created["id"].as_str().unwrap().to_string();
        app.events(
            &format!("/api/perspectives/{id}/events"),
            &asker,
            None,
            usize::MAX,
        )
        .await;
        let (status, cached) = app
            .post("/api/perspectives", Some(&other), ask.clone())
            .await;
        assert_eq!(status, StatusCode::OK, "{cached}");
        assert_eq!(cached["id"], id, "served from the cache");
        let (status, _) = app
            .post(
                &format!("/api/perspectives/{id}/reports"),
                Some(&other),
                json!({"reason": "misinformation", "note": "Lincoln never said this."}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let editor = super::super::editor::editor(&app, db).await;
        let (_, queue) = app.get("/api/editor/reports", Some(&editor)).await;
        let group = &queue["reports"][0];
        assert_eq!(group["kind"], "perspective");
        assert_eq!(group["run_id"], id);
        assert_eq!(group["speeches"][0]["speaker"], "solo");
        let case = group["id"].as_str().unwrap();
        let (status, _) = app
            .post(
                &format!("/api/editor/reports/{case}/resolve"),
                Some(&editor),
                json!({"action": "hide", "note": "Invented quotation."}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        for reader in [&asker, &other] {
            let (status, body) = app
                .get(&format!("/api/perspectives/{id}"), Some(reader))
                .await;
            assert_eq!(status, StatusCode::GONE, "{body}");
        }
        let (status, fresh) = app.post("/api/perspectives", Some(&other), ask).await;
        assert_eq!(status, StatusCode::ACCEPTED, "not the hidden one: {fresh}");
        assert_ne!(fresh["id"], id);
    }

    pub async fn a_run_screening_refused_output_of_reaches_the_queue_by_itself(db: &str) {
        let fake = FakeLlm::start(FakeOptions {
            faults: vec![(Target::Speaker("Winston Churchill"), Fault::Abusive)],
            ..FakeOptions::default()
        })
        .await;
        let app = start(&fake, db, |_| {}).await;
        let reader = app.user().await;
        let transcript = app.debate_to_the_end(&reader, debate_body()).await;
        let id = transcript["id"].as_str().unwrap();
        let editor = super::super::editor::editor(&app, db).await;
        // The withheld sentence is stored beside the run, a moment after its event.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let group = loop {
            let (_, queue) = app.get("/api/editor/reports", Some(&editor)).await;
            if let Some(group) = queue["reports"].as_array().unwrap().first() {
                break group.clone();
            }
            assert!(std::time::Instant::now() < deadline, "no case opened");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(group["run_id"], id);
        assert_eq!(group["screened"], true);
        assert_eq!(group["reasons"], json!([]));
        let withheld = &group["withheld"][0];
        assert_eq!(withheld["refused"], true);
        assert_eq!(withheld["speaker"], "a");
        assert!(
            withheld["text"].as_str().unwrap().contains("vermin"),
            "{withheld}"
        );
        assert!(!group.to_string().contains("\"flagged\":\"hate\""));
    }

    pub async fn a_spent_budget_refuses_new_debates_until_the_next_day(db: &str) {
        let fake = FakeLlm::start(FakeOptions::default()).await;
        let app = start(&fake, db, |s| s.server.daily_token_budget = 50).await;
        let reader = app.user().await;
        let metrics = app.metrics().await;
        assert!(
            metrics.contains("crossfire_token_budget_daily 50\n"),
            "{metrics}"
        );
        assert!(
            metrics.contains("crossfire_tokens_spent_today 0\n"),
            "{metrics}"
        );
        // Under the budget when it starts: it runs to the end, past the budget.
        let transcript = app.debate_to_the_end(&reader, debate_body()).await;
        assert_eq!(transcript["status"], "done");
        let response = app
            .http
            .post(format!("{}/api/debates", app.base))
            .bearer_auth(&reader)
            .json(&debate_body())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let wait: u64 = response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            (1..=86_400).contains(&wait),
            "until the next UTC day: {wait}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "budget_exhausted");
        let (status, _) = app
            .post(
                "/api/perspectives",
                Some(&reader),
                json!({"story": "nk-troops-russia", "persona": "abraham-lincoln"}),
            )
            .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        // The spending reaches the database, where every instance reads it.
        let spent = |metrics: &str| -> u64 {
            metrics
                .lines()
                .find_map(|l| l.strip_prefix("crossfire_tokens_spent_today "))
                .unwrap()
                .parse()
                .unwrap()
        };
        let total = spent(&app.metrics().await);
        assert!(total >= 50, "{total}");
        let store = crossfire_server::store::Store::connect(db).await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while store
            .spent(&crossfire_server::limits::today())
            .await
            .unwrap()
            < total
        {
            assert!(std::time::Instant::now() < deadline, "never stored");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
