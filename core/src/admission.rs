//! Whether a grant may be made, around the lease rule that decides it: before the rule, the resource type's TTL
//! bounds and the resource's operational status; after it, the wait queue. Every way of acquiring — plain,
//! waiting, under a session, as a group member, a queue's hand-over — goes through the same [`Gate`], and all but
//! the hand-over (which is itself the queue's turn) through [`admit`], so one request meets the same refusal for
//! the same reason whichever way it came.
//!
//! Invariants (property-tested): nothing is granted outside the type's bounds, in a status other than U, or to
//! a newcomer while a live waiter is ahead; a grant is exactly the rule's; the rule's own refusal (a holder, a
//! lock-delay) comes before the queue's.

use crate::denied::Denied;
use crate::ids::{OwnerId, Principal};
use crate::lease::{Lease, Outcome};
use crate::policy::TypePolicy;
use crate::queue::{self, HandOverGate, Waiter};
use crate::status::Status;
use crate::time::Millis;
use crate::ttl::Ttl;

/// What stands around the lease rule for one resource, as read in the acquire's transaction: its type's policy,
/// its operational status, and its waiters in arrival order (empty when its lease counts none).
#[derive(Clone, Copy, Debug)]
pub struct Gate<'a> {
    pub policy: &'a TypePolicy,
    pub status: Status,
    pub queue: &'a [Waiter],
}

impl Gate<'_> {
    /// The checks before the rule: `ttl` within the type's bounds, then a grantable status.
    pub fn before(&self, ttl: Ttl) -> Result<(), Denied> {
        self.policy.admit(ttl)?;
        available(self.status)
    }
}

/// The queue's hand-over ([`queue::hand_over`]) passes the same gate as every other acquire.
impl HandOverGate for Gate<'_> {
    fn waiters(&self) -> &[Waiter] {
        self.queue
    }

    fn lock_delay(&self) -> Millis {
        self.policy.lock_delay()
    }

    fn before(&self, ttl: Ttl) -> Result<(), Denied> {
        Gate::before(self, ttl)
    }
}

/// Whether a resource in `status` may be granted: only an available (U) one ([`Denied::Unavailable`] otherwise;
/// see [`crate::status`]).
pub fn available(status: Status) -> Result<(), Denied> {
    if status.available() {
        Ok(())
    } else {
        Err(Denied::Unavailable { status })
    }
}

/// The admission of an acquire of `lease` at `now` for `ttl` by `principal`/`owner`, decided by `rule` (the
/// acquire rule, or a session's), with the gate around it: [`Gate::before`], then the rule, then the queue
/// ([`queue::admit`]: only the first live waiter, or the holder renewing, passes a queue). `Ok` is the rule's
/// outcome, to be stored as it is.
pub fn admit(
    gate: &Gate,
    lease: &Lease,
    now: Millis,
    ttl: Ttl,
    (principal, owner): (&Principal, &OwnerId),
    rule: impl FnOnce() -> Result<Outcome, Denied>,
) -> Result<Outcome, Denied> {
    gate.before(ttl)?;
    let outcome = rule()?;
    queue::admit(lease, now, gate.queue, principal, owner, None)?;
    Ok(outcome)
}
