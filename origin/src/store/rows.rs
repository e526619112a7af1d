//! Rows ↔ domain types, shared by both stores: the columns are the same, only the SQL dialect differs.

use hhs_core::api::EventView;
use hhs_core::{EventKind, FencingToken, Hold, HoldId, HoldState, Lease, LeaseEvent, Millis, OwnerId, Principal, ResourceId, Ttl};
use serde_json::json;
use uuid::Uuid;

use super::{Actor, StoreError};

/// A resource as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resource {
    pub id: ResourceId,
    pub resource_type: String,
    pub identifier: String,
    pub created_at: Millis,
}

#[derive(Clone, Debug, Default)]
pub struct ResourceFilter {
    pub resource_type: Option<String>,
    /// Keyset pagination: resources with an id greater than this (ids are UUIDv7, so: created later).
    pub after: Option<ResourceId>,
    pub limit: u32,
}

#[derive(Clone, Debug, Default)]
pub struct LockFilter {
    pub owner_id: Option<String>,
    pub resource_type: Option<String>,
    /// Only leases stored as held (live or lapsed-unrecorded): what the anomaly list examines.
    pub held_only: bool,
    /// Keyset pagination by resource id.
    pub after: Option<ResourceId>,
    /// At most this many (`None`: all, for internal callers that need every lease).
    pub limit: Option<u32>,
}

#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    pub resource_id: Option<ResourceId>,
    /// Events with an id greater than this.
    pub after_id: Option<i64>,
    /// Events at or after this time.
    pub since: Option<Millis>,
    /// Events before this time.
    pub until: Option<Millis>,
    pub limit: u32,
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
    StoreError::Corrupt(format!("lease row of resource {id}: {what}"))
}

impl LeaseRecord {
    pub fn into_parts(self) -> Result<(Resource, Lease), StoreError> {
        let id = self.resource_id;
        let resource = Resource {
            id: ResourceId(id),
            resource_type: self.resource_type,
            identifier: self.identifier,
            created_at: Millis(self.created_at_ms),
        };
        let last_token = FencingToken::from_i64(self.last_token).ok_or_else(|| corrupt("negative last_token", id))?;
        let hold = match self.state.as_str() {
            "FREE" => None,
            state => {
                let ended = || self.ended_at_ms.map(Millis).ok_or_else(|| corrupt("ended hold without ended_at", id));
                let state = match state {
                    "HELD" => HoldState::Held,
                    "RELEASED" => HoldState::Released { at: ended()? },
                    "EXPIRED" => HoldState::Expired { at: ended()? },
                    "FORCE_RELEASED" => HoldState::ForceReleased { at: ended()? },
                    other => return Err(corrupt(&format!("unknown state {other}"), id)),
                };
                let missing = |c: &str| corrupt(&format!("hold without {c}"), id);
                let owner = self.owner_id.as_deref().ok_or_else(|| missing("owner_id"))?;
                let principal = self.principal.as_deref().ok_or_else(|| missing("principal"))?;
                Some(Hold {
                    id: HoldId(self.hold_id.ok_or_else(|| missing("hold_id"))?),
                    principal: Principal::parse(principal).map_err(|_| corrupt("invalid principal", id))?,
                    owner: OwnerId::parse(owner).map_err(|_| corrupt("invalid owner_id", id))?,
                    ttl: Ttl::from_stored_millis(self.ttl_ms.ok_or_else(|| missing("ttl_ms"))?),
                    token: self.token.and_then(FencingToken::from_i64).ok_or_else(|| missing("token"))?,
                    acquired_at: Millis(self.acquired_at_ms.ok_or_else(|| missing("acquired_at_ms"))?),
                    last_heartbeat: Millis(self.last_heartbeat_ms.ok_or_else(|| missing("last_heartbeat_ms"))?),
                    state,
                    heartbeats: u32::try_from(self.heartbeats).unwrap_or(u32::MAX),
                    max_gap: Millis(self.max_gap_ms),
                    late_reported: self.late_reported,
                })
            }
        };
        Ok((resource, Lease { resource_id: ResourceId(id), last_token, hold, delay_until: self.delay_until_ms.map(Millis) }))
    }
}

/// A lease flattened into the columns of `UPDATE_LEASE` (`$2`…`$14`; `$1` is the resource id).
pub struct LeaseColumns {
    pub last_token: i64,
    pub hold_id: Option<Uuid>,
    pub principal: Option<String>,
    pub owner_id: Option<String>,
    pub ttl_ms: Option<i64>,
    pub token: Option<i64>,
    pub acquired_at_ms: Option<i64>,
    pub last_heartbeat_ms: Option<i64>,
    pub state: &'static str,
    pub ended_at_ms: Option<i64>,
    pub heartbeats: i64,
    pub max_gap_ms: i64,
    pub delay_until_ms: Option<i64>,
    pub late_reported: bool,
}

impl From<&Lease> for LeaseColumns {
    fn from(l: &Lease) -> Self {
        let h = l.hold.as_ref();
        let (state, ended) = match h.map(|h| h.state) {
            None => ("FREE", None),
            Some(HoldState::Held) => ("HELD", None),
            Some(HoldState::Released { at }) => ("RELEASED", Some(at.0)),
            Some(HoldState::Expired { at }) => ("EXPIRED", Some(at.0)),
            Some(HoldState::ForceReleased { at }) => ("FORCE_RELEASED", Some(at.0)),
        };
        LeaseColumns {
            last_token: l.last_token.to_i64(),
            hold_id: h.map(|h| h.id.0),
            principal: h.map(|h| h.principal.as_str().to_owned()),
            owner_id: h.map(|h| h.owner.as_str().to_owned()),
            ttl_ms: h.map(|h| h.ttl.as_millis().0),
            token: h.map(|h| h.token.to_i64()),
            acquired_at_ms: h.map(|h| h.acquired_at.0),
            last_heartbeat_ms: h.map(|h| h.last_heartbeat.0),
            state,
            ended_at_ms: ended,
            heartbeats: h.map_or(0, |h| i64::from(h.heartbeats)),
            max_gap_ms: h.map_or(0, |h| h.max_gap.0),
            delay_until_ms: l.delay_until.map(|m| m.0),
            late_reported: h.is_some_and(|h| h.late_reported),
        }
    }
}

pub const UPDATE_LEASE: &str = "UPDATE leases SET last_token = $2, hold_id = $3, owner_id = $4, ttl_ms = $5, token = $6, \
     acquired_at_ms = $7, last_heartbeat_ms = $8, state = $9, ended_at_ms = $10, heartbeats = $11, max_gap_ms = $12, \
     delay_until_ms = $13, principal = $14, late_reported = $15 WHERE resource_id = $1";

/// Binds `UPDATE_LEASE`'s parameters on either database.
macro_rules! bind_lease {
    ($q:expr, $id:expr, $c:expr) => {{
        let c = $c;
        $q.bind($id)
            .bind(c.last_token)
            .bind(c.hold_id)
            .bind(c.owner_id)
            .bind(c.ttl_ms)
            .bind(c.token)
            .bind(c.acquired_at_ms)
            .bind(c.last_heartbeat_ms)
            .bind(c.state)
            .bind(c.ended_at_ms)
            .bind(c.heartbeats)
            .bind(c.max_gap_ms)
            .bind(c.delay_until_ms)
            .bind(c.principal)
            .bind(c.late_reported)
    }};
}
pub(crate) use bind_lease;

pub const INSERT_EVENT: &str = "INSERT INTO events (at_ms, kind, resource_id, hold_id, owner_id, fencing_token, detail, \
     principal, key_id, request_id, outcome) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

/// The `detail` of a lease event: the hold's TTL and its heartbeat summary, and how long it was held once it ended.
pub fn hold_detail(ttl: Ttl, heartbeats: u32, max_gap: Millis, held_ms: Option<Millis>, holder: &Principal) -> serde_json::Value {
    json!({
        "ttl_seconds": ttl.seconds(),
        "heartbeats": heartbeats,
        "max_heartbeat_gap_ms": max_gap.0,
        "held_ms": held_ms.map(|m| m.0),
        "hold_principal": holder.as_str(),
    })
}

/// One row of `events`, ready to insert.
pub struct EventRow {
    pub at_ms: i64,
    pub kind: &'static str,
    pub resource_id: Option<Uuid>,
    pub hold_id: Option<Uuid>,
    pub owner_id: Option<String>,
    pub fencing_token: Option<i64>,
    pub detail: String,
    pub principal: Option<String>,
    pub key_id: Option<String>,
    pub request_id: Option<String>,
    pub outcome: &'static str,
}

macro_rules! bind_event {
    ($q:expr, $e:expr) => {{
        let e = $e;
        $q.bind(e.at_ms)
            .bind(e.kind)
            .bind(e.resource_id)
            .bind(e.hold_id)
            .bind(e.owner_id)
            .bind(e.fencing_token)
            .bind(e.detail)
            .bind(e.principal)
            .bind(e.key_id)
            .bind(e.request_id)
            .bind(e.outcome)
    }};
}
pub(crate) use bind_event;

impl EventRow {
    /// A lease event. The detail carries the per-hold heartbeat summary (count and longest gap) — what the TTL
    /// model and the audit read instead of one row per heartbeat. `lease` `lease` is the lease after the transition (its lock-delay, if the event started one, is
    /// in the detail so a dashboard can show it without asking).
    pub fn lease(lease: &Lease, e: &LeaseEvent, actor: &Actor) -> EventRow {
        let resource_id = lease.resource_id;
        let h = &e.hold;
        let mut detail = hold_detail(h.ttl, h.heartbeats, h.max_gap, e.held_for(), &h.principal);
        if let Some(reason) = &actor.reason {
            detail["reason"] = json!(reason);
        }
        if let Some(until) = lease.delay_until.filter(|_| matches!(e.kind, EventKind::Expired | EventKind::ForceReleased)) {
            detail["lock_delay_until"] = json!(until.to_utc().to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        }
        EventRow {
            at_ms: e.at.0,
            kind: e.kind.as_str(),
            resource_id: Some(resource_id.0),
            hold_id: Some(h.id.0),
            owner_id: Some(h.owner.as_str().to_owned()),
            fencing_token: Some(h.token.to_i64()),
            detail: detail.to_string(),
            ..EventRow::by(actor, e.at, e.kind.as_str())
        }
    }

    /// `key_created`, `key_revoked`: the key's id, principal and role, never its secret.
    pub fn key(kind: &'static str, key: &KeyRecord, at: Millis, actor: &Actor) -> EventRow {
        EventRow {
            detail: json!({ "key_id": key.id, "key_principal": key.principal, "role": key.role }).to_string(),
            ..EventRow::by(actor, at, kind)
        }
    }

    /// An event with no resource or hold, done by `actor` at `at`; fill the rest with struct update syntax.
    pub fn by(actor: &Actor, at: Millis, kind: &'static str) -> EventRow {
        EventRow {
            at_ms: at.0,
            kind,
            resource_id: None,
            hold_id: None,
            owner_id: None,
            fencing_token: None,
            detail: "{}".to_owned(),
            principal: Some(actor.principal.clone()),
            key_id: actor.key_id.clone(),
            request_id: actor.request_id.clone(),
            outcome: "ok",
        }
    }

    /// `resource_created`, `resource_updated`, `resource_deleted`.
    pub fn resource(kind: &'static str, r: &Resource, at: Millis, actor: &Actor) -> EventRow {
        EventRow {
            resource_id: Some(r.id.0),
            detail: json!({ "type": r.resource_type, "identifier": r.identifier }).to_string(),
            ..EventRow::by(actor, at, kind)
        }
    }
}

pub const EVENT_COLUMNS: &str =
    "txid, id, at_ms, kind, resource_id, hold_id, owner_id, fencing_token, detail, principal, key_id, request_id, outcome";

/// Where an event stands in the log's commit order: by the transaction that wrote it, then by id (see
/// `queries::events`). PostgreSQL fills `txid` with the writing transaction's id; SQLite, whose writers take
/// turns, leaves it 0, so there the order is the id's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
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
        let pos = LogPos { txid: r.txid, id: r.id };
        Logged { pos, event: r.into_view() }
    }
}

impl EventRecord {
    fn into_view(self) -> EventView {
        let r = self;
        EventView {
            id: r.id,
            at: Millis(r.at_ms).to_utc(),
            kind: r.kind,
            resource_id: r.resource_id.map(ResourceId),
            hold_id: r.hold_id.map(HoldId),
            owner_id: r.owner_id,
            fencing_token: r.fencing_token.and_then(FencingToken::from_i64).map(|t| t.0),
            detail: serde_json::from_str(&r.detail).unwrap_or(serde_json::Value::Null),
            principal: r.principal,
            key_id: r.key_id,
            request_id: r.request_id,
            outcome: r.outcome,
        }
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

impl From<ResourceRecord> for Resource {
    fn from(r: ResourceRecord) -> Resource {
        Resource { id: ResourceId(r.id), resource_type: r.resource_type, identifier: r.identifier, created_at: Millis(r.created_at_ms) }
    }
}

pub const RESOURCE_COLUMNS: &str = "id, type, identifier, created_at_ms";

/// Rewrites `$1`-style placeholders as SQLite's positional `?1`, so the shared statements above serve both
/// dialects. None of our statements contains a `$` elsewhere.
pub fn sqlite_placeholders(sql: &str) -> String {
    sql.replace('$', "?")
}

/// An API key as stored: the secret only as its SHA-256.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct KeyRecord {
    pub id: String,
    pub principal: String,
    pub role: String,
    pub secret_sha256: Vec<u8>,
    pub created_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
}

impl KeyRecord {
    pub fn view(&self) -> Option<hhs_core::api::KeyView> {
        Some(hhs_core::api::KeyView {
            id: self.id.clone(),
            principal: self.principal.clone(),
            role: hhs_core::Role::parse(&self.role)?,
            created_at: Millis(self.created_at_ms).to_utc(),
            revoked_at: self.revoked_at_ms.map(|m| Millis(m).to_utc()),
        })
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
