//! The Crossfire service: the HTTP API and pages of `crossfire serve` on axum, live event
//! streams, metrics, and the store they keep runs in (SQLite or PostgreSQL). It runs the
//! engine's debates; it is handed a ready [`Engine`] and never builds a model itself.
//!
//! The layers, bottom up (docs/architecture.md): [`config`], [`error`], [`store`] and
//! [`metrics`]; [`limits`] and [`budget`]; [`state`]; [`library`] (the editors' files live now) and [`live`] (running
//! runs and their followers); [`runs`] (access, records, launching, streaming, recovery);
//! [`http`] (one module per resource, each with its routes and bodies). Nothing imports a
//! layer above its own.

pub mod budget;
pub mod config;
pub mod error;
pub mod http;
pub mod library;
pub mod limits;
pub mod live;
pub mod metrics;
pub mod runs;
pub mod state;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::config::ServerConfig;
use crate::library::Catalog;
use crate::store::Store;
use crossfire_engine::config::Library;
use crossfire_engine::debate::Engine;
use crossfire_engine::screen::Policy;

pub use http::router;
pub use state::AppState;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Catalog(String),
    #[error("the screening policy has problems:\n{0}")]
    Policy(String),
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
}

/// Prepares the state: connects and migrates the store, loads the catalog, and takes over
/// the runs a previous process left unfinished (resumed, or marked interrupted).
pub async fn prepare(
    config: ServerConfig,
    library: Library,
    engine: Engine,
) -> Result<AppState, ServeError> {
    // A policy with a problem would leave something unscreened: the service does not start.
    let policy = Policy::load_dir(&library.policy_dir).map_err(|problems| {
        let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
        ServeError::Policy(lines.join("\n"))
    })?;
    let screener = engine.screener.with_policy(Arc::new(policy));
    let engine = engine.with_screener(screener);
    let store = Store::connect(&config.database_url).await?;
    let catalog = Catalog::load(&library).map_err(ServeError::Catalog)?;
    for problem in &catalog.problems {
        tracing::warn!("left out: {}", problem.text);
    }
    let database_url = config.database_url.clone();
    let state = AppState::new(config, library, store, engine, catalog);
    if state.store.dialect() == crate::store::Dialect::Postgres {
        tokio::spawn(live::listen(database_url, state.hub.clone()));
    }
    runs::recovery::take_over(&state, true).await?;
    Ok(state)
}

/// Serves until `shutdown` resolves, then stops accepting, lets running debates finish
/// within `grace`, and marks what is left as interrupted.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> Result<(), ServeError> {
    // Edits to the editors' files go live while it serves (for as long as this lives).
    let _watcher = match state.config.watch_files {
        true => Some(state.live.watch().map_err(ServeError::Catalog)?),
        false => None,
    };
    let app = router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    // Streams write a small batch every 25 ms or so. With Nagle's algorithm on, a batch
    // waits until the client acknowledges the one before, which a delayed ACK holds back
    // for 40 ms (up to 200 ms on some systems).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let claims = tokio::spawn(runs::recovery::keep_claims(state.clone()));
    let spending = {
        let state = state.clone();
        tokio::spawn(async move {
            state
                .budget
                .keep_flushing(state.store.clone(), &state.metrics)
                .await
        })
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    let left = state.drain(grace).await;
    if left > 0 {
        tracing::warn!("{left} run(s) still going after the grace period");
        runs::interrupt_unfinished(&state).await?;
    }
    claims.abort();
    spending.abort();
    if let Err(e) = state.budget.flush(&state.store, &state.metrics).await {
        tracing::warn!("cannot add today's token spending: {e}");
    }
    state.store.close().await;
    Ok(())
}

/// Binds the configured address.
pub async fn bind(addr: &str) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind {
            addr: addr.to_string(),
            source,
        })
}
