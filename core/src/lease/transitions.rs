//! The transitions of a lease: each takes the lease as it stands and `now`, and returns the next state with
//! the events to append, or why not ([`Denied`]), changing nothing.

use alloc::vec;
use alloc::vec::Vec;

use super::{EventKind, Hold, HoldState, Lease, LeaseEvent, Outcome};
use crate::denied::Denied;
use crate::ids::{FencingToken, HoldId, OwnerId, Principal};
use crate::time::Millis;
use crate::ttl::Ttl;

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
                return Err(hold.refusal());
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
        return Err(h.refusal());
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
