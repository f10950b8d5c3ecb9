//! Talking to a running service over HTTP as a client would.

use std::time::Duration;

use crossfire_engine::llm::sse::SseDecoder;
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// A client of one running service; dropping it stops a service started in-process.
pub struct App {
    pub base: String,
    pub http: reqwest::Client,
    pub stop: Option<oneshot::Sender<()>>,
}

impl App {
    /// A client of the service at `base` (for example another process).
    pub fn at(base: &str) -> App {
        App {
            base: base.to_string(),
            http: reqwest::Client::new(),
            stop: None,
        }
    }
}

impl App {
    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        let mut request = self.http.post(format!("{}{path}", self.base)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let response = self.get_response(path, token).await;
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A `GET` whose body is text (a page, an export): its status and body.
    pub async fn text(&self, path: &str, token: Option<&str>) -> (StatusCode, String) {
        let response = self.get_response(path, token).await;
        let status = response.status();
        (status, response.text().await.unwrap_or_default())
    }

    async fn get_response(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    /// `GET /metrics`: the Prometheus text.
    pub async fn metrics(&self) -> String {
        let url = format!("{}/metrics", self.base);
        self.http
            .get(url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Signs up a fresh user and returns their token.
    pub async fn user(&self) -> String {
        let email = format!(
            "reader-{}@example.com",
            crossfire_engine::transcript::new_id()
        );
        let (status, body) = self
            .post(
                "/api/auth/signup",
                None,
                json!({"email": email, "password": "correct horse"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["token"].as_str().unwrap().to_string()
    }

    /// Starts a debate, follows it to its end, and answers its transcript.
    pub async fn debate_to_the_end(&self, token: &str, body: Value) -> Value {
        let (status, created) = self.post("/api/debates", Some(token), body).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{created}");
        let id = created["id"].as_str().unwrap();
        self.events(
            &format!("/api/debates/{id}/events"),
            token,
            None,
            usize::MAX,
        )
        .await;
        self.get(&format!("/api/debates/{id}"), Some(token)).await.1
    }

    /// Reads SSE events (id, name, data) until `done`, the end, or `limit` events.
    pub async fn events(
        &self,
        path: &str,
        token: &str,
        last_id: Option<i64>,
        limit: usize,
    ) -> Vec<(i64, String, Value)> {
        let mut request = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(id) = last_id {
            request = request.header("Last-Event-ID", id.to_string());
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let mut body = response.bytes_stream();
        let mut decoder = SseDecoder::new();
        let mut out = Vec::new();
        while let Some(chunk) = tokio::time::timeout(Duration::from_secs(20), body.next())
            .await
            .unwrap()
        {
            for event in decoder.push(&chunk.unwrap()) {
                let id = event.id.as_deref().unwrap().parse().unwrap();
                let data: Value = serde_json::from_str(&event.data).unwrap();
                let done = event.event == "done";
                out.push((id, event.event, data));
                if done || out.len() == limit {
                    return out;
                }
            }
        }
        out
    }
}

/// The debate most tests start.
pub fn debate_body() -> Value {
    json!({"story": "nk-troops-russia", "a": "winston-churchill", "b": "george-kennan",
           "motion": "Is Pyongyang winning more than it is losing?"})
}
