//! Bookings: hold, then book (IHE ITI Scheduling's `$hold` → `$book`). A live hold becomes a booking that needs
//! no heartbeats and ends at `until`; it keeps its fencing token. It is still the lease's one hold, so nobody
//! else can be granted the resource while it runs, and the ordinary expiry rule ends it at `until`
//! ([`crate::Hold::expires_at`] is `booked_until` for a booking) — recorded as `completed`, without lock-delay
//! (a planned end: nobody lost anything). Its holder cancels it by releasing it.
//!
//! Invariant (property-tested): a booking is never expired before `until`, whatever heartbeats, keepalives or
//! sessions do; at `until` it is still valid, one millisecond later it is not.

use crate::denied::Denied;
use crate::lease::{Claim, EventKind, HoldState, Lease, LeaseEvent, Outcome};
use crate::time::Millis;

/// Turns the claimant's live hold into a booking until `until`: after `now`, and no later than `now + max` (the
/// resource type's `booking_max`, read in the same transaction). Booking a booking again moves its end. The hold leaves its session (a
/// booking outlives it) and keeps its group and token.
pub fn book(lease: &Lease, now: Millis, claim: &Claim, until: Millis, max: Millis) -> Result<Outcome, Denied> {
    // The holder rules of a heartbeat: the claimant's, unexpired, not ended (a session's hold may be booked).
    crate::lease::claimed_live_hold(lease, now, claim)?;
    if until <= now || until > now.plus(max) {
        return Err(Denied::BookingOutOfBounds { latest: now.plus(max) });
    }
    let mut next = lease.clone();
    let Some(h) = next.hold.as_mut().filter(|h| h.state == HoldState::Held) else { return Err(Denied::NotHolder) };
    h.booked_until = Some(until);
    h.session = None;
    h.pickup_by = None;
    let event = LeaseEvent { kind: EventKind::Booked, at: now, hold: h.clone() };
    Ok(Outcome { lease: next, events: alloc::vec![event] })
}
