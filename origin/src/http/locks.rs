//! `/api/locks`: acquire, heartbeat, release, and the state of holds. Each operation is one store transaction
//! running one `hhs_core::lease` transition.

use axum::extract::State;
use axum::Json;
use hhs_core::lease::{self, AcquireCmd, Claim, Late};
use hhs_core::wire::LockQuery;
use hhs_core::wire::{
    AcquireRequest, BookRequest, BookTarget, Booked, ForceReleaseRequest, HolderRequest, LockList, LockView,
};
use hhs_core::{Denied, HoldId, ResourceId, TtlBounds};
use uuid::Uuid;

use super::auth::Caller;
use super::error::AppError;
use super::extract::{JsonBody, QueryParams, ResourcePath};
use super::AppState;
use crate::store::{Actor, Applied, StoreError};

fn answer(applied: &Applied) -> Json<LockView> {
    Json(LockView::of(&applied.outcome.lease, applied.now))
}

pub(super) async fn acquire(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<AcquireRequest>,
) -> Result<Json<LockView>, AppError> {
    let started = std::time::Instant::now();
    let mut queued = None;
    let result = acquire_hold(&state, &caller, req, &mut queued).await;
    let outcome = match &result {
        Ok((_, true)) => "granted",
        Ok((_, false)) => "renewed",
        Err(e) => e.code().as_str(),
    };
    state.metrics.acquired(started, queued, outcome);
    result.map(|(view, _)| view)
}

/// The acquire itself; with whether it granted (or renewed the caller's own hold). `queued`: when it joined
/// the resource's queue, if it did.
async fn acquire_hold(
    state: &AppState,
    caller: &Caller,
    req: AcquireRequest,
    queued: &mut Option<std::time::Instant>,
) -> Result<(Json<LockView>, bool), AppError> {
    // The hard limits here (and at the edge); the type's own bounds inside the acquire's transaction.
    let valid = req.validate(&TtlBounds::HARD)?;
    if let Some(session) = valid.session {
        // Under a session: its TTL and renewal, decided with the session's row held.
        let cmd = AcquireCmd {
            principal: caller.principal.clone(),
            owner: valid.owner,
            ttl: hhs_core::Ttl::from_stored_millis(0),
            new_hold_id: HoldId(Uuid::now_v7()),
        };
        let applied = state.store.acquire_in(valid.resource_id, session, cmd, &caller.actor()).await?;
        let mut view = LockView::of(&applied.outcome.lease, applied.now);
        view.ttl_source = Some("session".to_owned());
        return Ok((Json(view), !applied.outcome.events.is_empty()));
    }
    let (ttl, source) = match valid.ttl {
        Some(ttl) => (ttl, "requested"),
        None => {
            // No TTL asked for: the model's suggestion for this owner on this type of resource.
            let (resource, _, _) = state.store.lease(valid.resource_id).await?;
            let s = state.model.read(|m| {
                m.suggest(
                    resource.resource_type.as_str(),
                    caller.principal.as_str(),
                    valid.owner.as_str(),
                    &resource.policy,
                )
            });
            (s.ttl, "suggested")
        }
    };
    let cmd = AcquireCmd {
        principal: caller.principal.clone(),
        owner: valid.owner,
        ttl,
        new_hold_id: HoldId(Uuid::now_v7()),
    };
    let (applied, granted) = match valid.wait {
        Some(wait) => super::wait::acquire(state, caller, valid.resource_id, cmd, wait, queued).await?,
        None => {
            let applied = state.store.acquire(valid.resource_id, cmd, &caller.actor()).await?;
            let granted = !applied.outcome.events.is_empty();
            (applied, granted)
        }
    };
    if let Some(h) = applied.outcome.lease.hold.as_ref().filter(|_| granted) {
        tracing::info!(resource_id = %valid.resource_id, owner_id = %h.owner, fencing_token = h.token.0, ttl_source = source, "hold granted");
    }
    let mut view = LockView::of(&applied.outcome.lease, applied.now);
    view.ttl_source = Some(source.to_owned());
    Ok((Json(view), granted))
}

/// Books the caller's live hold until `until` (`hhs_core::booking::book`): same token, no more heartbeats. With
/// `group_id`, every live member of the group, all or none.
pub(super) async fn book(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<BookRequest>,
) -> Result<Json<Booked>, AppError> {
    let (valid, until) = match req.validate()? {
        (BookTarget::Group(group_id, owner), until) => {
            let Json(group) = super::groups::book(&state, &caller, group_id, owner, until).await?;
            tracing::info!(group_id = %group_id, until = %until.to_utc(), "group booked");
            return Ok(Json(Booked::Group(group)));
        }
        (BookTarget::Resource(valid), until) => (valid, until),
    };
    let claim = Claim { principal: caller.principal.clone(), owner: valid.owner, token: valid.token };
    let transition = Box::new(move |r: &crate::store::Resource, current: &hhs_core::Lease, now| {
        hhs_core::booking::book(current, now, &claim, until, r.policy.booking_max())
    });
    let applied = state.store.transact(valid.resource_id, &caller.actor(), transition).await?;
    tracing::info!(resource_id = %valid.resource_id, until = %until.to_utc(), "hold booked");
    Ok(Json(Booked::Lock(Box::new(answer(&applied).0))))
}

pub(super) async fn heartbeat(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<HolderRequest>,
) -> Result<Json<LockView>, AppError> {
    let valid = req.validate()?;
    let claim = Claim { principal: caller.principal.clone(), owner: valid.owner, token: valid.token };
    let result = state.store.heartbeat(valid.resource_id, claim.clone(), &caller.actor()).await;
    if let Err(StoreError::Denied(Denied::LockExpired)) = result {
        record_late(&state, &caller, valid.resource_id, claim, Late::Heartbeat).await;
    }
    let applied = result?;
    state.metrics.heartbeat();
    Ok(answer(&applied))
}

pub(super) async fn release(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<HolderRequest>,
) -> Result<Json<LockView>, AppError> {
    let valid = req.validate()?;
    let (id, claim) =
        (valid.resource_id, Claim { principal: caller.principal.clone(), owner: valid.owner, token: valid.token });
    let result = state.store.release(id, claim.clone(), &caller.actor()).await;
    let applied = match result {
        Err(StoreError::Denied(Denied::LockExpired)) => {
            record_late(&state, &caller, id, claim, Late::Release).await;
            return Err(StoreError::Denied(Denied::LockExpired).into());
        }
        other => other?,
    };
    if !applied.outcome.events.is_empty() {
        tracing::info!(resource_id = %id, "hold released");
    }
    Ok(answer(&applied))
}

/// A heartbeat or release that came after the hold lapsed is still news: the client was alive, needed the hold
/// this long, and its heartbeats were this far apart. The first one per hold is recorded (`late_heartbeat`,
/// `late_release`; `hhs_core::lease::report_late`), so the TTL model learns from false expiries instead of never
/// hearing of them — and a client that keeps calling cannot grow the log or skew the model. Best effort: the
/// refusal stands whatever happens here.
pub(super) async fn record_late(state: &AppState, caller: &Caller, id: ResourceId, claim: Claim, late: Late) {
    let report = Box::new(move |resource: &crate::store::Resource, current: &hhs_core::Lease, now| {
        Ok(lease::report_late(current, now, &claim, late, resource.policy.lock_delay()))
    });
    if let Err(e) = state.store.transact(id, &caller.actor(), report).await {
        tracing::warn!(error = %e, "could not record a late heartbeat or release");
    }
}

/// An administrator ends any hold: an involuntary loss, so the type's lock-delay applies. Who and why go into
/// the audit trail.
pub(super) async fn force_release(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<ForceReleaseRequest>,
) -> Result<Json<LockView>, AppError> {
    let (resource_id, reason) = req.validate()?;
    let actor = Actor { reason: Some(reason), ..caller.actor() };
    let release = Box::new(|resource: &crate::store::Resource, current: &hhs_core::Lease, now| {
        lease::force_release(current, now, resource.policy.lock_delay())
    });
    let applied = state.store.transact(resource_id, &actor, release).await?;
    tracing::warn!(resource_id = %resource_id, principal = %caller.principal, "hold force-released");
    Ok(answer(&applied))
}

pub(super) async fn show(
    State(state): State<AppState>,
    ResourcePath(id): ResourcePath,
) -> Result<Json<LockView>, AppError> {
    let (_, lease, now) = state.store.lease(id).await?;
    Ok(Json(LockView::of(&lease, now)))
}

/// The next page's cursor: the last row's resource id when the page came back full.
pub fn next_after<T>(rows: &[(crate::store::Resource, T)], limit: Option<u32>) -> Option<ResourceId> {
    (limit == Some(rows.len() as u32)).then(|| rows.last().map(|(r, _)| r.id)).flatten()
}

pub(super) async fn list(
    State(state): State<AppState>,
    QueryParams(q): QueryParams<LockQuery>,
) -> Result<Json<LockList>, AppError> {
    let (filter, status) = q.validate()?;
    // The newest event (below the commit horizon) is read first: every event after it may or may not be in the
    // snapshot, none before it is missing from it.
    let last_event_id = state.store.newest_event().await?.map_or(0, |p| p.id);
    let (leases, now) = state.store.leases(&filter).await?;
    let next_after = next_after(&leases, filter.limit);
    // Status depends on time (a lapsed, unreaped hold reads EXPIRED), so it is filtered here with hhs-core's rule.
    let items = leases
        .iter()
        .filter(|(_, l)| status.is_none_or(|s| l.status(now) == s))
        .map(|(r, l)| {
            LockView::of(l, now).with_resource(r.resource_type.as_str(), r.identifier.as_str()).with_status(r.status)
        })
        .collect();
    Ok(Json(LockList { items, server_time: now.to_utc(), last_event_id, next_after }))
}
