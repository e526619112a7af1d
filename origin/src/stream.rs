//! The live event feed behind `GET /api/events/stream`. One pump per origin wakes when events were committed —
//! on PostgreSQL by `LISTEN hhs_events` (a trigger notifies on every insert, whichever replica wrote it), on
//! SQLite by the store itself — and at least every few seconds regardless; it reads the events after the last
//! one it saw and broadcasts them to this origin's subscribers. Renewals (heartbeats) are not in the log; they
//! arrive with the wake-up (a NOTIFY payload on PostgreSQL) and are passed on as they are.

use std::time::Duration;

use hhs_core::api::{EventView, RenewalView};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::store::{Change, DynStore, EventFilter, StoreError};

/// One message of the live feed.
#[derive(Clone, Debug)]
pub enum Item {
    /// A committed event-log entry.
    Event(EventView),
    /// A hold renewed without an event (transient: not replayed after a reconnect; the next resync has it).
    Renewal(RenewalView),
}

/// How many events a slow subscriber may fall behind before it is told to resync.
const BUFFER: usize = 4_096;

pub struct EventHub {
    tx: broadcast::Sender<Item>,
}

impl Default for EventHub {
    fn default() -> Self {
        EventHub { tx: broadcast::channel(BUFFER).0 }
    }
}

impl EventHub {
    pub fn subscribe(&self) -> broadcast::Receiver<Item> {
        self.tx.subscribe()
    }

    /// The id of the newest event in the log (0 if none).
    async fn newest(store: &DynStore) -> Result<i64, StoreError> {
        Ok(store.newest_event_id().await?.unwrap_or(0))
    }

    /// Broadcasts every event after `cursor`; returns the new cursor.
    async fn drain(&self, store: &DynStore, mut cursor: i64) -> Result<i64, StoreError> {
        loop {
            let page = store.events(&EventFilter { after_id: Some(cursor), limit: 1_000, ..EventFilter::default() }).await?;
            let full = page.len() == 1_000;
            for event in page {
                cursor = event.id;
                // No subscribers is not an error.
                let _ = self.tx.send(Item::Event(event));
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
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                change = store.changed() => {
                    if let Change::Renewed(r) = change {
                        let _ = self.tx.send(Item::Renewal(r));
                        continue;
                    }
                }
                _ = tokio::time::sleep(poll) => {}
            }
            match self.drain(&store, cursor).await {
                Ok(c) => cursor = c,
                Err(e) => tracing::warn!(error = %e, "event stream: reading new events failed; retrying"),
            }
        }
    }
}
