//! `GET /` and `GET /healthz`: open to everyone, for load balancers and on-call.

use std::time::Duration;

use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use http::StatusCode;
use hhs_core::wire::Health;

use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/", get(health)).route("/healthz", get(health))
}

async fn health(State(state): State<AppState>) -> impl IntoResponse {
    // A health check that hangs is worse than one that fails: give the database two seconds.
    let db_ok = matches!(tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await, Ok(Ok(())));
    let body = Health {
        status: if db_ok { "ok" } else { "degraded" }.into(),
        database: if db_ok { "ok" } else { "unavailable" }.into(),
        version: env!("CARGO_PKG_VERSION").into(),
    };
    let status = if db_ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body))
}
