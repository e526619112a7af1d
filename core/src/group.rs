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

use crate::admission::{grant, Gate};
use crate::error::{ApiError, ErrorCode};
use crate::ids::{GroupId, HoldId, ResourceId};
use crate::lease::{acquire, AcquireCmd, Denied, Lease, Outcome};
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
/// decided as a single acquire would be ([`grant`]: its type's bounds, its status, the rule, its queue). `cmd`
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
        let result = grant(&m.gate, m.lease, now, ttl, (&cmd.principal, &cmd.owner), || {
            // A resource is in one group at a time: its owner's live hold in another group is not taken over.
            if let Some(h) = m.lease.live_hold(now).filter(|h| h.group.is_some_and(|g| g != group)) {
                return Err(Denied::LockHeld { holder: h.owner.clone(), expires_at: h.expires_at() });
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
