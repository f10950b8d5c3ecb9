//! The HTTP service, started for real on a random port against the fake model server and a
//! SQLite file, and talked to over HTTP.

use crossfire_testkit as support;

use std::collections::HashMap;
use std::time::Duration;

use crossfire_engine::config::Library;
use crossfire_server::config::ServerConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::http::{App, databases, debate_body, temp_db};
use support::{FakeLlm, FakeOptions, Fault, Target};
use tokio::sync::oneshot;

/// What a test may change before the service starts.
struct Setup {
    server: ServerConfig,
    paths: Library,
    allow_living: bool,
}

async fn start(fake: &FakeLlm, db: &str, tweak: impl FnOnce(&mut Setup)) -> App {
    let mut setup = Setup {
        server: ServerConfig {
            database_url: db.to_string(),
            // One name for every start on a database, as for an instance restarted in place.
            instance: Some("in-process".into()),
            ..ServerConfig::default()
        },
        paths: Library {
            personas_dir: support::repo("personas"),
            prompts_dir: support::repo("prompts"),
            stories_dir: support::repo("stories"),
            story_max_bytes: crossfire_engine::story::DEFAULT_MAX_BYTES,
        },
        allow_living: false,
    };
    tweak(&mut setup);
    let mut engine = support::engine_for(&support::config_for(&fake.base_url));
    engine.settings.allow_living_personas = setup.allow_living;
    let state = crossfire_server::prepare(setup.server, setup.paths, engine)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let shutdown = async move {
        let _ = stopped.await;
    };
    tokio::spawn(crossfire_server::serve(
        listener,
        state,
        shutdown,
        Duration::from_secs(5),
    ));
    let _ = rustls::crypto::ring::default_provider().install_default();
    App {
        base,
        http: reqwest::Client::new(),
        stop: Some(stop),
    }
}

/// Every storage case runs on a SQLite file, and on PostgreSQL when
/// `CROSSFIRE_TEST_DATABASE_URL` names a server (a fresh database each time).
macro_rules! on_every_database {
    ($($case:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $case() {
            for db in databases().await {
                eprintln!("case {} on {}", stringify!($case), db.split('@').next_back().unwrap_or(&db));
                cases::$case(&db).await;
            }
        }
    )*};
}

on_every_database!(
    editors_see_lint_status_and_previews_of_the_files_on_disk,
    accounts_sign_up_log_in_and_out_and_fail_clearly,
    bad_requests_get_json_errors_with_the_right_status,
    a_debate_streams_is_cut_off_and_resumes_without_gaps_or_duplicates,
    twenty_concurrent_requests_cannot_exceed_the_daily_quota,
    a_second_request_for_the_same_perspective_is_served_from_the_cache,
    hostile_text_is_stored_and_returned_intact_and_inert,
    a_restart_resumes_the_debate_it_interrupted,
    a_restart_interrupts_a_debate_it_cannot_resume,
    a_restart_speaks_again_the_perspective_it_cut_off,
    a_run_log_reads_back_event_by_event_from_any_point,
    readers_vote_before_and_after_and_share_and_export_a_debate
);

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
                .set_role(&user.email, crossfire_server::store::Role::Editor)
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

    pub async fn accounts_sign_up_log_in_and_out_and_fail_clearly(db: &str) {
        let fake = FakeLlm::start(FakeOptions::default()).await;
        let app = start(&fake, db, |_| {}).await;
        let creds = json!({"email": "O'Brien+Test@Example.com", "password": "' OR 1=1 --"});

        let response = app
            .http
            .post(format!("{}/api/auth/signup", app.base))
            .json(&creds)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let cookie = response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            cookie.starts_with("crossfire_session=")
                && cookie.contains("HttpOnly")
                && cookie.contains("SameSite=Lax"),
            "{cookie}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["user"]["email"], "o'brien+test@example.com");
        assert_eq!(body["user"]["role"], "user");
        assert_eq!(body["token"].as_str().unwrap().len(), 64, "256 random bits");

        let (status, body) = app.post("/api/auth/signup", None, creds.clone()).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::CONFLICT, Some("conflict"))
        );
        let (status, _) = app
            .post(
                "/api/auth/signup",
                None,
                json!({"email": "not-an-email", "password": "long enough"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let (status, body) = app
            .post(
                "/api/auth/signup",
                None,
                json!({"email": "a@b.co", "password": "short"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(body["error"]["message"].as_str().unwrap().contains("8"));

        let (status, body) = app
            .post(
                "/api/auth/login",
                None,
                json!({"email": "o'brien+test@example.com", "password": "wrong password"}),
            )
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_credentials"))
        );
        let (status, body) = app
            .post(
                "/api/auth/login",
                None,
                json!({"email": "nobody@example.com", "password": "whatever1"}),
            )
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_credentials"))
        );
        let (status, body) = app.post("/api/auth/login", None, creds.clone()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let token = body["token"].as_str().unwrap().to_string();

        // The cookie works as well as the bearer token.
        let session = cookie.split(';').next().unwrap();
        let response = app
            .http
            .get(format!("{}/api/debates", app.base))
            .header("cookie", session)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            app.get("/api/debates", Some(&token)).await.0,
            StatusCode::OK
        );
        let (_, me) = app.get("/api/auth/me", Some(&token)).await;
        assert_eq!(me["email"], "o'brien+test@example.com");
        assert_eq!(
            app.get("/api/debates", Some("forged")).await.0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            app.get("/api/debates", None).await.0,
            StatusCode::UNAUTHORIZED
        );

        let response = app
            .http
            .post(format!("{}/api/auth/logout", app.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        assert_eq!(
            app.get("/api/debates", Some(&token)).await.0,
            StatusCode::UNAUTHORIZED,
            "the session is gone"
        );

        // Repeated failures are rate-limited per account.
        let mut last = StatusCode::OK;
        for _ in 0..12 {
            last = app
                .post(
                    "/api/auth/login",
                    None,
                    json!({"email": "victim@example.com", "password": "guess-guess"}),
                )
                .await
                .0;
        }
        assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
    }

    pub async fn bad_requests_get_json_errors_with_the_right_status(db: &str) {
        let fake = FakeLlm::start(FakeOptions::default()).await;
        let app = start(&fake, db, |_| {}).await;
        let token = app.user().await;
        let raw = |body: &'static str| {
            app.http
                .post(format!("{}/api/debates", app.base))
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body(body)
        };
        let cases = [
            (
                raw("{not json").send().await.unwrap(),
                400,
                "malformed_json",
            ),
            (
                raw(r#"{"story": 7, "a": "x", "b": "y"}"#)
                    .send()
                    .await
                    .unwrap(),
                422,
                "invalid",
            ),
            (
                app.http
                    .get(format!("{}/api/nowhere", app.base))
                    .send()
                    .await
                    .unwrap(),
                404,
                "not_found",
            ),
            (
                app.http
                    .post(format!("{}/api/debates", app.base))
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .body(format!(r#"{{"story": "{}"}}"#, "x".repeat(100_000)))
                    .send()
                    .await
                    .unwrap(),
                413,
                "too_large",
            ),
        ];
        for (response, status, code) in cases {
            assert_eq!(response.status().as_u16(), status);
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], code, "{body}");
        }
        let checks = [
            (
                json!({"story": "atlantis", "a": "winston-churchill", "b": "george-kennan"}),
                404,
                "unknown story `atlantis`",
            ),
            (
                json!({"story": "nk-troops-russia", "a": "napoleon", "b": "george-kennan"}),
                404,
                "unknown persona `napoleon`",
            ),
            (
                json!({"story": "nk-troops-russia", "a": "thucydides", "b": "thucydides"}),
                422,
                "cannot debate itself",
            ),
            (
                json!({"story": "nk-troops-russia", "a": "thucydides", "b": "confucius", "motion": " "}),
                422,
                "empty",
            ),
            (
                json!({"story": "nk-troops-russia", "a": "thucydides", "b": "confucius", "motion": "x".repeat(301)}),
                422,
                "301 characters",
            ),
        ];
        for (body, status, message) in checks {
            let (got, reply) = app.post("/api/debates", Some(&token), body).await;
            assert_eq!(got.as_u16(), status, "{reply}");
            assert!(
                reply["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains(message),
                "{reply}"
            );
        }
        assert_eq!(
            app.post("/api/debates", None, debate_body()).await.0,
            StatusCode::UNAUTHORIZED
        );
        assert!(fake.log().is_empty(), "nothing reached the model");
    }

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

    /// Starts a run (`POST` of `body` to `route`) on a process of its own, follows it until
    /// `until` holds of the events heard, lets those be stored, then tears the process down
    /// as a crash would. Returns the run's id, its owner's token and the events heard.
    async fn crash_mid_run(
        db: &str,
        options: FakeOptions,
        (route, body): (&'static str, Value),
        until: fn(&[(i64, String, Value)]) -> bool,
    ) -> (String, String, Vec<(i64, String, Value)>) {
        let db = db.to_string();
        // The first process (with its model) runs on its own runtime, which is then torn
        // down: a crash.
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            let result = runtime.block_on(async {
                let fake = FakeLlm::start(options).await;
                let app = start(&fake, &db, |_| {}).await;
                let token = app.user().await;
                let (_, created) = app.post(route, Some(&token), body).await;
                let id = created["id"].as_str().unwrap().to_string();
                let path = created["events"].as_str().unwrap().to_string();
                let mut heard: Vec<(i64, String, Value)> = Vec::new();
                while !until(&heard) {
                    let last = heard.last().map(|e| e.0);
                    let next = app.events(&path, &token, last, 1).await;
                    assert_ne!(next[0].1, "done", "the run ended before the crash");
                    heard.extend(next);
                }
                // What was heard is stored within a commit (50 ms); what follows may not be.
                tokio::time::sleep(Duration::from_millis(300)).await;
                (id, token, heard)
            });
            runtime.shutdown_background();
            result
        })
        .join()
        .unwrap()
    }

    fn turns_ended(events: &[(i64, String, Value)], round: u64) -> Vec<(String, String)> {
        events
            .iter()
            .filter(|e| e.1 == "turn_end" && e.2["round"] == round)
            .map(|e| {
                let speaker = e.2["speaker"].as_str().unwrap().to_string();
                (speaker, e.2["text"].as_str().unwrap().to_string())
            })
            .collect()
    }

    /// A crash in the rebuttals: the restarted service resumes the debate, keeping the
    /// openings as they were and speaking the rebuttals again, and its log goes on past a gap.
    pub async fn a_restart_resumes_the_debate_it_interrupted(db: &str) {
        let slow = FakeOptions {
            token_delay: Duration::from_millis(40),
            ..FakeOptions::default()
        };
        let rebutting = |heard: &[(i64, String, Value)]| {
            heard
                .iter()
                .any(|e| e.1 == "turn_start" && e.2["round"] == 2)
        };
        let (id, token, heard) =
            crash_mid_run(db, slow, ("/api/debates", debate_body()), rebutting).await;
        let openings = turns_ended(&heard, 1);
        assert_eq!(openings.len(), 2, "both openings ended before the crash");

        let fake = FakeLlm::start(FakeOptions::default()).await;
        let app = start(&fake, db, |_| {}).await;
        let path = format!("/api/debates/{id}/events");
        let events = app.events(&path, &token, None, usize::MAX).await;
        assert_eq!(events.last().unwrap().2["status"], "done", "{events:?}");
        let ids: Vec<i64> = events.iter().map(|e| e.0).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        let gap = ids.windows(2).position(|w| w[1] - w[0] > 1).expect("a gap");
        assert!(ids[gap + 1] > crossfire_server::live::CRASH_GAP, "{ids:?}");
        // The rebuttals that had started start over; the openings are not spoken again.
        let restarted: Vec<&Value> = events[gap + 1..]
            .iter()
            .filter(|e| e.1 == "turn_restart")
            .map(|e| &e.2)
            .collect();
        assert!(!restarted.is_empty(), "{events:?}");
        assert!(
            restarted
                .iter()
                .all(|r| r["round"] == 2 && r["reason"] == "the service restarted"),
            "{restarted:?}"
        );
        assert!(
            fake.requests(Target::Debater)
                .iter()
                .all(|call| call.body["messages"][1]["content"]
                    .as_str()
                    .is_some_and(|user| user.starts_with("Round 2"))),
            "only the rebuttals are asked for again"
        );
        assert_eq!(turns_ended(&events, 1), openings);
        let (status, transcript) = app.get(&format!("/api/debates/{id}"), Some(&token)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(transcript["status"], "done");
        assert!(transcript["verdict"]["winner"].is_string(), "{transcript}");
        let stored: Vec<(u64, String, String)> = transcript["rounds"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| {
                r["turns"].as_array().unwrap().iter().map(move |t| {
                    let round = r["round"].as_u64().unwrap();
                    let speaker = t["speaker"].as_str().unwrap().to_string();
                    (round, speaker, t["text"].as_str().unwrap().to_string())
                })
            })
            .collect();
        let streamed: Vec<(u64, String, String)> = [1, 2]
            .into_iter()
            .flat_map(|round| {
                turns_ended(&events, round)
                    .into_iter()
                    .map(move |(speaker, text)| (round, speaker, text))
            })
            .collect();
        assert_eq!(
            streamed, stored,
            "the stream tells what the transcript holds"
        );
        let metrics = app.metrics().await;
        assert!(
            metrics.contains("crossfire_runs_taken_over_total{outcome=\"resumed\"} 1"),
            "{metrics}"
        );

        // A client that heard events the crash kept from the log is told to start over.
        let before_gap = ids[gap];
        let body = app
            .http
            .get(format!("{}{path}", app.base))
            .bearer_auth(&token)
            .header("Last-Event-ID", (before_gap + 3).to_string())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(body.starts_with("event: reset\ndata: {}\n\n"), "{body}");
        assert!(
            body.contains("\nid: 1\n") && body.contains("event: done"),
            "{body}"
        );
        // One that heard only what was stored resumes as ever.
        let rest = app
            .events(&path, &token, Some(before_gap), usize::MAX)
            .await;
        assert_eq!(rest, events[gap + 1..].to_vec());
    }

    /// A crash in the middle of a perspective: the restarted service speaks it again, the
    /// turn started over with `turn_restart`, past the crash gap.
    pub async fn a_restart_speaks_again_the_perspective_it_cut_off(db: &str) {
        let slow = FakeOptions {
            token_delay: Duration::from_millis(40),
            ..FakeOptions::default()
        };
        let ask = json!({"story": "global-temperature-1-5c", "persona": "rachel-carson"});
        let speaking = |heard: &[(i64, String, Value)]| heard.iter().any(|e| e.1 == "token");
        let (id, token, _) = crash_mid_run(db, slow, ("/api/perspectives", ask), speaking).await;

        let fake = FakeLlm::start(FakeOptions::default()).await;
        let app = start(&fake, db, |_| {}).await;
        let path = format!("/api/perspectives/{id}/events");
        let events = app.events(&path, &token, None, usize::MAX).await;
        assert_eq!(events.last().unwrap().2["status"], "done", "{events:?}");
        let names: Vec<&str> = events.iter().map(|e| e.1.as_str()).collect();
        assert_eq!(names.iter().filter(|n| **n == "turn_start").count(), 1);
        let restart = events.iter().position(|e| e.1 == "turn_restart");
        let restart = restart.expect("the perspective starts over");
        assert_eq!(events[restart].2["reason"], "the service restarted");
        assert!(events[restart].0 > crossfire_server::live::CRASH_GAP);
        let (_, record) = app
            .get(&format!("/api/perspectives/{id}"), Some(&token))
            .await;
        assert_eq!(record["status"], "done", "{record}");
        let ended = events.iter().find(|e| e.1 == "turn_end").unwrap();
        assert_eq!(record["text"], ended.2["text"]);
        assert_eq!(fake.requests(Target::Debater).len(), 1, "spoken once more");
    }

    /// A crash, then a restart with one of the debate's personas edited: the debate cannot
    /// resume as it began, so it ends as interrupted, keeping the turn that had finished.
    pub async fn a_restart_interrupts_a_debate_it_cannot_resume(db: &str) {
        let slow = FakeOptions {
            token_delay: Duration::from_millis(40),
            faults: vec![(Target::Speaker("George F. Kennan"), Fault::Hang)],
            ..FakeOptions::default()
        };
        let one_ended = |heard: &[(i64, String, Value)]| heard.iter().any(|e| e.1 == "turn_end");
        let (id, token, heard) =
            crash_mid_run(db, slow, ("/api/debates", debate_body()), one_ended).await;
        let finished = turns_ended(&heard, 1);

        let personas = std::env::temp_dir().join(format!(
            "crossfire-edited-{}",
            crossfire_engine::transcript::new_id()
        ));
        std::fs::create_dir_all(&personas).unwrap();
        for entry in std::fs::read_dir(support::repo("personas")).unwrap() {
            let from = entry.unwrap().path();
            let mut text = std::fs::read_to_string(&from).unwrap();
            if from.file_name().unwrap() == "george-kennan.toml" {
                text = text.replacen("voice = \"", "voice = \"Edited. ", 1);
            }
            std::fs::write(personas.join(from.file_name().unwrap()), text).unwrap();
        }
        let fake = FakeLlm::start(FakeOptions::default()).await;
        let app = start(&fake, db, |s| s.paths.personas_dir = personas.clone()).await;
        let (_, transcript) = app.get(&format!("/api/debates/{id}"), Some(&token)).await;
        assert_eq!(transcript["status"], "failed", "{transcript}");
        assert_eq!(transcript["error"]["code"], "interrupted");
        assert!(
            transcript["error"]["message"]
                .as_str()
                .unwrap()
                .contains("a persona has changed"),
            "{transcript}"
        );
        let kept: Vec<(String, String)> = transcript["rounds"][0]["turns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                let speaker = t["speaker"].as_str().unwrap().to_string();
                (speaker, t["text"].as_str().unwrap().to_string())
            })
            .collect();
        assert_eq!(kept, finished, "the finished turn is kept");
        assert!(fake.log().is_empty(), "nothing is spoken again");
        let _ = std::fs::remove_dir_all(&personas);
    }

    /// The writer keeps each run's events of one commit in one row; read back, from the
    /// start or from inside a row, they come one by one, each once, in order.
    pub async fn a_run_log_reads_back_event_by_event_from_any_point(db: &str) {
        use crossfire_server::store::{Run, RunKind, Store, StoredEvent};
        let store = Store::connect(db).await.unwrap();
        let user = store.create_user("log@example.com", "-", 0).await.unwrap();
        for id in ["a", "b"] {
            let run = Run::queued(id, RunKind::Debate, user.id, None, "{}".into());
            let claim = crossfire_server::store::Claim {
                owner: "test",
                until: i64::MAX,
            };
            store.create_run(&run, None, claim).await.unwrap();
        }
        let event = |id: &str, seq: i64| StoredEvent {
            seq,
            name: if seq == 3 { "turn_end" } else { "token" }.into(),
            // An escaped line break and a space stay inside the event.
            data: format!(r#"{{"text":"{id} {seq}\n"}}"#),
        };
        // Two runs' events interleaved and queued together (one commit), then two more of
        // one run (later commits).
        for seq in 1..=4 {
            for id in ["a", "b"] {
                store.queue_event(id, event(id, seq));
            }
        }
        store.queue_event("a", event("a", 5)).wait().await.unwrap();
        store.queue_event("a", event("a", 6)).wait().await.unwrap();
        // Text from elsewhere, with a raw line break, is kept as it is too.
        let raw = StoredEvent {
            seq: 7,
            name: "note".into(),
            data: "two\nlines".into(),
        };
        store.queue_event("a", raw.clone());
        store.queue_event("a", event("a", 8)).wait().await.unwrap();

        let mut all: Vec<StoredEvent> = (1..=6).map(|seq| event("a", seq)).collect();
        all.extend([raw, event("a", 8)]);
        for after in 0..=8 {
            let read = store.events_after("a", after).await.unwrap();
            assert_eq!(read, all[after as usize..], "after {after}");
        }
        let b = store.events_after("b", 2).await.unwrap();
        assert_eq!(b, [event("b", 3), event("b", 4)]);
        assert_eq!(store.last_seq("a").await.unwrap(), 8);
        assert_eq!(store.last_seq("b").await.unwrap(), 4);
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

#[tokio::test]
async fn every_page_renders_with_its_text_escaped() {
    let fake = FakeLlm::start(FakeOptions::default()).await;
    let dir = std::env::temp_dir().join(format!(
        "crossfire-pages-{}",
        crossfire_engine::transcript::new_id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let hostile = json!({"id": "hostile", "title": "<script>alert('t')</script> & co",
                         "overview": "First \"para\" <b>.\n\nSecond <img src=x onerror=alert(1)>."});
    std::fs::write(dir.join("hostile.json"), hostile.to_string()).unwrap();
    let stories = dir.clone();
    let app = start(&fake, &temp_db(), move |c| c.paths.stories_dir = stories).await;
    for path in [
        "/",
        "/stories/hostile",
        "/debates",
        "/debates/abc",
        "/login",
        "/editor",
    ] {
        let response = app
            .http
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(
            response.headers()["content-type"],
            "text/html; charset=utf-8",
            "{path}"
        );
        assert!(
            response.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("default-src 'self'")
        );
        let html = response.text().await.unwrap();
        // Each page loads its own module and the stylesheet, by content-hashed names that
        // are served and cached for good.
        for (start, kind) in [
            ("<script type=\"module\" src=\"", "text/javascript"),
            ("<link rel=\"stylesheet\" href=\"", "text/css"),
        ] {
            let url = html
                .split_once(start)
                .and_then(|(_, rest)| rest.split_once('"'))
                .map(|(url, _)| url)
                .unwrap_or_else(|| panic!("{path} links no {kind}"));
            assert!(url.starts_with("/static/"), "{path}: {url}");
            let asset = app
                .http
                .get(format!("{}{url}", app.base))
                .send()
                .await
                .unwrap();
            assert_eq!(asset.status(), StatusCode::OK, "{url}");
            assert!(
                asset.headers()["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with(kind)
            );
            assert!(
                asset.headers()["cache-control"]
                    .to_str()
                    .unwrap()
                    .contains("immutable")
            );
        }
        assert!(!html.contains("<script>alert"), "{path} let markup through");
    }
    let story = app
        .http
        .get(format!("{}/stories/hostile", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        story.contains("&lt;script&gt;alert(&#x27;t&#x27;)&lt;&#x2f;script&gt; &amp; co"),
        "{story}"
    );
    assert!(story.contains("<p>Second &lt;img src=x onerror=alert(1)&gt;.</p>"));
    assert!(story.contains("data-persona=\"winston-churchill\""));
    for (file, kind) in [
        ("js/debate.js", "text/javascript"),
        ("style.css", "text/css"),
    ] {
        let response = app
            .http
            .get(format!("{}/static/{file}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(kind)
        );
    }
    assert_eq!(
        app.get("/stories/nowhere", None).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_openapi_document_describes_every_api_route() {
    let fake = FakeLlm::start(FakeOptions::default()).await;
    let app = start(&fake, &temp_db(), |_| {}).await;
    let (status, doc) = app.get("/api/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/api/auth/signup", "post"),
        ("/api/auth/login", "post"),
        ("/api/auth/logout", "post"),
        ("/api/stories", "get"),
        ("/api/stories/{id}", "get"),
        ("/api/personas/{id}", "get"),
        ("/api/debates", "post"),
        ("/api/debates", "get"),
        ("/api/debates/{id}", "get"),
        ("/api/debates/{id}/events", "get"),
        ("/api/perspectives", "post"),
        ("/api/perspectives/{id}/events", "get"),
        ("/api/editor/preview", "post"),
        ("/api/debates/{id}/votes", "post"),
        ("/api/debates/{id}/share", "post"),
        ("/api/debates/{id}/share", "delete"),
        ("/api/debates/{id}/export", "get"),
        ("/api/shared/{token}", "get"),
        ("/api/shared/{token}/export", "get"),
        ("/healthz", "get"),
    ] {
        assert!(
            paths[path][method].is_object(),
            "{method} {path} is not described"
        );
    }
    let create = &paths["/api/debates"]["post"];
    assert!(create["responses"]["429"].is_object());
    let body_ref = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        .as_str()
        .unwrap();
    assert_eq!(body_ref, "#/components/schemas/NewDebate");
    let required = &doc["components"]["schemas"]["NewDebate"]["required"];
    assert_eq!(required, &json!(["story", "a", "b"]));
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());

    // Every JSON response names its shape: a schema of the components, or a list of them.
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            for (status, response) in operation["responses"].as_object().unwrap() {
                let Some(schema) = response["content"]["application/json"]["schema"].as_object()
                else {
                    continue;
                };
                let reference = schema
                    .get("$ref")
                    .and_then(|r| r.as_str())
                    .unwrap_or_else(|| panic!("{method} {path} {status}: no named schema"));
                let name = reference.trim_start_matches("#/components/schemas/");
                assert!(
                    schemas.contains_key(name),
                    "{method} {path} {status}: {name}"
                );
            }
        }
    }
    let transcript = &schemas["Transcript"]["properties"];
    for field in [
        "id",
        "status",
        "story",
        "motion",
        "personas",
        "rounds",
        "verdict",
        "provenance",
    ] {
        assert!(
            transcript[field].is_object(),
            "Transcript.{field} is described"
        );
    }
    assert_eq!(
        paths["/api/debates/{id}"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
            ["$ref"],
        "#/components/schemas/DebateBody"
    );
    let body = &schemas["DebateBody"];
    let described = body.to_string();
    // The transcript's fields are flattened in: the body refers to its schema.
    for field in ["votes", "share", "#/components/schemas/Transcript"] {
        assert!(
            described.contains(field),
            "DebateBody has {field}: {described}"
        );
    }

    // Every documented route answers (not 404/405) when called as documented.
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            let url = format!(
                "{}{}",
                app.base,
                path.replace("{id}", "x")
                    .replace("{token}", "x")
                    .replace("{kind}", "persona")
                    .replace("{name}", "x")
            );
            let request = match method.as_str() {
                "get" => app.http.get(url),
                "delete" => app.http.delete(url),
                "put" => app.http.put(url).json(&json!({})),
                _ => app.http.post(url).json(&json!({})),
            };
            let status = request.send().await.unwrap().status();
            // Routes with an id may well answer 404 for "x"; none may be missing.
            let missing = status == StatusCode::NOT_FOUND && !path.contains('{');
            assert!(
                status != StatusCode::METHOD_NOT_ALLOWED && !missing,
                "{method} {path}: {status}"
            );
        }
    }
}

/// Sign-in checks read on a connection of their own, except from a database in memory, which
/// exists only for its one connection.
#[tokio::test]
async fn sign_in_checks_see_sessions_at_once_on_a_file_and_in_memory() {
    for url in [temp_db(), "sqlite::memory:".to_string()] {
        let store = crossfire_server::store::Store::connect(&url).await.unwrap();
        let user = store.create_user("in@example.com", "-", 0).await.unwrap();
        store
            .create_session("hash", user.id, i64::MAX)
            .await
            .unwrap();
        assert_eq!(
            store.session_user("hash", 0).await.unwrap(),
            Some(user),
            "{url}"
        );
        store.delete_session("hash").await.unwrap();
        assert_eq!(store.session_user("hash", 0).await.unwrap(), None, "{url}");
    }
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

/// Every route of the OpenAPI document: those that write or read a user's data answer 401
/// without a session, editors' routes 403 for a reader, and a reader's debate is 404 to
/// anyone else. Routes open to all are exactly the public ones listed here, so a new route
/// without auth fails this test.
#[tokio::test]
async fn every_route_checks_its_session_role_and_owner() {
    let fake = FakeLlm::start(FakeOptions::default()).await;
    let db = temp_db();
    let app = start(&fake, &db, |_| {}).await;
    let (_, doc) = app.get("/api/openapi.json", None).await;
    let public = [
        ("post", "/api/auth/signup"),
        ("post", "/api/auth/login"),
        ("get", "/api/stories"),
        ("get", "/api/stories/{id}"),
        ("get", "/api/personas"),
        ("get", "/api/personas/{id}"),
        ("get", "/api/shared/{token}"),
        ("get", "/api/shared/{token}/export"),
        ("get", "/healthz"),
    ];
    let reader = app.user().await;
    let send = |method: &str, path: &str, token: Option<&str>| {
        let url = format!(
            "{}{}",
            app.base,
            path.replace("{id}", "x")
                .replace("{kind}", "persona")
                .replace("{name}", "x")
        );
        let mut request = match method {
            "get" => app.http.get(url),
            "delete" => app.http.delete(url),
            "put" => app.http.put(url).json(&json!({})),
            _ => app.http.post(url).json(&json!({})),
        };
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let secured = operation["security"]
                .as_array()
                .is_some_and(|s| !s.is_empty());
            let listed = public.contains(&(method.as_str(), path.as_str()));
            assert_eq!(
                !secured, listed,
                "{method} {path}: only the public routes may go without a session"
            );
            if !secured {
                continue;
            }
            let anonymous = send(method, path, None).await.unwrap();
            assert_eq!(
                anonymous.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path}"
            );
            let body: Value = anonymous.json().await.unwrap();
            assert_eq!(body["error"]["code"], "unauthorized", "{method} {path}");
            let forged = send(method, path, Some("not-a-session")).await.unwrap();
            assert_eq!(forged.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
            if operation["tags"][0] == "editor" {
                let as_reader = send(method, path, Some(&reader)).await.unwrap();
                assert_eq!(as_reader.status(), StatusCode::FORBIDDEN, "{method} {path}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 10, "{checked} secured routes");

    // Another reader's debate does not exist for you, nor do its events.
    let (status, created) = app.post("/api/debates", Some(&reader), debate_body()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created}");
    let id = created["id"].as_str().unwrap();
    let stranger = app.user().await;
    for path in [
        format!("/api/debates/{id}"),
        format!("/api/debates/{id}/events"),
    ] {
        let (status, body) = app.get(&path, Some(&stranger)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_eq!(
            app.get(&path, Some(&reader)).await.0,
            StatusCode::OK,
            "{path}"
        );
    }
    let (_, theirs) = app.get("/api/debates", Some(&stranger)).await;
    assert_eq!(theirs["debates"], json!([]), "a stranger lists none of it");
}

/// A login gives a new session each time; logging out ends that session on the server, and
/// an expired session is refused.
#[tokio::test]
async fn sessions_rotate_on_login_and_end_on_logout_and_expiry() {
    let fake = FakeLlm::start(FakeOptions::default()).await;
    let db = temp_db();
    let app = start(&fake, &db, |_| {}).await;
    let credentials = json!({"email": "rotate@example.com", "password": "correct horse"});
    let (status, signed_up) = app
        .post("/api/auth/signup", None, credentials.clone())
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, first) = app.post("/api/auth/login", None, credentials.clone()).await;
    let (_, second) = app.post("/api/auth/login", None, credentials.clone()).await;
    let tokens = [&signed_up["token"], &first["token"], &second["token"]];
    assert!(
        tokens[0] != tokens[1] && tokens[1] != tokens[2],
        "a new token per login"
    );
    let token = |i: usize| tokens[i].as_str().unwrap().to_string();
    for i in 0..3 {
        assert_eq!(
            app.get("/api/auth/me", Some(&token(i))).await.0,
            StatusCode::OK
        );
    }
    let out = app
        .http
        .post(format!("{}/api/auth/logout", app.base))
        .bearer_auth(token(1))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/api/auth/me", Some(&token(1))).await.0,
        StatusCode::UNAUTHORIZED,
        "ended on the server"
    );
    assert_eq!(
        app.get("/api/auth/me", Some(&token(2))).await.0,
        StatusCode::OK,
        "other sessions go on"
    );

    // A session past its expiry is refused.
    let store = crossfire_server::store::Store::connect(&db).await.unwrap();
    let user_id = signed_up["user"]["id"].as_i64().unwrap();
    let expired = "an-expired-session-token";
    store
        .create_session(
            &crossfire_engine::sha256_hex(expired.as_bytes()),
            user_id,
            1,
        )
        .await
        .unwrap();
    assert_eq!(
        app.get("/api/auth/me", Some(expired)).await.0,
        StatusCode::UNAUTHORIZED
    );
}

/// A copy of the shipped stories, personas and templates that a test may edit.
fn library_copy() -> Library {
    let dir = std::env::temp_dir().join(format!(
        "crossfire-library-{}",
        crossfire_engine::transcript::new_id()
    ));
    for folder in ["personas", "prompts", "stories"] {
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
        story_max_bytes: crossfire_engine::story::DEFAULT_MAX_BYTES,
    }
}

/// A signed-in editor's token.
async fn editor(app: &App, db: &str) -> String {
    let token = app.user().await;
    let store = crossfire_server::store::Store::connect(db).await.unwrap();
    let user = store
        .session_user(&crossfire_engine::sha256_hex(token.as_bytes()), 0)
        .await
        .unwrap()
        .unwrap();
    store
        .set_role(&user.email, crossfire_server::store::Role::Editor)
        .await
        .unwrap();
    token
}

/// Polls the live set until `done` says so (or ten seconds pass).
async fn lint_until(app: &App, token: &str, done: impl Fn(&Value) -> bool) -> Value {
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
