//! The Crossfire service: the HTTP API and pages of `crossfire serve` on axum, live event
//! streams, metrics, and the store they keep runs in (SQLite or PostgreSQL). It runs the
//! engine's debates; it is handed a ready [`Engine`] and never builds a model itself
//! (docs/architecture.md, docs/http-api.md).

pub mod auth;
pub mod bodies;
pub mod catalog;
pub mod config;
pub mod drafts;
pub mod editor;
pub mod error;
pub mod live;
pub mod live_set;
pub mod metrics;
pub mod pages;
pub mod recovery;
pub mod runs;
pub mod sharing;
pub mod store;
pub mod votes;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, Method, header};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::ServerConfig;
use crate::store::Store;
use catalog::Catalog;
use crossfire_engine::config::Library;
use crossfire_engine::debate::Engine;
use error::ApiError;

/// Largest request body accepted.
const BODY_LIMIT: usize = 64 * 1024;

/// Everything a request handler may need.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<ServerConfig>,
    pub store: Store,
    /// The editors' files as served now, and the engine that renders their templates.
    pub live: Arc<live_set::Live>,
    pub hub: Arc<live::Hub>,
    pub login_limiter: Arc<auth::LoginLimiter>,
    pub metrics: Arc<metrics::Metrics>,
    /// This instance's name in the runs it claims (see [`recovery`]).
    pub instance: Arc<str>,
    running: Arc<Running>,
}

/// Counts runs in flight, so a shutdown can wait for them.
#[derive(Default)]
struct Running {
    count: AtomicUsize,
    idle: Notify,
}

impl AppState {
    pub fn new(
        config: ServerConfig,
        library: Library,
        store: Store,
        engine: Engine,
        catalog: Catalog,
    ) -> AppState {
        let metrics = Arc::new(metrics::Metrics::default());
        // Every model call is counted and timed.
        let engine = engine.with_models(
            metrics::Metered::wrap(engine.debater.clone(), "debater", metrics.clone()),
            metrics::Metered::wrap(engine.judge.clone(), "judge", metrics.clone()),
        );
        let instance = config
            .instance
            .clone()
            .unwrap_or_else(|| format!("instance-{:016x}", rand::random::<u64>()));
        AppState {
            instance: instance.into(),
            config: Arc::new(config),
            live: Arc::new(live_set::Live::start(library, catalog, engine)),
            hub: live::Hub::start(store.clone()),
            store,
            metrics,
            login_limiter: Arc::new(auth::LoginLimiter::new(10, Duration::from_secs(15 * 60))),
            running: Arc::default(),
        }
    }

    /// Where the editors' files live.
    pub fn library(&self) -> &Library {
        self.live.paths()
    }

    /// The set of stories, personas and templates live now: hold it for a whole request.
    pub fn set(&self) -> Arc<live_set::LiveSet> {
        self.live.current()
    }

    /// Runs work in its own task: it goes on whether or not any client listens.
    fn spawn_run(&self, work: impl Future<Output = ()> + Send + 'static) {
        let running = self.running.clone();
        running.count.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            work.await;
            if running.count.fetch_sub(1, Ordering::SeqCst) == 1 {
                running.idle.notify_waiters();
            }
        });
    }

    /// Waits until no run is in flight, or `grace` has passed; returns how many are left.
    pub async fn drain(&self, grace: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let idle = self.running.idle.notified();
            let left = self.running.count.load(Ordering::SeqCst);
            if left == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return self.running.count.load(Ordering::SeqCst);
            }
        }
    }
}

/// The API's description; the paths are collected from the handlers as they are routed.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "Crossfire", description = "Debates and perspectives of historical figures on today's news (docs/http-api.md)."),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        let scheme = HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build();
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// The routes of the service.
pub fn router(state: AppState) -> Router {
    let (api, openapi) = OpenApiRouter::with_openapi(<ApiDoc as utoipa::OpenApi>::openapi())
        .routes(routes!(healthz))
        .routes(routes!(auth::signup))
        .routes(routes!(auth::login))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::me))
        .routes(routes!(catalog::stories))
        .routes(routes!(catalog::story))
        .routes(routes!(catalog::personas))
        .routes(routes!(catalog::persona))
        .routes(routes!(runs::create_debate, runs::list_debates))
        .routes(routes!(runs::get_debate))
        .routes(routes!(runs::debate_events))
        .routes(routes!(runs::create_perspective))
        .routes(routes!(runs::get_perspective))
        .routes(routes!(runs::perspective_events))
        .routes(routes!(votes::cast))
        .routes(routes!(sharing::share, sharing::unshare))
        .routes(routes!(sharing::export))
        .routes(routes!(sharing::shared))
        .routes(routes!(sharing::export_shared))
        .routes(routes!(editor::lint))
        .routes(routes!(editor::live_lint))
        .routes(routes!(editor::fairness_figures))
        .routes(routes!(drafts::source, drafts::save))
        .routes(routes!(drafts::check_draft))
        .routes(routes!(drafts::trial))
        .routes(routes!(drafts::import_card))
        .routes(routes!(drafts::run_probes, drafts::latest_probes))
        .routes(routes!(editor::preview))
        .split_for_parts();
    let openapi = Arc::new(openapi);
    api.route("/api/openapi.json", get(move || async move { axum::Json(openapi.as_ref().clone()) }))
        .route("/metrics", get(|State(state): State<AppState>| async move {
                let mut text = state
                    .metrics
                    .render(&metrics::EngineGauges::of(&state.set().engine));
                match editor::fairness(&state).await {
                    Ok(fairness) => metrics::render_fairness(&mut text, &fairness),
                    Err(e) => tracing::warn!("fairness figures: {e}"),
                }
                text
            }))
        .route("/", get(pages::index))
        .route("/stories/{id}", get(pages::story))
        .route("/debates", get(pages::debates))
        .route("/debates/{id}", get(pages::debate))
        .route("/shared/{token}", get(pages::shared))
        .route("/login", get(pages::login))
        .route("/signup", get(pages::signup))
        .route("/editor", get(pages::editor))
        .route("/static/{file}", get(pages::asset))
        .fallback(|| async { ApiError::NotFound("no such route".to_string()) })
        .method_not_allowed_fallback(|| async {
            ApiError::MethodNotAllowed
        })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track))
        .layer(cors(&state.config.cors_origins))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<_>| {
            let id = request
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            tracing::info_span!("request", id, method = %request.method(), path = %request.uri().path())
        }))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// Cross-origin access for the app's own origins only (none by default).
fn cors(origins: &[String]) -> CorsLayer {
    let origins: Vec<HeaderValue> = origins.iter().filter_map(|o| o.parse().ok()).collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            "last-event-id".parse().unwrap_or(header::ACCEPT),
        ])
        .allow_credentials(true)
}

#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The service and its database answer", body = bodies::Health),
              (status = 503, description = "The database does not answer", body = error::ErrorBody)))]
async fn healthz(State(state): State<AppState>) -> Result<axum::Json<bodies::Health>, ApiError> {
    state
        .store
        .ping()
        .await
        .map_err(|e| ApiError::Unavailable(format!("health check: {e}")))?;
    Ok(axum::Json(bodies::Health { status: "ok" }))
}

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
    recovery::take_over(&state, true).await?;
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
    let claims = tokio::spawn(recovery::keep_claims(state.clone()));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    let left = state.drain(grace).await;
    if left > 0 {
        tracing::warn!("{left} run(s) still going after the grace period");
        runs::interrupt_unfinished(&state).await?;
    }
    claims.abort();
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
