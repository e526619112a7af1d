//! `GET /api/events`: the event log, oldest first, for one resource or all.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use hhs_core::api::EventView;
use hhs_core::{ErrorCode, Millis, ResourceId, Role};
use serde::Deserialize;

use super::auth::Caller;
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
    /// Only events at or after this time (RFC 3339).
    since: Option<String>,
    limit: Option<u32>,
}

/// Parses an RFC 3339 query timestamp.
pub fn parse_time(name: &str, value: Option<&str>) -> Result<Option<Millis>, AppError> {
    value
        .map(|v| {
            chrono::DateTime::parse_from_rfc3339(v)
                .map(|t| Millis::from_utc(t.with_timezone(&chrono::Utc)))
                .map_err(|_| AppError::new(ErrorCode::ValidationFailed, format!("{name} must be an RFC 3339 time such as 2026-01-31T08:00:00Z")))
        })
        .transpose()
}

async fn list(State(state): State<AppState>, caller: Caller, QueryParams(q): QueryParams<EventQuery>) -> Result<Json<Vec<EventView>>, AppError> {
    caller.require(Role::Viewer)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(AppError::new(ErrorCode::ValidationFailed, "limit must be between 1 and 1000"));
    }
    let filter = EventFilter {
        resource_id: q.resource_id.as_deref().map(ResourceId::parse).transpose()?,
        after_id: q.after,
        since: parse_time("since", q.since.as_deref())?,
        until: None,
        limit,
    };
    Ok(Json(state.store.events(&filter).await?))
}
