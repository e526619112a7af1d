//! The store over either database: [`SqlStore`], its transaction helpers, and the part of [`Store`] that is about
//! the database itself. Each area's operations are in their own file (`leases.rs`, `queue.rs`, …), written once
//! against [`Dialect`]'s primitives. A transition locks the resource's lease row (`Dialect::lock`, or SQLite's
//! `BEGIN IMMEDIATE`), reads the database clock after the lock is granted, runs the rule it is given and writes
//! back the outcome and its events in the same transaction.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use hhs_core::wire::{EventView, LockView, Replication};
use hhs_core::{FencingToken, Lease, Millis, Outcome, ResourceId};
use sqlx::{Pool, Transaction};
use tokio::sync::{broadcast, Notify};

use super::dialect::Dialect;
use super::rows::{from_leases, lease_args, lease_columns, Arg, LeaseRecord, Record};
use super::{Actor, Change, Resource, Store, StoreError};
use crate::pool::PoolSlot;

pub struct SqlStore<D: Dialect> {
    /// The current primary's pool (PostgreSQL follows failovers: `crate::primary`).
    pub(super) slot: Arc<PoolSlot<D>>,
    /// Woken after this process commits events, so its own stream need not wait for the next poll.
    pub(super) written: Notify,
    /// Renewals (and "look at the log" after a lost LISTEN connection), for the event pump.
    pub(super) changes: broadcast::Sender<Change>,
    /// Resources handed over to a waiter ([`QueueStore::queue_wakeups`]).
    pub(super) queue_wake: broadcast::Sender<ResourceId>,
    pub(super) changes_rx: tokio::sync::Mutex<broadcast::Receiver<Change>>,
    /// Rows the reaper could not read and skipped (`/metrics`: `hhs_reaper_rows_skipped`).
    pub(super) rows_skipped: std::sync::atomic::AtomicU64,
    /// PostgreSQL's LISTEN and primary-following tasks, stopped with the store.
    pub(crate) tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl<D: Dialect> SqlStore<D> {
    pub(crate) fn new(slot: Arc<PoolSlot<D>>) -> SqlStore<D> {
        let (changes, rx) = broadcast::channel(1_024);
        let (queue_wake, _) = broadcast::channel(1_024);
        SqlStore {
            slot,
            written: Notify::new(),
            changes,
            queue_wake,
            changes_rx: tokio::sync::Mutex::new(rx),
            rows_skipped: Default::default(),
            tasks: Mutex::new(vec![]),
        }
    }

    /// Where its connections come from.
    pub fn pool_slot(&self) -> &Arc<PoolSlot<D>> {
        &self.slot
    }
}

impl<D: Dialect> Drop for SqlStore<D> {
    fn drop(&mut self) {
        for task in self.tasks.lock().map(|mut t| std::mem::take(&mut *t)).unwrap_or_default() {
            task.abort();
        }
    }
}

#[async_trait]
impl<D: Dialect> Store for SqlStore<D> {
    fn kind(&self) -> &'static str {
        D::KIND
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        // A service role that may not create tables (see `service_role::limit_privileges`) starts on an up-to-date
        // schema without touching it; anything pending is applied (and needs the owner).
        let pool = self.pool().await?;
        let applied: Result<Vec<(i64,)>, StoreError> = match pool.acquire().await {
            Ok(mut conn) => Self::fetch(&mut conn, "SELECT version FROM _sqlx_migrations WHERE success", vec![]).await,
            Err(e) => Err(e.into()),
        };
        if let Ok(applied) = applied {
            if D::MIGRATOR.iter().all(|m| applied.contains(&(m.version,))) {
                return Ok(());
            }
        }
        D::migrate(&self.pool().await?).await?;
        Ok(())
    }

    fn pool_use(&self) -> Option<(u32, usize)> {
        self.slot.current().ok().map(|p| (p.size(), p.num_idle()))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        D::execute(&mut *self.pool().await?.acquire().await?, "SELECT 1", vec![]).await?;
        Ok(())
    }

    async fn now(&self) -> Result<Millis, StoreError> {
        let (ms,) = one(self.read::<(i64,)>(D::NOW, vec![]).await?)?;
        Ok(Millis(ms))
    }

    async fn resume(&self, lost_at: Millis) -> Result<u64, StoreError> {
        Ok(self.resume_holds(&self.slot.current()?, lost_at).await?.1)
    }

    async fn replication(&self) -> Result<Option<Replication>, StoreError> {
        let Some(statement) = D::REPLICATION else { return Ok(None) };
        let (commit, names, standbys): (String, String, Option<i64>) = one(self.read(statement, vec![]).await?)?;
        let synchronous = Replication::waits_for_standby(&commit, &names);
        let (server, last_outage_ms) = (self.slot.server(), self.slot.last_outage_ms());
        Ok(Some(Replication {
            server,
            synchronous_commit: commit,
            synchronous_standby_names: names,
            sync_standbys: standbys,
            synchronous,
            last_outage_ms,
        }))
    }
}

impl<D: Dialect> SqlStore<D> {
    /// The current primary's pool. After an outage, live holds are first given back the time it took
    /// ([`resume`]), so nothing is decided on the new primary before that.
    pub(super) async fn pool(&self) -> Result<Pool<D>, StoreError> {
        let pool = self.slot.current()?;
        if self.slot.pending_resume().is_some() {
            let _one = self.slot.resuming.lock().await;
            if let Some(lost_at) = self.slot.pending_resume() {
                let (now, _) = self.resume_holds(&pool, lost_at).await?;
                self.slot.resumed(lost_at, now);
            }
        }
        Ok(pool)
    }

    /// Runs a statement with its arguments in this dialect (on a transaction's connection or a pool's).
    pub(super) async fn fetch<T: Record>(
        conn: &mut D::Connection,
        statement: &str,
        args: Vec<Arg>,
    ) -> Result<Vec<T>, StoreError> {
        D::fetch(conn, statement, args).await
    }

    /// [`Self::fetch`] on a connection of the pool, outside any transaction.
    pub(super) async fn read<T: Record>(&self, statement: &str, args: Vec<Arg>) -> Result<Vec<T>, StoreError> {
        D::fetch(&mut *self.pool().await?.acquire().await?, statement, args).await
    }

    pub(super) async fn exec(
        tx: &mut Transaction<'static, D>,
        statement: &str,
        args: Vec<Arg>,
    ) -> Result<u64, StoreError> {
        D::execute(&mut **tx, statement, args).await
    }

    /// Begins a writing transaction and reads the database clock in it.
    pub(super) async fn begin(&self) -> Result<(Transaction<'static, D>, Millis), StoreError> {
        let mut tx = self.pool().await?.begin_with(D::BEGIN_WRITE).await?;
        let now = Self::db_now(&mut tx).await?;
        Ok((tx, now))
    }

    pub(super) async fn db_now(tx: &mut Transaction<'static, D>) -> Result<Millis, StoreError> {
        let (ms,) = one(Self::fetch::<(i64,)>(&mut **tx, D::NOW, vec![]).await?)?;
        Ok(Millis(ms))
    }

    /// Begins a transaction holding the resource's lease row; the clock is read after the lock is granted.
    pub(super) async fn lock_lease(
        &self,
        id: ResourceId,
    ) -> Result<(Transaction<'static, D>, Resource, Lease, Millis), StoreError> {
        let mut tx = self.pool().await?.begin_with(D::BEGIN_WRITE).await?;
        let (resource, lease) = Self::locked_lease(&mut tx, id).await?;
        let now = Self::db_now(&mut tx).await?;
        Ok((tx, resource, lease, now))
    }

    /// Holds resource `id`'s lease row until commit, then reads it with its resource and type. Two
    /// statements, not one `SELECT … FOR UPDATE`: under PostgreSQL's READ COMMITTED a locking read that
    /// waited re-reads only the locked row, and the joined resource and type rows would still be those of
    /// the statement's snapshot from before the wait — a bed set to K, or a type's policy changed, by the
    /// transaction it waited for would not be seen. The second statement's snapshot is taken after the
    /// lock is granted, so it sees everything that transaction committed.
    pub(super) async fn locked_lease(
        tx: &mut Transaction<'static, D>,
        id: ResourceId,
    ) -> Result<(Resource, Lease), StoreError> {
        Self::locked_lease_if_any(tx, id).await?.ok_or(StoreError::NotFound)
    }

    /// [`Self::locked_lease`], `None` for a resource that is gone.
    pub(super) async fn locked_lease_if_any(
        tx: &mut Transaction<'static, D>,
        id: ResourceId,
    ) -> Result<Option<(Resource, Lease)>, StoreError> {
        let lock = D::lock("leases");
        if !lock.is_empty() {
            Self::exec(
                tx,
                &format!("SELECT resource_id FROM leases WHERE resource_id = $1{lock}"),
                vec![Arg::Uuid(Some(id.0))],
            )
            .await?;
        }
        let rec: Option<LeaseRecord> = Self::fetch(&mut **tx, SELECT_LEASE, vec![Arg::Uuid(Some(id.0))]).await?.pop();
        rec.map(LeaseRecord::into_parts).transpose()
    }

    /// Commits, then wakes this process's event pump and passes on the changes the transaction made that the
    /// database does not announce ([`Self::unannounced`]).
    pub(super) async fn commit(&self, tx: Transaction<'static, D>, renewals: Vec<Change>) -> Result<(), StoreError> {
        tx.commit().await?;
        self.written.notify_one();
        for change in renewals {
            let _ = match change {
                Change::HandedOver(id) => self.queue_wake.send(id).map(drop).map_err(drop),
                other => self.changes.send(other).map(drop).map_err(drop),
            };
        }
        Ok(())
    }

    /// Has the database announce `change` to every replica at commit ([`Dialect::announce`]); what it cannot
    /// announce comes back, for [`Self::commit`] to pass on in this process.
    pub(super) async fn unannounced(
        tx: &mut Transaction<'static, D>,
        change: Change,
    ) -> Result<Vec<Change>, StoreError> {
        Ok(if D::announce(&mut **tx, &change).await? { vec![] } else { vec![change] })
    }

    pub(super) async fn insert_event(tx: &mut Transaction<'static, D>, event: EventView) -> Result<(), StoreError> {
        Self::exec(tx, INSERT_EVENT, event_args(&event)).await.map(drop)
    }

    /// Writes a transition's lease and events inside the caller's transaction; returns the renewal it made, if
    /// any, unless the database announces it (then every replica hears of it at commit).
    pub(super) async fn write(
        tx: &mut Transaction<'static, D>,
        before: &Lease,
        outcome: &Outcome,
        actor: &Actor,
    ) -> Result<Vec<Change>, StoreError> {
        if &outcome.lease != before {
            Self::exec(tx, UPDATE_LEASE, lease_args(&outcome.lease)).await?;
        }
        for event in &outcome.events {
            Self::insert_event(tx, EventView::of_lease(&outcome.lease, event, actor)).await?;
        }
        let Some(r) = LockView::renewal(before, outcome) else { return Ok(vec![]) };
        Self::unannounced(tx, Change::Renewed(Box::new(r))).await
    }
}

/// One lease; the dialect appends its row lock (`FOR UPDATE OF l` on PostgreSQL) when a transition follows.
pub const SELECT_LEASE: &str = concat!("SELECT ", lease_columns!(), from_leases!(), " WHERE l.resource_id = $1");

pub const UPDATE_LEASE: &str = "UPDATE leases SET last_token = $2, hold_id = $3, owner_id = $4, ttl_ms = $5, token = $6, \
     acquired_at_ms = $7, last_heartbeat_ms = $8, state = $9, ended_at_ms = $10, heartbeats = $11, max_gap_ms = $12, \
     delay_until_ms = $13, principal = $14, late_reported = $15, session_id = $16, group_id = $17, booked_until_ms = $18, \
     waiters = $19, pickup_by_ms = $20 WHERE resource_id = $1";

pub const INSERT_EVENT: &str =
    "INSERT INTO events (at_ms, kind, resource_id, hold_id, owner_id, fencing_token, detail, \
     principal, key_id, request_id, outcome) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

/// The arguments of [`INSERT_EVENT`]: an entry to append (its id is the log's to give).
pub fn event_args(e: &EventView) -> Vec<Arg> {
    vec![
        Arg::Int(Some(Millis::from_utc(e.at).0)),
        Arg::text(e.kind.as_str()),
        Arg::Uuid(e.resource_id.map(|r| r.0)),
        Arg::Uuid(e.hold_id.map(|h| h.0)),
        Arg::Text(e.owner_id.clone()),
        Arg::Int(e.fencing_token.map(|t| FencingToken(t).to_i64())),
        Arg::Text(Some(serde_json::to_string(&e.detail).unwrap_or_else(|_| "{}".into()))),
        Arg::Text(e.principal.clone()),
        Arg::Text(e.key_id.clone()),
        Arg::Text(e.request_id.clone()),
        Arg::text(&e.outcome),
    ]
}

/// The one row a statement returns (`RowNotFound` if none, as `fetch_one` says).
fn one<T>(mut rows: Vec<T>) -> Result<T, StoreError> {
    if rows.is_empty() {
        return Err(sqlx::Error::RowNotFound.into());
    }
    Ok(rows.swap_remove(0))
}
