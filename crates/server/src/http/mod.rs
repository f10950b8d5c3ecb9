//! The HTTP edge: one module per resource, each with its routes and the bodies it answers
//! with, merged here into one router with the OpenAPI document, the pages, `/metrics` and the
//! layers every request passes (body limit, metrics, CORS, request ids, tracing).

pub mod assets;
pub mod auth;
pub mod catalog;
pub mod debates;
pub mod editor;
pub mod pages;
pub mod perspectives;
pub mod reports;
pub mod sharing;
pub mod votes;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use serde::Serialize;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ErrorBody};
use crate::metrics::{EngineGauges, render_fairness};
use crate::state::AppState;

/// Largest request body accepted.
const BODY_LIMIT: usize = 64 * 1024;

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
        .merge(auth::routes())
        .merge(catalog::routes())
        .merge(debates::routes())
        .merge(perspectives::routes())
        .merge(votes::routes())
        .merge(sharing::routes())
        .merge(reports::routes())
        .merge(editor::routes())
        .split_for_parts();
    let openapi = Arc::new(openapi);
    api.route("/api/openapi.json", get(move || async move { axum::Json(openapi.as_ref().clone()) }))
        .route("/metrics", get(metrics))
        .route("/", get(pages::index))
        .route("/stories/{id}", get(pages::story))
        .route("/debates", get(pages::debates))
        .route("/debates/{id}", get(pages::debate))
        .route("/shared/{token}", get(pages::shared))
        .route("/login", get(pages::login))
        .route("/signup", get(pages::signup))
        .route("/editor", get(pages::editor))
        .route("/editor/reports", get(pages::reports))
        .route("/editor/audit", get(pages::audit))
        .route("/static/{file}", get(assets::serve))
        .route("/static/js/{file}", get(assets::serve_script))
        .fallback(|| async { ApiError::NotFound("no such route".to_string()) })
        .method_not_allowed_fallback(|| async {
            ApiError::MethodNotAllowed
        })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(state.clone(), track))
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

/// `GET /metrics`: Prometheus text.
async fn metrics(State(state): State<AppState>) -> String {
    let mut text = state.metrics.render(&EngineGauges::of(&state.set().engine));
    match editor::fairness::fairness(&state).await {
        Ok(fairness) => render_fairness(&mut text, &fairness),
        Err(e) => tracing::warn!("fairness figures: {e}"),
    }
    state
        .budget
        .render(&mut text, &state.store, &state.metrics)
        .await;
    text
}

/// Counts every request by its route pattern, with its latency.
async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let started = Instant::now();
    let response = next.run(request).await;
    state
        .metrics
        .request_served(route, response.status().as_u16(), started.elapsed());
    response
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
    responses((status = 200, description = "The service and its database answer", body = Health),
              (status = 503, description = "The database does not answer", body = ErrorBody)))]
async fn healthz(State(state): State<AppState>) -> Result<axum::Json<Health>, ApiError> {
    state
        .store
        .ping()
        .await
        .map_err(|e| ApiError::Unavailable(format!("health check: {e}")))?;
    Ok(axum::Json(Health { status: "ok" }))
}

/// `{"status": "ok"}` from `/healthz`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    pub status: &'static str,
}
