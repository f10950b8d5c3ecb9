//! Accounts and access: sign-up, login and logout, sessions that rotate and expire, JSON errors
//! with the right status, and every route's session, role and owner check.

use super::*;

on_every_database!(
    accounts_sign_up_log_in_and_out_and_fail_clearly,
    bad_requests_get_json_errors_with_the_right_status,
    every_route_checks_its_session_role_and_owner,
);

mod cases {
    use super::*;

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

    /// Every route of the OpenAPI document: those that write or read a user's data answer 401
    /// without a session, editors' routes 403 for a reader, and a reader's debate is 404 to
    /// anyone else. Routes open to all are exactly the public ones listed here, so a new route
    /// without auth fails this test.
    pub async fn every_route_checks_its_session_role_and_owner(db: &str) {
        let fake = FakeLlm::start(FakeOptions::default()).await;
        let app = start(&fake, db, |_| {}).await;
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
            ("post", "/api/shared/{token}/reports"),
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

/// Sign-ups are limited per address and hour, so one script cannot open accounts until the
/// model bill stops it. Behind a reverse proxy the address comes from its configured header,
/// and from no header when none is configured.
#[tokio::test]
async fn sign_ups_are_limited_per_address_and_a_proxy_header_counts_only_when_trusted() {
    let fake = FakeLlm::start(FakeOptions::default()).await;
    let sign_up = |app: &App, forwarded: Option<&'static str>| {
        let mut request = app
            .http
            .post(format!("{}/api/auth/signup", app.base))
            .json(&json!({
                "email": format!("new-{}@example.com", crossfire_engine::transcript::new_id()),
                "password": "correct horse"
            }));
        if let Some(address) = forwarded {
            request = request.header("x-forwarded-for", address);
        }
        async move { request.send().await.unwrap() }
    };
    let app = start(&fake, &temp_db(), |c| c.server.signups_per_hour = 2).await;
    for _ in 0..2 {
        assert_eq!(sign_up(&app, None).await.status(), StatusCode::CREATED);
    }
    let refused = sign_up(&app, None).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_requests");
    // A header nobody configured is not believed.
    let spoofed = sign_up(&app, Some("203.0.113.9")).await;
    assert_eq!(spoofed.status(), StatusCode::TOO_MANY_REQUESTS);

    let behind_proxy = start(&fake, &temp_db(), |c| {
        c.server.signups_per_hour = 1;
        c.server.client_ip_header = Some("x-forwarded-for".into());
    })
    .await;
    let first = "203.0.113.1, 10.0.0.1";
    assert_eq!(
        sign_up(&behind_proxy, Some(first)).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(
        sign_up(&behind_proxy, Some(first)).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        sign_up(&behind_proxy, Some("203.0.113.2")).await.status(),
        StatusCode::CREATED,
        "another client behind the same proxy"
    );
}
