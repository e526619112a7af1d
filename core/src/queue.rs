//! The wait queue: an acquire with `wait_seconds` that finds the resource held joins the resource's queue and
//! is granted in arrival order — first in, first granted — instead of polling (python-redis-lock#104,
//! node-redlock#218). The queue lives in the database beside the lease, so every replica serves it.
//!
//! The rules, each decided under the lease's row lock:
//! * [`hand_over`]: whoever leaves the resource grantable (release, expiry, force-release, the end of a
//!   lock-delay, a session's close or lapse) grants it in the same transaction to the first *live* waiter, by
//!   the ordinary acquire rule — so with the next fencing token, and never while a hold is live or a lock-delay
//!   runs. Waiters ahead of it that are not live are dropped on the way.
//! * A waiter is live while its request is there: it proves it at least every [`PRESENCE`] and is taken for
//!   gone [`PRESENCE_TIMEOUT`] after the last proof, or at its deadline. A waiter whose request went away is
//!   never granted (redisson#1353's dead waiter that stalls a fair lock for 5 s stalls this one for at most
//!   [`PRESENCE_TIMEOUT`]). The store also ends a waiter at once when the origin sees its request go, and gives
//!   back a hold granted to a request that left before its answer.
//! * A hand-over is not yet a delivery: the hold is the waiter's only once its request has been answered with it
//!   ([`WaiterState::Delivered`]). A waiter is answered only with the hold it was handed ([`handed_hold`]),
//!   never with whatever hold the resource has by then; and a hand-over its request never takes — its replica
//!   died, or its request left — is [`abandoned`] [`PICKUP_TIMEOUT`] after the grant, and the reaper gives the
//!   bed back at once ([`reclaim`]: no lock-delay, the holder never used it) instead of after a TTL.
//! * A delivery is not yet a pickup: an answer written to a connection that died unnoticed looks delivered. So
//!   a handed-over hold lasts only until its [`pickup_deadline`] (a third of its TTL plus [`PICKUP_GRACE`]) unless
//!   renewed, and its first renewal restores its TTL ([`crate::lease::Hold::pickup_by`]); clients renew at once
//!   when an answer's `expires_at` is nearer than its TTL ([`crate::wire::LockView::awaits_pickup`]).
//! * [`admit`]: while live waiters queue, only the first of them may be granted (and the holder may still renew
//!   its own hold); anyone else is refused ([`Denied::Queued`]).
//!
//! The lease counts its waiters ([`Lease::waiting`]) so that one-statement fast paths and group acquires can
//! see a queue without reading it: every change to the queue changes the count in the same transaction.
//!
//! Invariants (property-tested in `tests/it/queue_props.rs`): grants go to live waiters in arrival order; a
//! waiter that is not live is never granted; a hand-over never grants while a hold is live or a lock-delay runs;
//! the count equals the waiters queued.

use alloc::vec::Vec;

use crate::denied::Denied;
use crate::ids::{HoldId, OwnerId, Principal, WaiterId};
use crate::lease::{acquire, expire, release, AcquireCmd, Claim, Hold, HoldState, Lease, Outcome};
use crate::time::Millis;
use crate::ttl::Ttl;

/// The longest wait an acquire may ask for (`wait_seconds`).
pub const MAX_WAIT_SECONDS: u32 = 30;
/// How often a waiting request proves it is still there.
pub const PRESENCE: Millis = Millis(500);
/// A waiter not heard from for this long is gone: its replica died, or its connection was lost unnoticed.
pub const PRESENCE_TIMEOUT: Millis = Millis(2_000);

/// How long a hold handed over to a waiter waits for its request to take it (be answered with it). A woken
/// request answers at once and one that missed its wake-up polls within [`PRESENCE`], so past this the request
/// is not there to take it, nobody would ever heartbeat the hold, and it is given back ([`abandoned`]).
pub const PICKUP_TIMEOUT: Millis = PRESENCE_TIMEOUT;

/// What a hold handed over to a waiter has beyond a third of its TTL to be renewed for the first time
/// ([`pickup_deadline`]). It leaves a client that renews at once [`PICKUP_TIMEOUT`] for the answer to reach it
/// and the rest for one heartbeat.
pub const PICKUP_GRACE: Millis = Millis(10_000);

/// Until when a hold handed over at `now` with `ttl` lasts unless renewed ([`Hold::pickup_by`]): a third of its TTL
/// plus [`PICKUP_GRACE`], and never past the TTL itself. An answer written to a connection that died unnoticed
/// counts as delivered, yet nobody will renew the hold: past this the bed lapses (lock-delay and all, since its
/// holder may have acted on it) instead of staying out of use for the whole TTL. A client that renews every third of
/// its TTL counted from when it asked — the documented rhythm, the grant coming later — renews in time, so a
/// client that never read `expires_at` loses nothing; one that reads it renews at once.
pub fn pickup_deadline(now: Millis, ttl: Ttl) -> Millis {
    let ttl = ttl.as_millis();
    now.plus(Millis(ttl.0 / 3).plus(PICKUP_GRACE).min(ttl))
}

/// What became of a waiter, as stored (`waiters.state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WaiterState {
    /// In the queue.
    Waiting,
    /// Handed a hold that its request has not been answered with yet.
    Granted,
    /// Its request was answered with the hold it was handed.
    Delivered,
    /// Its wait ended without a grant.
    TimedOut,
    /// Its request went away (or never took the hold it was handed).
    Gone,
}

impl WaiterState {
    pub const ALL: [WaiterState; 5] =
        [WaiterState::Waiting, WaiterState::Granted, WaiterState::Delivered, WaiterState::TimedOut, WaiterState::Gone];

    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            WaiterState::Waiting => "WAITING",
            WaiterState::Granted => "GRANTED",
            WaiterState::Delivered => "DELIVERED",
            WaiterState::TimedOut => "TIMED_OUT",
            WaiterState::Gone => "GONE",
        }
    }

    /// The stored form read back; `None` for anything else (a corrupt row).
    pub fn parse(s: &str) -> Option<WaiterState> {
        WaiterState::ALL.into_iter().find(|w| w.as_str() == s)
    }
}

/// The hold a waiter's request may be answered with at `now`: the one it was handed (`handed`), and only while
/// the resource still holds it live. `None` if that hold ended (a later grant of the bed is someone else's
/// hold, never this waiter's): the hand-over was lost and the request is refused.
pub fn handed_hold(lease: &Lease, now: Millis, handed: HoldId) -> Option<&Hold> {
    lease.live_hold(now).filter(|h| h.id == handed)
}

/// Whether a hand-over made at `granted_at` and not taken by its request by `now` is abandoned: past
/// [`PICKUP_TIMEOUT`] after the grant.
pub fn abandoned(granted_at: Millis, now: Millis) -> bool {
    now > granted_at.plus(PICKUP_TIMEOUT)
}

/// The reaper's end, at `now`, of an abandoned hand-over (hold `handed`, granted at `granted_at`, never taken):
/// the hold ends as released by its holder — or, if it has lapsed meanwhile, expired — and never with a
/// lock-delay, since nobody used it. `None` if it is not abandoned yet or the resource no longer holds that hold.
pub fn reclaim(lease: &Lease, now: Millis, handed: HoldId, granted_at: Millis) -> Option<Outcome> {
    if !abandoned(granted_at, now) {
        return None;
    }
    give_back(lease, now, handed)
}

/// A handed-over hold given back at `now` because its request never took it: only while the resource holds it
/// and nobody has touched it since the hand-over — no renewal (a heartbeat, or the owner's acquire answered on
/// another replica after a retry), no booking, not taken into a session (the owner's acquire under a session
/// adopts a hold it already has). A touched hold has reached its client, who believes in it.
pub fn give_back(lease: &Lease, now: Millis, handed: HoldId) -> Option<Outcome> {
    let hold = lease.hold.as_ref().filter(|h| h.id == handed && h.state == HoldState::Held)?;
    let touched = hold.heartbeats > 0
        || hold.booked_until.is_some()
        || hold.session.is_some()
        || hold.last_heartbeat != hold.acquired_at;
    if touched {
        return None;
    }
    if hold.is_expired(now) {
        return expire(lease, now, Millis::ZERO);
    }
    let claim = Claim { principal: hold.principal.clone(), owner: hold.owner.clone(), token: Some(hold.token) };
    release(lease, now, &claim).ok()
}

/// One request in a resource's queue, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waiter {
    pub id: WaiterId,
    pub principal: Principal,
    pub owner: OwnerId,
    /// The TTL its hold gets when granted.
    pub ttl: Ttl,
    pub enqueued_at: Millis,
    /// Until when its request is known to be there ([`PRESENCE_TIMEOUT`] after its last proof).
    pub alive_until: Millis,
    /// When its `wait_seconds` end.
    pub deadline: Millis,
}

impl Waiter {
    /// A new waiter at `now`, waiting up to `wait`.
    pub fn new(id: WaiterId, principal: Principal, owner: OwnerId, ttl: Ttl, now: Millis, wait: Millis) -> Waiter {
        Waiter {
            id,
            principal,
            owner,
            ttl,
            enqueued_at: now,
            alive_until: now.plus(PRESENCE_TIMEOUT),
            deadline: now.plus(wait),
        }
    }

    /// Its request is there and its wait has not ended: it may be granted.
    pub fn is_live(&self, now: Millis) -> bool {
        now <= self.alive_until && now <= self.deadline
    }

    /// Its request is not there any more (not heard from), or its wait ended so long ago that its request
    /// would have ended it: anyone may drop it. A waiter just past its deadline is not live but not gone
    /// either — its own request ends it, saying at which place.
    pub fn is_gone(&self, now: Millis) -> bool {
        now > self.alive_until || now > self.deadline.plus(PRESENCE_TIMEOUT)
    }

    /// Its request proved it is there at `now`.
    pub fn seen(&self, now: Millis) -> Waiter {
        Waiter { alive_until: self.alive_until.max(now.plus(PRESENCE_TIMEOUT)), ..self.clone() }
    }
}

/// Joining the queue: the lease counts one more waiter.
pub fn enqueue(lease: &Lease) -> Lease {
    Lease { waiting: lease.waiting.saturating_add(1), ..lease.clone() }
}

/// Leaving the queue without a grant (its wait ended, its request went away): one fewer.
pub fn leave(lease: &Lease) -> Lease {
    Lease { waiting: lease.waiting.saturating_sub(1), ..lease.clone() }
}

/// Whether an acquire by `principal`/`owner` (waiter `me`, if it is one) may go ahead while `queue` (the
/// resource's waiters, in arrival order) waits: yes if nobody live waits, if it is the first live waiter, or if
/// it holds the resource already (a renewal grants nothing). Otherwise [`Denied::Queued`].
pub fn admit(
    lease: &Lease,
    now: Millis,
    queue: &[Waiter],
    principal: &Principal,
    owner: &OwnerId,
    me: Option<WaiterId>,
) -> Result<(), Denied> {
    let mut live = queue.iter().filter(|w| w.is_live(now));
    let Some(first) = live.next() else { return Ok(()) };
    let own_hold = lease.live_hold(now).is_some_and(|h| &h.principal == principal && &h.owner == owner);
    if own_hold || Some(first.id) == me {
        return Ok(());
    }
    Err(Denied::Queued { waiting: u32::try_from(queue.iter().filter(|w| w.is_live(now)).count()).unwrap_or(u32::MAX) })
}

/// Whether waiting can end `refusal` of an acquire, so a request that asked to wait joins the queue instead of
/// being refused: a live hold (it is released or lapses), a lock-delay (it runs out), others queued ahead (they
/// are served or go), a status such as housekeeping (it changes). Every other refusal would meet the request
/// again whenever it was served: a TTL outside the type's bounds, a session's or a booking's rule, a claim on a
/// hold that is not the caller's.
pub fn waiting_can_end(refusal: &Denied) -> bool {
    matches!(
        refusal,
        Denied::LockHeld { .. } | Denied::LockDelay { .. } | Denied::Queued { .. } | Denied::Unavailable { .. }
    )
}

/// Where waiter `me` stands among the live waiters (1: next), if it is one.
pub fn position(queue: &[Waiter], now: Millis, me: WaiterId) -> Option<u32> {
    let mut live = queue.iter().filter(|w| w.is_live(now) || w.id == me);
    live.position(|w| w.id == me).map(|i| u32::try_from(i + 1).unwrap_or(u32::MAX))
}

/// What a hand-over did: the grant (the lease with the new hold and one waiter fewer, and its `acquired`
/// event), to whom, and the waiters it dropped as gone on the way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandOver {
    pub outcome: Outcome,
    pub granted: Option<WaiterId>,
    pub gone: Vec<WaiterId>,
}

/// What a hand-over asks of the checks around the lease rule: the resource's waiters in arrival order, its
/// type's lock-delay, and whether a waiter's TTL may be granted now. The admission's gate answers it
/// ([`crate::admission::Gate`]), so a hand-over meets the checks every acquire meets, while the queue's rules
/// stay below the admission order that consults them.
pub trait HandOverGate {
    fn waiters(&self) -> &[Waiter];
    fn lock_delay(&self) -> Millis;
    /// The checks before the rule (the type's TTL bounds, the status).
    fn before(&self, ttl: Ttl) -> Result<(), Denied>;
}

/// The hand-over, at `now`, of `lease` (as the freeing transition left it) to the first live waiter of the
/// resource's queue (`gate.waiters()`, arrival order), with hold id `new_hold_id`: the gate before the rule (its
/// type's TTL bounds, its status — a bed in housekeeping goes to nobody) and the acquire rule decide, so nothing is
/// granted while a hold is live or a lock-delay runs. Every waiter that is gone ([`Waiter::is_gone`]) is dropped,
/// wherever it stands and whatever the status. `None` if nothing changes.
pub fn hand_over(lease: &Lease, now: Millis, gate: &impl HandOverGate, new_hold_id: HoldId) -> Option<HandOver> {
    let (queue, lock_delay) = (gate.waiters(), gate.lock_delay());
    let mut next = lease.clone();
    let mut gone = Vec::new();
    let mut events = Vec::new();
    let mut granted = None;
    let mut first = true;
    for w in queue {
        if w.is_gone(now) {
            gone.push(w.id);
            continue;
        }
        if !w.is_live(now) || !core::mem::take(&mut first) {
            continue;
        }
        // Held, in lock-delay or not grantable now: the first live waiter keeps its place.
        let cmd = AcquireCmd { principal: w.principal.clone(), owner: w.owner.clone(), ttl: w.ttl, new_hold_id };
        if let Ok(o) = gate.before(w.ttl).and_then(|()| acquire(&next, now, &cmd, lock_delay)) {
            // A waiter that holds already (it re-acquired meanwhile) is served by a renewal: no new grant, and
            // the hold has reached its client, so no pickup deadline either.
            (next, events) = (o.lease, o.events);
            for hold in next.hold.iter_mut().chain(events.iter_mut().map(|e| &mut e.hold)) {
                if hold.id == new_hold_id {
                    hold.pickup_by = Some(pickup_deadline(now, w.ttl));
                }
            }
            granted = Some(w.id);
        }
    }
    let left = gone.len() + usize::from(granted.is_some());
    if left == 0 {
        return None;
    }
    next.waiting = next.waiting.saturating_sub(u32::try_from(left).unwrap_or(u32::MAX));
    Some(HandOver { outcome: Outcome { lease: next, events }, granted, gone })
}
