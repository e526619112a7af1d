//! Rows ↔ domain types, for both databases (the columns are the same), and binding: every statement's
//! arguments are a `Vec<Arg>`, turned into the driver's arguments by one function, [`arguments`].

use hhs_core::queue::{Waiter, WaiterState};
use hhs_core::session::{Session, SessionState};
use hhs_core::status::Status;
use hhs_core::stored::StoredLease;
use hhs_core::wire::{Actor, Detail, EventView, KeyView, LogKind, TypeView};
use hhs_core::{
    FencingToken, HoldId, Identifier, Lease, Millis, OwnerId, Principal, ResourceId, ResourceType, Role, SessionId,
    Ttl, TypePolicy, WaiterId,
};
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Arguments, Database, Encode, FromRow, Type};
use uuid::Uuid;

use super::StoreError;

/// A resource as stored (a row of `resources`, read into core's types: a stored value that does not validate
/// is a decode error).
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Resource {
    #[sqlx(try_from = "Uuid")]
    pub id: ResourceId,
    #[sqlx(rename = "type", try_from = "String")]
    pub resource_type: ResourceType,
    #[sqlx(try_from = "String")]
    pub identifier: Identifier,
    #[sqlx(rename = "created_at_ms", try_from = "i64")]
    pub created_at: Millis,
    /// Its operational status (`hhs_core::status`), read with it: an acquire decides with it.
    #[sqlx(try_from = "String")]
    pub status: Status,
    /// Its type's policy, read with it (in a transition, in the same transaction).
    #[sqlx(flatten)]
    pub policy: TypePolicy,
}

/// A resource type's row.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct TypeRow {
    #[sqlx(try_from = "String")]
    pub name: ResourceType,
    #[sqlx(flatten)]
    pub policy: TypePolicy,
    /// 0: never set (made by the migration; the first start fills it from its flags).
    pub updated_at_ms: i64,
}

impl TypeRow {
    pub fn view(&self) -> TypeView {
        TypeView::of(self.name.as_str(), &self.policy)
    }

    /// The arguments of `sql::ENSURE_TYPE` and `sql::PUT_TYPE`.
    pub fn args(&self) -> Vec<Arg> {
        let p = &self.policy;
        let ints = [p.lock_delay_ms, p.min_ttl_seconds, p.max_ttl_seconds, p.default_ttl_seconds, self.updated_at_ms];
        let ints = ints.into_iter().map(Some).chain([p.booking_max_seconds]).map(Arg::Int);
        [vec![Arg::text(self.name.as_str())], ints.collect(), vec![Arg::text(p.default_status.code())]].concat()
    }
}

impl Resource {
    /// This resource's `resource_created`/`resource_updated`/`resource_deleted` entry.
    pub fn event(&self, kind: LogKind, at: Millis, actor: &Actor) -> EventView {
        EventView::of_resource(kind, self.id, &self.resource_type, &self.identifier, at, actor)
    }
}

/// A row type both databases read (every row type of the store: the columns are the same).
pub trait Record: for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow> + Send + Unpin {}

impl<T> Record for T where T: for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow> + Send + Unpin {}

/// A bind argument. Nullable columns bind `None` as SQL NULL.
#[derive(Clone, Debug)]
pub enum Arg {
    Text(Option<String>),
    Uuid(Option<Uuid>),
    Int(Option<i64>),
    Bool(bool),
    Bytes(Vec<u8>),
}

impl Arg {
    pub fn text(s: &str) -> Arg {
        Arg::Text(Some(s.to_owned()))
    }
}

/// The driver's arguments for a statement: the one place where values meet either database.
pub fn arguments<'q, DB: Database>(values: Vec<Arg>) -> Result<DB::Arguments<'q>, StoreError>
where
    Option<String>: Encode<'q, DB> + Type<DB>,
    Option<Uuid>: Encode<'q, DB> + Type<DB>,
    Option<i64>: Encode<'q, DB> + Type<DB>,
    bool: Encode<'q, DB> + Type<DB>,
    Vec<u8>: Encode<'q, DB> + Type<DB>,
{
    let mut args = DB::Arguments::<'q>::default();
    for value in values {
        match value {
            Arg::Text(v) => args.add(v),
            Arg::Uuid(v) => args.add(v),
            Arg::Int(v) => args.add(v),
            Arg::Bool(v) => args.add(v),
            Arg::Bytes(v) => args.add(v),
        }
        .map_err(|e| StoreError::Corrupt(format!("could not bind an argument: {e}")))?;
    }
    Ok(args)
}

/// A lease row with its resource (`sql::SELECT_LEASES`' columns).
#[derive(sqlx::FromRow)]
pub struct LeaseRecord {
    #[sqlx(flatten)]
    resource: Resource,
    #[sqlx(flatten)]
    lease: StoredLease,
}

impl LeaseRecord {
    pub fn into_parts(self) -> Result<(Resource, Lease), StoreError> {
        let id = self.resource.id;
        let lease =
            self.lease.into_lease(id).map_err(|e| StoreError::Corrupt(format!("lease row of resource {id}: {e}")))?;
        Ok((self.resource, lease))
    }
}

/// A `leases` row alone (what `RETURNING l.*` gives): its resource's id and the stored lease.
#[derive(sqlx::FromRow)]
pub struct LeaseRow {
    resource_id: Uuid,
    #[sqlx(flatten)]
    lease: StoredLease,
}

impl LeaseRow {
    pub fn into_lease(self) -> Result<Lease, StoreError> {
        let id = ResourceId(self.resource_id);
        self.lease.into_lease(id).map_err(|e| StoreError::Corrupt(format!("lease row of resource {id}: {e}")))
    }
}

/// The arguments of `sql::UPDATE_LEASE`: the resource id, then the lease's columns.
pub fn lease_args(l: &Lease) -> Vec<Arg> {
    let s = StoredLease::of(l);
    vec![
        Arg::Uuid(Some(l.resource_id.0)),
        Arg::Int(Some(s.last_token)),
        Arg::Uuid(s.hold_id),
        Arg::Text(s.owner_id),
        Arg::Int(s.ttl_ms),
        Arg::Int(s.token),
        Arg::Int(s.acquired_at_ms),
        Arg::Int(s.last_heartbeat_ms),
        Arg::Text(Some(s.state)),
        Arg::Int(s.ended_at_ms),
        Arg::Int(Some(s.heartbeats)),
        Arg::Int(Some(s.max_gap_ms)),
        Arg::Int(s.delay_until_ms),
        Arg::Text(s.principal),
        Arg::Bool(s.late_reported),
        Arg::Uuid(s.session_id),
        Arg::Uuid(s.group_id),
        Arg::Int(s.booked_until_ms),
        Arg::Int(Some(s.waiters)),
        Arg::Int(s.pickup_by_ms),
    ]
}

/// The arguments of `sql::INSERT_EVENT`: an entry to append (its id is the log's to give).
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

/// Where an event stands in the log's commit order: by the transaction that wrote it, then by id (see
/// `sql::events`). PostgreSQL fills `txid` with the writing transaction's id; SQLite, whose writers take
/// turns, leaves it 0, so there the order is the id's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, sqlx::FromRow)]
pub struct LogPos {
    pub txid: i64,
    pub id: i64,
}

/// An event read from the log, with its place in commit order.
#[derive(Clone, Debug)]
pub struct Logged {
    pub pos: LogPos,
    pub event: EventView,
}

#[derive(sqlx::FromRow)]
pub struct EventRecord {
    txid: i64,
    id: i64,
    at_ms: i64,
    kind: String,
    resource_id: Option<Uuid>,
    hold_id: Option<Uuid>,
    owner_id: Option<String>,
    fencing_token: Option<i64>,
    detail: String,
    principal: Option<String>,
    key_id: Option<String>,
    request_id: Option<String>,
    outcome: String,
}

impl From<EventRecord> for Logged {
    fn from(r: EventRecord) -> Logged {
        let event = EventView {
            id: r.id,
            at: Millis(r.at_ms).to_utc(),
            kind: LogKind::parse(&r.kind),
            resource_id: r.resource_id.map(ResourceId),
            hold_id: r.hold_id.map(HoldId),
            owner_id: r.owner_id,
            fencing_token: r.fencing_token.and_then(FencingToken::from_i64).map(|t| t.0),
            detail: serde_json::from_str(&r.detail).unwrap_or(Detail::Other(serde_json::Value::Null)),
            principal: r.principal,
            key_id: r.key_id,
            request_id: r.request_id,
            outcome: r.outcome,
            lock: None,
        };
        Logged { pos: LogPos { txid: r.txid, id: r.id }, event }
    }
}

/// An API key as stored: the secret only as its SHA-256.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct KeyRecord {
    pub id: String,
    pub principal: String,
    #[sqlx(try_from = "String")]
    pub role: Role,
    pub secret_sha256: Vec<u8>,
    pub created_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
}

impl KeyRecord {
    pub fn view(&self) -> KeyView {
        KeyView {
            id: self.id.clone(),
            principal: self.principal.clone(),
            role: self.role,
            created_at: Millis(self.created_at_ms).to_utc(),
            revoked_at: self.revoked_at_ms.map(|m| Millis(m).to_utc()),
        }
    }

    /// This key's `key_created`/`key_revoked` entry.
    pub fn event(&self, kind: LogKind, at: Millis, actor: &Actor) -> EventView {
        EventView::of_key(kind, &self.id, &self.principal, self.role, at, actor)
    }

    /// The arguments of `sql::INSERT_KEY`.
    pub fn args(&self) -> Vec<Arg> {
        let (id, principal, role) = (Arg::text(&self.id), Arg::text(&self.principal), Arg::text(self.role.as_str()));
        vec![id, principal, role, Arg::Bytes(self.secret_sha256.clone()), Arg::Int(Some(self.created_at_ms))]
    }
}

/// What the TTL model learns from: a `released`, `late_release` or `late_heartbeat` event with its resource type.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct FinishedHold {
    pub id: i64,
    pub kind: String,
    pub resource_type: String,
    pub owner_id: Option<String>,
    pub detail: String,
}

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

/// The arguments of `sql::INSERT_SESSION`.
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

/// The arguments of `sql::UPDATE_SESSION`.
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

/// The arguments of `sql::INSERT_WAITER`.
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
