//! The pool the store's connections come from, and what an outage leaves behind. One slot: the pool of the
//! server written to, or none while it is being found (`crate::primary` fills and empties it for PostgreSQL;
//! SQLite's is filled once). It depends on nothing of the origin's, so the store and `crate::primary` both use it
//! without using each other.
//!
//! The time the database was away is kept ([`PoolSlot::lose`]): before the store uses a new primary it gives
//! live holds back that time (`hhs_core::lease::resume`, once per outage), so a failover longer than a TTL does
//! not end every hold at once.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use hhs_core::Millis;
use sqlx::{Database, Pool};

/// The pool of the server written to, or none while it is being found, and the bookkeeping of outages.
pub struct PoolSlot<D: Database> {
    pool: RwLock<Option<Pool<D>>>,
    /// The server the pool reaches (`host:port`), for health and logs.
    server: RwLock<Option<String>>,
    /// The database clock at the last successful probe.
    last_seen: Mutex<Option<Millis>>,
    /// Set when the primary was lost: the last instant it was seen working. Cleared when live holds were resumed.
    lost_at: Mutex<Option<Millis>>,
    /// When the current outage began on this process's clock, for the log line that says how long it lasted.
    lost_since: Mutex<Option<Instant>>,
    /// One resumption at a time.
    pub resuming: tokio::sync::Mutex<()>,
    /// The last outage's length in ms, for `/healthz`.
    last_outage_ms: Mutex<Option<i64>>,
}

impl<D: Database> PoolSlot<D> {
    pub fn new(pool: Option<Pool<D>>, server: Option<String>) -> Arc<PoolSlot<D>> {
        Arc::new(PoolSlot {
            pool: RwLock::new(pool),
            server: RwLock::new(server),
            last_seen: Mutex::new(None),
            lost_at: Mutex::new(None),
            lost_since: Mutex::new(None),
            resuming: tokio::sync::Mutex::new(()),
            last_outage_ms: Mutex::new(None),
        })
    }

    /// The current pool; `PoolClosed` (which the store answers as unavailable) while no primary is known.
    pub fn current(&self) -> Result<Pool<D>, sqlx::Error> {
        self.pool.read().unwrap_or_else(|p| p.into_inner()).clone().ok_or(sqlx::Error::PoolClosed)
    }

    pub fn server(&self) -> Option<String> {
        self.server.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn last_outage_ms(&self) -> Option<i64> {
        *self.last_outage_ms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// When the outage that has not been resumed yet began, if there is one.
    pub fn pending_resume(&self) -> Option<Millis> {
        *self.lost_at.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Live holds were resumed (by this process or another) after the outage that began at `lost_at`.
    pub fn resumed(&self, lost_at: Millis, now: Millis) {
        let mut pending = self.lost_at.lock().unwrap_or_else(|p| p.into_inner());
        if *pending == Some(lost_at) {
            *pending = None;
            *self.last_outage_ms.lock().unwrap_or_else(|p| p.into_inner()) = Some(now.since(lost_at).0);
        }
    }

    /// The database was seen working at `now` (its clock).
    pub fn seen(&self, now: Millis) {
        *self.last_seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(now);
    }

    /// Drops the pool (closing it in the background) and remembers when the database was last seen working.
    pub fn lose(&self, why: &str) {
        let old = self.pool.write().unwrap_or_else(|p| p.into_inner()).take();
        let server = self.server.write().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(old) = old {
            tracing::warn!(
                server = server.as_deref().unwrap_or(""),
                why,
                "lost the PostgreSQL primary; answering 503 until a primary is found"
            );
            tokio::spawn(async move { old.close().await });
            let seen = *self.last_seen.lock().unwrap_or_else(|p| p.into_inner());
            let mut lost_at = self.lost_at.lock().unwrap_or_else(|p| p.into_inner());
            if lost_at.is_none() {
                *lost_at = seen;
            }
            self.lost_since.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert_with(Instant::now);
        }
    }

    /// Puts the pool of a newly found primary in the slot.
    pub fn install(&self, pool: Pool<D>, server: String) {
        let away = self.lost_since.lock().unwrap_or_else(|p| p.into_inner()).take();
        match away {
            Some(since) => {
                tracing::warn!(server = %server, away_ms = since.elapsed().as_millis() as u64, "PostgreSQL primary found again")
            }
            None => tracing::info!(server = %server, "connected to the PostgreSQL primary"),
        }
        *self.server.write().unwrap_or_else(|p| p.into_inner()) = Some(server);
        *self.pool.write().unwrap_or_else(|p| p.into_inner()) = Some(pool);
    }
}
