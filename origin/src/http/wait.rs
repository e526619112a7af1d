//! Waiting in a resource's queue (`wait_seconds` on acquire; the rules are `hhs_core::queue`). The request joins
//! the queue and stays open: it proves it is there every `PRESENCE` (its poll, which also takes the resource
//! if it is first and the resource has become grantable) and is woken at once by a hand-over — this replica's
//! commit, or PostgreSQL's `NOTIFY hhs_queue` from any replica. It ends granted (200) or, when its wait is
//! over, with `409 lock_held` and its place in the queue. It is answered only with the hold handed to it: if
//! that hold ended before this request took it, the answer is `409 lock_held` too (a client waits again), never
//! the bed's next holder. If the request goes away first (the client disconnects, the edge gives up), axum drops
//! this future and the guard ends the wait — and gives back a hold granted in that instant, since nobody would
//! heartbeat it; if this replica dies instead, the reaper gives back a hand-over not taken within
//! `PICKUP_TIMEOUT`.

use std::time::Duration;

use hhs_core::lease::AcquireCmd;
use hhs_core::queue::PRESENCE;
use hhs_core::{ApiError, ErrorCode, Millis, ResourceId, WaiterId};
use uuid::Uuid;

use super::auth::Caller;
use super::error::AppError;
use super::AppState;
use crate::store::{Actor, Applied, DynStore, StoreError, WaitStatus, Waited};

/// Acquire `resource` for `cmd`, waiting up to `wait` in its queue if it is not grantable now; with whether it
/// granted (or renewed the caller's own hold). `queued` says when it joined the queue, if it did (for metrics).
pub(super) async fn acquire(
    state: &AppState,
    caller: &Caller,
    resource: ResourceId,
    cmd: AcquireCmd,
    wait: Millis,
    queued: &mut Option<std::time::Instant>,
) -> Result<(Applied, bool), AppError> {
    // Subscribed before joining, so no hand-over between the two is missed.
    let mut wakeups = state.store.queue_wakeups();
    let id = WaiterId(Uuid::now_v7());
    let actor = caller.actor();
    let position = match state.store.acquire_or_wait(resource, cmd, Some((id, wait)), &actor).await? {
        Waited::Granted(applied) => {
            let granted = !applied.outcome.events.is_empty();
            return Ok((applied, granted));
        }
        Waited::Queued { position } => position,
    };
    *queued = Some(std::time::Instant::now());
    tracing::info!(resource_id = %resource, waiter_id = %id, position, "waiting in the queue");
    let mut guard = Guard { store: state.store.clone(), id, actor: actor.clone(), armed: true };
    let deadline = tokio::time::Instant::now() + Duration::from_millis(u64::try_from(wait.0).unwrap_or(0));
    let mut presence = tokio::time::interval(Duration::from_millis(PRESENCE.0 as u64));
    presence.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    presence.tick().await;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => break,
            _ = presence.tick() => {}
            woken = wakeups.recv() => match woken {
                Ok(r) if r != resource => continue,
                // This resource, or wake-ups lost to lag: look.
                _ => {}
            },
        }
        match state.store.poll_wait(id).await {
            Ok(WaitStatus::Granted(applied)) => {
                guard.armed = false;
                return Ok((applied, true));
            }
            Ok(WaitStatus::Waiting { .. }) => {}
            Ok(WaitStatus::Ended { position }) => {
                guard.armed = false;
                return Err(still_held(state, resource, position).await);
            }
            // The resource was deleted while it waited.
            Err(StoreError::NotFound) => {
                guard.armed = false;
                return Err(StoreError::NotFound.into());
            }
            // The database is away for a moment: keep waiting (its presence lapses if it stays away).
            Err(e) => tracing::warn!(error = %e, waiter_id = %id, "queue poll failed"),
        }
    }
    let ended = state.store.end_wait(id, false, &actor).await;
    guard.armed = false;
    match ended? {
        WaitStatus::Granted(applied) => Ok((applied, true)),
        WaitStatus::Waiting { position } => Err(still_held(state, resource, Some(position)).await),
        WaitStatus::Ended { position } => Err(still_held(state, resource, position).await),
    }
}

/// The 409 after a wait: who holds it now (as an immediate refusal says), and the place the request had.
async fn still_held(state: &AppState, resource: ResourceId, position: Option<u32>) -> AppError {
    let mut err = match state.store.lease(resource).await {
        Ok((_, lease, now)) => match lease.live_hold(now) {
            Some(h) => ApiError::from(h.refusal()),
            None => {
                ApiError::new(ErrorCode::LockHeld, "the resource was not handed to this request before its wait ended")
            }
        },
        Err(e) => return e.into(),
    };
    err.message = format!(
        "{} (waited in the queue{})",
        err.message,
        position.map(|p| format!(", at place {p}")).unwrap_or_default()
    );
    err.queue_position = position;
    AppError::from(err)
}

/// Ends the wait of a request that went away (dropped by axum when its connection closes).
struct Guard {
    store: DynStore,
    id: WaiterId,
    actor: Actor,
    armed: bool,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (store, id, actor) = (self.store.clone(), self.id, self.actor.clone());
        tracing::info!(waiter_id = %id, "a waiting request went away; leaving the queue");
        tokio::spawn(async move {
            if let Err(e) = store.end_wait(id, true, &actor).await {
                // Its presence lapses within `PRESENCE_TIMEOUT` and the next hand-over skips it anyway.
                tracing::warn!(error = %e, waiter_id = %id, "could not end a wait; it lapses by itself");
            }
        });
    }
}
