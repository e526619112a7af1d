//! The live event feed behind `GET /api/events/stream`. One pump per origin follows the log in commit order
//! (`queries::events`: up to the commit horizon, by transaction then id, so an event that commits after one
//! with a higher id is still delivered, exactly once). It wakes at once when this origin commits, and polls
//! every `poll` for what other replicas committed (cheap: one indexed read that usually finds nothing).
//! Renewals (heartbeats) are not in the log; they arrive with the wake-up (a NOTIFY payload on PostgreSQL, an
//! in-process signal on SQLite) and are passed on as they are.

use std::time::Duration;

use hhs_core::wire::{EventView, LockView};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use std::collections::HashMap;
use std::sync::Arc;

use crate::http::metrics::Metrics;

use hhs_core::ResourceId;

use crate::store::{Change, DynStore, EventFilter, LockFilter, LogPos, Logged, StoreError};

/// `events` with the lock view of each one's resource attached, as read now — after the events, so never older
/// than any of them (a dashboard keeps the newer view; see `LockView::is_older_than`). One read for the page.
/// A deleted resource's events carry none.
pub async fn with_locks(store: &DynStore, mut events: Vec<Logged>) -> Result<Vec<Logged>, StoreError> {
    let mut ids: Vec<ResourceId> = events.iter().filter_map(|l| l.event.resource_id).collect();
    ids.sort();
    ids.dedup();
    if ids.is_empty() {
        return Ok(events);
    }
    let (leases, now) = store.leases(&LockFilter { resources: Some(ids), ..LockFilter::default() }).await?;
    let views: HashMap<ResourceId, LockView> = leases
        .iter()
        .map(|(r, l)| {
            (
                r.id,
                LockView::of(l, now)
                    .with_resource(r.resource_type.as_str(), r.identifier.as_str())
                    .with_status(r.status),
            )
        })
        .collect();
    for logged in &mut events {
        logged.event.lock = logged.event.resource_id.and_then(|id| views.get(&id).cloned());
    }
    Ok(events)
}

/// One message of the live feed.
#[derive(Clone, Debug)]
pub enum Item {
    /// A committed event-log entry, with its place in commit order (subscribers skip what they replayed).
    Event(LogPos, Box<EventView>),
    /// A hold renewed without an event (transient: not replayed after a reconnect; the next resync has it).
    Renewal(Box<LockView>),
}

/// How many events a slow subscriber may fall behind before it is told to resync.
const BUFFER: usize = 4_096;

pub struct EventHub {
    tx: broadcast::Sender<Item>,
    /// Fed with every entry the pump reads (hold lengths, expiries).
    metrics: Arc<Metrics>,
}

impl Default for EventHub {
    fn default() -> Self {
        EventHub::new(Arc::default())
    }
}

impl EventHub {
    pub fn new(metrics: Arc<Metrics>) -> EventHub {
        EventHub { tx: broadcast::channel(BUFFER).0, metrics }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Item> {
        self.tx.subscribe()
    }

    /// Open streams on this replica.
    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }

    /// The newest event below the commit horizon (the start of the log if none).
    async fn newest(store: &DynStore) -> Result<LogPos, StoreError> {
        Ok(store.newest_event().await?.unwrap_or_default())
    }

    /// Broadcasts every event after `cursor` up to the commit horizon; returns the new cursor.
    async fn drain(&self, store: &DynStore, mut cursor: LogPos) -> Result<LogPos, StoreError> {
        loop {
            let page = store
                .events(&EventFilter { after_id: Some(cursor.id), limit: 1_000, ..EventFilter::default() })
                .await?;
            let full = page.len() == 1_000;
            // Nobody listening: the cursor moves on, and the views (one more read) are not fetched.
            let page = if self.tx.receiver_count() > 0 { with_locks(store, page).await? } else { page };
            for logged in page {
                cursor = logged.pos;
                self.metrics.logged(&logged.event);
                // No subscribers is not an error.
                let _ = self.tx.send(Item::Event(logged.pos, Box::new(logged.event)));
            }
            if !full {
                return Ok(cursor);
            }
        }
    }

    /// The pump: runs until `shutdown`.
    pub async fn run(&self, store: DynStore, poll: Duration, shutdown: CancellationToken) {
        let mut cursor = loop {
            match Self::newest(&store).await {
                Ok(c) => break c,
                Err(e) => {
                    tracing::warn!(error = %e, "event stream: cannot read the log yet; retrying");
                    tokio::select! { _ = shutdown.cancelled() => return, _ = tokio::time::sleep(poll) => {} }
                }
            }
        };
        // One timer for the pump's whole life: renewals wake the loop many times a second, and a timer made anew
        // on each pass would never fire while they flow, so other replicas' commits would wait for this one's.
        let mut tick = tokio::time::interval(poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                change = store.changed() => {
                    if let Change::Renewed(r) = change {
                        let _ = self.tx.send(Item::Renewal(r));
                        continue;
                    }
                }
                _ = tick.tick() => {}
            }
            match self.drain(&store, cursor).await {
                Ok(c) => cursor = c,
                Err(e) => tracing::warn!(error = %e, "event stream: reading new events failed; retrying"),
            }
        }
    }
}
