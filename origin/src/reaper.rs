//! The reaper: records lapsed holds as expired, every few seconds. Correctness never depends on it — an acquire
//! on a lapsed hold records the expiry itself — it exists so that the event log, the dashboard and `GET` answers
//! learn about expiries promptly, and so the lock-delay clock is visible; it also gives back hand-overs that their
//! waiters never took (`hhs_core::queue::reclaim`). It needs no policy of its own: each
//! expiry's lock-delay comes from the resource type's row, read in the same transaction.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::{DynStore, StoreError};

/// Passes of [`crate::store::ReapStore::reap`] (each covers everything due when it began, `batch` candidates a page, one
/// short transaction each) until one records fewer than `batch` expiries. Returns how many it recorded.
pub async fn reap_all(store: &DynStore, batch: u32) -> Result<usize, StoreError> {
    let mut total = 0;
    loop {
        let n = store.reap(batch).await?;
        total += n;
        if n < batch as usize {
            return Ok(total);
        }
    }
}

/// Runs passes every `interval` until `shutdown`. A failed pass is logged and retried at the next tick.
pub async fn run(store: DynStore, interval: Duration, batch: u32, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticker.tick() => match reap_all(&store, batch).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(expired = n, "reaper recorded expiries"),
                Err(e) => tracing::warn!(error = %e, "reaper pass failed; retrying next tick"),
            },
        }
    }
    tracing::info!("reaper stopped");
}
