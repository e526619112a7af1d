//! Leases: reading them, and the transitions of one lease — acquire, heartbeat, release and any rule of
//! `hhs_core::lease` through [`LeaseStore::transact`]. PostgreSQL does the common case of acquire, heartbeat and
//! release in one statement (`Dialect::acquire_in_one_statement` and the others); every other case, and every
//! case on SQLite, takes the row lock and asks hhs-core.

use async_trait::async_trait;
use hhs_core::admission::{admit, Gate};
use hhs_core::lease::{heartbeat, release, AcquireCmd, Claim};
use hhs_core::{Denied, EventKind, Lease, LeaseEvent, Millis, Outcome, ResourceId};

use super::dialect::{Dialect, Shortcut};
use super::queue::QueueStore;
use super::rows::{from_leases, lease_columns, Arg, Filter, LeaseRecord};
use super::sql_store::SqlStore;
use super::{Actor, Applied, LockFilter, Resource, StoreError, Transition, Waited};

/// Leases and the transitions of one lease.
#[async_trait]
pub trait LeaseStore: Send + Sync + 'static {
    /// One resource and its lease, with the database time it was read at.
    async fn lease(&self, id: ResourceId) -> Result<(Resource, Lease, Millis), StoreError> {
        let (mut found, now) = self.leases(&LockFilter { resources: Some(vec![id]), ..LockFilter::default() }).await?;
        found.pop().map(|(r, l)| (r, l, now)).ok_or(StoreError::NotFound)
    }

    async fn leases(&self, filter: &LockFilter) -> Result<(Vec<(Resource, Lease)>, Millis), StoreError>;

    /// Runs `transition` on the resource's lease inside one transaction that holds the lease row exclusively, and
    /// writes its outcome and events (attributed to `actor`). A refusal writes nothing and comes back as
    /// [`StoreError::Denied`].
    async fn transact(&self, id: ResourceId, actor: &Actor, transition: Transition) -> Result<Applied, StoreError>;

    /// Acquire (`hhs_core::lease::acquire` under the type's policy, in the one admission order of
    /// `hhs_core::admission::grant`), without waiting: a resource nobody holds or waits for is granted in one
    /// statement where the database offers it; anything else takes the row lock.
    async fn acquire(&self, id: ResourceId, cmd: AcquireCmd, actor: &Actor) -> Result<Applied, StoreError>;

    /// Heartbeat (`hhs_core::lease::heartbeat` for `claim`): the caller's live plain hold in one statement where the
    /// database offers it, anything else through [`LeaseStore::transact`].
    async fn heartbeat(&self, id: ResourceId, claim: Claim, actor: &Actor) -> Result<Applied, StoreError>;

    /// Release (`hhs_core::lease::release` for `claim`): the caller's live plain hold, nobody waiting, in one
    /// statement where the database offers it, anything else through [`LeaseStore::transact`].
    async fn release(&self, id: ResourceId, claim: Claim, actor: &Actor) -> Result<Applied, StoreError>;
}

#[async_trait]
impl<D: Dialect> LeaseStore for SqlStore<D> {
    async fn leases(&self, filter: &LockFilter) -> Result<(Vec<(Resource, Lease)>, Millis), StoreError> {
        let (statement, args) = leases_query(filter);
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
                    admit(&gate, &lease, now, cmd.ttl, (&cmd.principal, &cmd.owner), rule)
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
}

pub const SELECT_LEASES: &str = concat!("SELECT ", lease_columns!(), from_leases!());

pub fn leases_query(f: &LockFilter) -> (String, Vec<Arg>) {
    let mut q = Filter::default();
    if let Some(o) = &f.owner_id {
        q.push("l.owner_id = {}", Arg::text(o.as_str()));
    }
    if let Some(t) = &f.resource_type {
        q.push("r.type = {}", Arg::text(t.as_str()));
    }
    if f.held_only {
        q.conditions.push("l.state = 'HELD'".to_owned());
    }
    if let Some(after) = f.after {
        q.push("l.resource_id > {}", Arg::Uuid(Some(after.0)));
    }
    if let Some(ids) = &f.resources {
        let placeholders: Vec<String> = ids.iter().map(|id| q.arg(Arg::Uuid(Some(id.0)))).collect();
        // `IN ()` is not SQL; no resources match nothing.
        q.conditions.push(if ids.is_empty() {
            "1 = 0".to_owned()
        } else {
            format!("l.resource_id IN ({})", placeholders.join(", "))
        });
    }
    q.finish(SELECT_LEASES, "ORDER BY l.resource_id", f.limit)
}
