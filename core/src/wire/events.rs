//! The event log on the wire: every kind, each kind's detail as a type, and an entry as the API returns it.
//! The origin writes details only through these types and every tier reads them through them, so a field is
//! named in one place.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::auth::Role;
use crate::ids::{HoldId, Identifier, ResourceId, ResourceType};
use crate::lease::{self, Lease, LeaseEvent};
use crate::time::Millis;
use crate::wire::locks::LockView;
use crate::wire::views::{Page, TypeView};

/// What happened. Lease kinds come from the rules (`lease::EventKind`); the others from resource, key and
/// authentication handling. An unknown kind (a newer origin's) reads as `Unknown`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum LogKind {
    Acquired,
    Released,
    Expired,
    ForceReleased,
    LateHeartbeat,
    LateRelease,
    /// A hold given back the time a database outage took (`lease::resume`).
    Extended,
    /// A hold turned into a booking (`booking::book`).
    Booked,
    /// A booking that reached its end.
    Completed,
    /// A request joined a resource's wait queue, or its wait ended without a grant (`queue`).
    Queued,
    WaitEnded,
    /// A session opened, closed by its owner, or lapsed (`session`).
    SessionOpened,
    SessionClosed,
    SessionLapsed,
    ResourceCreated,
    ResourceUpdated,
    ResourceDeleted,
    /// A resource's operational status set (`PATCH /api/resources/{id}`, or an HL7 message).
    StatusChanged,
    /// An HL7 v2 message received (its control id, type and outcome; never its patient segments).
    Hl7Received,
    KeyCreated,
    KeyRevoked,
    AuthFailed,
    /// A resource type's policy set or changed (`PUT /api/types/{name}`, or seeded at start-up).
    TypeUpdated,
    #[serde(other)]
    Unknown,
}

impl LogKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            LogKind::Acquired => "acquired",
            LogKind::Released => "released",
            LogKind::Expired => "expired",
            LogKind::ForceReleased => "force_released",
            LogKind::LateHeartbeat => "late_heartbeat",
            LogKind::LateRelease => "late_release",
            LogKind::Extended => "extended",
            LogKind::Booked => "booked",
            LogKind::Completed => "completed",
            LogKind::Queued => "queued",
            LogKind::WaitEnded => "wait_ended",
            LogKind::SessionOpened => "session_opened",
            LogKind::SessionClosed => "session_closed",
            LogKind::SessionLapsed => "session_lapsed",
            LogKind::ResourceCreated => "resource_created",
            LogKind::ResourceUpdated => "resource_updated",
            LogKind::ResourceDeleted => "resource_deleted",
            LogKind::StatusChanged => "status_changed",
            LogKind::Hl7Received => "hl7_received",
            LogKind::KeyCreated => "key_created",
            LogKind::KeyRevoked => "key_revoked",
            LogKind::AuthFailed => "auth_failed",
            LogKind::TypeUpdated => "type_updated",
            LogKind::Unknown => "unknown",
        }
    }

    /// The kind a stored name stands for.
    pub fn parse(s: &str) -> LogKind {
        serde_json::from_value(serde_json::Value::String(s.into())).unwrap_or(LogKind::Unknown)
    }

    /// Whether a hold ended with this event.
    pub fn ends_hold(self) -> bool {
        matches!(self, LogKind::Released | LogKind::Expired | LogKind::ForceReleased | LogKind::Completed)
    }
}

impl From<lease::EventKind> for LogKind {
    fn from(k: lease::EventKind) -> LogKind {
        match k {
            lease::EventKind::Acquired => LogKind::Acquired,
            lease::EventKind::Released => LogKind::Released,
            lease::EventKind::Expired => LogKind::Expired,
            lease::EventKind::ForceReleased => LogKind::ForceReleased,
            lease::EventKind::LateHeartbeat => LogKind::LateHeartbeat,
            lease::EventKind::LateRelease => LogKind::LateRelease,
            lease::EventKind::Extended => LogKind::Extended,
            lease::EventKind::Booked => LogKind::Booked,
            lease::EventKind::Completed => LogKind::Completed,
        }
    }
}

/// The detail of a lease event: the hold's TTL and heartbeat summary (what the TTL model and the audit read
/// instead of one row per heartbeat), how long it was held once it ended and when it ended (for an expiry, its
/// last valid instant, not when the reaper noticed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct HoldDetail {
    pub ttl_seconds: u32,
    pub heartbeats: u32,
    pub max_heartbeat_gap_ms: i64,
    pub held_ms: Option<i64>,
    pub hold_principal: String,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::time::OptionalRfc3339Millis")]
    pub ended_at: Option<DateTime<Utc>>,
    /// A force-release's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The lock-delay an expiry or force-release started.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::time::OptionalRfc3339Millis")]
    pub lock_delay_until: Option<DateTime<Utc>>,
}

impl HoldDetail {
    /// The detail of `event`; `delay_until` is the lease's lock-delay after it (kept for expiries and
    /// force-releases only), `reason` a force-release's.
    pub fn of(event: &LeaseEvent, delay_until: Option<Millis>, reason: Option<String>) -> HoldDetail {
        let h = &event.hold;
        let ends = LogKind::from(event.kind).ends_hold();
        let delays = matches!(event.kind, lease::EventKind::Expired | lease::EventKind::ForceReleased);
        HoldDetail {
            ttl_seconds: h.ttl.seconds(),
            heartbeats: h.heartbeats,
            max_heartbeat_gap_ms: h.max_gap.0,
            held_ms: event.held_for().map(|m| m.0),
            hold_principal: h.principal.as_str().into(),
            ended_at: h.ended_at(event.at).filter(|_| ends).map(Millis::to_utc),
            reason,
            lock_delay_until: delay_until.filter(|_| delays).map(Millis::to_utc),
        }
    }
}

impl HoldDetail {
    /// The detail of a grant written before the grant is decided (PostgreSQL's one-statement acquire).
    pub fn granted(ttl: crate::ttl::Ttl, holder: &crate::ids::Principal) -> HoldDetail {
        HoldDetail {
            ttl_seconds: ttl.seconds(),
            heartbeats: 0,
            max_heartbeat_gap_ms: 0,
            held_ms: None,
            hold_principal: holder.as_str().into(),
            ended_at: None,
            reason: None,
            lock_delay_until: None,
        }
    }
}

/// `resource_created`, `resource_updated` (the new identifier), `resource_deleted`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct ResourceDetail {
    #[serde(rename = "type")]
    pub resource_type: String,
    pub identifier: String,
}

/// `key_created`, `key_revoked`: the key's id, principal and role, never its secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct KeyDetail {
    pub key_id: String,
    pub key_principal: String,
    pub role: Role,
}

/// `auth_failed`: why, and how many failures were folded into this one since the last recorded (so a flood of
/// bad keys cannot flood the log).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct AuthFailedDetail {
    pub reason: String,
    pub suppressed_before: u64,
}

/// `type_updated`: the type, its policy before (`null` for a new type) and after.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct TypeDetail {
    pub name: String,
    pub old: Option<TypeView>,
    pub new: TypeView,
}

/// `session_opened`, `session_closed`, `session_lapsed`: the session, its owner and TTL.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct SessionDetail {
    pub session_id: crate::ids::SessionId,
    pub owner_id: String,
    pub ttl_seconds: u32,
}

/// `status_changed`: the resource's operational status before and after.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct StatusDetail {
    pub from: crate::status::Status,
    pub to: crate::status::Status,
}

/// `hl7_received`: which message (`MSH-10`, `MSH-9`, its sender), what it was answered with, and the beds it
/// set — never a patient segment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct Hl7Detail {
    pub control_id: String,
    pub message_type: String,
    pub sender: String,
    pub ack_code: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub beds: Vec<String>,
    /// A control id already used with other content: refused (`AR`), nothing applied. (The same message again is
    /// answered from its record and not logged again.)
    #[serde(default)]
    pub duplicate: bool,
}

/// `queued`, `wait_ended`: the waiting request, its place in the queue and, at its end, why (`timed_out`: its
/// `wait_seconds` passed; `gone`: its request went away; `not_delivered`: it was handed a hold its request never
/// took within `queue::PICKUP_TIMEOUT`, and the hold was given back).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct QueueDetail {
    pub waiter_id: crate::ids::WaiterId,
    pub position: u32,
    pub wait_seconds: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<String>,
}

/// An event's detail, by its shape (each kind has exactly one; `Other` for entries this version does not know).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(untagged)]
pub enum Detail {
    Hold(HoldDetail),
    Resource(ResourceDetail),
    Key(KeyDetail),
    AuthFailed(AuthFailedDetail),
    Type(TypeDetail),
    Session(SessionDetail),
    Queue(QueueDetail),
    Hl7(Hl7Detail),
    Status(StatusDetail),
    Other(serde_json::Value),
}

impl Detail {
    pub fn hold(&self) -> Option<&HoldDetail> {
        match self {
            Detail::Hold(h) => Some(h),
            _ => None,
        }
    }

    pub fn resource(&self) -> Option<&ResourceDetail> {
        match self {
            Detail::Resource(r) => Some(r),
            _ => None,
        }
    }
}

/// Who caused a change, for the audit trail: the principal and key of the request (or a system actor such as
/// the reaper), the request id, and for a force-release the reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Actor {
    pub principal: String,
    pub key_id: Option<String>,
    pub request_id: Option<String>,
    pub reason: Option<String>,
}

impl Actor {
    /// An actor inside HHS itself (`hhs:reaper`, `hhs:cli`).
    pub fn system(name: &str) -> Actor {
        Actor { principal: format!("hhs:{name}"), ..Actor::default() }
    }
}

impl EventView {
    /// A new entry by `actor` at `at`, `ok`; the log gives it its id when it is appended.
    pub fn new(kind: LogKind, at: Millis, actor: &Actor, detail: Detail) -> EventView {
        EventView {
            id: 0,
            at: at.to_utc(),
            kind,
            resource_id: None,
            hold_id: None,
            owner_id: None,
            fencing_token: None,
            detail,
            principal: Some(actor.principal.clone()),
            key_id: actor.key_id.clone(),
            request_id: actor.request_id.clone(),
            outcome: "ok".into(),
            lock: None,
        }
    }

    /// The entry of a lease event; `lease` is the lease after the transition (the lock-delay it started goes
    /// into the detail, so a reader needs no second look).
    pub fn of_lease(lease: &Lease, e: &LeaseEvent, actor: &Actor) -> EventView {
        let (h, detail) = (&e.hold, Detail::Hold(HoldDetail::of(e, lease.delay_until, actor.reason.clone())));
        EventView {
            resource_id: Some(lease.resource_id),
            hold_id: Some(h.id),
            owner_id: Some(h.owner.as_str().into()),
            fencing_token: Some(h.token.0),
            ..EventView::new(e.kind.into(), e.at, actor, detail)
        }
    }

    /// `resource_created`, `resource_updated` (with the new identifier), `resource_deleted`.
    pub fn of_resource(
        kind: LogKind,
        id: ResourceId,
        ty: &ResourceType,
        ident: &Identifier,
        at: Millis,
        actor: &Actor,
    ) -> EventView {
        let detail =
            Detail::Resource(ResourceDetail { resource_type: ty.as_str().into(), identifier: ident.as_str().into() });
        EventView { resource_id: Some(id), ..EventView::new(kind, at, actor, detail) }
    }

    /// `session_opened`, `session_closed`, `session_lapsed`.
    pub fn of_session(kind: LogKind, s: &crate::session::Session, at: Millis, actor: &Actor) -> EventView {
        let detail = Detail::Session(SessionDetail {
            session_id: s.id,
            owner_id: s.owner.as_str().into(),
            ttl_seconds: s.ttl.seconds(),
        });
        EventView { owner_id: Some(s.owner.as_str().into()), ..EventView::new(kind, at, actor, detail) }
    }

    /// `queued`, `wait_ended` of waiter `w` on its resource.
    pub fn of_waiter(
        kind: LogKind,
        w: &crate::queue::Waiter,
        resource: ResourceId,
        position: u32,
        ended: Option<&str>,
        at: Millis,
        actor: &Actor,
    ) -> EventView {
        let wait_seconds = u32::try_from(w.deadline.since(w.enqueued_at).0 / 1000).unwrap_or(u32::MAX);
        let detail =
            Detail::Queue(QueueDetail { waiter_id: w.id, position, wait_seconds, ended: ended.map(Into::into) });
        EventView {
            resource_id: Some(resource),
            owner_id: Some(w.owner.as_str().into()),
            ..EventView::new(kind, at, actor, detail)
        }
    }

    /// `key_created`, `key_revoked`: the key's id, principal and role, never its secret.
    pub fn of_key(
        kind: LogKind,
        key_id: &str,
        key_principal: &str,
        role: Role,
        at: Millis,
        actor: &Actor,
    ) -> EventView {
        let detail = Detail::Key(KeyDetail { key_id: key_id.into(), key_principal: key_principal.into(), role });
        EventView::new(kind, at, actor, detail)
    }
}

/// `GET /api/events`, in commit order; `next_after` is an event id.
pub type EventPage = Page<EventView, i64>;

/// One entry of the event log as the API returns it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct EventView {
    pub id: i64,
    #[serde(with = "crate::time::Rfc3339Millis")]
    pub at: DateTime<Utc>,
    pub kind: LogKind,
    pub resource_id: Option<ResourceId>,
    pub hold_id: Option<HoldId>,
    pub owner_id: Option<String>,
    pub fencing_token: Option<u64>,
    pub detail: Detail,
    /// Who did it: the principal of the key used, or `hhs:reaper`.
    pub principal: Option<String>,
    pub key_id: Option<String>,
    pub request_id: Option<String>,
    /// `ok` for changes; `unauthenticated` for recorded authentication failures.
    pub outcome: String,
    /// On the live stream, for events about a resource that still exists: its lock as the origin read it right
    /// after the event (never older than the change), with the resource's type and identifier. A dashboard
    /// replaces its row with it when it is newer ([`LockView::is_older_than`]) and derives nothing itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<LockView>,
}
