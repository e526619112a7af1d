//! `GET /metrics`: request counters in Prometheus text format, for operators and for the edge tests (which
//! prove invalid requests never reach the origin by watching these not move). Open, like /healthz: it holds
//! counts only.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::header::CONTENT_TYPE;

use super::AppState;

#[derive(Default)]
pub struct Metrics {
    requests: AtomicU64,
    api_requests: AtomicU64,
}

pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(render))
}

/// Counts every request except scrapes of /metrics itself.
pub async fn count(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if path != "/metrics" {
        state.metrics.requests.fetch_add(1, Ordering::Relaxed);
        if path.starts_with("/api/") {
            state.metrics.api_requests.fetch_add(1, Ordering::Relaxed);
        }
    }
    next.run(req).await
}

async fn render(State(state): State<AppState>) -> impl IntoResponse {
    let m = &state.metrics;
    let (known, unknown) = state.auth.cached();
    let body = format!(
        "# HELP hhs_http_requests_total HTTP requests received (excluding /metrics).\n\
         # TYPE hhs_http_requests_total counter\n\
         hhs_http_requests_total {}\n\
         # HELP hhs_http_api_requests_total HTTP requests to /api/*.\n\
         # TYPE hhs_http_api_requests_total counter\n\
         hhs_http_api_requests_total {}\n\
         # HELP hhs_key_cache_entries API key cache entries, by kind (bounded: see key_cache.rs).\n\
         # TYPE hhs_key_cache_entries gauge\n\
         hhs_key_cache_entries{{kind=\"known\"}} {}\n\
         hhs_key_cache_entries{{kind=\"unknown\"}} {}\n",
        m.requests.load(Ordering::Relaxed),
        m.api_requests.load(Ordering::Relaxed),
        known,
        unknown,
    );
    ([(CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}
