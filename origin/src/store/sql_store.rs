//! The one store implementation. Its body is written once and expanded for each database (as vaultwarden's
//! `db_run!` does): each expansion is plain, concretely typed sqlx code, and what differs between the two is
//! only what [`Dialect`] says. A transition locks the resource's lease row (`Dialect::lock`, or SQLite's
//! `BEGIN IMMEDIATE`), reads the database clock after the lock is granted, runs the rule it is given and writes
//! back the outcome and its events in the same transaction.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use hhs_core::admission::{grant, Gate};
use hhs_core::group;
use hhs_core::lease::{expire, heartbeat, release, resume, retire, token_floor, AcquireCmd, Claim};
use hhs_core::queue::{self, WaiterState};
use hhs_core::session::{self, Session};
use hhs_core::status::Status;
use hhs_core::wire::{
    Detail, EventView, Hl7Detail, LockView, LogKind, Replication, SessionHold, StatusDetail, TypeDetail,
};
use hhs_core::{
    Denied, EventKind, FencingToken, GroupId, HoldId, Identifier, Lease, LeaseEvent, Millis, Outcome, OwnerId, Policy,
    Principal, ResourceId, ResourceType, SessionId, Ttl, TypeChange, TypePolicy, WaiterId,
};
use sqlx::{Pool, Transaction};
use tokio::sync::{broadcast, Notify};

use super::dialect::{Dialect, Shortcut};
use super::rows::{
    event_args, lease_args, session_args, session_update_args, waiter_args, Arg, EventRecord, LeaseRecord, LeaseRow,
    Record, SessionRecord, WaiterRecord,
};
use super::sql::{self, *};
use super::{
    Actor, Applied, Change, EventFilter, FinishedHold, GroupOp, Hl7Answer, Hl7Message, KeyRecord, LockFilter, LogPos,
    Logged, Resource, ResourceFilter, Store, StoreError, Transition, TypeRow, WaitStatus, Waited,
};
use crate::pool::PoolSlot;

pub struct SqlStore<D: Dialect> {
    /// The current primary's pool (PostgreSQL follows failovers: `crate::primary`).
    slot: Arc<PoolSlot<D>>,
    /// Woken after this process commits events, so its own stream need not wait for the next poll.
    written: Notify,
    /// Renewals (and "look at the log" after a lost LISTEN connection), for the event pump.
    pub(crate) changes: broadcast::Sender<Change>,
    /// Resources handed over to a waiter ([`Store::queue_wakeups`]).
    pub(crate) queue_wake: broadcast::Sender<ResourceId>,
    changes_rx: tokio::sync::Mutex<broadcast::Receiver<Change>>,
    /// Rows the reaper could not read and skipped (`/metrics`: `hhs_reaper_rows_skipped`).
    rows_skipped: std::sync::atomic::AtomicU64,
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

impl<D: Dialect> SqlStore<D> {
    /// The current primary's pool. After an outage, live holds are first given back the time it took
    /// ([`resume`]), so nothing is decided on the new primary before that.
    async fn pool(&self) -> Result<Pool<D>, StoreError> {
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

    /// Applies [`resume`] to every hold live when the outage began, once per outage whichever replica
    /// comes first: the `outages` table, locked, says whether one resumed after `lost_at` already.
    async fn resume_holds(&self, pool: &Pool<D>, lost_at: Millis) -> Result<(Millis, u64), StoreError> {
        let mut tx = pool.begin_with(D::BEGIN_WRITE).await?;
        Self::exec(&mut tx, D::LOCK_OUTAGES, vec![]).await?;
        let now = Self::db_now(&mut tx).await?;
        let (last,): (i64,) = Self::fetch(&mut *tx, LAST_RESUME, vec![]).await?.pop().unwrap_or((0,));
        let mut extended = 0;
        if last < lost_at.0 {
            let actor = Actor::system("failover");
            // Sessions first (the lock order is session → leases), then every hold, its session's too.
            let sessions = format!("{SELECT_RESUMABLE_SESSIONS}{}", D::lock("sessions"));
            let taken: Vec<SessionRecord> = Self::fetch(&mut *tx, &sessions, vec![Arg::Int(Some(lost_at.0))]).await?;
            for rec in taken {
                if let Some(resumed) = session::resume(&rec.into_session()?, lost_at, now) {
                    Self::exec(&mut tx, UPDATE_SESSION, session_update_args(&resumed)).await?;
                }
            }
            let held = format!("{SELECT_RESUMABLE}{}", D::lock("l"));
            let recs: Vec<LeaseRecord> = Self::fetch(&mut *tx, &held, vec![Arg::Int(Some(lost_at.0))]).await?;
            for rec in recs {
                let (_, lease) = rec.into_parts()?;
                if let Some(outcome) = resume(&lease, lost_at, now) {
                    Self::write(&mut tx, &lease, &outcome, &actor).await?;
                    extended += 1;
                }
            }
            Self::exec(
                &mut tx,
                INSERT_OUTAGE,
                vec![Arg::Int(Some(lost_at.0)), Arg::Int(Some(now.0)), Arg::Int(Some(extended as i64))],
            )
            .await?;
            tracing::warn!(
                outage_ms = now.since(lost_at).0,
                holds_extended = extended,
                "database outage: live holds given back its time"
            );
        }
        self.commit(tx, vec![]).await?;
        Ok((now, extended))
    }

    /// Runs a statement with its arguments in this dialect (on a transaction's connection or a pool's).
    async fn fetch<T: Record>(conn: &mut D::Connection, statement: &str, args: Vec<Arg>) -> Result<Vec<T>, StoreError> {
        D::fetch(conn, statement, args).await
    }

    /// [`Self::fetch`] on a connection of the pool, outside any transaction.
    async fn read<T: Record>(&self, statement: &str, args: Vec<Arg>) -> Result<Vec<T>, StoreError> {
        D::fetch(&mut *self.pool().await?.acquire().await?, statement, args).await
    }

    async fn exec(tx: &mut Transaction<'static, D>, statement: &str, args: Vec<Arg>) -> Result<u64, StoreError> {
        D::execute(&mut **tx, statement, args).await
    }

    /// Begins a writing transaction and reads the database clock in it.
    async fn begin(&self) -> Result<(Transaction<'static, D>, Millis), StoreError> {
        let mut tx = self.pool().await?.begin_with(D::BEGIN_WRITE).await?;
        let now = Self::db_now(&mut tx).await?;
        Ok((tx, now))
    }

    async fn db_now(tx: &mut Transaction<'static, D>) -> Result<Millis, StoreError> {
        let (ms,) = one(Self::fetch::<(i64,)>(&mut **tx, D::NOW, vec![]).await?)?;
        Ok(Millis(ms))
    }

    /// Begins a transaction holding the resource's lease row; the clock is read after the lock is granted.
    async fn lock_lease(
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
    async fn locked_lease(tx: &mut Transaction<'static, D>, id: ResourceId) -> Result<(Resource, Lease), StoreError> {
        Self::locked_lease_if_any(tx, id).await?.ok_or(StoreError::NotFound)
    }

    /// [`Self::locked_lease`], `None` for a resource that is gone.
    async fn locked_lease_if_any(
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

    /// Holds session `id`'s row until commit.
    async fn lock_session(tx: &mut Transaction<'static, D>, id: SessionId) -> Result<Session, StoreError> {
        let statement = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1{}", D::lock("sessions"));
        let rec: Option<SessionRecord> = Self::fetch(&mut **tx, &statement, vec![Arg::Uuid(Some(id.0))]).await?.pop();
        rec.ok_or(StoreError::NoSession)?.into_session()
    }

    /// The bed of type `ty` named `identifier`, read now.
    async fn hl7_bed(
        tx: &mut Transaction<'static, D>,
        ty: &ResourceType,
        identifier: &str,
    ) -> Result<Option<Resource>, StoreError> {
        let Ok(identifier) = Identifier::parse(identifier) else { return Ok(None) };
        let filter =
            ResourceFilter { resource_type: Some(ty.clone()), identifier: Some(identifier), after: None, limit: 1 };
        let (statement, args) = sql::resources(&filter);
        Ok(Self::fetch(&mut **tx, &statement, args).await?.pop())
    }

    /// An HL7 message's status changes inside its transaction: every bed resolved (`Err`: the first that
    /// names no resource, and nothing is set), every lease row locked in resource-id order and the beds
    /// read again under the locks (a bed changed meanwhile is seen as it is now), the clock read, then
    /// each status set and each changed bed's queue served — per resource the order of `set_status`.
    async fn hl7_apply(
        tx: &mut Transaction<'static, D>,
        ty: &ResourceType,
        updates: &[hhs_core::hl7::BedUpdate],
        actor: &Actor,
    ) -> Result<Result<Vec<Change>, String>, StoreError> {
        let mut ids = Vec::with_capacity(updates.len());
        for u in updates {
            match Self::hl7_bed(tx, ty, &u.identifier).await? {
                Some(r) => ids.push(r.id),
                None => return Ok(Err(u.identifier.clone())),
            }
        }
        let mut order: Vec<(ResourceId, &str)> =
            ids.iter().copied().zip(updates.iter().map(|u| u.identifier.as_str())).collect();
        order.sort_by_key(|(id, _)| *id);
        order.dedup_by_key(|(id, _)| *id);
        let locked = format!("{SELECT_LEASE}{}", D::lock("l"));
        let mut held: Vec<(Resource, Lease, bool)> = Vec::with_capacity(order.len());
        for (id, identifier) in &order {
            let rec: Option<LeaseRecord> = Self::fetch(&mut **tx, &locked, vec![Arg::Uuid(Some(id.0))]).await?.pop();
            let Some(rec) = rec else { return Ok(Err((*identifier).to_owned())) };
            let (_, lease) = rec.into_parts()?;
            match Self::hl7_bed(tx, ty, identifier).await? {
                Some(resource) if resource.id == *id => held.push((resource, lease, false)),
                _ => return Ok(Err((*identifier).to_owned())),
            }
        }
        let now = Self::db_now(tx).await?;
        for (id, u) in ids.iter().zip(updates) {
            let Some((resource, _, changed)) = held.iter_mut().find(|(r, _, _)| r.id == *id) else { continue };
            let from = resource.status;
            if from == u.status {
                continue;
            }
            Self::exec(tx, UPDATE_STATUS, vec![Arg::Uuid(Some(id.0)), Arg::text(u.status.code())]).await?;
            resource.status = u.status;
            *changed = true;
            let detail = Detail::Status(StatusDetail { from, to: u.status });
            Self::insert_event(
                tx,
                EventView { resource_id: Some(*id), ..EventView::new(LogKind::StatusChanged, now, actor, detail) },
            )
            .await?;
        }
        let mut changes = vec![];
        for (resource, lease, _) in held.iter().filter(|(_, _, changed)| *changed) {
            changes.extend(Self::serve_queue(tx, resource, lease, now).await?.1);
        }
        Ok(Ok(changes))
    }

    /// Commits, then wakes this process's event pump and passes on the changes the transaction made that the
    /// database does not announce ([`Self::unannounced`]).
    async fn commit(&self, tx: Transaction<'static, D>, renewals: Vec<Change>) -> Result<(), StoreError> {
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
    async fn unannounced(tx: &mut Transaction<'static, D>, change: Change) -> Result<Vec<Change>, StoreError> {
        Ok(if D::announce(&mut **tx, &change).await? { vec![] } else { vec![change] })
    }

    async fn insert_event(tx: &mut Transaction<'static, D>, event: EventView) -> Result<(), StoreError> {
        Self::exec(tx, INSERT_EVENT, event_args(&event)).await.map(drop)
    }

    /// Writes a transition's lease and events inside the caller's transaction; returns the renewal it made, if
    /// any, unless the database announces it (then every replica hears of it at commit).
    async fn write(
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

    /// [`Self::write`], then the hand-over ([`Self::serve_queue`]): whatever a transition leaves grantable
    /// goes to the first live waiter in the same transaction.
    async fn write_and_serve(
        tx: &mut Transaction<'static, D>,
        resource: &Resource,
        before: &Lease,
        outcome: &Outcome,
        now: Millis,
        actor: &Actor,
    ) -> Result<Vec<Change>, StoreError> {
        let mut changes = Self::write(tx, before, outcome, actor).await?;
        changes.extend(Self::serve_queue(tx, resource, &outcome.lease, now).await?.1);
        Ok(changes)
    }

    /// The resource's waiting requests, in arrival order (its lease row is held).
    async fn queue(tx: &mut Transaction<'static, D>, id: ResourceId) -> Result<Vec<queue::Waiter>, StoreError> {
        let recs: Vec<WaiterRecord> = Self::fetch(&mut **tx, SELECT_QUEUE, vec![Arg::Uuid(Some(id.0))]).await?;
        recs.iter().map(WaiterRecord::into_waiter).collect()
    }

    /// The waiters `lease` counts (none read when it counts none: the common case costs no query).
    async fn queue_of(tx: &mut Transaction<'static, D>, lease: &Lease) -> Result<Vec<queue::Waiter>, StoreError> {
        if lease.waiting == 0 {
            return Ok(vec![]);
        }
        Self::queue(tx, lease.resource_id).await
    }

    /// `hhs_core::queue::hand_over` on `lease` (held by the caller's transaction): the grant and its
    /// `acquired` event (by `hhs:queue`), the waiters dropped as gone (`wait_ended`), and the wake-up —
    /// PostgreSQL notifies `hhs_queue` at commit, SQLite's is sent by `commit`. Returns the lease after it,
    /// the wake-up, and the waiter granted, if one was.
    async fn serve_queue(
        tx: &mut Transaction<'static, D>,
        resource: &Resource,
        lease: &Lease,
        now: Millis,
    ) -> Result<(Lease, Vec<Change>, Option<WaiterId>), StoreError> {
        if lease.waiting == 0 {
            return Ok((lease.clone(), vec![], None));
        }
        let waiting = Self::queue(tx, resource.id).await?;
        // The gate decides as for any acquire: a status such as housekeeping grants nobody (gone waiters
        // are still dropped, so the count stays true).
        let gate = Gate { policy: &resource.policy, status: resource.status, queue: &waiting };
        let Some(h) = queue::hand_over(lease, now, &gate, HoldId(uuid::Uuid::now_v7())) else {
            return Ok((lease.clone(), vec![], None));
        };
        let actor = Actor::system("queue");
        Self::exec(tx, UPDATE_LEASE, lease_args(&h.outcome.lease)).await?;
        for e in &h.outcome.events {
            Self::insert_event(tx, EventView::of_lease(&h.outcome.lease, e, &actor)).await?;
        }
        for w in waiting.iter().filter(|w| h.gone.contains(&w.id)) {
            Self::exec(
                tx,
                END_WAITER,
                vec![
                    Arg::Uuid(Some(w.id.0)),
                    Arg::text(WaiterState::Gone.as_str()),
                    Arg::Uuid(None),
                    Arg::Int(Some(now.0)),
                ],
            )
            .await?;
            Self::insert_event(
                tx,
                EventView::of_waiter(LogKind::WaitEnded, w, resource.id, 0, Some("gone"), now, &actor),
            )
            .await?;
        }
        let mut changes = vec![];
        if let Some(g) = h.granted {
            let hold = h.outcome.lease.hold.as_ref().map(|h| h.id.0);
            Self::exec(
                tx,
                END_WAITER,
                vec![
                    Arg::Uuid(Some(g.0)),
                    Arg::text(WaiterState::Granted.as_str()),
                    Arg::Uuid(hold),
                    Arg::Int(Some(now.0)),
                ],
            )
            .await?;
            changes = Self::unannounced(tx, Change::HandedOver(resource.id)).await?;
        }
        Ok((h.outcome.lease, changes, h.granted))
    }

    /// A waiter and the resource's lease, both as of now: the waiter read, its lease row locked, the
    /// waiter read again under that lock (hand-overs write it holding the same lock).
    async fn lock_waiter(
        &self,
        id: WaiterId,
    ) -> Result<(Transaction<'static, D>, Resource, Lease, Millis, WaiterRecord), StoreError> {
        let args = || vec![Arg::Uuid(Some(id.0))];
        let first: Option<WaiterRecord> = self.read(SELECT_WAITER, args()).await?.pop();
        let (mut tx, resource, lease, now) =
            self.lock_lease(ResourceId(first.ok_or(StoreError::NotFound)?.resource_id)).await?;
        let rec: Option<WaiterRecord> = Self::fetch(&mut *tx, SELECT_WAITER, args()).await?.pop();
        Ok((tx, resource, lease, now, rec.ok_or(StoreError::NotFound)?))
    }

    /// The answer to a waiter that was handed a hold (`rec`, its lease row held): that hold, if the resource
    /// still holds it live — the waiter is then marked delivered, so the reaper leaves the hold be — and
    /// otherwise an ended wait: the hold it was handed ended before its request took it, and whatever
    /// hold the resource has now is someone else's.
    async fn deliver(
        tx: &mut Transaction<'static, D>,
        rec: &WaiterRecord,
        resource: &Resource,
        lease: &Lease,
        now: Millis,
    ) -> Result<WaitStatus, StoreError> {
        let (hold, _) = rec.handed()?;
        let id = Arg::Uuid(Some(rec.id().0));
        if queue::handed_hold(lease, now, hold).is_none() {
            Self::exec(tx, ABANDON_WAITER, vec![id]).await?;
            tracing::info!(resource_id = %resource.id, waiter_id = %rec.id(), "a hand-over ended before its request took it");
            return Ok(WaitStatus::Ended { position: None });
        }
        Self::exec(tx, DELIVER_WAITER, vec![id]).await?;
        Ok(WaitStatus::Granted(Applied {
            resource: resource.clone(),
            outcome: Outcome { lease: lease.clone(), events: vec![] },
            now,
        }))
    }

    /// For the reaper: a transaction holding lease `id`'s row, with the clock read after the lock; `None`
    /// if another transaction holds it (PostgreSQL skips it: it is reaped next pass) or it is gone. The row
    /// is read with its resource and type in a second statement, after the lock (see `locked_lease`): a
    /// transaction that committed between this statement's snapshot and the lock is seen.
    async fn lock_lease_for_reaper(
        &self,
        id: ResourceId,
    ) -> Result<Option<(Transaction<'static, D>, Resource, Lease, Millis)>, StoreError> {
        let mut tx = self.pool().await?.begin_with(D::BEGIN_WRITE).await?;
        let skip = D::SKIP_LOCKED.replace(" OF l", "");
        if !skip.is_empty() {
            let locked = format!("SELECT resource_id FROM leases WHERE resource_id = $1{skip}");
            if Self::fetch::<(uuid::Uuid,)>(&mut *tx, &locked, vec![Arg::Uuid(Some(id.0))]).await?.is_empty() {
                return Ok(None);
            }
        }
        let Some(rec) = Self::fetch::<LeaseRecord>(&mut *tx, SELECT_LEASE, vec![Arg::Uuid(Some(id.0))]).await?.pop()
        else {
            return Ok(None);
        };
        let (resource, lease) = rec.into_parts()?;
        let now = Self::db_now(&mut tx).await?;
        Ok(Some((tx, resource, lease, now)))
    }

    /// One expiry in its own transaction (and the hand-over it frees); whether it recorded one.
    async fn reap_expiry(&self, id: ResourceId) -> Result<bool, StoreError> {
        let Some((mut tx, resource, lease, now)) = self.lock_lease_for_reaper(id).await? else { return Ok(false) };
        // Renewed or ended since it was picked: nothing to do.
        let Some(outcome) = expire(&lease, now, resource.policy.lock_delay()) else { return Ok(false) };
        let changes =
            Self::write_and_serve(&mut tx, &resource, &lease, &outcome, now, &Actor::system("reaper")).await?;
        self.commit(tx, changes).await?;
        Ok(true)
    }

    /// One queue served in its own transaction (a lock-delay ended, a waiter went away).
    async fn reap_queue(&self, id: ResourceId) -> Result<(), StoreError> {
        let Some((mut tx, resource, lease, now)) = self.lock_lease_for_reaper(id).await? else { return Ok(()) };
        let (_, changes, _) = Self::serve_queue(&mut tx, &resource, &lease, now).await?;
        self.commit(tx, changes).await
    }

    /// A hand-over its request never took (`hhs_core::queue::reclaim`): the hold is given back without a
    /// lock-delay, the waiter recorded as gone (`wait_ended`, `not_delivered`) and the next one served.
    async fn reap_undelivered(&self, waiter: WaiterId, resource_id: ResourceId) -> Result<(), StoreError> {
        let Some((mut tx, resource, lease, now)) = self.lock_lease_for_reaper(resource_id).await? else {
            return Ok(());
        };
        let Some(rec) =
            Self::fetch::<WaiterRecord>(&mut *tx, SELECT_WAITER, vec![Arg::Uuid(Some(waiter.0))]).await?.pop()
        else {
            return Ok(());
        };
        let (hold, granted_at) = rec.handed()?;
        // Delivered meanwhile (its request came after all), or not yet past the pickup window.
        if rec.state()? != WaiterState::Granted || !queue::abandoned(granted_at, now) {
            return Ok(());
        }
        let actor = Actor::system("queue");
        Self::exec(&mut tx, ABANDON_WAITER, vec![Arg::Uuid(Some(waiter.0))]).await?;
        Self::insert_event(
            &mut tx,
            EventView::of_waiter(
                LogKind::WaitEnded,
                &rec.into_waiter()?,
                resource.id,
                0,
                Some("not_delivered"),
                now,
                &actor,
            ),
        )
        .await?;
        let mut changes = vec![];
        if let Some(outcome) = queue::reclaim(&lease, now, hold, granted_at) {
            tracing::info!(resource_id = %resource.id, waiter_id = %waiter, "a hand-over was never taken by its request; the hold is given back");
            changes = Self::write_and_serve(&mut tx, &resource, &lease, &outcome, now, &actor).await?;
        }
        self.commit(tx, changes).await
    }

    /// A session's lapse in its own transaction (the lock order is session, then leases; a lapse touches
    /// only the session's row: its holds lapse with it by the expiry rule).
    async fn reap_session(&self, id: SessionId) -> Result<(), StoreError> {
        let mut tx = self.pool().await?.begin_with(D::BEGIN_WRITE).await?;
        let locked = format!("{LOCK_SESSION_SKIP}{}", D::SKIP_LOCKED_SESSIONS);
        let Some(rec) = Self::fetch::<SessionRecord>(&mut *tx, &locked, vec![Arg::Uuid(Some(id.0))]).await?.pop()
        else {
            return Ok(());
        };
        let current = rec.into_session()?;
        let now = Self::db_now(&mut tx).await?;
        if let Some(ended) = session::lapse(&current, now) {
            Self::exec(&mut tx, UPDATE_SESSION, session_update_args(&ended)).await?;
            Self::insert_event(
                &mut tx,
                EventView::of_session(LogKind::SessionLapsed, &ended, now, &Actor::system("reaper")),
            )
            .await?;
        }
        self.commit(tx, vec![]).await
    }

    /// A candidate the reaper could not handle: a row it cannot read is logged (by id: never its contents)
    /// and counted, and the pass goes on; anything else (the database away) ends the pass.
    fn skip_bad_row(&self, what: &'static str, id: uuid::Uuid, e: StoreError) -> Result<(), StoreError> {
        let bad = matches!(
            e,
            StoreError::Corrupt(_) | StoreError::Db(sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_))
        );
        if !bad {
            return Err(e);
        }
        self.rows_skipped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Our own words about the row (which column), never its values.
        let why = match &e {
            StoreError::Corrupt(m) => m.clone(),
            _ => "a column cannot be decoded".to_owned(),
        };
        tracing::error!(row = what, id = %id, why = %why, "reaper: a stored row cannot be read; skipped (the rest go on)");
        Ok(())
    }

    /// Gives up a resource's name: its last token becomes the name's floor.
    async fn give_up_name(
        tx: &mut Transaction<'static, D>,
        r: &Resource,
        last: FencingToken,
    ) -> Result<(), StoreError> {
        let args =
            vec![Arg::text(r.resource_type.as_str()), Arg::text(r.identifier.as_str()), Arg::Int(Some(last.to_i64()))];
        Self::exec(tx, RAISE_FLOOR, args).await.map(drop)
    }

    /// Takes a name: the lease continues above the name's floor.
    async fn take_name(tx: &mut Transaction<'static, D>, r: &Resource, last: FencingToken) -> Result<(), StoreError> {
        let args = vec![Arg::text(r.resource_type.as_str()), Arg::text(r.identifier.as_str())];
        let floor: Option<(i64,)> = Self::fetch(&mut **tx, SELECT_FLOOR, args).await?.pop();
        let raised = token_floor(last, floor.and_then(|(f,)| FencingToken::from_i64(f)));
        if raised > last {
            Self::exec(tx, SET_LAST_TOKEN, vec![Arg::Uuid(Some(r.id.0)), Arg::Int(Some(raised.to_i64()))]).await?;
        }
        Ok(())
    }

    /// A type's row (`lock`: this dialect's row lock, or "").
    async fn type_row(
        tx: &mut Transaction<'static, D>,
        name: &ResourceType,
        lock: &str,
    ) -> Result<Option<TypeRow>, StoreError> {
        let statement = format!("{SELECT_TYPES} WHERE name = $1{lock}");
        Ok(Self::fetch(&mut **tx, &statement, vec![Arg::text(name.as_str())]).await?.pop())
    }

    fn type_event(old: Option<&TypeRow>, new: &TypeRow, at: Millis, actor: &Actor) -> EventView {
        let detail = TypeDetail { name: new.name.as_str().into(), old: old.map(TypeRow::view), new: new.view() };
        EventView::new(LogKind::TypeUpdated, at, actor, Detail::Type(detail))
    }

    async fn position(&self, statement: &str, args: Vec<Arg>) -> Result<Option<LogPos>, StoreError> {
        Ok(self.read(statement, args).await?.pop())
    }
}

#[async_trait]
impl<D: Dialect> Store for SqlStore<D> {
    fn kind(&self) -> &'static str {
        D::KIND
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        // A service role that may not create tables (see `grant_service_role`) starts on an up-to-date
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

    async fn create_resource(
        &self,
        id: ResourceId,
        ty: &ResourceType,
        ident: &Identifier,
        seed: &TypePolicy,
        actor: &Actor,
    ) -> Result<Resource, StoreError> {
        let (mut tx, now) = self.begin().await?;
        Self::exec(&mut tx, ENSURE_TYPE, TypeRow { name: ty.clone(), policy: *seed, updated_at_ms: now.0 }.args())
            .await?;
        let policy = Self::type_row(&mut tx, ty, "").await?.ok_or(StoreError::NotFound)?.policy;
        // A new resource starts in its type's default status.
        let resource = Resource {
            id,
            resource_type: ty.clone(),
            identifier: ident.clone(),
            created_at: now,
            status: policy.default_status,
            policy,
        };
        let status = Arg::text(resource.status.code());
        let args = vec![
            Arg::Uuid(Some(id.0)),
            Arg::text(ty.as_str()),
            Arg::text(ident.as_str()),
            Arg::Int(Some(now.0)),
            status,
        ];
        Self::exec(&mut tx, INSERT_RESOURCE, args).await?;
        Self::exec(&mut tx, INSERT_LEASE, vec![Arg::Uuid(Some(id.0))]).await?;
        Self::take_name(&mut tx, &resource, FencingToken(0)).await?;
        Self::insert_event(&mut tx, resource.event(LogKind::ResourceCreated, now, actor)).await?;
        self.commit(tx, vec![]).await?;
        Ok(resource)
    }

    async fn update_resource(&self, id: ResourceId, ident: &Identifier, actor: &Actor) -> Result<Resource, StoreError> {
        let (mut tx, mut resource, lease, now) = self.lock_lease(id).await?;
        Self::give_up_name(&mut tx, &resource, lease.last_token).await?;
        Self::exec(&mut tx, UPDATE_IDENTIFIER, vec![Arg::Uuid(Some(id.0)), Arg::text(ident.as_str())]).await?;
        resource.identifier = ident.clone();
        Self::take_name(&mut tx, &resource, lease.last_token).await?;
        Self::insert_event(&mut tx, resource.event(LogKind::ResourceUpdated, now, actor)).await?;
        self.commit(tx, vec![]).await?;
        Ok(resource)
    }

    async fn set_status(&self, id: ResourceId, status: Status, actor: &Actor) -> Result<Resource, StoreError> {
        let (mut tx, mut resource, lease, now) = self.lock_lease(id).await?;
        let from = resource.status;
        if from == status {
            tx.commit().await?;
            return Ok(resource);
        }
        Self::exec(&mut tx, UPDATE_STATUS, vec![Arg::Uuid(Some(id.0)), Arg::text(status.code())]).await?;
        resource.status = status;
        let detail = Detail::Status(StatusDetail { from, to: status });
        Self::insert_event(
            &mut tx,
            EventView { resource_id: Some(id), ..EventView::new(LogKind::StatusChanged, now, actor, detail) },
        )
        .await?;
        let (_, changes, _) = Self::serve_queue(&mut tx, &resource, &lease, now).await?;
        self.commit(tx, changes).await?;
        Ok(resource)
    }

    async fn hl7_ingest(&self, m: &Hl7Message, actor: &Actor) -> Result<Hl7Answer, StoreError> {
        use hhs_core::hl7::{self, AckCode, Repeat};
        let i = &m.inbound;
        let sender = format!("{}^{}", i.sending_application, i.sending_facility);
        let message_type = format!("{}^{}", i.code, i.trigger);
        let key = || vec![Arg::text(&actor.principal), Arg::text(&sender), Arg::text(&i.control_id)];
        let mut tx = self.pool().await?.begin_with(D::BEGIN_WRITE).await?;
        let claim_at = Self::db_now(&mut tx).await?;
        let mut args = key();
        args.extend([
            Arg::text(&m.digest),
            Arg::Int(Some(claim_at.0)),
            Arg::text(&message_type),
            Arg::text(""),
            Arg::text(""),
        ]);
        args.push(Arg::Int(Some(hl7::expired_before(claim_at, m.window).0)));
        let claimed = Self::exec(&mut tx, CLAIM_HL7, args).await? == 1;
        // After the claim (which may have waited for a concurrent copy's transaction).
        let now = Self::db_now(&mut tx).await?;
        let stamp = now.to_utc().format("%Y%m%d%H%M%S").to_string();
        let answer =
            |code: AckCode, why: &str| hl7::ack(i, code, why, &stamp, &uuid::Uuid::now_v7().simple().to_string());
        let event = |code: AckCode, beds: Vec<String>, duplicate: bool| {
            let d = Hl7Detail {
                control_id: i.control_id.clone(),
                message_type: message_type.clone(),
                sender: sender.clone(),
                ack_code: code.as_str().into(),
                beds,
                duplicate,
            };
            EventView::new(LogKind::Hl7Received, now, actor, Detail::Hl7(d))
        };
        if !claimed {
            let (digest, ack, code, at): (String, String, String, i64) = Self::fetch(&mut *tx, SELECT_HL7, key())
                .await?
                .pop()
                .ok_or_else(|| StoreError::Corrupt("an HL7 record vanished under its claim".into()))?;
            let stored = hl7::Answered { digest, ack, at: Millis(at) };
            return match hl7::repeat(Some(&stored), &m.digest, now, m.window) {
                // Nothing written: a resend storm adds nothing to the log.
                Repeat::Same | Repeat::New => {
                    tx.rollback().await?;
                    Ok(Hl7Answer { ack: stored.ack, code: AckCode::parse(&code), repeat: Repeat::Same })
                }
                Repeat::Reused => {
                    let ack = answer(AckCode::AR, &hl7::reused(i));
                    Self::insert_event(&mut tx, event(AckCode::AR, vec![], true)).await?;
                    self.commit(tx, vec![]).await?;
                    Ok(Hl7Answer { ack, code: AckCode::AR, repeat: Repeat::Reused })
                }
            };
        }
        let mut changes = vec![];
        let (code, why, beds) = match &m.plan {
            Err((code, why)) => (*code, why.clone(), vec![]),
            Ok(updates) => match Self::hl7_apply(&mut tx, &m.bed_type, updates, actor).await? {
                Err(unknown) => (
                    AckCode::AE,
                    format!(
                        "unknown bed {unknown:?}: no resource of type {} with that identifier",
                        m.bed_type.as_str()
                    ),
                    vec![],
                ),
                Ok(c) => {
                    changes = c;
                    let beds = updates.iter().map(|u| format!("{} {}", u.identifier, u.status.code())).collect();
                    (AckCode::AA, format!("{} bed status(es) set", updates.len()), beds)
                }
            },
        };
        let ack = answer(code, &why);
        if hl7::recorded(code) {
            let mut args = key();
            args.extend([Arg::text(code.as_str()), Arg::text(&why), Arg::text(&ack)]);
            Self::exec(&mut tx, RECORD_HL7, args).await?;
        } else {
            Self::exec(&mut tx, UNCLAIM_HL7, key()).await?;
        }
        Self::insert_event(&mut tx, event(code, beds, false)).await?;
        self.commit(tx, changes).await?;
        // Outside the message's transaction: a failure here costs only a later retry.
        let expired = vec![Arg::Int(Some(hl7::expired_before(now, m.window).0))];
        let expire = async {
            let mut tx = self.pool().await?.begin_with(D::BEGIN_WRITE).await?;
            Self::exec(&mut tx, EXPIRE_HL7, expired).await?;
            tx.commit().await?;
            Ok::<_, StoreError>(())
        };
        if let Err(e) = expire.await {
            tracing::warn!(error = %e, "could not delete expired HL7 records");
        }
        Ok(Hl7Answer { ack, code, repeat: Repeat::New })
    }

    async fn delete_resource(&self, id: ResourceId, actor: &Actor) -> Result<Resource, StoreError> {
        let (mut tx, resource, lease, now) = self.lock_lease(id).await?;
        let outcome = retire(&lease, now, resource.policy.lock_delay()).map_err(StoreError::Denied)?;
        // No hand-over: the resource goes (its waiters with it).
        Self::write(&mut tx, &lease, &outcome, actor).await?;
        Self::give_up_name(&mut tx, &resource, lease.last_token).await?;
        Self::exec(&mut tx, DELETE_RESOURCE, vec![Arg::Uuid(Some(id.0))]).await?;
        Self::insert_event(&mut tx, resource.event(LogKind::ResourceDeleted, now, actor)).await?;
        self.commit(tx, vec![]).await?;
        Ok(resource)
    }

    async fn resources(&self, filter: &ResourceFilter) -> Result<Vec<Resource>, StoreError> {
        let (statement, args) = sql::resources(filter);
        self.read(&statement, args).await
    }

    async fn leases(&self, filter: &LockFilter) -> Result<(Vec<(Resource, Lease)>, Millis), StoreError> {
        let (statement, args) = sql::leases(filter);
        let mut tx = self.pool().await?.begin().await?;
        let recs: Vec<LeaseRecord> = Self::fetch(&mut *tx, &statement, args).await?;
        let now = Self::db_now(&mut tx).await?;
        tx.commit().await?;
        Ok((recs.into_iter().map(LeaseRecord::into_parts).collect::<Result<_, _>>()?, now))
    }

    async fn transact(&self, id: ResourceId, actor: &Actor, transition: Transition) -> Result<Applied, StoreError> {
        let (mut tx, resource, lease, now) = self.lock_lease(id).await?;
        let outcome = transition(&resource, &lease, now).map_err(StoreError::Denied)?;
        let renewals = Self::write_and_serve(&mut tx, &resource, &lease, &outcome, now, actor).await?;
        self.commit(tx, renewals).await?;
        Ok(Applied { resource, outcome, now })
    }

    async fn acquire(&self, id: ResourceId, cmd: AcquireCmd, actor: &Actor) -> Result<Applied, StoreError> {
        let locked = |cmd| async move {
            match self.acquire_or_wait(id, cmd, None, actor).await? {
                Waited::Granted(applied) => Ok(applied),
                Waited::Queued { .. } => Err(StoreError::Corrupt("queued without a wait".into())),
            }
        };
        let rec = match D::acquire_in_one_statement(&self.pool().await?, id, &cmd, actor).await? {
            Shortcut::Done(rec) => rec,
            Shortcut::None => return locked(cmd).await,
            Shortcut::NotSimple => {
                // Refused in a snapshot read, in the one admission order, for a reason that held at the
                // instant of that read (outside the type's bounds, a status other than U, another's live
                // hold): refused without the row lock — what the locked path would have said then. The queue
                // comes after all of these, so the snapshot needs none. Anything else (free after all,
                // lapsed, ours, in lock-delay) takes the lock.
                let (resource, lease, now) = self.lease(id).await?;
                let gate = Gate { policy: &resource.policy, status: resource.status, queue: &[] };
                let rule = || hhs_core::lease::acquire(&lease, now, &cmd, resource.policy.lock_delay());
                if let Err(d @ (Denied::TtlOutOfBounds { .. } | Denied::Unavailable { .. } | Denied::LockHeld { .. })) =
                    grant(&gate, &lease, now, cmd.ttl, (&cmd.principal, &cmd.owner), rule)
                {
                    return Err(StoreError::Denied(d));
                }
                return locked(cmd).await;
            }
        };
        self.written.notify_one();
        let (resource, lease) = rec.into_parts()?;
        let hold = lease
            .hold
            .clone()
            .ok_or_else(|| StoreError::Corrupt("the one-statement acquire returned no hold".into()))?;
        let now = hold.acquired_at;
        let events = vec![LeaseEvent { kind: EventKind::Acquired, at: now, hold }];
        Ok(Applied { resource, outcome: Outcome { lease, events }, now })
    }

    async fn heartbeat(&self, id: ResourceId, claim: Claim, actor: &Actor) -> Result<Applied, StoreError> {
        if let Shortcut::Done(rec) = D::heartbeat_in_one_statement(&self.pool().await?, id, &claim).await? {
            let (resource, lease) = rec.into_parts()?;
            // The clock the renewal used, or the hold's own if that was later (it never moves back).
            let now = lease.hold.as_ref().map_or(Millis(0), |h| h.last_heartbeat);
            return Ok(Applied { resource, outcome: Outcome { lease, events: vec![] }, now });
        }
        self.transact(id, actor, Box::new(move |_, current, now| heartbeat(current, now, &claim))).await
    }

    async fn release(&self, id: ResourceId, claim: Claim, actor: &Actor) -> Result<Applied, StoreError> {
        if let Shortcut::Done(rec) = D::release_in_one_statement(&self.pool().await?, id, &claim, actor).await? {
            self.written.notify_one();
            let (resource, lease) = rec.into_parts()?;
            let hold = lease
                .hold
                .clone()
                .ok_or_else(|| StoreError::Corrupt("the one-statement release returned no hold".into()))?;
            let now = hold.ended_at(Millis(0)).unwrap_or(hold.last_heartbeat);
            let events = vec![LeaseEvent { kind: EventKind::Released, at: now, hold }];
            return Ok(Applied { resource, outcome: Outcome { lease, events }, now });
        }
        self.transact(id, actor, Box::new(move |_, current, now| release(current, now, &claim))).await
    }

    async fn acquire_or_wait(
        &self,
        id: ResourceId,
        cmd: AcquireCmd,
        wait: Option<(WaiterId, Millis)>,
        actor: &Actor,
    ) -> Result<Waited, StoreError> {
        let (mut tx, resource, lease, now) = self.lock_lease(id).await?;
        let waiting = Self::queue_of(&mut tx, &lease).await?;
        let gate = Gate { policy: &resource.policy, status: resource.status, queue: &waiting };
        let rule = || hhs_core::lease::acquire(&lease, now, &cmd, resource.policy.lock_delay());
        match (grant(&gate, &lease, now, cmd.ttl, (&cmd.principal, &cmd.owner), rule), wait) {
            (Ok(outcome), _) => {
                let changes = Self::write(&mut tx, &lease, &outcome, actor).await?;
                self.commit(tx, changes).await?;
                Ok(Waited::Granted(Applied { resource, outcome, now }))
            }
            // What waiting can end: a hold, a lock-delay, a queue, a status such as housekeeping.
            (
                Err(
                    Denied::LockHeld { .. }
                    | Denied::LockDelay { .. }
                    | Denied::Queued { .. }
                    | Denied::Unavailable { .. },
                ),
                Some((waiter_id, wait)),
            ) => {
                let w = queue::Waiter::new(waiter_id, cmd.principal, cmd.owner, cmd.ttl, now, wait);
                Self::exec(&mut tx, INSERT_WAITER, waiter_args(&w, id)).await?;
                Self::exec(&mut tx, UPDATE_LEASE, lease_args(&queue::enqueue(&lease))).await?;
                let position = queue::position(&[waiting, vec![w.clone()]].concat(), now, waiter_id).unwrap_or(1);
                Self::insert_event(&mut tx, EventView::of_waiter(LogKind::Queued, &w, id, position, None, now, actor))
                    .await?;
                self.commit(tx, vec![]).await?;
                Ok(Waited::Queued { position })
            }
            (Err(d), _) => Err(StoreError::Denied(d)),
        }
    }

    async fn poll_wait(&self, waiter: WaiterId) -> Result<WaitStatus, StoreError> {
        let (mut tx, resource, lease, now, rec) = self.lock_waiter(waiter).await?;
        match rec.state()? {
            WaiterState::Granted | WaiterState::Delivered => {
                let answer = Self::deliver(&mut tx, &rec, &resource, &lease, now).await?;
                tx.commit().await?;
                Ok(answer)
            }
            WaiterState::Waiting => {
                let me = rec.into_waiter()?;
                if me.is_live(now) {
                    Self::exec(
                        &mut tx,
                        SEEN_WAITER,
                        vec![Arg::Uuid(Some(waiter.0)), Arg::Int(Some(me.seen(now).alive_until.0))],
                    )
                    .await?;
                }
                // Its own try: a lock-delay that ended, a waiter ahead that went away.
                let (after, changes, to) = Self::serve_queue(&mut tx, &resource, &lease, now).await?;
                let granted = to == Some(waiter);
                if granted {
                    // Granted and answered in one transaction: delivered.
                    Self::exec(&mut tx, DELIVER_WAITER, vec![Arg::Uuid(Some(waiter.0))]).await?;
                }
                let position = queue::position(&Self::queue(&mut tx, resource.id).await?, now, waiter);
                self.commit(tx, changes).await?;
                Ok(match (granted, position) {
                    (true, _) => WaitStatus::Granted(Applied {
                        resource,
                        outcome: Outcome { lease: after, events: vec![] },
                        now,
                    }),
                    (false, Some(position)) => WaitStatus::Waiting { position },
                    (false, None) => WaitStatus::Ended { position: None },
                })
            }
            WaiterState::TimedOut | WaiterState::Gone => {
                tx.commit().await?;
                Ok(WaitStatus::Ended { position: None })
            }
        }
    }

    async fn end_wait(&self, waiter: WaiterId, gone: bool, actor: &Actor) -> Result<WaitStatus, StoreError> {
        let (mut tx, resource, lease, now, rec) = self.lock_waiter(waiter).await?;
        match (rec.state()?, gone) {
            (WaiterState::Waiting, _) => {
                let me = rec.into_waiter()?;
                let position = queue::position(&Self::queue(&mut tx, resource.id).await?, now, waiter);
                let (state, why) =
                    if gone { (WaiterState::Gone, "gone") } else { (WaiterState::TimedOut, "timed_out") };
                Self::exec(
                    &mut tx,
                    END_WAITER,
                    vec![Arg::Uuid(Some(waiter.0)), Arg::text(state.as_str()), Arg::Uuid(None), Arg::Int(Some(now.0))],
                )
                .await?;
                let left = queue::leave(&lease);
                Self::exec(&mut tx, UPDATE_LEASE, lease_args(&left)).await?;
                Self::insert_event(
                    &mut tx,
                    EventView::of_waiter(
                        LogKind::WaitEnded,
                        &me,
                        resource.id,
                        position.unwrap_or(0),
                        Some(why),
                        now,
                        actor,
                    ),
                )
                .await?;
                // It may have been the one a free resource was waiting on.
                let (_, changes, _) = Self::serve_queue(&mut tx, &resource, &left, now).await?;
                self.commit(tx, changes).await?;
                Ok(WaitStatus::Ended { position })
            }
            // Granted (or marked delivered in a transaction whose answer never left): its request went
            // before the answer, so nobody would heartbeat the hold — given back unless it was touched.
            (WaiterState::Granted | WaiterState::Delivered, true) => {
                let (hold, _) = rec.handed()?;
                if rec.state()? == WaiterState::Granted {
                    Self::exec(&mut tx, ABANDON_WAITER, vec![Arg::Uuid(Some(waiter.0))]).await?;
                }
                let mut changes = vec![];
                if let Some(outcome) = queue::give_back(&lease, now, hold) {
                    changes = Self::write_and_serve(&mut tx, &resource, &lease, &outcome, now, &Actor::system("queue"))
                        .await?;
                }
                self.commit(tx, changes).await?;
                Ok(WaitStatus::Ended { position: None })
            }
            (WaiterState::Granted | WaiterState::Delivered, false) => {
                let answer = Self::deliver(&mut tx, &rec, &resource, &lease, now).await?;
                tx.commit().await?;
                Ok(answer)
            }
            // Ended already.
            (WaiterState::TimedOut | WaiterState::Gone, _) => {
                tx.commit().await?;
                Ok(WaitStatus::Ended { position: None })
            }
        }
    }

    fn queue_wakeups(&self) -> broadcast::Receiver<ResourceId> {
        self.queue_wake.subscribe()
    }

    async fn reap(&self, batch: u32) -> Result<usize, StoreError> {
        // Candidates are picked with the clock as the pass begins; each is then decided in its own short
        // transaction, locked first and the clock read after the lock (a lapse, an abandoned hand-over or
        // a lapsed session stays so as time passes, so nothing picked is wrongly decided). Pages go on
        // after the last candidate seen, so one that is skipped (locked elsewhere, or unreadable) never
        // holds up those after it.
        let start = Store::now(self).await?;
        let limit = || Arg::Int(Some(i64::from(batch.max(1))));
        let full = |n: usize| n >= batch.max(1) as usize;
        let mut expired = 0;
        let mut after = (i64::MIN, uuid::Uuid::nil());
        loop {
            let args = vec![Arg::Int(Some(start.0)), limit(), Arg::Int(Some(after.0)), Arg::Uuid(Some(after.1))];
            let page: Vec<(uuid::Uuid, i64)> = self.read(SELECT_EXPIRED, args).await?;
            for &(id, at) in &page {
                after = (at, id);
                match self.reap_expiry(ResourceId(id)).await {
                    Ok(done) => expired += usize::from(done),
                    Err(e) => self.skip_bad_row("lease", id, e)?,
                }
            }
            if !full(page.len()) {
                break;
            }
        }
        // Hand-overs whose request never took them.
        let mut after = (i64::MIN, uuid::Uuid::nil());
        loop {
            let args = vec![
                Arg::Int(Some(start.0 - queue::PICKUP_TIMEOUT.0)),
                limit(),
                Arg::Int(Some(after.0)),
                Arg::Uuid(Some(after.1)),
            ];
            let page: Vec<(uuid::Uuid, uuid::Uuid, i64)> = self.read(SELECT_UNDELIVERED, args).await?;
            for &(waiter, resource, at) in &page {
                after = (at, waiter);
                if let Err(e) = self.reap_undelivered(WaiterId(waiter), ResourceId(resource)).await {
                    self.skip_bad_row("waiter", waiter, e)?;
                }
            }
            if !full(page.len()) {
                break;
            }
        }
        // Queues that can be served now (a lock-delay ended) or hold waiters no longer there.
        let mut after = uuid::Uuid::nil();
        loop {
            let args = vec![
                Arg::Int(Some(start.0)),
                limit(),
                Arg::Int(Some(queue::PRESENCE_TIMEOUT.0)),
                Arg::Uuid(Some(after)),
            ];
            let page: Vec<(uuid::Uuid,)> = self.read(SELECT_SERVABLE, args).await?;
            for &(id,) in &page {
                after = id;
                if let Err(e) = self.reap_queue(ResourceId(id)).await {
                    self.skip_bad_row("lease", id, e)?;
                }
            }
            if !full(page.len()) {
                break;
            }
        }
        let (mut tx, now) = self.begin().await?;
        Self::exec(&mut tx, DELETE_ENDED_WAITERS, vec![Arg::Int(Some(now.0 - 60_000))]).await?;
        // Through `commit`, so each pass also wakes this replica's event pump, as a pass always has.
        self.commit(tx, vec![]).await?;
        let mut after = uuid::Uuid::nil();
        loop {
            let args = vec![Arg::Int(Some(start.0)), limit(), Arg::Uuid(Some(after))];
            let page: Vec<(uuid::Uuid,)> = self.read(SELECT_LAPSED_SESSIONS, args).await?;
            for &(id,) in &page {
                after = id;
                if let Err(e) = self.reap_session(SessionId(id)).await {
                    self.skip_bad_row("session", id, e)?;
                }
            }
            if !full(page.len()) {
                break;
            }
        }
        Ok(expired)
    }

    fn rows_skipped(&self) -> u64 {
        self.rows_skipped.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn open_session(
        &self,
        id: SessionId,
        principal: &Principal,
        owner: &OwnerId,
        ttl: Ttl,
        actor: &Actor,
    ) -> Result<Session, StoreError> {
        let (mut tx, now) = self.begin().await?;
        let opened = session::open(id, principal.clone(), owner.clone(), ttl, now);
        Self::exec(&mut tx, INSERT_SESSION, session_args(&opened)).await?;
        Self::insert_event(&mut tx, EventView::of_session(LogKind::SessionOpened, &opened, now, actor)).await?;
        self.commit(tx, vec![]).await?;
        Ok(opened)
    }

    async fn sessions(&self, id: Option<SessionId>) -> Result<(Vec<(Session, u64)>, Millis), StoreError> {
        // One session's holds are counted for it alone, not for every open session.
        let (statement, count, args) = match id {
            Some(id) => (
                format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1"),
                format!("{COUNT_SESSION_HOLDS} AND session_id = $1 GROUP BY session_id"),
                vec![Arg::Uuid(Some(id.0))],
            ),
            None => (
                format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE state = 'OPEN' ORDER BY opened_at_ms, id"),
                format!("{COUNT_SESSION_HOLDS} GROUP BY session_id"),
                vec![],
            ),
        };
        let mut tx = self.pool().await?.begin().await?;
        let recs: Vec<SessionRecord> = Self::fetch(&mut *tx, &statement, args.clone()).await?;
        let counts: Vec<(uuid::Uuid, i64)> = Self::fetch(&mut *tx, &count, args).await?;
        let now = Self::db_now(&mut tx).await?;
        tx.commit().await?;
        if id.is_some() && recs.is_empty() {
            return Err(StoreError::NoSession);
        }
        recs.into_iter()
            .map(|r| {
                let s = r.into_session()?;
                let holds = counts.iter().find(|(c, _)| *c == s.id.0).map_or(0, |(_, n)| *n as u64);
                Ok((s, holds))
            })
            .collect::<Result<Vec<_>, StoreError>>()
            .map(|all| (all, now))
    }

    async fn keepalive(
        &self,
        id: SessionId,
        principal: &Principal,
    ) -> Result<(Session, Vec<SessionHold>, Millis), StoreError> {
        let mut tx = self.pool().await?.begin_with(D::BEGIN_WRITE).await?;
        // The session's row, then its holds' rows in resource-id order (as every multi-row lock), then the
        // clock: a renewal decided with a time read before a lock wait would be dated before it.
        let current = Self::lock_session(&mut tx, id).await?;
        let locks = format!("{LOCK_SESSION_LEASES}{}", D::lock("l"));
        let _: Vec<(uuid::Uuid,)> = Self::fetch(&mut *tx, &locks, vec![Arg::Uuid(Some(id.0))]).await?;
        let now = Self::db_now(&mut tx).await?;
        let renewed = session::keepalive(&current, now, principal).map_err(StoreError::Denied)?;
        Self::exec(&mut tx, UPDATE_SESSION, session_update_args(&renewed)).await?;
        let args = vec![
            Arg::Uuid(Some(id.0)),
            Arg::Int(Some(renewed.last_keepalive.0)),
            Arg::Int(Some(renewed.ttl.as_millis().0)),
            Arg::Int(Some(now.0)),
        ];
        let (mut holds, renewals) = match D::renew_session_holds_announced(&mut *tx, args.clone()).await? {
            Some(holds) => (holds, vec![]),
            None => {
                let rows: Vec<LeaseRow> = Self::fetch(&mut *tx, RENEW_SESSION_HOLDS, args).await?;
                let leases = rows.into_iter().map(LeaseRow::into_lease).collect::<Result<Vec<_>, _>>()?;
                let holds = leases
                    .iter()
                    .filter_map(|l| {
                        l.hold.as_ref().map(|h| SessionHold { resource_id: l.resource_id, fencing_token: h.token.0 })
                    })
                    .collect();
                (holds, leases.iter().filter_map(LockView::renewed).map(|r| Change::Renewed(Box::new(r))).collect())
            }
        };
        holds.sort();
        self.commit(tx, renewals).await?;
        Ok((renewed, holds, now))
    }

    async fn close_session(
        &self,
        id: SessionId,
        principal: &Principal,
        actor: &Actor,
    ) -> Result<(Session, Millis), StoreError> {
        let mut tx = self.pool().await?.begin_with(D::BEGIN_WRITE).await?;
        let current = Self::lock_session(&mut tx, id).await?;
        // The holds' rows locked first, then read with their resources and types (see `locked_lease`).
        let locks = format!("{LOCK_SESSION_LEASES}{}", D::lock("l"));
        let _: Vec<(uuid::Uuid,)> = Self::fetch(&mut *tx, &locks, vec![Arg::Uuid(Some(id.0))]).await?;
        let recs: Vec<LeaseRecord> = Self::fetch(&mut *tx, SELECT_SESSION_LEASES, vec![Arg::Uuid(Some(id.0))]).await?;
        let now = Self::db_now(&mut tx).await?;
        let closed = session::close(&current, now, principal).map_err(StoreError::Denied)?;
        Self::exec(&mut tx, UPDATE_SESSION, session_update_args(&closed)).await?;
        let mut changes = vec![];
        for rec in recs {
            let (resource, lease) = rec.into_parts()?;
            if let Some(outcome) = session::end_hold(&lease, &current, now) {
                changes.extend(Self::write_and_serve(&mut tx, &resource, &lease, &outcome, now, actor).await?);
            }
        }
        Self::insert_event(&mut tx, EventView::of_session(LogKind::SessionClosed, &closed, now, actor)).await?;
        self.commit(tx, changes).await?;
        Ok((closed, now))
    }

    async fn acquire_in(
        &self,
        id: ResourceId,
        session_id: SessionId,
        cmd: AcquireCmd,
        actor: &Actor,
    ) -> Result<Applied, StoreError> {
        let mut tx = self.pool().await?.begin_with(D::BEGIN_WRITE).await?;
        let s = Self::lock_session(&mut tx, session_id).await?;
        let (resource, lease) = Self::locked_lease(&mut tx, id).await?;
        let now = Self::db_now(&mut tx).await?;
        let waiting = Self::queue_of(&mut tx, &lease).await?;
        let gate = Gate { policy: &resource.policy, status: resource.status, queue: &waiting };
        let rule = || session::acquire_in(&lease, now, &cmd, &s, resource.policy.lock_delay());
        let outcome =
            grant(&gate, &lease, now, s.ttl, (&cmd.principal, &cmd.owner), rule).map_err(StoreError::Denied)?;
        let renewals = Self::write_and_serve(&mut tx, &resource, &lease, &outcome, now, actor).await?;
        self.commit(tx, renewals).await?;
        Ok(Applied { resource, outcome, now })
    }

    async fn acquire_group(
        &self,
        ids: &[ResourceId],
        group_id: GroupId,
        cmd: AcquireCmd,
        session_id: Option<SessionId>,
        actor: &Actor,
    ) -> Result<Vec<Applied>, StoreError> {
        let mut tx = self.pool().await?.begin_with(D::BEGIN_WRITE).await?;
        let s = match session_id {
            Some(id) => Some(Self::lock_session(&mut tx, id).await?),
            None => None,
        };
        let mut members = Vec::with_capacity(ids.len());
        for id in ids {
            members.push(Self::locked_lease(&mut tx, *id).await?);
        }
        let now = Self::db_now(&mut tx).await?;
        let mut queues = Vec::with_capacity(members.len());
        for (_, lease) in &members {
            queues.push(Self::queue_of(&mut tx, lease).await?);
        }
        let m: Vec<group::Member> = members
            .iter()
            .zip(&queues)
            .map(|((r, l), queue)| group::Member {
                lease: l,
                gate: Gate { policy: &r.policy, status: r.status, queue },
                new_hold_id: HoldId(uuid::Uuid::now_v7()),
            })
            .collect();
        let outcomes = match group::acquire_group(&m, now, group_id, &cmd, s.as_ref()) {
            Ok(outcomes) => outcomes,
            Err(refused) => {
                tx.rollback().await?;
                return Err(StoreError::GroupDenied(refused));
            }
        };
        let (mut applied, mut renewals) = (Vec::with_capacity(outcomes.len()), vec![]);
        for ((resource, lease), outcome) in members.into_iter().zip(outcomes) {
            // The group's membership, for its operations by id whatever later becomes of the leases.
            Self::exec(&mut tx, INSERT_GROUP_MEMBER, vec![Arg::Uuid(Some(group_id.0)), Arg::Uuid(Some(resource.id.0))])
                .await?;
            renewals.extend(Self::write_and_serve(&mut tx, &resource, &lease, &outcome, now, actor).await?);
            applied.push(Applied { resource, outcome, now });
        }
        self.commit(tx, renewals).await?;
        Ok(applied)
    }

    async fn group_op(
        &self,
        group_id: GroupId,
        claim: Claim,
        op: GroupOp,
        actor: &Actor,
    ) -> Result<Vec<Applied>, StoreError> {
        let mut tx = self.pool().await?.begin_with(D::BEGIN_WRITE).await?;
        let rows: Vec<(uuid::Uuid,)> =
            Self::fetch(&mut *tx, SELECT_GROUP_MEMBERS, vec![Arg::Uuid(Some(group_id.0))]).await?;
        if rows.is_empty() {
            return Err(StoreError::NoGroup);
        }
        let mut ids: Vec<ResourceId> = rows.into_iter().map(|(r,)| ResourceId(r)).collect();
        // The order the group was acquired in (`group::lock_order`): overlapping operations never wait in a cycle.
        ids.sort();
        let mut members = Vec::with_capacity(ids.len());
        for id in &ids {
            members.push(Self::locked_lease_if_any(&mut tx, *id).await?);
        }
        let now = Self::db_now(&mut tx).await?;
        let held: Vec<group::Held> = ids
            .iter()
            .zip(&members)
            .map(|(id, m)| group::Held {
                resource_id: *id,
                lease: m.as_ref().map(|(_, l)| l),
                booking_max: m.as_ref().map_or(Millis::ZERO, |(r, _)| r.policy.booking_max()),
            })
            .collect();
        let outcomes = match group::by_id(&held, group_id, now, &claim, op) {
            Ok(outcomes) => outcomes,
            Err(refused) => {
                tx.rollback().await?;
                return Err(StoreError::GroupDenied(refused));
            }
        };
        let (mut applied, mut renewals) = (vec![], vec![]);
        for (member, outcome) in members.into_iter().zip(outcomes) {
            let (Some((resource, lease)), Some(outcome)) = (member, outcome) else { continue };
            // A release answers the holds it released (a repeat releases none).
            if op == GroupOp::Release && outcome.events.is_empty() {
                continue;
            }
            renewals.extend(Self::write_and_serve(&mut tx, &resource, &lease, &outcome, now, actor).await?);
            applied.push(Applied { resource, outcome, now });
        }
        self.commit(tx, renewals).await?;
        Ok(applied)
    }

    async fn types(&self) -> Result<Vec<TypeRow>, StoreError> {
        self.read(&format!("{SELECT_TYPES} ORDER BY name"), vec![]).await
    }

    async fn put_type(
        &self,
        name: &ResourceType,
        change: &TypeChange,
        seed: &TypePolicy,
        actor: &Actor,
    ) -> Result<TypeRow, StoreError> {
        let (mut tx, now) = self.begin().await?;
        // The type's row is held, so two changes to one type apply one after the other.
        let old = Self::type_row(&mut tx, name, &D::lock("resource_types")).await?;
        let policy = old.as_ref().map_or(seed, |o| &o.policy).apply(change).map_err(StoreError::Invalid)?;
        let new = TypeRow { name: name.clone(), policy, updated_at_ms: now.0 };
        Self::exec(&mut tx, PUT_TYPE, new.args()).await?;
        Self::insert_event(&mut tx, Self::type_event(old.as_ref(), &new, now, actor)).await?;
        self.commit(tx, vec![]).await?;
        Ok(new)
    }

    async fn seed_types(&self, seed: &Policy, actor: &Actor) -> Result<Vec<TypeRow>, StoreError> {
        let (mut tx, now) = self.begin().await?;
        let rows: Vec<TypeRow> = Self::fetch(&mut *tx, SELECT_TYPES, vec![]).await?;
        let named = seed.lock_delays.keys().filter_map(|n| ResourceType::parse(n).ok());
        let absent: Vec<ResourceType> = named.filter(|n| !rows.iter().any(|r| &r.name == n)).collect();
        let mut changed = vec![];
        for (old, name) in rows
            .iter()
            .filter(|r| r.updated_at_ms == 0)
            .map(|r| (Some(r), &r.name))
            .chain(absent.iter().map(|n| (None, n)))
        {
            let new = TypeRow { name: name.clone(), policy: seed.for_type(name.as_str()), updated_at_ms: now.0 };
            // Guarded: a replica starting at the same moment may have seeded it; then this changes nothing.
            if Self::exec(&mut tx, if old.is_some() { SEED_TYPE } else { ENSURE_TYPE }, new.args()).await? == 1 {
                Self::insert_event(&mut tx, Self::type_event(old, &new, now, actor)).await?;
                changed.push(new);
            }
        }
        self.commit(tx, vec![]).await?;
        Ok(changed)
    }

    async fn events(&self, filter: &EventFilter) -> Result<Vec<Logged>, StoreError> {
        let (statement, args) = sql::events(filter, D::HORIZON);
        let recs: Vec<EventRecord> = self.read(&statement, args).await?;
        Ok(recs.into_iter().map(Logged::from).collect())
    }

    async fn newest_event(&self) -> Result<Option<LogPos>, StoreError> {
        self.position(&sql::newest_event(D::HORIZON), vec![]).await
    }

    async fn log_position(&self, id: i64) -> Result<Option<LogPos>, StoreError> {
        self.position(LOG_POSITION, vec![Arg::Int(Some(id))]).await
    }

    async fn changed(&self) -> Change {
        let mut rx = self.changes_rx.lock().await;
        tokio::select! {
            _ = self.written.notified() => Change::Events,
            r = rx.recv() => r.unwrap_or(Change::Events),
        }
    }

    async fn finished_holds(&self, after: i64, limit: u32) -> Result<Vec<FinishedHold>, StoreError> {
        let args = vec![Arg::Int(Some(after)), Arg::Int(Some(i64::from(limit)))];
        self.read(&sql::finished_holds(D::HORIZON), args).await
    }

    async fn append_event(&self, mut event: EventView) -> Result<(), StoreError> {
        let (mut tx, now) = self.begin().await?;
        event.at = now.to_utc();
        Self::insert_event(&mut tx, event).await?;
        self.commit(tx, vec![]).await
    }

    async fn create_key(&self, key: &KeyRecord, actor: &Actor) -> Result<KeyRecord, StoreError> {
        let (mut tx, now) = self.begin().await?;
        let key = KeyRecord { created_at_ms: now.0, ..key.clone() };
        Self::exec(&mut tx, INSERT_KEY, key.args()).await?;
        Self::insert_event(&mut tx, key.event(LogKind::KeyCreated, now, actor)).await?;
        self.commit(tx, vec![]).await?;
        Ok(key)
    }

    async fn key(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        Ok(self.read(SELECT_KEY, vec![Arg::text(id)]).await?.pop())
    }

    async fn keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        self.read(&format!("{SELECT_KEYS} ORDER BY created_at_ms, id"), vec![]).await
    }

    async fn revoke_key(&self, id: &str, actor: &Actor) -> Result<KeyRecord, StoreError> {
        let (mut tx, now) = self.begin().await?;
        let changed = Self::exec(&mut tx, REVOKE_KEY, vec![Arg::text(id), Arg::Int(Some(now.0))]).await?;
        let key: KeyRecord =
            Self::fetch(&mut *tx, SELECT_KEY, vec![Arg::text(id)]).await?.pop().ok_or(StoreError::NotFound)?;
        if changed > 0 {
            Self::insert_event(&mut tx, key.event(LogKind::KeyRevoked, now, actor)).await?;
        }
        self.commit(tx, vec![]).await?;
        Ok(key)
    }
}

/// The one row a statement returns (`RowNotFound` if none, as `fetch_one` says).
fn one<T>(mut rows: Vec<T>) -> Result<T, StoreError> {
    if rows.is_empty() {
        return Err(sqlx::Error::RowNotFound.into());
    }
    Ok(rows.swap_remove(0))
}
