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

use alloc::vec;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::ids::{FencingToken, GroupId, HoldId, OwnerId, Principal, ResourceId, SessionId};
use crate::time::Millis;
use crate::ttl::Ttl;

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

/// Why a transition was refused. The state is unchanged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denied {
    /// Someone else holds it until `expires_at` (unless they heartbeat).
    LockHeld { holder: OwnerId, expires_at: Millis },
    /// The resource is in lock-delay after an involuntary loss.
    LockDelay { until: Millis },
    /// The caller is not the holder (never was, or released, or was force-released).
    NotHolder,
    /// The hold belongs to another principal.
    NotYourHold,
    /// The caller's hold lapsed.
    LockExpired,
    /// The fencing token given is not the current grant's.
    StaleToken,
    /// Nothing to force-release.
    NotHeld,
    /// The TTL asked for is outside the resource type's bounds.
    TtlOutOfBounds { min_seconds: u32, max_seconds: u32 },
    /// A booking's end is not after now, or past the latest the resource type allows.
    BookingOutOfBounds { latest: Millis },
    /// The hold is renewed by its session ([`crate::session`]): a heartbeat or a plain re-acquire of it would
    /// part it from the session's expiry.
    InSession,
    /// The session was closed or has lapsed.
    SessionEnded,
    /// An acquire under a session names another owner than the session's.
    NotSessionOwner,
    /// Others wait for the resource ([`crate::queue`]): only the first of them may be granted it now.
    Queued { waiting: u32 },
    /// The resource's operational status does not allow a grant ([`crate::status`]).
    Unavailable { status: crate::status::Status },
    /// The caller's hold is booked until `until` ([`crate::booking`]): a renewal would promise it for a TTL
    /// from now, yet it ends at its booking's end.
    Booked { until: Millis },
}

/// A request for a grant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcquireCmd {
    pub principal: Principal,
    pub owner: OwnerId,
    pub ttl: Ttl,
    /// The id the new hold gets if this is a fresh grant (ids come from the caller: no randomness in here).
    pub new_hold_id: HoldId,
}

/// Acquire: free, released or expired ⇒ grant a new hold with the next token (unless in lock-delay); held by the
/// same owner ⇒ idempotent success that refreshes the heartbeat, adopts the requested TTL and keeps the token
/// (unless the hold is booked: [`Denied::Booked`], since its booking's end would cut that TTL short); held by
/// another ⇒ [`Denied::LockHeld`].
pub fn acquire(lease: &Lease, now: Millis, cmd: &AcquireCmd, lock_delay: Millis) -> Result<Outcome, Denied> {
    let mut next = lease.clone();
    let mut events = Vec::new();

    if let Some(hold) = next.hold.as_mut() {
        if hold.is_live(now) {
            if hold.owner != cmd.owner || hold.principal != cmd.principal {
                return Err(Denied::LockHeld { holder: hold.owner.clone(), expires_at: hold.expires_at() });
            }
            if hold.session.is_some() {
                return Err(Denied::InSession);
            }
            if let Some(until) = hold.booked_until {
                return Err(Denied::Booked { until });
            }
            hold.record_heartbeat(now);
            hold.ttl = cmd.ttl;
            return Ok(Outcome { lease: next, events });
        }
    }
    // A lapsed hold nobody has recorded yet: record it now, so correctness never waits for the reaper.
    if let Some(expired) = expire(&next, now, lock_delay) {
        next = expired.lease;
        events = expired.events;
    }
    if let Some(until) = next.delay_until {
        if now < until {
            return Err(Denied::LockDelay { until });
        }
    }

    let token = next.last_token.next();
    let hold = Hold {
        id: cmd.new_hold_id,
        principal: cmd.principal.clone(),
        owner: cmd.owner.clone(),
        ttl: cmd.ttl,
        token,
        acquired_at: now,
        last_heartbeat: now,
        state: HoldState::Held,
        heartbeats: 0,
        max_gap: Millis::ZERO,
        late_reported: false,
        session: None,
        group: None,
        booked_until: None,
        pickup_by: None,
    };
    events.push(LeaseEvent { kind: EventKind::Acquired, at: now, hold: hold.clone() });
    next.last_token = token;
    next.hold = Some(hold);
    next.delay_until = None;
    Ok(Outcome { lease: next, events })
}

/// Who claims to hold: the authenticated principal, the owner id it names, and optionally the fencing token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub principal: Principal,
    pub owner: OwnerId,
    pub token: Option<FencingToken>,
}

/// Checks that the claim matches the holder of record; says why not otherwise. The principal is checked first:
/// another principal learns nothing about owners or tokens.
pub(crate) fn check_holder<'a>(lease: &'a Lease, claim: &Claim) -> Result<&'a Hold, Denied> {
    let hold = lease.hold.as_ref().ok_or(Denied::NotHolder)?;
    if hold.principal != claim.principal {
        return Err(Denied::NotYourHold);
    }
    if hold.owner != claim.owner {
        return Err(Denied::NotHolder);
    }
    if claim.token.is_some_and(|t| t != hold.token) {
        return Err(Denied::StaleToken);
    }
    Ok(hold)
}

/// The claimant's hold, if it is theirs and live at `now`; why not otherwise (the holder rules of a heartbeat).
pub(crate) fn claimed_live_hold<'a>(lease: &'a Lease, now: Millis, claim: &Claim) -> Result<&'a Hold, Denied> {
    let hold = check_holder(lease, claim)?;
    match hold.state {
        HoldState::Held if hold.is_expired(now) => Err(Denied::LockExpired),
        HoldState::Held => Ok(hold),
        HoldState::Expired { .. } => Err(Denied::LockExpired),
        HoldState::Released { .. } | HoldState::ForceReleased { .. } => Err(Denied::NotHolder),
    }
}

/// Heartbeat: only the holder of an unexpired hold; renews `last_heartbeat`. Never grants, never revives.
pub fn heartbeat(lease: &Lease, now: Millis, claim: &Claim) -> Result<Outcome, Denied> {
    let hold = claimed_live_hold(lease, now, claim)?;
    if hold.session.is_some() {
        return Err(Denied::InSession);
    }
    if let Some(until) = hold.booked_until {
        return Err(Denied::Booked { until });
    }
    let mut next = lease.clone();
    if let Some(h) = next.hold.as_mut() {
        h.record_heartbeat(now);
    }
    Ok(Outcome { lease: next, events: vec![] })
}

/// Release: only the holder; releasing an already released hold again is an idempotent success with no event.
/// A clean release sets no lock-delay. A release naming a fencing token older than the current grant's is a
/// retry of a release that already took effect (the resource was granted again since): idempotent success,
/// nothing changes — whoever holds now keeps their hold.
pub fn release(lease: &Lease, now: Millis, claim: &Claim) -> Result<Outcome, Denied> {
    if claim.token.is_some_and(|t| lease.hold.as_ref().is_some_and(|h| t < h.token)) {
        return Ok(Outcome { lease: lease.clone(), events: vec![] });
    }
    let hold = check_holder(lease, claim)?;
    match hold.state {
        HoldState::Released { .. } => return Ok(Outcome { lease: lease.clone(), events: vec![] }),
        HoldState::Held if hold.is_expired(now) => return Err(Denied::LockExpired),
        HoldState::Held => {}
        HoldState::Expired { .. } => return Err(Denied::LockExpired),
        HoldState::ForceReleased { .. } => return Err(Denied::NotHolder),
    }
    let mut next = lease.clone();
    let mut events = Vec::new();
    if let Some(h) = next.hold.as_mut() {
        h.state = HoldState::Released { at: now.max(h.last_heartbeat) };
        events.push(LeaseEvent { kind: EventKind::Released, at: now, hold: h.clone() });
    }
    Ok(Outcome { lease: next, events })
}

/// Expiry (the reaper, and lazily any acquire): records a lapsed hold as expired at its last valid instant and
/// starts the lock-delay from there. `None` when there is nothing to expire.
///
/// A booking that reached its end is recorded as `completed` instead (stored as expired at its end, which with
/// its `booked_until` reads `COMPLETED`), with no lock-delay: its end was planned, nobody lost anything.
pub fn expire(lease: &Lease, now: Millis, lock_delay: Millis) -> Option<Outcome> {
    let hold = lease.hold.as_ref().filter(|h| h.is_expired(now))?;
    let at = hold.expires_at();
    let mut next = lease.clone();
    let mut ended = hold.clone();
    let booked = hold.booked_until.is_some();
    ended.state = HoldState::Expired { at };
    next.hold = Some(ended.clone());
    next.delay_until = (lock_delay > Millis::ZERO && !booked).then(|| at.plus(lock_delay));
    let kind = if booked { EventKind::Completed } else { EventKind::Expired };
    Some(Outcome { lease: next, events: vec![LeaseEvent { kind, at: now, hold: ended }] })
}

/// Force-release (an administrator): ends a live hold at `now`; an involuntary loss, so the lock-delay applies.
pub fn force_release(lease: &Lease, now: Millis, lock_delay: Millis) -> Result<Outcome, Denied> {
    let Some(hold) = lease.live_hold(now) else {
        return Err(Denied::NotHeld);
    };
    let mut ended = hold.clone();
    ended.state = HoldState::ForceReleased { at: now };
    let mut next = lease.clone();
    next.hold = Some(ended.clone());
    next.delay_until = (lock_delay > Millis::ZERO).then(|| now.plus(lock_delay));
    Ok(Outcome { lease: next, events: vec![LeaseEvent { kind: EventKind::ForceReleased, at: now, hold: ended }] })
}

/// Which late call is being reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Late {
    Heartbeat,
    Release,
}

/// A heartbeat or release by the holder of a hold that had lapsed (it was refused with `LockExpired`): records
/// the first such call as `late_heartbeat`/`late_release`, with the gap that caused the false expiry, and marks
/// the hold so no later call records another. A lapse nobody recorded yet is recorded first (`expired`, with
/// the type's lock-delay). Anything else — not this claimant's hold, not lapsed, already reported — changes
/// nothing (an empty outcome).
pub fn report_late(lease: &Lease, now: Millis, claim: &Claim, late: Late, lock_delay: Millis) -> Outcome {
    let unchanged = Outcome { lease: lease.clone(), events: vec![] };
    let Ok(hold) = check_holder(lease, claim) else { return unchanged };
    let lapsed = hold.is_expired(now) || matches!(hold.state, HoldState::Expired { .. });
    if !lapsed || hold.late_reported {
        return unchanged;
    }
    let (mut next, mut events) = match expire(lease, now, lock_delay) {
        Some(expired) => (expired.lease, expired.events),
        None => (lease.clone(), vec![]),
    };
    let Some(h) = next.hold.as_mut() else { return unchanged };
    h.late_reported = true;
    let mut reported = h.clone();
    reported.max_gap = reported.max_gap.max(now.since(reported.last_heartbeat));
    let kind = match late {
        Late::Heartbeat => EventKind::LateHeartbeat,
        Late::Release => EventKind::LateRelease,
    };
    events.push(LeaseEvent { kind, at: now, hold: reported });
    Outcome { lease: next, events }
}

/// Retiring a resource (deleting it): refused while a hold is live (`LockHeld`) or while a lock-delay runs
/// (`LockDelay`: the lapsed holder may still believe it holds, and a downstream system may still see its writes).
/// A lapse nobody recorded yet is recorded first, so the log never ends a hold by deletion. On success the
/// outcome carries those events; the caller then deletes the resource and keeps its last token as the floor of
/// its name ([`token_floor`]).
pub fn retire(lease: &Lease, now: Millis, lock_delay: Millis) -> Result<Outcome, Denied> {
    if let Some(h) = lease.live_hold(now) {
        return Err(Denied::LockHeld { holder: h.owner.clone(), expires_at: h.expires_at() });
    }
    let outcome = expire(lease, now, lock_delay).unwrap_or_else(|| Outcome { lease: lease.clone(), events: vec![] });
    if let Some(until) = outcome.lease.delay_until.filter(|until| now < *until) {
        return Err(Denied::LockDelay { until });
    }
    Ok(outcome)
}

/// After a database outage: nobody could renew a hold while no database server accepted writes, so a hold that
/// was live when the outage began (`lost_at`, the last instant the origin saw the database working) and has not
/// been renewed since gets back the time it had left then, counted from `now`: its expiry moves by the outage
/// (`now - lost_at`). `None` for anything else — not held, lapsed before the outage, renewed since.
///
/// Safe because it only lengthens a hold that is still recorded as held: it grants nothing, changes no token
/// and never shortens a hold, so no two holders can overlap. Its cost is liveness: a client that died during
/// the outage keeps its resource for the outage's length more. Not idempotent by itself (a hold renewed long
/// before the outage is still "not renewed since" after one resumption): the store applies it once per outage
/// (the `outages` table), not once per replica that saw it.
pub fn resume(lease: &Lease, lost_at: Millis, now: Millis) -> Option<Outcome> {
    // A booking needs no renewals, so an outage took nothing from it. A session's hold moves with its session
    // (`session::resume`, same transaction): both were last renewed at the same instant, so both move alike.
    let hold = lease.hold.as_ref().filter(|h| {
        h.state == HoldState::Held
            && h.booked_until.is_none()
            && h.last_heartbeat < lost_at
            && h.expires_at() >= lost_at
    })?;
    let outage = now.since(lost_at);
    if outage <= Millis::ZERO {
        return None;
    }
    let mut resumed = hold.clone();
    resumed.last_heartbeat = hold.last_heartbeat.plus(outage);
    resumed.pickup_by = hold.pickup_by.map(|p| p.plus(outage));
    let mut next = lease.clone();
    next.hold = Some(resumed.clone());
    Some(Outcome { lease: next, events: vec![LeaseEvent { kind: EventKind::Extended, at: now, hold: resumed }] })
}

/// Fencing tokens rise per *name* (type and identifier) for ever, not only per resource row: a downstream system
/// that fences by bed name must never see a token go back when a bed is deleted and created again, or renamed
/// onto a name that was used before. When a name is given up (delete, rename away) its floor becomes the
/// highest token issued under it; a lease that takes a name (create, rename onto it) continues above that floor.
pub fn token_floor(last_token: FencingToken, floor: Option<FencingToken>) -> FencingToken {
    floor.map_or(last_token, |f| f.max(last_token))
}
