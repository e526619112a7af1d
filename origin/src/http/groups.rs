//! `/api/locks/acquire-group`, `/heartbeat-group`, `/release-group`: several resources held together or not at
//! all (`hhs_core::group`), and every member renewed, released or booked (`POST /api/locks/book` with
//! `group_id`) by the group's id.

use axum::extract::State;
use axum::Json;
use hhs_core::lease::{AcquireCmd, Claim};
use hhs_core::wire::{AcquireGroupRequest, GroupHolderRequest, GroupView, LockView};
use hhs_core::{GroupId, HoldId, Millis, OwnerId, Ttl, TtlBounds};
use uuid::Uuid;

use super::auth::Caller;
use super::error::AppError;
use super::extract::JsonBody;
use super::AppState;
use crate::store::{Applied, GroupOp};

fn view(group_id: GroupId, applied: &[Applied]) -> Json<GroupView> {
    Json(GroupView { group_id, holds: applied.iter().map(|a| LockView::of(&a.outcome.lease, a.now)).collect() })
}

pub(super) async fn acquire(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<AcquireGroupRequest>,
) -> Result<Json<GroupView>, AppError> {
    let valid = req.validate(&TtlBounds::HARD)?;
    let group_id = GroupId(Uuid::now_v7());
    // Under a session the session's TTL applies (the placeholder is replaced).
    let ttl = valid.ttl.unwrap_or_else(|| Ttl::from_stored_millis(0));
    let cmd = AcquireCmd {
        principal: caller.principal.clone(),
        owner: valid.owner,
        ttl,
        new_hold_id: HoldId(Uuid::now_v7()),
    };
    let applied = state.store.acquire_group(&valid.resources, group_id, cmd, valid.session, &caller.actor()).await?;
    tracing::info!(group_id = %group_id, members = applied.len(), "group granted");
    Ok(view(group_id, &applied))
}

async fn by_group(
    state: &AppState,
    caller: &Caller,
    group_id: GroupId,
    owner: OwnerId,
    op: GroupOp,
) -> Result<Json<GroupView>, AppError> {
    let claim = Claim { principal: caller.principal.clone(), owner, token: None };
    let applied = state.store.group_op(group_id, claim, op, &caller.actor()).await?;
    Ok(view(group_id, &applied))
}

pub(super) async fn heartbeat(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<GroupHolderRequest>,
) -> Result<Json<GroupView>, AppError> {
    let (group_id, owner) = req.validate()?;
    by_group(&state, &caller, group_id, owner, GroupOp::Heartbeat).await
}

pub(super) async fn release(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<GroupHolderRequest>,
) -> Result<Json<GroupView>, AppError> {
    let (group_id, owner) = req.validate()?;
    by_group(&state, &caller, group_id, owner, GroupOp::Release).await
}

/// Books every live member until `until` (`hhs_core::booking::book` each), all or none.
pub(super) async fn book(
    state: &AppState,
    caller: &Caller,
    group_id: GroupId,
    owner: OwnerId,
    until: Millis,
) -> Result<Json<GroupView>, AppError> {
    by_group(state, caller, group_id, owner, GroupOp::Book { until }).await
}
