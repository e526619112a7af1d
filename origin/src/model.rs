//! The origin's copy of the TTL model (`hhs_core::ttl_model`), kept current from the event log: at start it
//! reads every finished hold (and every late heartbeat), then every few seconds only the events after the last one it saw. Suggestions
//! read memory, never scan history; every replica converges on the same model because all read the same log.

use std::sync::{Mutex, RwLock};
use std::time::Duration;

use hhs_core::ttl_model::{Observation, TtlModel};
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
                    let detail: serde_json::Value = serde_json::from_str(&row.detail).unwrap_or_default();
                    let num = |k: &str| detail[k].as_i64();
                    let (Some(owner), Some(principal)) = (row.owner_id.as_deref(), detail["hold_principal"].as_str()) else {
                        continue;
                    };
                    if row.kind == "late_heartbeat" {
                        if let Some(gap) = num("max_heartbeat_gap_ms") {
                            model.observe_gap(&row.resource_type, principal, owner, Millis(gap));
                        }
                        continue;
                    }
                    let Some(held) = num("held_ms") else { continue };
                    let observation = Observation {
                        heartbeats: num("heartbeats").and_then(|h| u32::try_from(h).ok()).unwrap_or(0),
                        max_gap: Millis(num("max_heartbeat_gap_ms").unwrap_or(0)),
                        held: Millis(held),
                    };
                    if row.kind == "late_release" {
                        model.observe_late(&row.resource_type, principal, owner, &observation);
                    } else {
                        model.observe(&row.resource_type, principal, owner, &observation);
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
