//! Sessions (`hhs_core::session`): opening, reading, keepalive (the session and all its holds renewed in one
//! transaction, by one statement however many holds there are), closing, and acquiring under one. Every
//! session operation locks the session's row first, then lease rows in resource-id order.

use async_trait::async_trait;
use hhs_core::admission::{admit, Gate};
use hhs_core::lease::AcquireCmd;
use hhs_core::session::{self, Session, SessionState};
use hhs_core::wire::{EventView, LockView, LogKind, SessionHold};
use hhs_core::{Millis, OwnerId, Principal, ResourceId, SessionId, Ttl};
use sqlx::Transaction;
use uuid::Uuid;

use super::dialect::Dialect;
use super::rows::{from_leases, lease_columns, Arg, LeaseRecord, LeaseRow};
use super::sql_store::SqlStore;
use super::{Actor, Applied, Change, StoreError};

/// Sessions, and acquiring under one.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Opens a session from the database's now (`session_opened`).
    async fn open_session(
        &self,
        id: SessionId,
        principal: &Principal,
        owner: &OwnerId,
        ttl: Ttl,
        actor: &Actor,
    ) -> Result<Session, StoreError>;

    /// One session (`Some(id)`; [`StoreError::NoSession`] if unknown) or every open one, each with how many live
    /// holds it renews, and the database time of the read.
    async fn sessions(&self, id: Option<SessionId>) -> Result<(Vec<(Session, u64)>, Millis), StoreError>;

    /// Keepalive (`hhs_core::session::keepalive`): the session and every live hold under it renewed in one
    /// transaction — the session's row, then its holds' lease rows in resource-id order are locked, then the
    /// clock is read, then the holds are renewed by one statement (`sessions::RENEW_SESSION_HOLDS`), however many
    /// there are. Returns the session, each hold it renewed (by resource id) and the database time.
    async fn keepalive(
        &self,
        id: SessionId,
        principal: &Principal,
    ) -> Result<(Session, Vec<SessionHold>, Millis), StoreError>;

    /// Closes a session (`session_closed`) and releases every live hold under it (`released` each), in one
    /// transaction that holds the session's row, then its leases' rows.
    async fn close_session(
        &self,
        id: SessionId,
        principal: &Principal,
        actor: &Actor,
    ) -> Result<(Session, Millis), StoreError>;

    /// Acquire under a session (`hhs_core::session::acquire_in`): the session's row, then the lease's row, are
    /// held (every session operation takes them in this order, so none waits on another in a cycle); the
    /// session's TTL must be within the resource type's bounds.
    async fn acquire_in(
        &self,
        id: ResourceId,
        session: SessionId,
        cmd: AcquireCmd,
        actor: &Actor,
    ) -> Result<Applied, StoreError>;
}

#[async_trait]
impl<D: Dialect> SessionStore for SqlStore<D> {
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
            admit(&gate, &lease, now, s.ttl, (&cmd.principal, &cmd.owner), rule).map_err(StoreError::Denied)?;
        let renewals = Self::write_and_serve(&mut tx, &resource, &lease, &outcome, now, actor).await?;
        self.commit(tx, renewals).await?;
        Ok(Applied { resource, outcome, now })
    }
}

impl<D: Dialect> SqlStore<D> {
    /// Holds session `id`'s row until commit.
    pub(super) async fn lock_session(tx: &mut Transaction<'static, D>, id: SessionId) -> Result<Session, StoreError> {
        let statement = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1{}", D::lock("sessions"));
        let rec: Option<SessionRecord> = Self::fetch(&mut **tx, &statement, vec![Arg::Uuid(Some(id.0))]).await?.pop();
        rec.ok_or(StoreError::NoSession)?.into_session()
    }
}

/// Sessions (`hhs_core::session`).
pub const SESSION_COLUMNS: &str =
    "id, principal, owner_id, ttl_ms, opened_at_ms, last_keepalive_ms, state, ended_at_ms";

pub const INSERT_SESSION: &str =
    "INSERT INTO sessions (id, principal, owner_id, ttl_ms, opened_at_ms, last_keepalive_ms, state, \
     ended_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

pub const UPDATE_SESSION: &str =
    "UPDATE sessions SET last_keepalive_ms = $2, state = $3, ended_at_ms = $4 WHERE id = $1";

/// How many live holds each session has (a hold lapses with its session, so "held" is enough while it is open);
/// the caller narrows it to one session or not, then appends `GROUP BY session_id`.
pub const COUNT_SESSION_HOLDS: &str =
    "SELECT session_id, COUNT(*) FROM leases WHERE state = 'HELD' AND session_id IS NOT NULL";

/// The leases of session `$1`'s held holds (to release them when it closes), read once `LOCK_SESSION_LEASES` holds them.
/// In resource-id order, the order every multi-row lock takes (`hhs_core::group::lock_order`).
pub const SELECT_SESSION_LEASES: &str = concat!(
    "SELECT ",
    lease_columns!(),
    from_leases!(),
    " WHERE l.session_id = $1 AND l.state = 'HELD' ORDER BY l.resource_id"
);

/// The same rows' locks alone, taken before a keepalive's renewal: an `UPDATE` over many rows would lock them in
/// whatever order it finds them, and the clock is read only once they are held. The dialect appends its row lock.
pub const LOCK_SESSION_LEASES: &str =
    "SELECT l.resource_id FROM leases l WHERE l.session_id = $1 AND l.state = 'HELD' ORDER BY l.resource_id";

/// A keepalive's renewal of every live hold of session `$1`, in one statement: each takes the session's renewal
/// (`$2` its new `last_keepalive`, `$3` its TTL in ms), live at `$4` (now), not booked. Plain SQL both databases
/// read (`CASE`, no `LEAST`/`GREATEST`, no alias). Restates
/// `hhs_core::session::renew_hold`; `tests/it/sessions.rs` checks the two agree on generated leases.
macro_rules! renew_session_holds {
    () => {
        "UPDATE leases SET heartbeats = CASE WHEN heartbeats < 4294967295 THEN heartbeats + 1 ELSE heartbeats END, \
            max_gap_ms = CASE WHEN $2 - last_heartbeat_ms > max_gap_ms THEN $2 - last_heartbeat_ms ELSE max_gap_ms END, \
            last_heartbeat_ms = $2, ttl_ms = $3, pickup_by_ms = NULL \
         WHERE session_id = $1 AND state = 'HELD' AND booked_until_ms IS NULL AND $4 - last_heartbeat_ms <= ttl_ms \
         AND (pickup_by_ms IS NULL OR $4 <= pickup_by_ms) \
         RETURNING *"
    };
}
pub(crate) use renew_session_holds;

/// SQLite: the renewed rows come back, and this process streams each renewal.
pub const RENEW_SESSION_HOLDS: &str = renew_session_holds!();

/// A session as stored.
#[derive(sqlx::FromRow)]
pub struct SessionRecord {
    id: Uuid,
    principal: String,
    owner_id: String,
    ttl_ms: i64,
    opened_at_ms: i64,
    last_keepalive_ms: i64,
    state: String,
    ended_at_ms: Option<i64>,
}

impl SessionRecord {
    pub fn into_session(self) -> Result<Session, StoreError> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("session {}: {what}", self.id));
        let ended = || self.ended_at_ms.map(Millis).ok_or_else(|| corrupt("ended without ended_at_ms"));
        let state = match self.state.as_str() {
            "OPEN" => SessionState::Open,
            "CLOSED" => SessionState::Closed { at: ended()? },
            "LAPSED" => SessionState::Lapsed { at: ended()? },
            _ => return Err(corrupt("unknown state")),
        };
        Ok(Session {
            id: SessionId(self.id),
            principal: Principal::parse(&self.principal).map_err(|_| corrupt("principal"))?,
            owner: OwnerId::parse(&self.owner_id).map_err(|_| corrupt("owner_id"))?,
            ttl: Ttl::from_stored_millis(self.ttl_ms),
            opened_at: Millis(self.opened_at_ms),
            last_keepalive: Millis(self.last_keepalive_ms),
            state,
        })
    }
}

/// The arguments of [`INSERT_SESSION`].
pub fn session_args(s: &Session) -> Vec<Arg> {
    let (state, ended) = session_state(s);
    vec![
        Arg::Uuid(Some(s.id.0)),
        Arg::text(s.principal.as_str()),
        Arg::text(s.owner.as_str()),
        Arg::Int(Some(s.ttl.as_millis().0)),
        Arg::Int(Some(s.opened_at.0)),
        Arg::Int(Some(s.last_keepalive.0)),
        Arg::text(state),
        Arg::Int(ended),
    ]
}

/// The arguments of [`UPDATE_SESSION`].
pub fn session_update_args(s: &Session) -> Vec<Arg> {
    let (state, ended) = session_state(s);
    vec![Arg::Uuid(Some(s.id.0)), Arg::Int(Some(s.last_keepalive.0)), Arg::text(state), Arg::Int(ended)]
}

fn session_state(s: &Session) -> (&'static str, Option<i64>) {
    match s.state {
        SessionState::Open => ("OPEN", None),
        SessionState::Closed { at } => ("CLOSED", Some(at.0)),
        SessionState::Lapsed { at } => ("LAPSED", Some(at.0)),
    }
}
