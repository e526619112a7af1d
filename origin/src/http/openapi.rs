//! `GET /api/openapi.json`: the API's OpenAPI 3.2 description, open like `/healthz` (it says what the API is,
//! nothing about what it holds). Built once from `hhs-core`'s endpoint table and wire types, so it describes
//! exactly the routes this process serves.

use std::sync::{Arc, OnceLock};

use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use hhs_core::wire::endpoints::OPENAPI_PATH;
use serde_json::Value;

use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route(OPENAPI_PATH, get(describe))
}

async fn describe() -> impl IntoResponse {
    static DOCUMENT: OnceLock<Arc<Value>> = OnceLock::new();
    let doc = DOCUMENT.get_or_init(|| Arc::new(hhs_core::wire::openapi::document(env!("CARGO_PKG_VERSION"))));
    Json(Value::clone(doc))
}
