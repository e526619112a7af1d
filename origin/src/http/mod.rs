//! The HTTP API: the routes of the endpoint table (handlers in one module per group), its OpenAPI description,
//! health, metrics and the dashboard, under one middleware stack (request id → trace span → CORS →
//! authentication of `/api/*` but the description → body limit; then each API route's role).

mod audit;
pub mod auth;
mod dashboard;
pub mod error;
mod events;
pub mod extract;
mod groups;
mod health;
mod hl7;
pub mod key_cache;
mod keys;
mod locks;
pub mod metrics;
mod ml;
mod openapi;
mod resources;
mod sessions;
mod types;
mod wait;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use hhs_core::wire::endpoints::{Api, ROUTES};
use hhs_core::wire::MAX_BODY_BYTES;
use hhs_core::{ErrorCode, Policy};
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderName, HeaderValue, Method};
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::store::DynStore;
use error::AppError;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub store: DynStore,
    pub policy: Arc<Policy>,
    pub auth: Arc<auth::Authenticator>,
    pub metrics: Arc<metrics::Metrics>,
    pub model: Arc<crate::ttl_model::ModelCache>,
    pub hub: Arc<crate::stream::EventHub>,
    /// Cancelled at shutdown: long-lived responses (the event stream) end so graceful shutdown can finish.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// How often an open event stream checks that its key is still valid (a revoked key's stream ends).
    pub stream_key_check: std::time::Duration,
    /// Which resources HL7 messages' beds are.
    pub hl7: Arc<crate::hl7::Hl7Config>,
}

pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub fn router(state: AppState, cors_origins: &[String], dashboard_dir: Option<&std::path::Path>) -> Router {
    let routes = Router::new()
        .merge(health::router())
        .merge(dashboard::router(dashboard_dir))
        .merge(api())
        .merge(metrics::router())
        .merge(openapi::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_key))
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::count))
        .with_state(state);
    let routes = match cors(cors_origins) {
        Some(cors) => routes.layer(cors),
        None => routes,
    };
    routes.layer(
        ServiceBuilder::new()
            .map_request(drop_unusable_request_id)
            .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(|req: &Request| {
                        let id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
                        // Method, path and id only: headers (Authorization!) and bodies never reach the logs.
                        tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
                    })
                    .on_response(DefaultOnResponse::new().level(Level::INFO)),
            )
            .layer(PropagateRequestIdLayer::new(REQUEST_ID)),
    )
}

/// The API, built from the one endpoint table (`hhs_core::wire::endpoints::ROUTES`): each route's method and
/// path from the table, its handler by an exhaustive match on the endpoint (a declared endpoint without a
/// handler does not compile, and nothing undeclared is routed), behind the role the table says it needs.
fn api() -> Router<AppState> {
    ROUTES.iter().fold(Router::new(), |router, route| {
        let method = Method::from_bytes(route.method.as_bytes()).ok().and_then(|m| MethodFilter::try_from(m).ok());
        let method = method.unwrap_or_else(|| panic!("the endpoint table has an unknown method {}", route.method));
        let mut handler = handler(route.api, method);
        if !matches!(route.api, Api::StreamEvents | Api::ExportAudit) {
            // An acquire may wait in the queue on purpose (`wait_seconds`), for at most the longest wait more.
            let longest_wait = std::time::Duration::from_secs(u64::from(hhs_core::queue::MAX_WAIT_SECONDS));
            let limit = if route.api == Api::Acquire { REQUEST_TIMEOUT + longest_wait } else { REQUEST_TIMEOUT };
            handler = handler.route_layer(axum::middleware::from_fn_with_state(limit, deadline));
        }
        router.route(
            route.path,
            handler.route_layer(axum::middleware::from_fn_with_state(route.role, auth::require_role)),
        )
    })
}

fn handler(api: Api, m: MethodFilter) -> MethodRouter<AppState> {
    match api {
        Api::ListResources => on(m, resources::list),
        Api::CreateResource => on(m, resources::create),
        Api::GetResource => on(m, resources::show),
        Api::UpdateResource => on(m, resources::update),
        Api::DeleteResource => on(m, resources::remove),
        Api::Hl7V2 => on(m, hl7::receive),
        Api::ListLocks => on(m, locks::list),
        Api::Acquire => on(m, locks::acquire),
        Api::Heartbeat => on(m, locks::heartbeat),
        Api::Release => on(m, locks::release),
        Api::Book => on(m, locks::book),
        Api::AcquireGroup => on(m, groups::acquire),
        Api::HeartbeatGroup => on(m, groups::heartbeat),
        Api::ReleaseGroup => on(m, groups::release),
        Api::ForceRelease => on(m, locks::force_release),
        Api::GetLock => on(m, locks::show),
        Api::ListEvents => on(m, events::list),
        Api::StreamEvents => on(m, events::stream),
        Api::ExportAudit => on(m, audit::export),
        Api::ListSessions => on(m, sessions::list),
        Api::OpenSession => on(m, sessions::open),
        Api::GetSession => on(m, sessions::show),
        Api::KeepAlive => on(m, sessions::keepalive),
        Api::CloseSession => on(m, sessions::close),
        Api::Suggest => on(m, ml::suggest),
        Api::Anomalies => on(m, ml::anomalies),
        Api::WhoAmI => on(m, keys::whoami),
        Api::ListKeys => on(m, keys::list),
        Api::CreateKey => on(m, keys::create),
        Api::RevokeKey => on(m, keys::revoke),
        Api::ListTypes => on(m, types::list),
        Api::GetType => on(m, types::show),
        Api::PutType => on(m, types::put),
    }
}

/// How long an API call may take (the event stream and the audit export excepted). A database that stops
/// answering without closing its connections — a primary whose machine vanished — would otherwise hold the
/// call until TCP gives up; instead it is answered 503 `database_unavailable` with `Retry-After`. Its outcome
/// is then unknown to the caller, as after any lost answer: acquire, heartbeat and release are safe to repeat.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

async fn deadline(
    axum::extract::State(limit): axum::extract::State<std::time::Duration>,
    req: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => axum::response::IntoResponse::into_response(AppError::new(
            ErrorCode::DatabaseUnavailable,
            "the database did not answer in time; retry shortly",
        )),
    }
}

/// A client's `X-Request-Id` is honoured only if it is short and plain; otherwise we make our own, so a caller
/// cannot stuff the logs.
fn drop_unusable_request_id(mut req: Request) -> Request {
    let usable = req.headers().get(REQUEST_ID).is_some_and(|v| {
        let b = v.as_bytes();
        !b.is_empty()
            && b.len() <= 128
            && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':'))
    });
    if !usable {
        req.headers_mut().remove(REQUEST_ID);
    }
    req
}

fn cors(origins: &[String]) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> = origins.iter().filter_map(|o| HeaderValue::from_str(o.trim()).ok()).collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
            .allow_headers([AUTHORIZATION, CONTENT_TYPE, REQUEST_ID])
            .expose_headers([REQUEST_ID]),
    )
}

async fn not_found() -> AppError {
    AppError::new(ErrorCode::NotFound, "no such route")
}

async fn method_not_allowed() -> AppError {
    AppError::new(ErrorCode::MethodNotAllowed, "this route does not accept that method")
}
