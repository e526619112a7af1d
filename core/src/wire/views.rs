//! Response bodies: what the API answers.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::auth::Role;
use crate::error::{ApiError, ErrorCode};
use crate::ids::{HoldId, ResourceId};
use crate::lease::{Denied, Lease, LockStatus};
use crate::time::Millis;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct SuggestionBasis {
    /// `owner`, `type` or `default`.
    pub scope: crate::ttl_model::Scope,
    /// `heartbeat_gaps`, `hold_durations` or `policy_default`.
    pub learned_from: crate::ttl_model::Basis,
    pub samples: u32,
    /// The learned 99.5th percentile (before the safety margin and the policy bounds), in seconds.
    pub quantile_seconds: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct SuggestResponse {
    pub suggested_ttl: u32,
    /// How unusual the resource's current hold is, in [0, 1]; 0 when it is free.
    pub anomaly_score: f64,
    pub basis: SuggestionBasis,
}

/// One entry of `GET /api/ml/anomalies`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct AnomalyView {
    pub resource_id: ResourceId,
    #[serde(rename = "type")]
    pub resource_type: String,
    pub identifier: String,
    pub owner_id: String,
    pub principal: String,
    pub anomaly_score: f64,
    pub held_seconds: f64,
    pub heartbeat_gap_seconds: f64,
    pub fencing_token: u64,
}

/// `PATCH /api/resources/{id}`: rename a resource (admin), set its operational status (admin or integration),
/// or both. At least one of the two.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateResourceRequest {
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schemars(with = "Option<crate::ids::Identifier>"))]
    pub identifier: Option<String>,
    /// HL7 table 0116: C, H, I, K, O or U (only U can be held).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schemars(with = "Option<crate::status::Status>"))]
    pub status: Option<String>,
}

impl UpdateResourceRequest {
    pub fn validate(&self) -> Result<(Option<crate::ids::Identifier>, Option<crate::status::Status>), ApiError> {
        let identifier = self.identifier.as_deref().map(crate::ids::Identifier::parse).transpose()?;
        let status = self.status.as_deref().map(crate::status::Status::parse).transpose()?;
        if identifier.is_none() && status.is_none() {
            return Err(ApiError::new(ErrorCode::ValidationFailed, "give identifier, status or both"));
        }
        Ok((identifier, status))
    }
}

/// A key as listed: never its secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct KeyView {
    pub id: String,
    pub principal: String,
    pub role: Role,
    #[serde(with = "crate::time::Rfc3339Millis")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::time::OptionalRfc3339Millis")]
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The answer to a key creation: the only time the full key is shown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct CreatedKey {
    pub key: String,
    #[serde(flatten)]
    pub view: KeyView,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct ResourceView {
    pub id: ResourceId,
    #[serde(rename = "type")]
    pub resource_type: String,
    pub identifier: String,
    #[serde(with = "crate::time::Rfc3339Millis")]
    pub created_at: DateTime<Utc>,
    /// Its operational status (HL7 table 0116; only U can be held).
    #[serde(default)]
    pub status: crate::status::Status,
}

/// Every list of the API has this shape: the items of one page, and what to pass as `?after=` for the next one
/// (`null` on the last page). `GET /api/locks` adds the server time and the event to stream from ([`LockList`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", schemars(rename = "{T}Page"))]
pub struct Page<T, After = ResourceId> {
    pub items: Vec<T>,
    /// Absent reads as `null` (serde's rule for an `Option`; a `default` attribute would ask `After: Default`).
    pub next_after: Option<After>,
}

/// `GET /api/resources`, by resource id.
pub type ResourcePage = Page<ResourceView>;
/// `GET /api/ml/anomalies`: one page of live holds (by resource id, at most `limit` ≤ 1,000 holds examined),
/// those scoring at least `min_score`, most unusual first within the page. Read every page for the overall top.
pub type AnomalyList = Page<AnomalyView>;
/// `GET /api/events`, in commit order; `next_after` is an event id.
pub type EventPage = Page<crate::wire::events::EventView, i64>;
/// `GET /api/types`, by name (one page: every type).
pub type TypePage = Page<TypeView, String>;
/// `GET /api/keys` (one page: every key).
pub type KeyPage = Page<KeyView, String>;

/// A session (`/api/sessions`): its owner, TTL and expiry, how it stands at the time of the read (`OPEN`,
/// `CLOSED`, `LAPSED`: an open session past its expiry reads `LAPSED` before the reaper records it) and how many
/// live holds it renews.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct SessionView {
    pub id: crate::ids::SessionId,
    pub principal: String,
    pub owner_id: String,
    pub ttl_seconds: u32,
    pub status: String,
    #[serde(with = "crate::time::Rfc3339Millis")]
    pub opened_at: DateTime<Utc>,
    #[serde(with = "crate::time::Rfc3339Millis")]
    pub last_keepalive: DateTime<Utc>,
    #[serde(with = "crate::time::Rfc3339Millis")]
    pub expires_at: DateTime<Utc>,
    #[serde(with = "crate::time::OptionalRfc3339Millis")]
    pub ended_at: Option<DateTime<Utc>>,
    pub holds: u64,
    /// On the answer that opened it: `"requested"`, or `"suggested"` (no `ttl_seconds` given: the TTL model's
    /// suggestion from the owner's past renewal gaps, else the default TTL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_source: Option<String>,
}

impl SessionView {
    pub fn of(s: &crate::session::Session, holds: u64, now: Millis) -> SessionView {
        use crate::session::SessionState;
        let (status, ended) = match s.state {
            SessionState::Open if s.is_live(now) => ("OPEN", None),
            SessionState::Open => ("LAPSED", Some(s.expires_at())),
            SessionState::Closed { at } => ("CLOSED", Some(at)),
            SessionState::Lapsed { at } => ("LAPSED", Some(at)),
        };
        SessionView {
            id: s.id,
            principal: s.principal.as_str().into(),
            owner_id: s.owner.as_str().into(),
            ttl_seconds: s.ttl.seconds(),
            status: status.into(),
            opened_at: s.opened_at.to_utc(),
            last_keepalive: s.last_keepalive.to_utc(),
            expires_at: s.expires_at().to_utc(),
            ended_at: ended.map(Millis::to_utc),
            holds: if status == "OPEN" { holds } else { 0 },
            ttl_source: None,
        }
    }
}

impl SessionView {
    /// How long the session (and every hold under it) has left at `now`; zero once it has lapsed.
    pub fn remaining_at(&self, now: Millis) -> Millis {
        Millis(Millis::from_utc(self.expires_at).since(now).0.max(0))
    }
}

/// `POST /api/sessions/{session_id}/keepalive`'s answer: the session as renewed, and exactly the holds the
/// keepalive renewed. A hold taken under the session and absent here is no longer renewed by it (released,
/// force-released, lapsed or booked): its holder must stop relying on it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct KeepAliveView {
    #[serde(flatten)]
    pub session: SessionView,
    /// Every hold renewed, by resource id (ascending) with its fencing token.
    pub renewed: Vec<SessionHold>,
}

/// One hold a keepalive renewed: its resource and the fencing token of its grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct SessionHold {
    pub resource_id: ResourceId,
    pub fencing_token: u64,
}

/// A group's holds (`/api/locks/acquire-group` and the group operations), in lock order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct GroupView {
    pub group_id: crate::ids::GroupId,
    pub holds: Vec<LockView>,
}

/// `POST /api/locks/book`'s answer: the booked hold's lock (booked by `resource_id`) or the group's (by
/// `group_id`), as the other lock and group operations answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(untagged)]
pub enum Booked {
    Group(GroupView),
    Lock(alloc::boxed::Box<LockView>),
}

/// `GET /api/sessions`: the open sessions (one page).
pub type SessionPage = Page<SessionView, String>;

/// The state of one resource's lease, as `GET /api/locks/{id}` and every lock operation return it.
///
/// `id` is the hold's id; hold fields are `null` while the resource has never been held (`status: "FREE"`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct LockView {
    pub id: Option<HoldId>,
    pub resource_id: ResourceId,
    pub owner_id: Option<String>,
    /// The principal whose key acquired the hold.
    pub principal: Option<String>,
    pub status: LockStatus,
    pub ttl_seconds: Option<u32>,
    pub fencing_token: Option<u64>,
    #[serde(with = "crate::time::OptionalRfc3339Millis")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(with = "crate::time::OptionalRfc3339Millis")]
    pub last_heartbeat: Option<DateTime<Utc>>,
    #[serde(with = "crate::time::OptionalRfc3339Millis")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(with = "crate::time::OptionalRfc3339Millis")]
    pub ended_at: Option<DateTime<Utc>>,
    /// Set while the resource is in lock-delay: no grant before this time.
    #[serde(with = "crate::time::OptionalRfc3339Millis")]
    pub lock_delay_until: Option<DateTime<Utc>>,
    /// The session the hold is renewed by (its keepalives move `expires_at`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<crate::ids::SessionId>,
    /// The all-or-nothing group the hold was granted in, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<crate::ids::GroupId>,
    /// On acquire answers: `"requested"`, `"suggested"` (the TTL model chose it) or `"session"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_source: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<String>,
    /// How many requests wait for the resource (`wait_seconds`), first in first granted; absent when none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub queue_length: u32,
    /// The resource's operational status, where the view names its resource (lists, stream events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_status: Option<crate::status::Status>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl LockView {
    pub fn of(lease: &Lease, now: Millis) -> LockView {
        let hold = lease.hold.as_ref();
        LockView {
            id: hold.map(|h| h.id),
            resource_id: lease.resource_id,
            owner_id: hold.map(|h| h.owner.as_str().to_string()),
            principal: hold.map(|h| h.principal.as_str().to_string()),
            status: lease.status(now),
            ttl_seconds: hold.map(|h| h.ttl.seconds()),
            fencing_token: hold.map(|h| h.token.0),
            created_at: hold.map(|h| h.acquired_at.to_utc()),
            last_heartbeat: hold.map(|h| h.last_heartbeat.to_utc()),
            expires_at: hold.map(|h| h.expires_at().to_utc()),
            ended_at: hold.and_then(|h| h.ended_at(now)).map(Millis::to_utc),
            lock_delay_until: lease.delay_until.filter(|u| *u > now).map(Millis::to_utc),
            session_id: hold.and_then(|h| h.session),
            group_id: hold.and_then(|h| h.group),
            ttl_source: None,
            resource_type: None,
            identifier: None,
            queue_length: lease.waiting,
            resource_status: None,
        }
    }

    /// Whether this live hold lapses before its TTL would end it: a hold handed over from the queue, which until
    /// its first renewal lasts only until `queue::pickup_deadline`. Whoever holds it renews at once (the client library and
    /// the dashboard do), and from then on it runs on its TTL.
    pub fn awaits_pickup(&self) -> bool {
        match (self.status, self.last_heartbeat, self.expires_at, self.ttl_seconds) {
            (LockStatus::Held, Some(beat), Some(exp), Some(ttl)) => {
                Millis::from_utc(exp).since(Millis::from_utc(beat)) < Millis(i64::from(ttl) * 1000)
            }
            _ => false,
        }
    }

    /// Adds the resource's operational status (with its names, in lists and stream events).
    pub fn with_status(mut self, status: crate::status::Status) -> LockView {
        self.resource_status = Some(status);
        self
    }

    /// Adds the resource's type and identifier (lists show them; single-lock answers keep the seed's shape).
    pub fn with_resource(mut self, resource_type: &str, identifier: &str) -> LockView {
        self.resource_type = Some(resource_type.to_string());
        self.identifier = Some(identifier.to_string());
        self
    }

    /// The status at `now` by the expiry rule: a view read as `HELD` reads `EXPIRED` once `now` is past its
    /// `expires_at` (the last valid instant), `BOOKED` reads `COMPLETED` past its end, exactly as
    /// [`crate::Hold::status`] decides on the server.
    pub fn status_at(&self, now: Millis) -> LockStatus {
        match (self.status, self.expires_at) {
            (LockStatus::Held, Some(exp)) if now > Millis::from_utc(exp) => LockStatus::Expired,
            (LockStatus::Booked, Some(end)) if now > Millis::from_utc(end) => LockStatus::Completed,
            (status, _) => status,
        }
    }

    /// How long a live hold has left at `now` (zero once it has lapsed); `None` when not held.
    pub fn remaining_at(&self, now: Millis) -> Option<Millis> {
        let exp = Millis::from_utc(self.expires_at?);
        matches!(self.status, LockStatus::Held | LockStatus::Booked).then(|| Millis(exp.since(now).0.max(0)))
    }

    /// The view of a lease whose hold was just renewed (a heartbeat, or a repeated acquire by its holder):
    /// streamed as a transient `heartbeat` message so countdowns follow renewals. `None` unless it is held.
    pub fn renewed(lease: &Lease) -> Option<LockView> {
        let h = lease.hold.as_ref().filter(|h| h.state == crate::HoldState::Held)?;
        Some(LockView::of(lease, h.last_heartbeat))
    }

    /// The renewal a transition from `before` made, if it made one: the hold changed (a new heartbeat or TTL)
    /// and no event says so — streamed as a transient `heartbeat` message.
    pub fn renewal(before: &Lease, outcome: &crate::lease::Outcome) -> Option<LockView> {
        (outcome.events.is_empty() && &outcome.lease != before).then(|| LockView::renewed(&outcome.lease)).flatten()
    }

    /// Whether this view of a resource's lock is strictly older than `other` (of the same resource): by the
    /// grant (fencing token), then its last renewal, then how far the hold has gone — held, then booked, then
    /// ended (a booking and an end keep the last renewal). A hold read as lapsed and then given back its time after a database outage (`lease::resume`)
    /// has a later renewal, so the resumed view wins. A dashboard keeps the newer of the two and either of two
    /// equal ones (a repeat, or the same state with fresher resource details).
    pub fn is_older_than(&self, other: &LockView) -> bool {
        self.order() < other.order()
    }

    fn order(&self) -> (u64, Option<DateTime<Utc>>, u8) {
        // A hold only moves forward: held → booked → ended (a booking is cancelled, completes or is
        // force-released), so a booking read late never hides the end that came after it.
        let stage = match self.status {
            LockStatus::Free | LockStatus::Held => 0,
            LockStatus::Booked => 1,
            LockStatus::Released | LockStatus::Expired | LockStatus::ForceReleased | LockStatus::Completed => 2,
        };
        (self.fencing_token.unwrap_or(0), self.last_heartbeat, stage)
    }

    /// How long a running lock-delay has left at `now`; `None` when none runs.
    pub fn lock_delay_remaining_at(&self, now: Millis) -> Option<Millis> {
        let until = Millis::from_utc(self.lock_delay_until?);
        (now < until).then(|| until.since(now))
    }

    /// How long ago the hold's last heartbeat (or grant) was, at `now`; `None` without a hold.
    pub fn since_heartbeat_at(&self, now: Millis) -> Option<Millis> {
        Some(Millis(now.since(Millis::from_utc(self.last_heartbeat?)).0.max(0)))
    }

    /// Whether no grant is possible at `now` because of a lock-delay.
    pub fn in_lock_delay(&self, now: Millis) -> bool {
        self.lock_delay_until.is_some_and(|u| now < Millis::from_utc(u))
    }
}

/// `GET /api/locks`: one page of leases (by resource id, at most `limit` ≤ 1,000), with the database time it was
/// read at and the newest event id before the read, so a dashboard can measure its clock offset and stream the
/// changes from there without a gap. A client reading several pages streams from the *first* page's
/// `last_event_id`: every page read after it is at least as new.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct LockList {
    pub items: Vec<LockView>,
    #[serde(with = "crate::time::Rfc3339Millis")]
    pub server_time: DateTime<Utc>,
    /// Events after this id may or may not be reflected in `items`; folding them again changes nothing.
    pub last_event_id: i64,
    /// Pass as `?after=` for the next page; `null` on the last page. (A `status` filter applies within a page, so
    /// a page may hold fewer items than `limit` and still have a next one.)
    #[serde(default)]
    pub next_after: Option<ResourceId>,
}

/// A resource type and its policy (`GET /api/types/{name}`): what every replica, the reaper and the dashboard
/// decide with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct TypeView {
    pub name: String,
    /// After an expiry or force-release, no grant for this long (0: none; a clean release never has one).
    pub lock_delay_seconds: u32,
    pub min_ttl_seconds: u32,
    pub max_ttl_seconds: u32,
    /// What an acquire without `ttl_seconds` gets while the TTL model has too little history.
    pub default_ttl_seconds: u32,
    /// How far ahead a hold of this type may be booked (`POST /api/locks/book`).
    pub booking_max_seconds: u32,
    /// The operational status its new resources start in.
    #[serde(default)]
    pub default_status: crate::status::Status,
}

impl TypeView {
    pub fn of(name: &str, p: &crate::policy::TypePolicy) -> TypeView {
        let b = p.ttl_bounds();
        let delay = u32::try_from(p.lock_delay().0 / 1000).unwrap_or(u32::MAX);
        let booking_max_seconds = u32::try_from(p.booking_max().0 / 1000).unwrap_or(u32::MAX);
        TypeView {
            name: name.into(),
            lock_delay_seconds: delay,
            min_ttl_seconds: b.min_seconds,
            max_ttl_seconds: b.max_seconds,
            default_ttl_seconds: p.default_ttl_seconds(),
            booking_max_seconds,
            default_status: p.default_status,
        }
    }
}

/// `GET /api/whoami`: whose key this is and what it may do, so a dashboard offers only the allowed actions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct WhoAmIView {
    pub principal: String,
    pub role: Role,
    pub key_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct Health {
    pub status: String,
    pub database: String,
    pub version: String,
    /// PostgreSQL only: the server written to and whether it waits for a standby.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication: Option<Replication>,
}

/// How the PostgreSQL server the origin writes to replicates: an acknowledged commit survives the loss of the
/// server only if it waits for a standby (`synchronous`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct Replication {
    /// `host:port` of the primary.
    pub server: Option<String>,
    pub synchronous_commit: String,
    pub synchronous_standby_names: String,
    /// Standbys streaming synchronously now; `None` where the role may not see them (grant it `pg_monitor`).
    pub sync_standbys: Option<i64>,
    /// Commits wait for at least one standby ([`Replication::waits_for_standby`]).
    pub synchronous: bool,
    /// How long the last database outage this process lived through lasted, in ms.
    pub last_outage_ms: Option<i64>,
}

impl Replication {
    /// Whether a commit is acknowledged only once a standby has it: some standby is named as synchronous and
    /// `synchronous_commit` waits for it (`on`, `remote_write`, `remote_apply`; not `local` or `off`).
    pub fn waits_for_standby(synchronous_commit: &str, synchronous_standby_names: &str) -> bool {
        !synchronous_standby_names.trim().is_empty()
            && matches!(synchronous_commit, "on" | "remote_write" | "remote_apply")
    }
}

impl From<Denied> for ApiError {
    fn from(d: Denied) -> ApiError {
        match d {
            Denied::LockHeld { holder, expires_at } => {
                let mut e = ApiError::new(
                    ErrorCode::LockHeld,
                    format!(
                        "the resource is held by {holder} until {} unless they renew",
                        expires_at.to_utc().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                    ),
                );
                e.holder = Some(holder.as_str().to_string());
                e.expires_at = Some(expires_at.to_utc());
                e
            }
            Denied::LockDelay { until } => {
                let mut e = ApiError::new(
                    ErrorCode::LockDelay,
                    "the last hold ended involuntarily; the resource cannot be granted until its lock-delay has passed",
                );
                e.retry_at = Some(until.to_utc());
                e
            }
            Denied::NotHolder => ApiError::new(ErrorCode::NotHolder, "this owner does not hold the resource"),
            Denied::NotYourHold => {
                ApiError::new(ErrorCode::NotYourHold, "the resource is held under another principal's key")
            }
            Denied::LockExpired => ApiError::new(
                ErrorCode::LockExpired,
                "this owner's hold expired; acquire again (and treat any work done under the old token as unprotected)",
            ),
            Denied::StaleToken => ApiError::new(
                ErrorCode::StaleToken,
                "the fencing token does not match the current grant of this resource",
            ),
            Denied::NotHeld => ApiError::new(ErrorCode::LockNotHeld, "the resource is not held"),
            Denied::InSession => ApiError::new(
                ErrorCode::RenewedBySession,
                "this hold is renewed by its session: keep the session alive instead",
            ),
            Denied::Booked { until } => {
                let mut e = ApiError::new(
                    ErrorCode::HoldBooked,
                    "this hold is booked until its end: it needs no renewals, and a renewal could not keep it longer",
                );
                e.expires_at = Some(until.to_utc());
                e
            }
            Denied::SessionEnded => {
                ApiError::new(ErrorCode::SessionEnded, "the session was closed or has lapsed; open a new one")
            }
            Denied::NotSessionOwner => {
                ApiError::new(ErrorCode::ValidationFailed, "owner_id must be the session's owner")
            }
            Denied::Unavailable { status } => {
                ApiError::new(ErrorCode::ResourceUnavailable, crate::status::unavailable_message(status))
            }
            Denied::Queued { waiting } => ApiError::new(
                ErrorCode::LockHeld,
                format!("{waiting} request(s) already wait for this resource; join the queue with wait_seconds"),
            ),
            Denied::TtlOutOfBounds { min_seconds, max_seconds } => ApiError::new(
                ErrorCode::InvalidTtl,
                format!("ttl_seconds must be between {min_seconds} and {max_seconds} for this resource type"),
            ),
            Denied::BookingOutOfBounds { latest } => ApiError::new(
                ErrorCode::ValidationFailed,
                format!(
                    "until must be after now and no later than {}",
                    latest.to_utc().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                ),
            ),
        }
    }
}
