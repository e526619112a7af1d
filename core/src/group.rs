//! Group holds: several resources together or none (an operation needs the OR room, the surgeon's slot and the
//! anaesthesia machine at once — Medplum's `Appointment/$hold`). A store locks the members' lease rows in one
//! global order ([`lock_order`]: by resource id), so two overlapping groups never wait on each other in a
//! cycle (the deadlock of unordered multi-locks, redisson#1160), then asks [`acquire_group`] for every outcome at
//! once: all granted, or every refusal named and nothing written.
//!
//! Invariants (property-tested): a group is all or nothing; a refusal names exactly the members whose own
//! acquire is refused (or that are live in another group), and why; no resource is in two live groups; every
//! granted member carries the group's id.

use alloc::vec::Vec;

use crate::admission::{admit, Gate};
use crate::denied::Denied;
use crate::error::{ApiError, ErrorCode};
use crate::ids::{GroupId, HoldId, ResourceId};
use crate::lease::{acquire, heartbeat, release, AcquireCmd, Claim, Lease, Outcome};
use crate::session::{acquire_in, Session};
use crate::time::Millis;

/// The fewest and most members of a group.
pub const MIN_MEMBERS: usize = 2;
pub const MAX_MEMBERS: usize = 32;

/// The order a store locks a group's leases in: ascending resource id, each once. 422 for fewer than
/// [`MIN_MEMBERS`] or more than [`MAX_MEMBERS`] resources, or one named twice.
pub fn lock_order(ids: &[ResourceId]) -> Result<Vec<ResourceId>, ApiError> {
    let mut sorted = ids.to_vec();
    sorted.sort();
    sorted.dedup();
    if sorted.len() != ids.len() {
        return Err(ApiError::new(ErrorCode::ValidationFailed, "a group names each resource once"));
    }
    if !(MIN_MEMBERS..=MAX_MEMBERS).contains(&sorted.len()) {
        let m = alloc::format!("a group has between {MIN_MEMBERS} and {MAX_MEMBERS} resources");
        return Err(ApiError::new(ErrorCode::ValidationFailed, m));
    }
    Ok(sorted)
}

/// One member: its lease as read under its row lock, what stands around its grant (its type's policy, its
/// status, its queue), and the id its hold gets if granted.
pub struct Member<'a> {
    pub lease: &'a Lease,
    pub gate: Gate<'a>,
    pub new_hold_id: HoldId,
}

/// All or nothing: every member's outcome (in the members' order), each hold marked with `group`; or, if any
/// member is refused, every refusal with its resource — and then nothing is to be written. Each member is
/// decided as a single acquire would be ([`admit`]: its type's bounds, its status, the rule, its queue). `cmd`
/// gives the principal, owner and TTL (its hold id is each member's own); `session`, if given, replaces the TTL.
pub fn acquire_group(
    members: &[Member],
    now: Millis,
    group: GroupId,
    cmd: &AcquireCmd,
    session: Option<&Session>,
) -> Result<Vec<Outcome>, Vec<(ResourceId, Denied)>> {
    let mut granted = Vec::with_capacity(members.len());
    let mut refused = Vec::new();
    for m in members {
        let member_cmd = AcquireCmd { new_hold_id: m.new_hold_id, ..cmd.clone() };
        let (ttl, lock_delay) = (session.map_or(cmd.ttl, |s| s.ttl), m.gate.policy.lock_delay());
        let result = admit(&m.gate, m.lease, now, ttl, (&cmd.principal, &cmd.owner), || {
            // A resource is in one group at a time: its owner's live hold in another group is not taken over.
            if let Some(h) = m.lease.live_hold(now).filter(|h| h.group.is_some_and(|g| g != group)) {
                return Err(h.refusal());
            }
            match session {
                Some(s) => acquire_in(m.lease, now, &member_cmd, s, lock_delay),
                None => acquire(m.lease, now, &member_cmd, lock_delay),
            }
        });
        match result {
            Ok(mut outcome) => {
                if let Some(h) = outcome.lease.hold.as_mut() {
                    h.group = Some(group);
                }
                for e in &mut outcome.events {
                    if e.hold.id == m.new_hold_id {
                        e.hold.group = Some(group);
                    }
                }
                granted.push(outcome);
            }
            Err(denied) => refused.push((m.lease.resource_id, denied)),
        }
    }
    if refused.is_empty() {
        Ok(granted)
    } else {
        Err(refused)
    }
}

/// An operation on every member of a group, by the group's id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupOp {
    Heartbeat,
    Release,
    /// [`crate::booking::book`] until this instant.
    Book {
        until: Millis,
    },
}

/// One member of a granted group as read under its row lock: its resource, its lease now (`None`: the resource
/// has been deleted since) and its type's longest booking ([`crate::TypePolicy::booking_max`]).
#[derive(Clone, Copy, Debug)]
pub struct Held<'a> {
    pub resource_id: ResourceId,
    pub lease: Option<&'a Lease>,
    pub booking_max: Millis,
}

/// `op` on every member of `group` (all of them, as recorded when it was granted), all or none: each member's
/// outcome in the members' order, or every refusal with its resource — and then nothing is to be written.
///
/// A member's hold is the group's while its lease's hold carries `group` (the id is new with each grant, so no
/// later hold carries it). A heartbeat or booking needs every member held by the group and decides each by the
/// lease rule ([`heartbeat`], [`crate::booking::book`]); a member whose group hold has ended and whose resource
/// went on (granted to another, or deleted) is refused as [`Denied::NotHolder`] — so the caller learns, by
/// name, each member it no longer has. A release ends each member still held ([`release`]); a member already
/// ended (released, lapsed, force-released, granted on or deleted) counts as released: `None`, nothing to write.
pub fn by_id(
    members: &[Held],
    group: GroupId,
    now: Millis,
    claim: &Claim,
    op: GroupOp,
) -> Result<Vec<Option<Outcome>>, Vec<(ResourceId, Denied)>> {
    let mut done = Vec::with_capacity(members.len());
    let mut refused = Vec::new();
    for m in members {
        match member(m, group, now, claim, op) {
            Ok(outcome) => done.push(outcome),
            Err(denied) => refused.push((m.resource_id, denied)),
        }
    }
    if refused.is_empty() {
        Ok(done)
    } else {
        Err(refused)
    }
}

fn member(m: &Held, group: GroupId, now: Millis, claim: &Claim, op: GroupOp) -> Result<Option<Outcome>, Denied> {
    let Some(lease) = m.lease.filter(|l| l.hold.as_ref().is_some_and(|h| h.group == Some(group))) else {
        return match op {
            GroupOp::Release => Ok(None),
            GroupOp::Heartbeat | GroupOp::Book { .. } => Err(Denied::NotHolder),
        };
    };
    match op {
        GroupOp::Heartbeat => heartbeat(lease, now, claim).map(Some),
        GroupOp::Book { until } => crate::booking::book(lease, now, claim, until, m.booking_max).map(Some),
        GroupOp::Release => {
            // The holder rules first (another principal's group is not released, nor counted as released).
            let hold = crate::lease::check_holder(lease, claim)?;
            if !hold.is_live(now) {
                return Ok(None);
            }
            release(lease, now, claim).map(Some)
        }
    }
}
