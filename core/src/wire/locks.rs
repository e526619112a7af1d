//! The bodies that show a lease: one resource's (`LockView`, which every lock operation answers), a page of
//! them (`LockList`), a group's, a booking's.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{HoldId, ResourceId};
use crate::lease::{Lease, LockStatus};
use crate::time::Millis;

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
