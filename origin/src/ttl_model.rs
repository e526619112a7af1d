//! The origin's copy of the TTL model (`hhs_core::ttl_model`), kept current from the event log: at start it
//! reads every finished hold (and every late heartbeat), then every few seconds only the events after the last one it saw. Suggestions
//! read memory, never scan history; every replica converges on the same model because all read the same log.
//! Memory stays bounded whatever owner ids clients choose: the model keeps at most
//! [`MAX_OWNERS_PER_PRINCIPAL`](hhs_core::ttl_model::MAX_OWNERS_PER_PRINCIPAL) owner summaries per principal.

use std::sync::{Mutex, RwLock};
use std::time::Duration;

use hhs_core::ttl_model::{Observation, TtlModel};
use hhs_core::wire::{HoldDetail, LogKind};
use hhs_core::Millis;
use tokio_util::sync::CancellationToken;

use crate::store::{DynStore, StoreError};

const PAGE: u32 = 5_000;

#[derive(Default)]
pub struct ModelCache {
    model: RwLock<TtlModel>,
    /// The last event id folded into the model.
    cursor: Mutex<i64>,
}

impl ModelCache {
    /// Runs `f` with the current model.
    pub fn read<T>(&self, f: impl FnOnce(&TtlModel) -> T) -> T {
        f(&self.model.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Folds every finished hold recorded since the last refresh into the model. Returns how many.
    pub async fn refresh(&self, store: &DynStore) -> Result<usize, StoreError> {
        let mut total = 0;
        loop {
            let after = *self.cursor.lock().unwrap_or_else(|p| p.into_inner());
            let rows = store.finished_holds(after, PAGE).await?;
            let Some(last) = rows.last().map(|r| r.id) else { return Ok(total) };
            {
                let mut model = self.model.write().unwrap_or_else(|p| p.into_inner());
                for row in &rows {
                    let (Some(owner), Ok(d)) =
                        (row.owner_id.as_deref(), serde_json::from_str::<HoldDetail>(&row.detail))
                    else {
                        continue;
                    };
                    let (ty, principal) = (row.resource_type.as_str(), d.hold_principal.as_str());
                    let observation = |held| Observation {
                        heartbeats: d.heartbeats,
                        max_gap: Millis(d.max_heartbeat_gap_ms),
                        held: Millis(held),
                    };
                    match (LogKind::parse(&row.kind), d.held_ms) {
                        (LogKind::LateHeartbeat, _) => {
                            model.observe_gap(ty, principal, owner, Millis(d.max_heartbeat_gap_ms))
                        }
                        (LogKind::LateRelease, Some(held)) => {
                            model.observe_late(ty, principal, owner, &observation(held))
                        }
                        (LogKind::Released, Some(held)) => model.observe(ty, principal, owner, &observation(held)),
                        _ => {}
                    }
                }
            }
            *self.cursor.lock().unwrap_or_else(|p| p.into_inner()) = last;
            total += rows.len();
            if rows.len() < PAGE as usize {
                return Ok(total);
            }
        }
    }

    /// Refreshes every `interval` until `shutdown`.
    pub async fn run(&self, store: DynStore, interval: Duration, shutdown: CancellationToken) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = ticker.tick() => match self.refresh(&store).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(holds = n, "ttl model updated"),
                    Err(e) => tracing::warn!(error = %e, "ttl model refresh failed; retrying next tick"),
                },
            }
        }
    }
}
