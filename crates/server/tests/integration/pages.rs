//! The pages and the OpenAPI document: every page rendered with its text escaped and its assets
//! served, every API route described.

use super::*;

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
        ("/api/debates/{id}/verdict", "post"),
        ("/api/perspectives", "post"),
        ("/api/perspectives/{id}/events", "get"),
        ("/api/editor/preview", "post"),
        ("/api/debates/{id}/votes", "post"),
        ("/api/debates/{id}/share", "post"),
        ("/api/debates/{id}/share", "delete"),
        ("/api/debates/{id}/export", "get"),
        ("/api/shared/{token}", "get"),
        ("/api/shared/{token}/export", "get"),
        ("/api/debates/{id}/reports", "post"),
        ("/api/perspectives/{id}/reports", "post"),
        ("/api/shared/{token}/reports", "post"),
        ("/api/editor/reports", "get"),
        ("/api/editor/reports/{id}/resolve", "post"),
        ("/api/editor/audit", "get"),
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
