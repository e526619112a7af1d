//! `GET /api/events`: the event log, oldest first, for one resource or all.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use hhs_core::api::EventView;
use hhs_core::{ErrorCode, ResourceId};
use serde::Deserialize;

use super::error::AppError;
use super::extract::QueryParams;
use super::AppState;
use crate::store::EventFilter;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/events", get(list))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventQuery {
    resource_id: Option<String>,
    /// Only events with an id greater than this (resume where the last page ended).
    after: Option<i64>,
    limit: Option<u32>,
}

async fn list(State(state): State<AppState>, QueryParams(q): QueryParams<EventQuery>) -> Result<Json<Vec<EventView>>, AppError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(AppError::new(ErrorCode::ValidationFailed, "limit must be between 1 and 1000"));
    }
    let filter = EventFilter { resource_id: q.resource_id.as_deref().map(ResourceId::parse).transpose()?, after_id: q.after, limit };
    Ok(Json(state.store.events(&filter).await?))
}
