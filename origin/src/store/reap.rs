//! The reaper's pass (`crate::reaper` runs it): lapsed holds recorded as expired, hand-overs their waiters never
//! took given back, queues served, sessions lapsed. Candidates are found by statements that restate a rule of
//! hhs-core for an index; each is then decided by hhs-core in its own short transaction, its row locked first
//! and the clock read after the lock.

use async_trait::async_trait;
use hhs_core::lease::expire;
use hhs_core::queue::{self, WaiterState};
use hhs_core::session;
use hhs_core::wire::{EventView, LogKind};
use hhs_core::{Lease, Millis, ResourceId, SessionId, WaiterId};
use sqlx::Transaction;

use super::dialect::Dialect;
use super::queue::{WaiterRecord, ABANDON_WAITER, SELECT_WAITER};
use super::rows::{expiry, Arg, LeaseRecord};
use super::sessions::{session_update_args, SessionRecord, UPDATE_SESSION};
use super::sql_store::{SqlStore, SELECT_LEASE};
use super::{Actor, Resource, Store, StoreError};

/// The reaper.
#[async_trait]
pub trait ReapStore: Send + Sync + 'static {
    /// A pass of the reaper over everything due when it begins, `batch` candidates a page: records lapsed holds
    /// as expired (one `expired` event each, by `hhs:reaper`; a booking that ran out as `completed`), gives back
    /// hand-overs their waiters never took (`hhs_core::queue::reclaim`), serves queues that can be served, and
    /// lapses sessions (`session_lapsed`; their holds lapse with them and are among the expiries). Each is decided
    /// in its own short transaction with the clock read after its row's lock; a row that cannot be read is
    /// logged, counted ([`ReapStore::rows_skipped`]) and skipped. Safe to run on several replicas at once: each is
    /// recorded exactly once. Returns how many holds it recorded as expired.
    async fn reap(&self, batch: u32) -> Result<usize, StoreError>;

    /// How many stored rows the reaper has skipped as unreadable since this store opened (`/metrics`).
    fn rows_skipped(&self) -> u64;
}

#[async_trait]
impl<D: Dialect> ReapStore for SqlStore<D> {
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
        // Through `commit`, so every pass wakes this replica's event pump (which then reads the log).
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
}

impl<D: Dialect> SqlStore<D> {
    /// For the reaper: a transaction holding lease `id`'s row, with the clock read after the lock; `None`
    /// if another transaction holds it (PostgreSQL skips it: it is reaped next pass) or it is gone. The row
    /// is read with its resource and type in a second statement, after the lock (see `locked_lease`): a
    /// transaction that committed between this statement's snapshot and the lock is seen.
    pub(super) async fn lock_lease_for_reaper(
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
    pub(super) async fn reap_expiry(&self, id: ResourceId) -> Result<bool, StoreError> {
        let Some((mut tx, resource, lease, now)) = self.lock_lease_for_reaper(id).await? else { return Ok(false) };
        // Renewed or ended since it was picked: nothing to do.
        let Some(outcome) = expire(&lease, now, resource.policy.lock_delay()) else { return Ok(false) };
        let changes =
            Self::write_and_serve(&mut tx, &resource, &lease, &outcome, now, &Actor::system("reaper")).await?;
        self.commit(tx, changes).await?;
        Ok(true)
    }

    /// One queue served in its own transaction (a lock-delay ended, a waiter went away).
    pub(super) async fn reap_queue(&self, id: ResourceId) -> Result<(), StoreError> {
        let Some((mut tx, resource, lease, now)) = self.lock_lease_for_reaper(id).await? else { return Ok(()) };
        let (_, changes, _) = Self::serve_queue(&mut tx, &resource, &lease, now).await?;
        self.commit(tx, changes).await
    }

    /// A hand-over its request never took (`hhs_core::queue::reclaim`): the hold is given back without a
    /// lock-delay, the waiter recorded as gone (`wait_ended`, `not_delivered`) and the next one served.
    pub(super) async fn reap_undelivered(&self, waiter: WaiterId, resource_id: ResourceId) -> Result<(), StoreError> {
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
    pub(super) async fn reap_session(&self, id: SessionId) -> Result<(), StoreError> {
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
    pub(super) fn skip_bad_row(&self, what: &'static str, id: uuid::Uuid, e: StoreError) -> Result<(), StoreError> {
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
}

/// The reaper's candidates: held leases whose expiry instant is before `$1` (the clock when its pass began),
/// in expiry order after the cursor `($3, $4)` (expiry instant, resource id), at most `$2`. This restates the
/// rule `now > expires_at` of `hhs_core::lease::Hold::is_expired` so an index can find them; each candidate is
/// then locked on its own (`SELECT_LEASE` with the dialect's `SKIP LOCKED`, so replicas' reapers share the work
/// without waiting), the clock read after that lock, and decided by `hhs_core::lease::expire` — a lapse stays a
/// lapse as time passes. A differential test checks the SQL and hhs-core agree.
pub const SELECT_EXPIRED: &str = concat!(
    "SELECT l.resource_id AS id, ",
    expiry!(),
    " AS expires_at_ms FROM leases l WHERE l.state = 'HELD' AND ",
    expiry!(),
    " < $1 \
     AND (",
    expiry!(),
    " > $3 OR (",
    expiry!(),
    " = $3 AND l.resource_id > $4)) ORDER BY ",
    expiry!(),
    ", l.resource_id LIMIT $2"
);

/// For the reaper: leases with a queue that may be served now (no hold and no lock-delay at `$1`) or that has a
/// waiter that is gone (`hhs_core::queue::Waiter::is_gone`: not seen, or its wait over for longer than `$3`, the
/// presence timeout), after resource `$4`, at most `$2`. Each is then locked on its own and served with the
/// clock read after that lock.
pub const SELECT_SERVABLE: &str = "SELECT l.resource_id AS id FROM leases l WHERE l.waiters > 0 AND l.resource_id > $4 \
     AND ((l.state <> 'HELD' AND (l.delay_until_ms IS NULL OR l.delay_until_ms <= $1)) OR EXISTS (SELECT 1 FROM waiters w \
     WHERE w.resource_id = l.resource_id AND w.state = 'WAITING' AND (w.alive_until_ms < $1 OR w.deadline_ms + $3 < $1))) \
     ORDER BY l.resource_id LIMIT $2";

/// For the reaper: hand-overs not delivered, granted before `$1` (the pass's clock less the pickup window:
/// `hhs_core::queue::abandoned` restated for the index), after the cursor `($3, $4)` (grant time, waiter id), at
/// most `$2`. Each is decided by `hhs_core::queue::reclaim` under its lease's lock, with the clock read after it.
pub const SELECT_UNDELIVERED: &str =
    "SELECT id, resource_id, ended_at_ms FROM waiters WHERE state = 'GRANTED' AND ended_at_ms < $1 \
     AND (ended_at_ms > $3 OR (ended_at_ms = $3 AND id > $4)) ORDER BY ended_at_ms, id LIMIT $2";

/// Ended waits a minute old (`$1`): nobody polls them any more.
pub const DELETE_ENDED_WAITERS: &str = "DELETE FROM waiters WHERE state <> 'WAITING' AND ended_at_ms < $1";

/// The reaper's candidate sessions: open past their last valid instant `$1`, after the cursor `$3` (id), at most
/// `$2`. Each is then locked on its own (`LOCK_SESSION_SKIP` with the dialect's lock) and decided by
/// `hhs_core::session::lapse` with the clock read after that lock.
pub const SELECT_LAPSED_SESSIONS: &str =
    "SELECT id FROM sessions WHERE state = 'OPEN' AND last_keepalive_ms + ttl_ms < $1 AND id > $3 ORDER BY id LIMIT $2";

/// One session for the reaper; the dialect appends `FOR UPDATE SKIP LOCKED` on PostgreSQL.
pub const LOCK_SESSION_SKIP: &str = "SELECT id, principal, owner_id, ttl_ms, opened_at_ms, last_keepalive_ms, state, \
     ended_at_ms FROM sessions WHERE id = $1 AND state = 'OPEN'";

#[cfg(test)]
mod tests {
    use hhs_core::queue::WaiterState::{self, *};

    use super::super::queue::{ABANDON_WAITER, DELIVER_WAITER, END_WAITER, SEEN_WAITER, SELECT_QUEUE};
    use super::{DELETE_ENDED_WAITERS, SELECT_SERVABLE, SELECT_UNDELIVERED};

    /// The statements name waiter states by the stored forms `WaiterState::as_str` gives and `parse` reads.
    #[test]
    fn the_statements_name_waiter_states_by_their_stored_forms() {
        let named: [(&str, &[WaiterState]); 8] = [
            (SELECT_QUEUE, &[Waiting]),
            (END_WAITER, &[Waiting]),
            (DELIVER_WAITER, &[Delivered, Granted]),
            (ABANDON_WAITER, &[Gone, Granted]),
            (SEEN_WAITER, &[Waiting]),
            (SELECT_SERVABLE, &[Waiting]),
            (SELECT_UNDELIVERED, &[Granted]),
            (DELETE_ENDED_WAITERS, &[Waiting]),
        ];
        for (statement, states) in named {
            for s in states {
                assert!(
                    statement.contains(&format!("state = '{}'", s.as_str()))
                        || statement.contains(&format!("state <> '{}'", s.as_str())),
                    "{statement}"
                );
            }
        }
    }
}
