//! `/api/locks`: acquire, heartbeat, release, and the state of holds. Each operation is one store transaction
//! running one `hhs_core::lease` transition.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use hhs_core::api::{AcquireRequest, HolderRequest, LockList, LockView};
use hhs_core::lease::{self, AcquireCmd};
use hhs_core::{ErrorCode, HoldId, LockStatus, OwnerId, ResourceId, ResourceType};
use serde::Deserialize;
use uuid::Uuid;

use super::error::AppError;
use super::extract::{JsonBody, QueryParams};
use super::AppState;
use crate::store::{Applied, LockFilter};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/locks", get(list))
        .route("/api/locks/acquire", post(acquire))
        .route("/api/locks/heartbeat", post(heartbeat))
        .route("/api/locks/release", post(release))
        .route("/api/locks/{resource_id}", get(show))
}

fn answer(applied: &Applied) -> Json<LockView> {
    Json(LockView::of(&applied.outcome.lease, applied.now))
}

async fn acquire(State(state): State<AppState>, JsonBody(req): JsonBody<AcquireRequest>) -> Result<Json<LockView>, AppError> {
    let valid = req.validate(&state.policy.ttl_bounds)?;
    let cmd = AcquireCmd { owner: valid.owner, ttl: valid.ttl, new_hold_id: HoldId(Uuid::now_v7()) };
    let applied = state.store.acquire(valid.resource_id, cmd, state.policy.clone()).await?;
    if let Some(h) = applied.outcome.lease.hold.as_ref().filter(|_| !applied.outcome.events.is_empty()) {
        tracing::info!(resource_id = %valid.resource_id, owner_id = %h.owner, fencing_token = h.token.0, "hold granted");
    }
    Ok(answer(&applied))
}

async fn heartbeat(State(state): State<AppState>, JsonBody(req): JsonBody<HolderRequest>) -> Result<Json<LockView>, AppError> {
    let valid = req.validate()?;
    let (owner, token) = (valid.owner, valid.token);
    let applied = state
        .store
        .transact(valid.resource_id, Box::new(move |_, current, now| lease::heartbeat(current, now, &owner, token)))
        .await?;
    Ok(answer(&applied))
}

async fn release(State(state): State<AppState>, JsonBody(req): JsonBody<HolderRequest>) -> Result<Json<LockView>, AppError> {
    let valid = req.validate()?;
    let (owner, token) = (valid.owner, valid.token);
    let applied = state
        .store
        .transact(valid.resource_id, Box::new(move |_, current, now| lease::release(current, now, &owner, token)))
        .await?;
    if !applied.outcome.events.is_empty() {
        tracing::info!(resource_id = %valid.resource_id, "hold released");
    }
    Ok(answer(&applied))
}

async fn show(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<LockView>, AppError> {
    let (_, lease, now) = state.store.lease(ResourceId::parse(&id)?).await?;
    Ok(Json(LockView::of(&lease, now)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<String>,
    owner_id: Option<String>,
    #[serde(rename = "type")]
    resource_type: Option<String>,
}

async fn list(State(state): State<AppState>, QueryParams(q): QueryParams<ListQuery>) -> Result<Json<LockList>, AppError> {
    let status = q
        .status
        .as_deref()
        .map(|s| {
            LockStatus::parse(s).ok_or_else(|| {
                AppError::new(ErrorCode::ValidationFailed, "status must be one of FREE, HELD, RELEASED, EXPIRED, FORCE_RELEASED")
            })
        })
        .transpose()?;
    let filter = LockFilter {
        owner_id: q.owner_id.as_deref().map(OwnerId::parse).transpose()?.map(|o| o.as_str().to_owned()),
        resource_type: q.resource_type.as_deref().map(ResourceType::parse).transpose()?.map(|t| t.as_str().to_owned()),
    };
    let (leases, now) = state.store.leases(&filter).await?;
    // Status depends on time (a lapsed, unreaped hold reads EXPIRED), so it is filtered here with hhs-core's rule.
    let items = leases
        .iter()
        .filter(|(_, l)| status.is_none_or(|s| l.status(now) == s))
        .map(|(r, l)| LockView::of(l, now).with_resource(&r.resource_type, &r.identifier))
        .collect();
    Ok(Json(LockList { items }))
}
