//! `GET /` and `GET /healthz`: open to everyone, for load balancers and on-call.

use std::time::Duration;

use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use hhs_core::wire::Health;
use http::StatusCode;

use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/", get(health)).route("/healthz", get(health))
}

/// 200 when the database answers; with PostgreSQL, also which server and whether commits wait for a standby
/// (an operator reads `replication.synchronous`; a load balancer only the status).
async fn health(State(state): State<AppState>) -> impl IntoResponse {
    // A health check that hangs is worse than one that fails: give the database two seconds.
    let db_ok = matches!(tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await, Ok(Ok(())));
    let replication = match db_ok {
        true => tokio::time::timeout(Duration::from_secs(2), state.store.replication())
            .await
            .ok()
            .and_then(Result::ok)
            .flatten(),
        false => None,
    };
    let body = Health {
        status: if db_ok { "ok" } else { "degraded" }.into(),
        database: if db_ok { "ok" } else { "unavailable" }.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        replication,
    };
    let status = if db_ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body))
}
