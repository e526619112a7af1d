//! The wait queue (`hhs_core::queue`): acquiring or waiting, a waiter's polls and its end, and the hand-over —
//! whatever a transition leaves grantable goes to the first live waiter in the same transaction
//! ([`SqlStore::write_and_serve`]). Waiter states are `hhs_core::queue::WaiterState`; the statements name their
//! stored forms.

use async_trait::async_trait;
use hhs_core::admission::{admit, Gate};
use hhs_core::lease::AcquireCmd;
use hhs_core::queue::{self, Waiter, WaiterState};
use hhs_core::wire::{EventView, LogKind};
use hhs_core::{HoldId, Lease, Millis, Outcome, OwnerId, Principal, ResourceId, Ttl, WaiterId};
use sqlx::Transaction;
use tokio::sync::broadcast;
use uuid::Uuid;

use super::dialect::Dialect;
use super::rows::{lease_args, Arg};
use super::sql_store::{SqlStore, UPDATE_LEASE};
use super::{Actor, Applied, Change, Resource, StoreError, WaitStatus, Waited};

/// Acquiring or waiting, and the waits.
#[async_trait]
pub trait QueueStore: Send + Sync + 'static {
    /// Acquire, waiting if asked (`hhs_core::queue`): granted now if the type's policy, the queue (only its first
    /// live waiter passes a queue) and the acquire rule allow it; otherwise, with `wait` (the waiter's id and how
    /// long it may wait), a refusal that waiting can end (`hhs_core::queue::waiting_can_end`) puts the request in the
    /// resource's queue (`queued`) and returns its place. Without `wait`, the refusal.
    async fn acquire_or_wait(
        &self,
        id: ResourceId,
        cmd: AcquireCmd,
        wait: Option<(WaiterId, Millis)>,
        actor: &Actor,
    ) -> Result<Waited, StoreError>;

    /// A waiting request's poll: it proves it is there, takes the resource if it is the first live waiter and
    /// the resource is grantable (a lock-delay ended, a waiter ahead went away), and learns how it stands.
    /// [`StoreError::NotFound`] if its resource was deleted.
    async fn poll_wait(&self, waiter: WaiterId) -> Result<WaitStatus, StoreError>;

    /// Ends a wait: its `wait_seconds` passed (`gone` false: `wait_ended`, `timed_out`), or its request went away
    /// (`gone` true) — then a hold already granted to it is released, since nobody would heartbeat it.
    async fn end_wait(&self, waiter: WaiterId, gone: bool, actor: &Actor) -> Result<WaitStatus, StoreError>;

    /// Resources handed over to a waiter, as they commit (on this replica; on PostgreSQL, on any, by NOTIFY):
    /// what wakes the waiting requests.
    fn queue_wakeups(&self) -> tokio::sync::broadcast::Receiver<ResourceId>;
}

#[async_trait]
impl<D: Dialect> QueueStore for SqlStore<D> {
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
        match (admit(&gate, &lease, now, cmd.ttl, (&cmd.principal, &cmd.owner), rule), wait) {
            (Ok(outcome), _) => {
                let changes = Self::write(&mut tx, &lease, &outcome, actor).await?;
                self.commit(tx, changes).await?;
                Ok(Waited::Granted(Applied { resource, outcome, now }))
            }
            (Err(d), Some((waiter_id, wait))) if queue::waiting_can_end(&d) => {
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
}

impl<D: Dialect> SqlStore<D> {
    /// [`Self::write`], then the hand-over ([`Self::serve_queue`]): whatever a transition leaves grantable
    /// goes to the first live waiter in the same transaction.
    pub(super) async fn write_and_serve(
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
    pub(super) async fn queue(
        tx: &mut Transaction<'static, D>,
        id: ResourceId,
    ) -> Result<Vec<queue::Waiter>, StoreError> {
        let recs: Vec<WaiterRecord> = Self::fetch(&mut **tx, SELECT_QUEUE, vec![Arg::Uuid(Some(id.0))]).await?;
        recs.iter().map(WaiterRecord::into_waiter).collect()
    }

    /// The waiters `lease` counts (none read when it counts none: the common case costs no query).
    pub(super) async fn queue_of(
        tx: &mut Transaction<'static, D>,
        lease: &Lease,
    ) -> Result<Vec<queue::Waiter>, StoreError> {
        if lease.waiting == 0 {
            return Ok(vec![]);
        }
        Self::queue(tx, lease.resource_id).await
    }

    /// `hhs_core::queue::hand_over` on `lease` (held by the caller's transaction): the grant and its
    /// `acquired` event (by `hhs:queue`), the waiters dropped as gone (`wait_ended`), and the wake-up —
    /// PostgreSQL notifies `hhs_queue` at commit, SQLite's is sent by `commit`. Returns the lease after it,
    /// the wake-up, and the waiter granted, if one was.
    pub(super) async fn serve_queue(
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
    pub(super) async fn lock_waiter(
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
    pub(super) async fn deliver(
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
}

/// The wait queue (`hhs_core::queue`): a resource's waiting requests in arrival order (`seq`), read with its
/// lease row held. `state` is `hhs_core::queue::WaiterState`'s stored form.
pub const SELECT_QUEUE: &str =
    "SELECT id, resource_id, principal, owner_id, ttl_ms, enqueued_at_ms, alive_until_ms, deadline_ms, \
     state, hold_id, ended_at_ms FROM waiters WHERE resource_id = $1 AND state = 'WAITING' ORDER BY seq";

/// One waiter, whatever its state: what its request polls.
pub const SELECT_WAITER: &str =
    "SELECT id, resource_id, principal, owner_id, ttl_ms, enqueued_at_ms, alive_until_ms, deadline_ms, \
     state, hold_id, ended_at_ms FROM waiters WHERE id = $1";

pub const INSERT_WAITER: &str =
    "INSERT INTO waiters (id, resource_id, principal, owner_id, ttl_ms, enqueued_at_ms, alive_until_ms, \
     deadline_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

/// A wait's end: `$2` the state (`GRANTED` with the hold `$3`, `TIMED_OUT`, `GONE`), at `$4`.
pub const END_WAITER: &str =
    "UPDATE waiters SET state = $2, hold_id = $3, ended_at_ms = $4 WHERE id = $1 AND state = 'WAITING'";

/// A hand-over's request was answered with its hold.
pub const DELIVER_WAITER: &str = "UPDATE waiters SET state = 'DELIVERED' WHERE id = $1 AND state = 'GRANTED'";

/// A hand-over that will never be delivered (its request went away, or never took it, or its hold ended first).
pub const ABANDON_WAITER: &str = "UPDATE waiters SET state = 'GONE' WHERE id = $1 AND state = 'GRANTED'";

/// A waiting request proved it is there: live until `$2`.
pub const SEEN_WAITER: &str = "UPDATE waiters SET alive_until_ms = $2 WHERE id = $1 AND state = 'WAITING'";

/// A waiter as stored (`waiters`): the queue's columns, its resource, and how its wait stands.
#[derive(sqlx::FromRow)]
pub struct WaiterRecord {
    id: Uuid,
    pub resource_id: Uuid,
    principal: String,
    owner_id: String,
    ttl_ms: i64,
    enqueued_at_ms: i64,
    alive_until_ms: i64,
    deadline_ms: i64,
    /// `hhs_core::queue::WaiterState`'s stored form ([`WaiterRecord::state`] reads it).
    state: String,
    /// The hold it was granted.
    pub hold_id: Option<Uuid>,
    /// When its wait ended: for a hand-over, when it was granted.
    pub ended_at_ms: Option<i64>,
}

impl WaiterRecord {
    pub fn id(&self) -> WaiterId {
        WaiterId(self.id)
    }

    /// How its wait stands; an unknown state is a corrupt row.
    pub fn state(&self) -> Result<WaiterState, StoreError> {
        WaiterState::parse(&self.state).ok_or_else(|| StoreError::Corrupt(format!("waiter {}: unknown state", self.id)))
    }

    /// The hold it was handed and when, for a waiter that was granted one.
    pub fn handed(&self) -> Result<(HoldId, Millis), StoreError> {
        match (self.hold_id, self.ended_at_ms) {
            (Some(hold), Some(at)) => Ok((HoldId(hold), Millis(at))),
            _ => Err(StoreError::Corrupt(format!("waiter {}: a hand-over without its hold or time", self.id))),
        }
    }

    pub fn into_waiter(&self) -> Result<Waiter, StoreError> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("waiter {}: {what}", self.id));
        Ok(Waiter {
            id: WaiterId(self.id),
            principal: Principal::parse(&self.principal).map_err(|_| corrupt("principal"))?,
            owner: OwnerId::parse(&self.owner_id).map_err(|_| corrupt("owner_id"))?,
            ttl: Ttl::from_stored_millis(self.ttl_ms),
            enqueued_at: Millis(self.enqueued_at_ms),
            alive_until: Millis(self.alive_until_ms),
            deadline: Millis(self.deadline_ms),
        })
    }
}

/// The arguments of [`INSERT_WAITER`].
pub fn waiter_args(w: &Waiter, resource: ResourceId) -> Vec<Arg> {
    vec![
        Arg::Uuid(Some(w.id.0)),
        Arg::Uuid(Some(resource.0)),
        Arg::text(w.principal.as_str()),
        Arg::text(w.owner.as_str()),
        Arg::Int(Some(w.ttl.as_millis().0)),
        Arg::Int(Some(w.enqueued_at.0)),
        Arg::Int(Some(w.alive_until.0)),
        Arg::Int(Some(w.deadline.0)),
    ]
}
