//! Whether a grant may be made, around the lease rule that decides it: before the rule, the resource type's TTL
//! bounds and the resource's operational status; after it, the wait queue. Every way of acquiring — plain,
//! waiting, under a session, as a group member — goes through [`grant`], so one request meets the same refusal
//! for the same reason whichever way it came. (Each store path once ordered these checks itself, and an acquire
//! under a session answered "others wait" where a plain acquire named the holder.)
//!
//! Invariants (property-tested): nothing is granted outside the type's bounds, in a status other than U, or to
//! a newcomer while a live waiter is ahead; a grant is exactly the rule's; the rule's own refusal (a holder, a
//! lock-delay) comes before the queue's.

use crate::ids::{OwnerId, Principal};
use crate::lease::{Denied, Lease, Outcome};
use crate::policy::TypePolicy;
use crate::queue::{self, Waiter};
use crate::status::{self, Status};
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
        status::admit(self.status)
    }
}

/// A grant of `lease` at `now` for `ttl` to `principal`/`owner`, decided by `rule` (the acquire rule, or a
/// session's), with the gate around it: [`Gate::before`], then the rule, then the queue
/// ([`queue::admit`]: only the first live waiter, or the holder renewing, passes a queue).
pub fn grant(
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
