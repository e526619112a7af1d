//! `/api/locks`: acquire, heartbeat, release, and the state of holds. Each operation is one store transaction
//! running one `hhs_core::lease` transition.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use hhs_core::api::{AcquireRequest, ForceReleaseRequest, HolderRequest, LockList, LockView, ValidHolder};
use hhs_core::lease::{self, AcquireCmd, Claim};
use hhs_core::{ErrorCode, HoldId, LockStatus, OwnerId, ResourceId, ResourceType, Role};
use serde::Deserialize;
use uuid::Uuid;

use super::auth::Caller;
use super::error::AppError;
use super::extract::{JsonBody, QueryParams};
use super::AppState;
use crate::store::{Actor, Applied, LockFilter};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/locks", get(list))
        .route("/api/locks/acquire", post(acquire))
        .route("/api/locks/heartbeat", post(heartbeat))
        .route("/api/locks/release", post(release))
        .route("/api/locks/force-release", post(force_release))
        .route("/api/locks/{resource_id}", get(show))
}

fn answer(applied: &Applied) -> Json<LockView> {
    Json(LockView::of(&applied.outcome.lease, applied.now))
}

async fn acquire(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<AcquireRequest>,
) -> Result<Json<LockView>, AppError> {
    caller.require(Role::Client)?;
    let valid = req.validate(&state.policy.ttl_bounds)?;
    let cmd = AcquireCmd { principal: caller.principal.clone(), owner: valid.owner, ttl: valid.ttl, new_hold_id: HoldId(Uuid::now_v7()) };
    let applied = state.store.acquire(valid.resource_id, cmd, state.policy.clone(), &caller.actor()).await?;
    if let Some(h) = applied.outcome.lease.hold.as_ref().filter(|_| !applied.outcome.events.is_empty()) {
        tracing::info!(resource_id = %valid.resource_id, owner_id = %h.owner, fencing_token = h.token.0, "hold granted");
    }
    Ok(answer(&applied))
}

/// The claim of a heartbeat or release: the caller's principal with the owner id and token it names.
fn claim(caller: &Caller, valid: &ValidHolder) -> Claim {
    Claim { principal: caller.principal.clone(), owner: valid.owner.clone(), token: valid.token }
}

async fn heartbeat(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<HolderRequest>,
) -> Result<Json<LockView>, AppError> {
    caller.require(Role::Client)?;
    let valid = req.validate()?;
    let claim = claim(&caller, &valid);
    let applied = state
        .store
        .transact(valid.resource_id, &caller.actor(), Box::new(move |_, current, now| lease::heartbeat(current, now, &claim)))
        .await?;
    Ok(answer(&applied))
}

async fn release(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<HolderRequest>,
) -> Result<Json<LockView>, AppError> {
    caller.require(Role::Client)?;
    let valid = req.validate()?;
    let claim = claim(&caller, &valid);
    let applied = state
        .store
        .transact(valid.resource_id, &caller.actor(), Box::new(move |_, current, now| lease::release(current, now, &claim)))
        .await?;
    if !applied.outcome.events.is_empty() {
        tracing::info!(resource_id = %valid.resource_id, "hold released");
    }
    Ok(answer(&applied))
}

/// An administrator ends any hold: an involuntary loss, so the type's lock-delay applies. Who and why go into
/// the audit trail.
async fn force_release(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<ForceReleaseRequest>,
) -> Result<Json<LockView>, AppError> {
    caller.require(Role::Admin)?;
    let (resource_id, reason) = req.validate()?;
    let actor = Actor { reason: Some(reason), ..caller.actor() };
    let policy = state.policy.clone();
    let applied = state
        .store
        .transact(
            resource_id,
            &actor,
            Box::new(move |resource, current, now| lease::force_release(current, now, policy.lock_delay(&resource.resource_type))),
        )
        .await?;
    tracing::warn!(resource_id = %resource_id, principal = %caller.principal, "hold force-released");
    Ok(answer(&applied))
}

async fn show(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Json<LockView>, AppError> {
    caller.require(Role::Viewer)?;
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

async fn list(State(state): State<AppState>, caller: Caller, QueryParams(q): QueryParams<ListQuery>) -> Result<Json<LockList>, AppError> {
    caller.require(Role::Viewer)?;
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
