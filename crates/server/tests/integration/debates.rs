//! Debates and perspectives: streamed, cut off and resumed, bounded by the daily quota, cached,
//! listed, and holding hostile text inert.

use super::*;

on_every_database!(
    a_debate_streams_is_cut_off_and_resumes_without_gaps_or_duplicates,
    twenty_concurrent_requests_cannot_exceed_the_daily_quota,
    a_second_request_for_the_same_perspective_is_served_from_the_cache,
    hostile_text_is_stored_and_returned_intact_and_inert,
);

mod cases {
    use super::*;

    /// Rebuilds each turn's text from token events, as a client does.
    fn turn_texts(events: &[(i64, String, Value)]) -> HashMap<(u64, String), String> {
        let mut texts: HashMap<(u64, String), String> = HashMap::new();
        for (_, name, data) in events {
            let key = || {
                (
                    data["round"].as_u64().unwrap(),
                    data["speaker"].as_str().unwrap().to_string(),
                )
            };
            match name.as_str() {
                "token" => texts
                    .entry(key())
                    .or_default()
                    .push_str(data["text"].as_str().unwrap()),
                "turn_restart" => {
                    texts.remove(&key());
                }
                _ => {}
            }
        }
        texts
    }

    pub async fn a_debate_streams_is_cut_off_and_resumes_without_gaps_or_duplicates(db: &str) {
        let fake = FakeLlm::start(FakeOptions {
            random_chunks: false,
            token_delay: Duration::from_millis(3),
            ..FakeOptions::default()
        })
        .await;
        let app = start(&fake, db, |_| {}).await;
        let token = app.user().await;
        let other = app.user().await;
        let (status, created) = app.post("/api/debates", Some(&token), debate_body()).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{created}");
        let id = created["id"].as_str().unwrap();
        let events_path = created["events"].as_str().unwrap().to_string();
        assert_eq!(events_path, format!("/api/debates/{id}/events"));
        // The status of opening a stream, as `who`.
        let follow = |path: String, who: &str| {
            let request = app.http.get(format!("{}{path}", app.base)).bearer_auth(who);
            async move { request.send().await.unwrap().status() }
        };

        let first = app.events(&events_path, &token, None, 6).await;
        assert_eq!(first.len(), 6);
        // Nobody else follows it, while it runs (from memory) or after (from the database).
        assert_eq!(
            follow(events_path.clone(), &other).await,
            StatusCode::NOT_FOUND
        );
        // Nor is it a perspective, for anyone.
        let as_perspective = format!("/api/perspectives/{id}/events");
        assert_eq!(follow(as_perspective, &token).await, StatusCode::NOT_FOUND);
        let resumed = app
            .events(&events_path, &token, Some(first[5].0), usize::MAX)
            .await;
        let all: Vec<_> = first.into_iter().chain(resumed).collect();
        let ids: Vec<i64> = all.iter().map(|e| e.0).collect();
        assert_eq!(
            ids,
            (1..=ids.len() as i64).collect::<Vec<_>>(),
            "no gap, no duplicate"
        );
        assert_eq!(all.last().unwrap().1, "done");
        assert_eq!(all.last().unwrap().2["status"], "done");
        assert_eq!(all.iter().filter(|e| e.1 == "turn_end").count(), 4);
        assert_eq!(all.iter().filter(|e| e.1 == "verdict").count(), 1);
        let token_events = all.iter().filter(|e| e.1 == "token").count();
        let deltas: usize = fake
            .requests(Target::Debater)
            .iter()
            .map(|l| support::split_words(&l.text).len())
            .sum();
        assert!(
            token_events < deltas,
            "tokens are batched: {token_events} events for {deltas} deltas"
        );

        let (status, transcript) = app.get(&format!("/api/debates/{id}"), Some(&token)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(transcript["status"], "done");
        let texts = turn_texts(&all);
        for round in transcript["rounds"].as_array().unwrap() {
            for turn in round["turns"].as_array().unwrap() {
                let key = (
                    round["round"].as_u64().unwrap(),
                    turn["speaker"].as_str().unwrap().to_string(),
                );
                assert_eq!(texts[&key].trim(), turn["text"].as_str().unwrap());
            }
        }
        assert_eq!(transcript["verdict"]["winner"], "a");

        // A finished debate's stream replays it whole.
        let replay = app.events(&events_path, &token, None, usize::MAX).await;
        assert_eq!(replay, all);

        // It is listed as mine, and nobody else's.
        let (_, mine) = app.get("/api/debates", Some(&token)).await;
        assert_eq!(mine["debates"][0]["id"], id);
        assert_eq!(
            app.get(&format!("/api/debates/{id}"), Some(&other)).await.0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            follow(events_path.clone(), &other).await,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            app.get("/api/debates", Some(&other)).await.1["debates"],
            json!([])
        );
        let metrics = app.metrics().await;
        for line in [
            "crossfire_runs_total{kind=\"debate\",status=\"done\"} 1",
            "crossfire_model_calls_total{role=\"debater\",outcome=\"ok\"} 4",
            "crossfire_model_calls_total{role=\"judge\",outcome=\"ok\"} 2",
            "crossfire_http_requests_total{route=\"/api/debates\",status=\"202\"} 1",
            "crossfire_http_requests_total{route=\"/api/debates/{id}\",status=\"404\"} 1",
            "crossfire_model_call_seconds_count{role=\"debater\"} 4",
            "crossfire_streams_open 0",
            "crossfire_prompt_cache_fallbacks_total 0",
        ] {
            assert!(
                metrics.lines().any(|l| l == line),
                "missing {line} in\n{metrics}"
            );
        }
        let completion: u64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("crossfire_tokens_total{kind=\"completion\"} "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            completion,
            transcript["usage"]["completion_tokens"].as_u64().unwrap()
        );
    }

    pub async fn twenty_concurrent_requests_cannot_exceed_the_daily_quota(db: &str) {
        let fake = FakeLlm::start(FakeOptions::default()).await;
        let app = start(&fake, db, |c| c.server.debates_per_day = 3).await;
        let token = app.user().await;
        let requests = (0..20).map(|_| app.post("/api/debates", Some(&token), debate_body()));
        let statuses: Vec<StatusCode> = futures::future::join_all(requests)
            .await
            .into_iter()
            .map(|r| r.0)
            .collect();
        assert_eq!(
            statuses
                .iter()
                .filter(|s| **s == StatusCode::ACCEPTED)
                .count(),
            3,
            "{statuses:?}"
        );
        assert_eq!(
            statuses
                .iter()
                .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
                .count(),
            17
        );
        let response = app
            .http
            .post(format!("{}/api/debates", app.base))
            .bearer_auth(&token)
            .json(&debate_body())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        let wait: u64 = response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=86_400).contains(&wait));
        // Another user has their own quota.
        let other = app.user().await;
        assert_eq!(
            app.post("/api/debates", Some(&other), debate_body())
                .await
                .0,
            StatusCode::ACCEPTED
        );
    }

    pub async fn a_second_request_for_the_same_perspective_is_served_from_the_cache(db: &str) {
        let fake = FakeLlm::start(FakeOptions::default()).await;
        let app = start(&fake, db, |_| {}).await;
        let token = app.user().await;
        let ask = json!({"story": "global-temperature-1-5c", "persona": "rachel-carson"});
        let (status, created) = app
            .post("/api/perspectives", Some(&token), ask.clone())
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{created}");
        assert_eq!(created["cached"], false);
        let events = app
            .events(
                created["events"].as_str().unwrap(),
                &token,
                None,
                usize::MAX,
            )
            .await;
        let names: Vec<&str> = events.iter().map(|e| e.1.as_str()).collect();
        assert_eq!(names.first(), Some(&"turn_start"));
        assert_eq!(&names[names.len() - 2..], ["turn_end", "done"]);

        let other = app.user().await;
        let (status, cached) = app.post("/api/perspectives", Some(&other), ask).await;
        assert_eq!(status, StatusCode::OK, "{cached}");
        assert_eq!(cached["cached"], true);
        assert_eq!(cached["id"], created["id"]);
        assert!(
            cached["text"]
                .as_str()
                .unwrap()
                .starts_with("I am Rachel Carson")
        );
        assert_eq!(
            fake.requests(Target::Debater).len(),
            1,
            "no second model call"
        );
        let id = created["id"].as_str().unwrap();
        let (status, got) = app
            .get(&format!("/api/perspectives/{id}"), Some(&token))
            .await;
        assert_eq!((status, &got["text"]), (StatusCode::OK, &cached["text"]));
        // Shared through the cache, it is anyone's to read, but it is no debate.
        let events_path = format!("/api/perspectives/{id}/events");
        assert_eq!(
            app.events(&events_path, &other, None, usize::MAX).await,
            events
        );
        assert_eq!(
            app.get(&format!("/api/debates/{id}"), Some(&token)).await.0,
            StatusCode::NOT_FOUND
        );
    }

    pub async fn hostile_text_is_stored_and_returned_intact_and_inert(db: &str) {
        let fake = FakeLlm::start(FakeOptions::default()).await;
        let app = start(&fake, db, |_| {}).await;
        let token = app.user().await;
        let motion =
            "<script>alert(1)</script> '; DROP TABLE users; -- {{ 7*7 }} {% include 'judge.j2' %}";
        let mut body = debate_body();
        body["motion"] = json!(motion);
        let (status, created) = app.post("/api/debates", Some(&token), body).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{created}");
        let id = created["id"].as_str().unwrap();
        app.events(
            &format!("/api/debates/{id}/events"),
            &token,
            None,
            usize::MAX,
        )
        .await;
        let (_, transcript) = app.get(&format!("/api/debates/{id}"), Some(&token)).await;
        assert_eq!(transcript["motion"], motion);
        assert_eq!(transcript["status"], "done");
        let prompt = fake.requests(Target::Debater)[0].system().to_string();
        assert!(prompt.contains(
            "‹script›alert(1)‹/script› '; DROP TABLE users; -- {{ 7*7 }} {% include 'judge.j2' %}"
        ));
        assert_eq!(
            app.get("/healthz", None).await.0,
            StatusCode::OK,
            "the users table is still there"
        );
        let (status, _) = app
            .post(
                "/api/auth/login",
                None,
                json!({"email": "x' OR '1'='1", "password": "' OR '1'='1"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn my_debates_list_a_page_at_a_time_newest_first_with_winners() {
    let fake = FakeLlm::start(FakeOptions::default()).await;
    let app = start(&fake, &temp_db(), |c| c.server.debates_per_day = 30).await;
    let token = app.user().await;
    let mut ids = Vec::new();
    for _ in 0..21 {
        let (status, created) = app.post("/api/debates", Some(&token), debate_body()).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{created}");
        ids.push(created["id"].as_str().unwrap().to_string());
        // Distinct creation times, so newest first is one order.
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let last = &ids[20];
    app.events(
        &format!("/api/debates/{last}/events"),
        &token,
        None,
        usize::MAX,
    )
    .await;
    let (_, first) = app.get("/api/debates", Some(&token)).await;
    let listed: Vec<&str> = first["debates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    let newest: Vec<&str> = ids.iter().rev().take(20).map(String::as_str).collect();
    assert_eq!(listed, newest);
    assert_eq!(
        (first["page"].clone(), first["next_page"].clone()),
        (json!(1), json!(2))
    );
    assert_eq!(
        first["debates"][0]["winner"], "a",
        "the fake judge prefers Churchill"
    );
    let (_, second) = app.get("/api/debates?page=2", Some(&token)).await;
    assert_eq!(second["debates"].as_array().unwrap().len(), 1);
    assert_eq!(second["debates"][0]["id"], ids[0].as_str());
    assert_eq!(second["next_page"], Value::Null);
    let (status, body) = app.get("/api/debates?page=x", Some(&token)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["error"]["message"].as_str().unwrap().contains("page"),
        "{body}"
    );
}

/// A client that asks for the stream the moment its debate is accepted always sees it through
/// to `done` (the load benchmark once caught streams that ended before the run had begun).
#[tokio::test]
async fn streams_opened_at_once_always_reach_done() {
    let fake = FakeLlm::start(FakeOptions {
        random_chunks: false,
        token_delay: Duration::ZERO,
        ..FakeOptions::default()
    })
    .await;
    let app = start(&fake, &temp_db(), |c| c.server.debates_per_day = 100).await;
    let token = app.user().await;
    let follow = |_| async {
        let (_, created) = app.post("/api/debates", Some(&token), debate_body()).await;
        let events = app
            .events(
                created["events"].as_str().unwrap(),
                &token,
                None,
                usize::MAX,
            )
            .await;
        events.last().map(|e| e.1.clone())
    };
    let ends = futures::future::join_all((0..10).map(follow)).await;
    assert!(
        ends.iter().all(|e| e.as_deref() == Some("done")),
        "{ends:?}"
    );
}

#[tokio::test]
async fn living_personas_are_refused_unless_allowed() {
    let fake = FakeLlm::start(FakeOptions::default()).await;
    let dir = std::env::temp_dir().join(format!(
        "crossfire-living-{}",
        crossfire_engine::transcript::new_id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    for id in ["winston-churchill", "george-kennan"] {
        std::fs::copy(
            support::repo(&format!("personas/{id}.toml")),
            dir.join(format!("{id}.toml")),
        )
        .unwrap();
    }
    let living = std::fs::read_to_string(support::repo("personas/george-kennan.toml"))
        .unwrap()
        .replace("id = \"george-kennan\"", "id = \"someone-alive\"")
        .replace("kind = \"historical\"", "kind = \"living\"");
    std::fs::write(dir.join("someone-alive.toml"), living).unwrap();
    let db = temp_db();
    let personas = dir.clone();
    let app = start(&fake, &db, move |c| c.paths.personas_dir = personas).await;
    let token = app.user().await;
    let body = json!({"story": "nk-troops-russia", "a": "winston-churchill", "b": "someone-alive"});
    let (status, reply) = app.post("/api/debates", Some(&token), body.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("living person")
    );
    let story = app
        .http
        .get(format!("{}/stories/nk-troops-russia", app.base))
        .send()
        .await
        .unwrap();
    let html = story.text().await.unwrap();
    assert!(
        !html.contains("someone-alive"),
        "a refused persona is not offered"
    );

    // Allowed: offered and run, and labelled a simulated imitation wherever it shows.
    let personas = dir.clone();
    let app = start(&fake, &temp_db(), move |c| {
        c.paths.personas_dir = personas;
        c.allow_living = true;
    })
    .await;
    let token = app.user().await;
    let debate = app.debate_to_the_end(&token, body).await;
    let id = debate["id"].as_str().unwrap();
    assert_eq!(debate["personas"]["b"]["living"], true);
    assert_eq!(debate["personas"]["a"].get("living"), None);
    let page = app
        .http
        .get(format!("{}/debates/{id}", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Simulated imitation of a living person"),
        "the debate page says so"
    );
    let html = app
        .http
        .get(format!("{}/stories/nk-troops-russia", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("data-persona=\"someone-alive\""));
    assert!(html.contains("Simulated imitation of a living person"));
}

/// A debate whose judge could not be read keeps its four speeches; judging it again over
/// HTTP gives it a verdict, on the same event log.
mod judging_again {
    use super::*;

    on_every_database!(a_debate_whose_judging_failed_gets_a_verdict_when_judged_again);

    mod cases {
        use super::*;

        /// Every event of a finished run's stream, to its end.
        async fn whole_stream(app: &App, path: &str, token: &str) -> Vec<String> {
            let response = app
                .http
                .get(format!("{}{path}", app.base))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            let body = tokio::time::timeout(Duration::from_secs(20), response.text())
                .await
                .expect("a finished run's stream ends")
                .unwrap();
            body.lines()
                .filter_map(|l| l.strip_prefix("event: ").or(l.strip_prefix("event:")))
                .map(|name| name.trim().to_string())
                .collect()
        }

        pub async fn a_debate_whose_judging_failed_gets_a_verdict_when_judged_again(db: &str) {
            let fake = FakeLlm::start(FakeOptions {
                faults: vec![(Target::Judge, Fault::AlwaysBrokenJson)],
                ..FakeOptions::default()
            })
            .await;
            let app = start(&fake, db, |_| {}).await;
            let owner = app.user().await;
            let failed = app.debate_to_the_end(&owner, debate_body()).await;
            let id = failed["id"].as_str().unwrap().to_string();
            assert_eq!(failed["status"], "failed", "{failed}");
            assert_eq!(failed["error"]["code"], "judge_unreadable");
            let speeches: Vec<Value> = failed["rounds"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|r| r["turns"].as_array().unwrap().clone())
                .map(|t| t["text"].clone())
                .collect();
            assert_eq!(speeches.len(), 4, "the four speeches are kept");
            let verdict = format!("/api/debates/{id}/verdict");
            let stranger = app.user().await;
            let (status, _) = app.post(&verdict, Some(&stranger), json!({})).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "not theirs");

            // The judge is well again.
            fake.clear_faults();
            let (status, accepted) = app.post(&verdict, Some(&owner), json!({})).await;
            assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
            let events = accepted["events"].as_str().unwrap();
            assert!(events.contains("?after="), "{events}");
            let (status, again) = app.post(&verdict, Some(&owner), json!({})).await;
            assert_eq!(status, StatusCode::CONFLICT, "running already: {again}");
            let followed = app.events(events, &owner, None, usize::MAX).await;
            let names: Vec<&str> = followed.iter().map(|(_, n, _)| n.as_str()).collect();
            assert_eq!(
                names,
                ["verdict", "done"],
                "only the judging, after the log's end"
            );
            assert_eq!(followed[1].2["status"], "done");

            let (_, judged) = app.get(&format!("/api/debates/{id}"), Some(&owner)).await;
            assert_eq!(judged["status"], "done", "{judged}");
            assert_eq!(judged["error"], Value::Null);
            assert!(judged["verdict"]["winner"].is_string(), "{judged}");
            let same: Vec<Value> = judged["rounds"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|r| r["turns"].as_array().unwrap().clone())
                .map(|t| t["text"].clone())
                .collect();
            assert_eq!(same, speeches, "the speeches are the ones judged");

            // The whole log replays past the first `done` to the last.
            let all = whole_stream(&app, &format!("/api/debates/{id}/events"), &owner).await;
            assert_eq!(all.iter().filter(|n| *n == "done").count(), 2, "{all:?}");
            assert_eq!(
                &all[all.len() - 3..],
                ["done", "verdict", "done"],
                "{all:?}"
            );

            // Judged by the judge configured now: not again, by its owner or an editor.
            let (status, body) = app.post(&verdict, Some(&owner), json!({})).await;
            assert_eq!(status, StatusCode::CONFLICT, "{body}");
            let editor = super::super::super::editor::editor(&app, db).await;
            let (status, _) = app.post(&verdict, Some(&editor), json!({})).await;
            assert_eq!(
                status,
                StatusCode::CONFLICT,
                "an editor may ask, and is told why not"
            );
            let metrics = app.metrics().await;
            assert!(
                metrics.contains("crossfire_model_endpoint_switches_total{endpoint=\""),
                "the endpoint's switches are counted"
            );
        }
    }
}
