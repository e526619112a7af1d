//! Sessions: one keepalive renews every hold taken under it (etcd's leases with many keys, Consul's sessions).
//! A ward's workstation holding dozens of beds sends one keepalive, not dozens of heartbeats.
//!
//! The rule that makes it safe is one equality: a hold taken under a session carries the session's renewal —
//! its `last_heartbeat` is the session's `last_keepalive` and its `ttl` the session's — so it expires at exactly
//! the session's instant, by the ordinary expiry rule ([`crate::Hold::is_expired`]). A keepalive renews the
//! session and every live hold attached to it together ([`renew_hold`], one statement in a store); a session
//! that lapses takes exactly its holds with it, each recorded as an ordinary `expired` (lock-delay applies).
//! Nothing else changes: tokens, exclusivity and expiry are the lease rules', unchanged.
//!
//! Invariants (property-tested in `tests/it/clinical_props.rs`): every live hold attached to a session expires
//! when the session does; once the session is not live none of its holds is; holds outside it are untouched.

use crate::denied::Denied;
use crate::ids::{OwnerId, Principal, SessionId};
use crate::lease::{acquire, AcquireCmd, HoldState, Lease, Outcome};
use crate::time::Millis;
use crate::ttl::Ttl;

/// How a session stands, as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionState {
    Open,
    /// Closed by its owner at `at` (its holds released).
    Closed {
        at: Millis,
    },
    /// Lapsed: `at` is its last valid instant.
    Lapsed {
        at: Millis,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub id: SessionId,
    /// Only the principal that opened it may keep it alive, close it or acquire under it.
    pub principal: Principal,
    /// The owner its holds are held by.
    pub owner: OwnerId,
    pub ttl: Ttl,
    pub opened_at: Millis,
    pub last_keepalive: Millis,
    pub state: SessionState,
}

impl Session {
    /// The last instant at which the session (and every hold under it) is valid.
    pub fn expires_at(&self) -> Millis {
        self.last_keepalive.plus(self.ttl.as_millis())
    }

    /// Open and not past its last valid instant.
    pub fn is_live(&self, now: Millis) -> bool {
        self.state == SessionState::Open && now <= self.expires_at()
    }
}

/// A new session, live from `now`.
pub fn open(id: SessionId, principal: Principal, owner: OwnerId, ttl: Ttl, now: Millis) -> Session {
    Session { id, principal, owner, ttl, opened_at: now, last_keepalive: now, state: SessionState::Open }
}

/// Whether `principal` may use the session at `now`: its own (`NotYourHold`), and open and live
/// (`SessionEnded`).
fn check(s: &Session, now: Millis, principal: &Principal) -> Result<(), Denied> {
    if &s.principal != principal {
        return Err(Denied::NotYourHold);
    }
    if !s.is_live(now) {
        return Err(Denied::SessionEnded);
    }
    Ok(())
}

/// Keepalive: renews a live session from `now` (never backwards: the database clock can step back a little
/// between replicas). Its holds follow by [`renew_hold`]. Never revives a lapsed or closed session.
pub fn keepalive(s: &Session, now: Millis, principal: &Principal) -> Result<Session, Denied> {
    check(s, now, principal)?;
    Ok(Session { last_keepalive: now.max(s.last_keepalive), ..s.clone() })
}

/// Closing: the session ends at `now`; its live holds are released ([`end_hold`]).
pub fn close(s: &Session, now: Millis, principal: &Principal) -> Result<Session, Denied> {
    check(s, now, principal)?;
    Ok(Session { state: SessionState::Closed { at: now }, ..s.clone() })
}

/// The reaper's record of a session past its last valid instant; `None` if it is live or already ended.
pub fn lapse(s: &Session, now: Millis) -> Option<Session> {
    (s.state == SessionState::Open && !s.is_live(now))
        .then(|| Session { state: SessionState::Lapsed { at: s.expires_at() }, ..s.clone() })
}

/// After a database outage (as [`crate::lease::resume`] for a hold): an open session that was live when the outage
/// began (`lost_at`) and has not been kept alive since gets back the time it had left then — its last keepalive
/// moves by the outage (`now - lost_at`). `None` for anything else. Its holds are resumed by `lease::resume`
/// in the same transaction: their last renewal is the session's, so they move by the same outage and still
/// expire at exactly the session's instant. Safe as `lease::resume` is: it lengthens, never grants.
pub fn resume(s: &Session, lost_at: Millis, now: Millis) -> Option<Session> {
    let outage = now.since(lost_at);
    let taken = s.state == SessionState::Open && s.last_keepalive < lost_at && s.expires_at() >= lost_at;
    (taken && outage > Millis::ZERO).then(|| Session { last_keepalive: s.last_keepalive.plus(outage), ..s.clone() })
}

/// Acquire under a live session of the caller's: the lease rule's acquire for the session's owner, then the hold
/// takes the session's renewal (so it expires with it). Re-acquiring a hold the owner already has on its own
/// attaches it; one already under this session is left as it is (another session's: `InSession`).
pub fn acquire_in(
    lease: &Lease,
    now: Millis,
    cmd: &AcquireCmd,
    s: &Session,
    lock_delay: Millis,
) -> Result<Outcome, Denied> {
    check(s, now, &cmd.principal)?;
    if cmd.owner != s.owner {
        return Err(Denied::NotSessionOwner);
    }
    // The owner's live hold under this session already: nothing to grant, it already ends with the session.
    if lease
        .live_hold(now)
        .is_some_and(|h| h.session == Some(s.id) && h.owner == cmd.owner && h.principal == cmd.principal)
    {
        return Ok(Outcome { lease: lease.clone(), events: alloc::vec![] });
    }
    let mut outcome = acquire(lease, now, &AcquireCmd { ttl: s.ttl, ..cmd.clone() }, lock_delay)?;
    if let Some(h) = outcome.lease.hold.as_mut() {
        attach(h, s);
    }
    for e in outcome.events.iter_mut().filter(|e| e.hold.id == cmd.new_hold_id) {
        attach(&mut e.hold, s);
    }
    Ok(outcome)
}

fn attach(h: &mut crate::Hold, s: &Session) {
    h.session = Some(s.id);
    // A session's hold runs on the session's clock alone.
    h.pickup_by = None;
    h.last_heartbeat = s.last_keepalive;
    h.ttl = s.ttl;
}

/// What a keepalive does to one lease: its live hold under session `s` (as renewed) takes the session's renewal.
/// `None` for any other lease — not the session's, not live, booked (a booking has left its session).
pub fn renew_hold(lease: &Lease, s: &Session, now: Millis) -> Option<Outcome> {
    let h = lease.hold.as_ref().filter(|h| h.session == Some(s.id) && h.is_live(now) && h.booked_until.is_none())?;
    let mut renewed = h.clone();
    renewed.max_gap = renewed.max_gap.max(s.last_keepalive.since(h.last_heartbeat));
    renewed.heartbeats = renewed.heartbeats.saturating_add(1);
    attach(&mut renewed, s);
    let mut next = lease.clone();
    next.hold = Some(renewed);
    Some(Outcome { lease: next, events: alloc::vec![] })
}

/// What closing session `s` does to one lease: its live hold under the session is released (as its holder
/// would). `None` for any other lease.
pub fn end_hold(lease: &Lease, s: &Session, now: Millis) -> Option<Outcome> {
    let h = lease.hold.as_ref().filter(|h| h.session == Some(s.id) && h.is_live(now) && h.booked_until.is_none())?;
    let claim = crate::lease::Claim { principal: h.principal.clone(), owner: h.owner.clone(), token: Some(h.token) };
    crate::lease::release(lease, now, &claim)
        .ok()
        .filter(|o| o.lease.hold.as_ref().is_some_and(|h| matches!(h.state, HoldState::Released { .. })))
}
