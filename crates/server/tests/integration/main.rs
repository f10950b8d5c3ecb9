//! The HTTP service's integration tests, one binary: the service started for real on a
//! random port against the fake model server and a SQLite file (and PostgreSQL when
//! `CROSSFIRE_TEST_DATABASE_URL` names one), and talked to over HTTP. A module per part.

use crossfire_testkit as support;

use std::collections::HashMap;
use std::time::Duration;

use crossfire_engine::config::Library;
use crossfire_engine::screen::endpoint::{ModerationConfig, moderation};
use crossfire_server::config::ServerConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::database::{databases, temp_db};
use support::http::{App, debate_body};
use support::{FakeLlm, FakeOptions, Fault, Target};
use tokio::sync::oneshot;

/// What a test may change before the service starts.
struct Setup {
    server: ServerConfig,
    paths: Library,
    allow_living: bool,
    /// A moderation endpoint asked besides the policy.
    moderation: Option<ModerationConfig>,
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
            policy_dir: support::repo("policy"),
            story_max_bytes: crossfire_engine::story::DEFAULT_MAX_BYTES,
        },
        allow_living: false,
        moderation: None,
    };
    tweak(&mut setup);
    let mut engine = support::engine_for(&support::config_for(&fake.base_url));
    engine.settings.allow_living_personas = setup.allow_living;
    if let Some(endpoint) = &setup.moderation {
        let screener = engine
            .screener
            .with_endpoint(moderation(endpoint), endpoint.on_error);
        engine = engine.with_screener(screener);
    }
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

mod accounts;
mod debates;
mod editor;
mod pages;
mod recovery;
mod reports;
mod screening;
mod sharing;
