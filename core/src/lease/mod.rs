//! The lease of one resource and its transitions.
//!
//! Every transition is `fn(&Lease, now, …) -> Result<Outcome, Denied>`: the caller (a store) locks the resource's
//! lease row, reads the database clock, calls the transition, and on `Ok` writes `outcome.lease` back and appends
//! `outcome.events` in the same transaction. On `Err` it writes nothing. No transition reads a clock.
//!
//! ## Expiry
//! A hold is expired once `now` is past [`Hold::expires_at`], its last valid instant: `last_heartbeat + ttl` —
//! strictly greater: at exactly that instant it is still held, one millisecond later it is not — or a booking's
//! end, or a hand-over's pickup deadline if that comes first.
//!
//! ## Invariants (property-tested in `tests/lease_props.rs`)
//! * At most one live hold per resource; a grant to a new owner happens only when the previous hold is released,
//!   expired or force-released.
//! * Every grant's fencing token is strictly greater than all earlier tokens of the resource.
//! * Heartbeat never grants and never revives an expired or released hold.
//! * A request by someone who is not the live holder never changes the state.
//! * At most one late report (`late_heartbeat`/`late_release`) per hold.
//! * A resource is retired (deleted) only with no live hold, no unrecorded expiry and no running lock-delay.

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::denied::Denied;
use crate::ids::{FencingToken, GroupId, HoldId, OwnerId, Principal, ResourceId, SessionId};
use crate::time::Millis;
use crate::ttl::Ttl;

mod transitions;

pub use transitions::*;

/// How a hold stands, as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub enum HoldState {
    Held,
    /// Released by its holder at `at`.
    Released {
        at: Millis,
    },
    /// Lapsed: `at` is the last instant it was valid ([`Hold::expires_at`]).
    Expired {
        at: Millis,
    },
    /// Ended by an administrator at `at`.
    ForceReleased {
        at: Millis,
    },
}

/// The status the API reports, with time applied: a stored `Held` past its expiry reads as `EXPIRED` even before
/// the reaper has recorded it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LockStatus {
    Free,
    Held,
    Released,
    Expired,
    ForceReleased,
    /// A live booking: held until its `booked_until`, whatever the heartbeats.
    Booked,
    /// A booking that ran to its end.
    Completed,
}

impl LockStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LockStatus::Free => "FREE",
            LockStatus::Held => "HELD",
            LockStatus::Released => "RELEASED",
            LockStatus::Expired => "EXPIRED",
            LockStatus::ForceReleased => "FORCE_RELEASED",
            LockStatus::Booked => "BOOKED",
            LockStatus::Completed => "COMPLETED",
        }
    }

    pub fn parse(s: &str) -> Option<LockStatus> {
        [
            LockStatus::Free,
            LockStatus::Held,
            LockStatus::Released,
            LockStatus::Expired,
            LockStatus::ForceReleased,
            LockStatus::Booked,
            LockStatus::Completed,
        ]
        .into_iter()
        .find(|st| st.as_str().eq_ignore_ascii_case(s))
    }
}

/// One grant of a lease and its life so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hold {
    pub id: HoldId,
    /// The principal whose key acquired the hold; only it may renew or release it.
    pub principal: Principal,
    /// Within the principal, the workstation or process that holds.
    pub owner: OwnerId,
    pub ttl: Ttl,
    pub token: FencingToken,
    pub acquired_at: Millis,
    pub last_heartbeat: Millis,
    pub state: HoldState,
    /// Heartbeats received (idempotent re-acquires count), and the longest gap between two of them (or between
    /// the grant and the first): the per-hold heartbeat summary that the event log and the TTL model read.
    pub heartbeats: u32,
    pub max_gap: Millis,
    /// Whether a heartbeat or release that came after this hold lapsed has been recorded (at most one is: the
    /// first teaches the TTL model the gap; more would only grow the log and let one client skew the model).
    pub late_reported: bool,
    /// The session it was taken under: renewed by the session's keepalives (its `last_heartbeat` and `ttl` are
    /// the session's), so it lapses exactly when the session does ([`crate::session`]).
    pub session: Option<SessionId>,
    /// The all-or-nothing group it was granted in ([`crate::group`]).
    pub group: Option<GroupId>,
    /// A booking: valid until this instant whatever the heartbeats ([`crate::booking`]).
    pub booked_until: Option<Millis>,
    /// A hold handed over from the queue lapses at this instant unless renewed first, whatever its TTL
    /// ([`crate::queue::pickup_deadline`]): an answer that reached no one (its connection died unnoticed) costs the
    /// resource seconds, not a whole TTL. The first renewal clears it and the hold runs on its own TTL.
    pub pickup_by: Option<Millis>,
}

impl Hold {
    /// The last instant at which the hold is still valid: `last_heartbeat + ttl` (or its pickup deadline if that
    /// comes first), or a booking's end.
    pub fn expires_at(&self) -> Millis {
        self.booked_until.unwrap_or_else(|| {
            let renewed = self.last_heartbeat.plus(self.ttl.as_millis());
            self.pickup_by.map_or(renewed, |p| p.min(renewed))
        })
    }

    /// The expiry rule: stored as held, and past [`expires_at`](Self::expires_at) — for a hold that is not
    /// booked, `now - last_heartbeat > ttl`.
    pub fn is_expired(&self, now: Millis) -> bool {
        self.state == HoldState::Held && now > self.expires_at()
    }

    /// The refusal this hold gives anyone else who asks for its resource.
    pub fn refusal(&self) -> Denied {
        Denied::LockHeld {
            holder: self.owner.clone(),
            expires_at: self.expires_at(),
            booked: self.booked_until.is_some(),
        }
    }

    /// Held and not expired at `now`.
    pub fn is_live(&self, now: Millis) -> bool {
        self.state == HoldState::Held && !self.is_expired(now)
    }

    pub fn status(&self, now: Millis) -> LockStatus {
        match self.state {
            HoldState::Held if self.is_expired(now) && self.booked_until.is_some() => LockStatus::Completed,
            HoldState::Held if self.is_expired(now) => LockStatus::Expired,
            HoldState::Held if self.booked_until.is_some() => LockStatus::Booked,
            HoldState::Held => LockStatus::Held,
            HoldState::Released { .. } => LockStatus::Released,
            // A booking that reached its end is stored as expired at that end: it reads `COMPLETED`.
            HoldState::Expired { .. } if self.booked_until.is_some() => LockStatus::Completed,
            HoldState::Expired { .. } => LockStatus::Expired,
            HoldState::ForceReleased { .. } => LockStatus::ForceReleased,
        }
    }

    /// When the hold ended (as stored, or as it will be recorded if it has lapsed unrecorded).
    pub fn ended_at(&self, now: Millis) -> Option<Millis> {
        match self.state {
            HoldState::Held if self.is_expired(now) => Some(self.expires_at()),
            HoldState::Held => None,
            HoldState::Released { at } | HoldState::Expired { at } | HoldState::ForceReleased { at } => Some(at),
        }
    }

    fn record_heartbeat(&mut self, now: Millis) {
        // The database clock can step back a little between replicas' transactions; never let a heartbeat move
        // the hold's clock backwards (that would shorten someone's hold).
        let now = now.max(self.last_heartbeat);
        self.max_gap = self.max_gap.max(now.since(self.last_heartbeat));
        self.heartbeats = self.heartbeats.saturating_add(1);
        self.last_heartbeat = now;
        self.pickup_by = None;
    }
}

/// The persisted lease of one resource: one row per resource, created with the resource, never deleted while the
/// resource exists. Acquires serialize on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub resource_id: ResourceId,
    /// The highest token ever issued for this resource (0: never granted).
    pub last_token: FencingToken,
    /// The current hold, or the last one if it has ended.
    pub hold: Option<Hold>,
    /// No grant before this instant (lock-delay after an involuntary loss).
    pub delay_until: Option<Millis>,
    /// How many requests wait in its queue ([`crate::queue`]; changed only with the queue itself).
    pub waiting: u32,
}

impl Lease {
    pub fn new(resource_id: ResourceId) -> Lease {
        Lease { resource_id, last_token: FencingToken(0), hold: None, delay_until: None, waiting: 0 }
    }

    pub fn status(&self, now: Millis) -> LockStatus {
        self.hold.as_ref().map_or(LockStatus::Free, |h| h.status(now))
    }

    /// The live hold at `now`, if any.
    pub fn live_hold(&self, now: Millis) -> Option<&Hold> {
        self.hold.as_ref().filter(|h| h.is_live(now))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Acquired,
    Released,
    Expired,
    ForceReleased,
    /// A heartbeat from the holder after its hold had lapsed (the first one only).
    LateHeartbeat,
    /// A release from the holder after its hold had lapsed (the first late report only).
    LateRelease,
    /// Given back the time a database outage took from it ([`resume`]).
    Extended,
    /// Turned into a booking ([`crate::booking::book`]).
    Booked,
    /// A booking that reached its end (recorded like an expiry, without lock-delay: a planned end).
    Completed,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Acquired => "acquired",
            EventKind::Released => "released",
            EventKind::Expired => "expired",
            EventKind::ForceReleased => "force_released",
            EventKind::LateHeartbeat => "late_heartbeat",
            EventKind::LateRelease => "late_release",
            EventKind::Extended => "extended",
            EventKind::Booked => "booked",
            EventKind::Completed => "completed",
        }
    }
}

/// A state change to append to the event log, with the hold as it stands after the change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseEvent {
    pub kind: EventKind,
    pub at: Millis,
    pub hold: Hold,
}

impl LeaseEvent {
    /// How long the hold was held by the time of this event: to its end for an ending event, to the event for a
    /// late report (how long the client needed it), `None` while it goes on.
    pub fn held_for(&self) -> Option<Millis> {
        let end = match self.kind {
            EventKind::LateHeartbeat | EventKind::LateRelease => Some(self.at),
            _ => self.hold.ended_at(self.at),
        };
        end.map(|end| end.since(self.hold.acquired_at))
    }
}

/// The result of a transition: the lease to store and the events to append, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub lease: Lease,
    pub events: Vec<LeaseEvent>,
}
