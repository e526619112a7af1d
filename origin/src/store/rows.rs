//! Rows ↔ domain types, for both databases (the columns are the same), and binding: every statement's
//! arguments are a `Vec<Arg>`, turned into the driver's arguments by one function, [`arguments`].

use hhs_core::wire::{Detail, EventView, HoldDetail, KeyDetail, KeyView, LogKind, ResourceDetail};
use hhs_core::{
    FencingToken, Hold, HoldId, HoldState, Identifier, Lease, LeaseEvent, Millis, OwnerId, Principal, ResourceId, ResourceType, Role,
    Ttl,
};
use sqlx::{Arguments, Database, Encode, Type};
use uuid::Uuid;

use super::{Actor, StoreError};

/// A resource as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resource {
    pub id: ResourceId,
    pub resource_type: ResourceType,
    pub identifier: Identifier,
    pub created_at: Millis,
}

#[derive(Clone, Debug, Default)]
pub struct ResourceFilter {
    pub resource_type: Option<ResourceType>,
    /// Keyset pagination: resources with an id greater than this (ids are UUIDv7, so: created later).
    pub after: Option<ResourceId>,
    pub limit: u32,
}

#[derive(Clone, Debug, Default)]
pub struct LockFilter {
    pub owner_id: Option<OwnerId>,
    pub resource_type: Option<ResourceType>,
    /// Only leases stored as held (live or lapsed-unrecorded): what the anomaly list examines.
    pub held_only: bool,
    /// Keyset pagination by resource id.
    pub after: Option<ResourceId>,
    /// At most this many (`None`: all, for internal callers that need every lease).
    pub limit: Option<u32>,
    /// Only these resources (the event stream's lock views).
    pub resources: Option<Vec<ResourceId>>,
}

#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    pub resource_id: Option<ResourceId>,
    /// Events after this one, in commit order.
    pub after_id: Option<i64>,
    /// Events at or after this time.
    pub since: Option<Millis>,
    /// Events before this time.
    pub until: Option<Millis>,
    pub limit: u32,
}

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

#[derive(sqlx::FromRow)]
pub struct LeaseRecord {
    resource_id: Uuid,
    resource_type: String,
    identifier: String,
    created_at_ms: i64,
    last_token: i64,
    hold_id: Option<Uuid>,
    principal: Option<String>,
    owner_id: Option<String>,
    ttl_ms: Option<i64>,
    token: Option<i64>,
    acquired_at_ms: Option<i64>,
    last_heartbeat_ms: Option<i64>,
    state: String,
    ended_at_ms: Option<i64>,
    heartbeats: i64,
    max_gap_ms: i64,
    delay_until_ms: Option<i64>,
    late_reported: bool,
}

fn corrupt(what: &str, id: Uuid) -> StoreError {
    StoreError::Corrupt(format!("row of resource {id}: {what}"))
}

fn resource(id: Uuid, ty: &str, ident: &str, created_at_ms: i64) -> Result<Resource, StoreError> {
    Ok(Resource {
        id: ResourceId(id),
        resource_type: ResourceType::parse(ty).map_err(|_| corrupt("invalid type", id))?,
        identifier: Identifier::parse(ident).map_err(|_| corrupt("invalid identifier", id))?,
        created_at: Millis(created_at_ms),
    })
}

impl LeaseRecord {
    pub fn into_parts(self) -> Result<(Resource, Lease), StoreError> {
        let id = self.resource_id;
        let resource = resource(id, &self.resource_type, &self.identifier, self.created_at_ms)?;
        let last_token = FencingToken::from_i64(self.last_token).ok_or_else(|| corrupt("negative last_token", id))?;
        let ended = || self.ended_at_ms.map(Millis).ok_or_else(|| corrupt("ended hold without ended_at", id));
        let state = match self.state.as_str() {
            "FREE" => None,
            "HELD" => Some(HoldState::Held),
            "RELEASED" => Some(HoldState::Released { at: ended()? }),
            "EXPIRED" => Some(HoldState::Expired { at: ended()? }),
            "FORCE_RELEASED" => Some(HoldState::ForceReleased { at: ended()? }),
            other => return Err(corrupt(&format!("unknown state {other}"), id)),
        };
        let missing = |c: &str| corrupt(&format!("hold without {c}"), id);
        let hold = match state {
            None => None,
            Some(state) => Some(Hold {
                id: HoldId(self.hold_id.ok_or_else(|| missing("hold_id"))?),
                principal: Principal::parse(self.principal.as_deref().ok_or_else(|| missing("principal"))?)
                    .map_err(|_| corrupt("invalid principal", id))?,
                owner: OwnerId::parse(self.owner_id.as_deref().ok_or_else(|| missing("owner_id"))?)
                    .map_err(|_| corrupt("invalid owner_id", id))?,
                ttl: Ttl::from_stored_millis(self.ttl_ms.ok_or_else(|| missing("ttl_ms"))?),
                token: self.token.and_then(FencingToken::from_i64).ok_or_else(|| missing("token"))?,
                acquired_at: Millis(self.acquired_at_ms.ok_or_else(|| missing("acquired_at_ms"))?),
                last_heartbeat: Millis(self.last_heartbeat_ms.ok_or_else(|| missing("last_heartbeat_ms"))?),
                state,
                heartbeats: u32::try_from(self.heartbeats).unwrap_or(u32::MAX),
                max_gap: Millis(self.max_gap_ms),
                late_reported: self.late_reported,
            }),
        };
        Ok((resource, Lease { resource_id: ResourceId(id), last_token, hold, delay_until: self.delay_until_ms.map(Millis) }))
    }
}

/// The arguments of `sql::UPDATE_LEASE`: the resource id, then the lease flattened into its columns.
pub fn lease_args(l: &Lease) -> Vec<Arg> {
    let h = l.hold.as_ref();
    let (state, ended) = match h.map(|h| h.state) {
        None => ("FREE", None),
        Some(HoldState::Held) => ("HELD", None),
        Some(HoldState::Released { at }) => ("RELEASED", Some(at.0)),
        Some(HoldState::Expired { at }) => ("EXPIRED", Some(at.0)),
        Some(HoldState::ForceReleased { at }) => ("FORCE_RELEASED", Some(at.0)),
    };
    vec![
        Arg::Uuid(Some(l.resource_id.0)),
        Arg::Int(Some(l.last_token.to_i64())),
        Arg::Uuid(h.map(|h| h.id.0)),
        Arg::Text(h.map(|h| h.owner.as_str().to_owned())),
        Arg::Int(h.map(|h| h.ttl.as_millis().0)),
        Arg::Int(h.map(|h| h.token.to_i64())),
        Arg::Int(h.map(|h| h.acquired_at.0)),
        Arg::Int(h.map(|h| h.last_heartbeat.0)),
        Arg::text(state),
        Arg::Int(ended),
        Arg::Int(Some(h.map_or(0, |h| i64::from(h.heartbeats)))),
        Arg::Int(Some(h.map_or(0, |h| h.max_gap.0))),
        Arg::Int(l.delay_until.map(|m| m.0)),
        Arg::Text(h.map(|h| h.principal.as_str().to_owned())),
        Arg::Bool(h.is_some_and(|h| h.late_reported)),
    ]
}

/// One row of `events`, ready to insert.
pub struct EventRow {
    pub at_ms: i64,
    pub kind: LogKind,
    pub resource_id: Option<Uuid>,
    pub hold_id: Option<Uuid>,
    pub owner_id: Option<String>,
    pub fencing_token: Option<i64>,
    pub detail: Detail,
    pub principal: Option<String>,
    pub key_id: Option<String>,
    pub request_id: Option<String>,
    pub outcome: &'static str,
}

impl EventRow {
    /// A lease event; `lease` is the lease after the transition (the lock-delay it started, if any, is in the
    /// detail so a dashboard can show it without asking).
    pub fn lease(lease: &Lease, e: &LeaseEvent, actor: &Actor) -> EventRow {
        let h = &e.hold;
        EventRow {
            resource_id: Some(lease.resource_id.0),
            hold_id: Some(h.id.0),
            owner_id: Some(h.owner.as_str().to_owned()),
            fencing_token: Some(h.token.to_i64()),
            detail: Detail::Hold(HoldDetail::of(e, lease.delay_until, actor.reason.clone())),
            ..EventRow::by(actor, e.at, e.kind.into())
        }
    }

    /// `key_created`, `key_revoked`: the key's id, principal and role, never its secret.
    pub fn key(kind: LogKind, key: &KeyRecord, at: Millis, actor: &Actor) -> EventRow {
        let detail = Detail::Key(KeyDetail { key_id: key.id.clone(), key_principal: key.principal.clone(), role: key.role });
        EventRow { detail, ..EventRow::by(actor, at, kind) }
    }

    /// `resource_created`, `resource_updated`, `resource_deleted`.
    pub fn resource(kind: LogKind, r: &Resource, at: Millis, actor: &Actor) -> EventRow {
        let detail =
            Detail::Resource(ResourceDetail { resource_type: r.resource_type.as_str().into(), identifier: r.identifier.as_str().into() });
        EventRow { resource_id: Some(r.id.0), detail, ..EventRow::by(actor, at, kind) }
    }

    /// An event with no resource or hold, done by `actor` at `at`; fill the rest with struct update syntax.
    pub fn by(actor: &Actor, at: Millis, kind: LogKind) -> EventRow {
        EventRow {
            at_ms: at.0,
            kind,
            resource_id: None,
            hold_id: None,
            owner_id: None,
            fencing_token: None,
            detail: Detail::Other(serde_json::json!({})),
            principal: Some(actor.principal.clone()),
            key_id: actor.key_id.clone(),
            request_id: actor.request_id.clone(),
            outcome: "ok",
        }
    }

    /// The arguments of `sql::INSERT_EVENT`.
    pub fn args(self) -> Vec<Arg> {
        vec![
            Arg::Int(Some(self.at_ms)),
            Arg::text(self.kind.as_str()),
            Arg::Uuid(self.resource_id),
            Arg::Uuid(self.hold_id),
            Arg::Text(self.owner_id),
            Arg::Int(self.fencing_token),
            Arg::Text(Some(serde_json::to_string(&self.detail).unwrap_or_else(|_| "{}".into()))),
            Arg::Text(self.principal),
            Arg::Text(self.key_id),
            Arg::Text(self.request_id),
            Arg::text(self.outcome),
        ]
    }
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

#[derive(sqlx::FromRow)]
pub struct ResourceRecord {
    id: Uuid,
    #[sqlx(rename = "type")]
    resource_type: String,
    identifier: String,
    created_at_ms: i64,
}

impl TryFrom<ResourceRecord> for Resource {
    type Error = StoreError;
    fn try_from(r: ResourceRecord) -> Result<Resource, StoreError> {
        resource(r.id, &r.resource_type, &r.identifier, r.created_at_ms)
    }
}

/// An API key as stored: the secret only as its SHA-256.
#[derive(Clone, Debug)]
pub struct KeyRecord {
    pub id: String,
    pub principal: String,
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

    /// The arguments of `sql::INSERT_KEY`.
    pub fn args(&self) -> Vec<Arg> {
        let (id, principal, role) = (Arg::text(&self.id), Arg::text(&self.principal), Arg::text(self.role.as_str()));
        vec![id, principal, role, Arg::Bytes(self.secret_sha256.clone()), Arg::Int(Some(self.created_at_ms))]
    }
}

#[derive(sqlx::FromRow)]
pub struct KeyRow {
    id: String,
    principal: String,
    role: String,
    secret_sha256: Vec<u8>,
    created_at_ms: i64,
    revoked_at_ms: Option<i64>,
}

impl TryFrom<KeyRow> for KeyRecord {
    type Error = StoreError;
    fn try_from(k: KeyRow) -> Result<KeyRecord, StoreError> {
        let role = Role::parse(&k.role).ok_or_else(|| StoreError::Corrupt(format!("key {}: unknown role", k.id)))?;
        let KeyRow { id, principal, secret_sha256, created_at_ms, revoked_at_ms, .. } = k;
        Ok(KeyRecord { id, principal, role, secret_sha256, created_at_ms, revoked_at_ms })
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
