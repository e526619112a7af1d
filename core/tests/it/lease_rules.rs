//! Example-based tests of the lease rules: the boundaries and each documented case.

use hhs_core::lease::{
    acquire, expire, force_release, heartbeat, release, report_late, retire, token_floor, AcquireCmd, Claim, Late,
};
use hhs_core::{
    Denied, EventKind, FencingToken, HoldId, HoldState, Lease, LockStatus, Millis, OwnerId, Principal, ResourceId, Ttl,
    TtlBounds,
};
use uuid::Uuid;

fn owner(s: &str) -> OwnerId {
    OwnerId::parse(s).unwrap()
}

fn claim(o: &str, token: Option<FencingToken>) -> Claim {
    Claim { principal: clinic(), owner: owner(o), token }
}

fn clinic() -> Principal {
    Principal::parse("clinic-north").unwrap()
}

fn cmd(o: &str, ttl_s: u32, n: u128) -> AcquireCmd {
    AcquireCmd {
        principal: clinic(),
        owner: owner(o),
        ttl: Ttl::from_seconds(ttl_s, &TtlBounds { min_seconds: 1, max_seconds: 86_400 }).unwrap(),
        new_hold_id: HoldId(Uuid::from_u128(n)),
    }
}

fn fresh() -> Lease {
    Lease::new(ResourceId(Uuid::from_u128(1)))
}

const NO_DELAY: Millis = Millis::ZERO;

#[test]
fn free_resource_is_granted_with_token_one() {
    let out = acquire(&fresh(), Millis(1_000), &cmd("a", 30, 10), NO_DELAY).unwrap();
    let hold = out.lease.hold.as_ref().unwrap();
    assert_eq!(hold.token, FencingToken(1));
    assert_eq!(hold.state, HoldState::Held);
    assert_eq!(out.events.len(), 1);
    assert_eq!(out.events[0].kind, EventKind::Acquired);
}

#[test]
fn expiry_is_strictly_after_ttl() {
    let l = acquire(&fresh(), Millis(0), &cmd("a", 30, 10), NO_DELAY).unwrap().lease;
    let h = l.hold.as_ref().unwrap();
    assert_eq!(h.expires_at(), Millis(30_000));
    assert!(!h.is_expired(Millis(30_000)), "now - last_heartbeat == ttl is still held");
    assert!(h.is_expired(Millis(30_001)), "one millisecond later it is expired");
    assert_eq!(l.status(Millis(30_000)), LockStatus::Held);
    assert_eq!(l.status(Millis(30_001)), LockStatus::Expired);
    // And the rules follow the same boundary.
    assert!(matches!(acquire(&l, Millis(30_000), &cmd("b", 30, 11), NO_DELAY), Err(Denied::LockHeld { .. })));
    assert!(acquire(&l, Millis(30_001), &cmd("b", 30, 11), NO_DELAY).is_ok());
    assert!(heartbeat(&l, Millis(30_000), &claim("a", None)).is_ok());
    assert_eq!(heartbeat(&l, Millis(30_001), &claim("a", None)), Err(Denied::LockExpired));
}

#[test]
fn same_owner_reacquire_is_idempotent_and_keeps_token() {
    let l = acquire(&fresh(), Millis(0), &cmd("a", 30, 10), NO_DELAY).unwrap().lease;
    let out = acquire(&l, Millis(5_000), &cmd("a", 60, 99), NO_DELAY).unwrap();
    let h = out.lease.hold.as_ref().unwrap();
    assert_eq!(h.token, FencingToken(1));
    assert_eq!(h.id, HoldId(Uuid::from_u128(10)), "the hold keeps its id");
    assert_eq!(h.last_heartbeat, Millis(5_000));
    assert_eq!(h.ttl.seconds(), 60, "the requested TTL is adopted");
    assert!(out.events.is_empty());
}

#[test]
fn other_owner_is_denied_with_holder_and_expiry() {
    let l = acquire(&fresh(), Millis(0), &cmd("a", 30, 10), NO_DELAY).unwrap().lease;
    assert_eq!(
        acquire(&l, Millis(1), &cmd("b", 30, 11), NO_DELAY),
        Err(Denied::LockHeld { holder: owner("a"), expires_at: Millis(30_000), booked: false })
    );
}

#[test]
fn acquire_after_lapse_records_expiry_then_grants_next_token() {
    let l = acquire(&fresh(), Millis(0), &cmd("a", 10, 10), NO_DELAY).unwrap().lease;
    let out = acquire(&l, Millis(20_000), &cmd("b", 10, 11), NO_DELAY).unwrap();
    let kinds: Vec<_> = out.events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, vec![EventKind::Expired, EventKind::Acquired]);
    assert_eq!(out.events[0].hold.state, HoldState::Expired { at: Millis(10_000) });
    assert_eq!(out.lease.hold.unwrap().token, FencingToken(2));
}

#[test]
fn heartbeat_never_revives_released_or_expired() {
    let l = acquire(&fresh(), Millis(0), &cmd("a", 10, 10), NO_DELAY).unwrap().lease;
    let released = release(&l, Millis(1_000), &claim("a", None)).unwrap().lease;
    assert_eq!(heartbeat(&released, Millis(1_001), &claim("a", None)), Err(Denied::NotHolder));
    let expired = expire(&l, Millis(10_001), NO_DELAY).unwrap().lease;
    assert_eq!(heartbeat(&expired, Millis(10_002), &claim("a", None)), Err(Denied::LockExpired));
    assert_eq!(heartbeat(&fresh(), Millis(0), &claim("a", None)), Err(Denied::NotHolder));
}

#[test]
fn heartbeat_records_gap_summary() {
    let l = acquire(&fresh(), Millis(0), &cmd("a", 10, 10), NO_DELAY).unwrap().lease;
    let l = heartbeat(&l, Millis(3_000), &claim("a", None)).unwrap().lease;
    let l = heartbeat(&l, Millis(9_000), &claim("a", Some(FencingToken(1)))).unwrap().lease;
    let h = l.hold.unwrap();
    assert_eq!(h.heartbeats, 2);
    assert_eq!(h.max_gap, Millis(6_000));
    assert_eq!(h.expires_at(), Millis(19_000));
}

#[test]
fn release_is_idempotent_for_holder_and_refused_for_others() {
    let l = acquire(&fresh(), Millis(0), &cmd("a", 10, 10), NO_DELAY).unwrap().lease;
    assert_eq!(release(&l, Millis(1), &claim("b", None)), Err(Denied::NotHolder));
    let out = release(&l, Millis(2), &claim("a", None)).unwrap();
    assert_eq!(out.events.len(), 1);
    let again = release(&out.lease, Millis(3), &claim("a", None)).unwrap();
    assert!(again.events.is_empty());
    assert_eq!(again.lease, out.lease);
    // A clean release has no lock-delay, even on a type that has one.
    assert!(acquire(&out.lease, Millis(3), &cmd("b", 10, 11), Millis(60_000)).is_ok());
}

#[test]
fn wrong_fencing_token_is_stale() {
    let l = acquire(&fresh(), Millis(0), &cmd("a", 10, 10), NO_DELAY).unwrap().lease;
    assert_eq!(heartbeat(&l, Millis(1), &claim("a", Some(FencingToken(7)))), Err(Denied::StaleToken));
    assert_eq!(release(&l, Millis(1), &claim("a", Some(FencingToken(7)))), Err(Denied::StaleToken));
    // An older token's release is a retry of one that already took effect: success, nothing changes.
    let retried = release(&l, Millis(1), &claim("a", Some(FencingToken(0)))).unwrap();
    assert_eq!((retried.lease, retried.events.len()), (l, 0));
}

#[test]
fn lock_delay_after_expiry_counts_from_expiry_instant() {
    let delay = Millis(5_000);
    let l = acquire(&fresh(), Millis(0), &cmd("a", 10, 10), delay).unwrap().lease;
    // Expired at 10_000; blocked until 15_000 whether the reaper ran or not.
    assert_eq!(acquire(&l, Millis(14_999), &cmd("b", 10, 11), delay), Err(Denied::LockDelay { until: Millis(15_000) }));
    let reaped = expire(&l, Millis(12_000), delay).unwrap().lease;
    assert_eq!(
        acquire(&reaped, Millis(14_999), &cmd("a", 10, 11), delay),
        Err(Denied::LockDelay { until: Millis(15_000) })
    );
    assert!(acquire(&reaped, Millis(15_000), &cmd("b", 10, 11), delay).is_ok());
}

#[test]
fn force_release_ends_hold_and_starts_lock_delay() {
    let delay = Millis(5_000);
    let l = acquire(&fresh(), Millis(0), &cmd("a", 10, 10), delay).unwrap().lease;
    let out = force_release(&l, Millis(1_000), delay).unwrap();
    assert_eq!(out.events[0].kind, EventKind::ForceReleased);
    assert_eq!(heartbeat(&out.lease, Millis(1_001), &claim("a", None)), Err(Denied::NotHolder));
    assert!(matches!(acquire(&out.lease, Millis(5_999), &cmd("b", 10, 11), delay), Err(Denied::LockDelay { .. })));
    assert!(acquire(&out.lease, Millis(6_000), &cmd("b", 10, 11), delay).is_ok());
    assert_eq!(force_release(&out.lease, Millis(1_002), delay), Err(Denied::NotHeld));
}

#[test]
fn expire_is_none_for_live_or_ended_holds() {
    let l = acquire(&fresh(), Millis(0), &cmd("a", 10, 10), NO_DELAY).unwrap().lease;
    assert!(expire(&l, Millis(10_000), NO_DELAY).is_none());
    let e = expire(&l, Millis(10_001), NO_DELAY).unwrap().lease;
    assert!(expire(&e, Millis(20_000), NO_DELAY).is_none(), "an expiry is recorded once");
    assert!(expire(&fresh(), Millis(0), NO_DELAY).is_none());
}

#[test]
fn another_principal_cannot_touch_a_hold_even_with_the_owner_id() {
    let l = acquire(&fresh(), Millis(0), &cmd("ws-1", 10, 10), NO_DELAY).unwrap().lease;
    let south = Claim {
        principal: Principal::parse("clinic-south").unwrap(),
        owner: owner("ws-1"),
        token: Some(FencingToken(1)),
    };
    assert_eq!(heartbeat(&l, Millis(1), &south), Err(Denied::NotYourHold));
    assert_eq!(release(&l, Millis(1), &south), Err(Denied::NotYourHold));
    // Nor can it "re-acquire" it as the same owner id.
    let mut other = cmd("ws-1", 10, 11);
    other.principal = south.principal.clone();
    assert!(matches!(acquire(&l, Millis(1), &other, NO_DELAY), Err(Denied::LockHeld { .. })));
    // Within the principal, owner ids still decide.
    assert_eq!(heartbeat(&l, Millis(1), &claim("ws-2", None)), Err(Denied::NotHolder));
}

// --- Fault fixes -------------------------------------------------------------------------------------------

fn lapsed_lease() -> (Lease, Millis) {
    let lease = Lease::new(ResourceId(uuid::Uuid::from_u128(9)));
    let cmd = AcquireCmd {
        principal: Principal::parse("north").unwrap(),
        owner: OwnerId::parse("ws-1").unwrap(),
        ttl: Ttl::from_seconds(5, &TtlBounds::default()).unwrap(),
        new_hold_id: HoldId(uuid::Uuid::from_u128(1)),
    };
    let held = acquire(&lease, Millis(1_000), &cmd, Millis::ZERO).unwrap().lease;
    (held, Millis(1_000 + 5_001))
}

fn north_claim() -> Claim {
    Claim { principal: Principal::parse("north").unwrap(), owner: OwnerId::parse("ws-1").unwrap(), token: None }
}

#[test]
fn a_late_report_is_recorded_once_per_hold_and_records_the_lapse_first() {
    let (lease, now) = lapsed_lease();
    let first = report_late(&lease, now, &north_claim(), Late::Heartbeat, Millis(2_000));
    let kinds: Vec<_> = first.events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [EventKind::Expired, EventKind::LateHeartbeat]);
    assert_eq!(first.events[1].hold.max_gap, Millis(5_001), "the gap that caused the false expiry");
    assert_eq!(first.events[1].held_for(), Some(Millis(5_001)));
    assert_eq!(first.lease.delay_until, Some(Millis(1_000 + 5_000 + 2_000)), "lock-delay from the lapse");
    let again = report_late(&first.lease, now.plus(Millis(10)), &north_claim(), Late::Release, Millis(2_000));
    assert!(again.events.is_empty(), "a second late report: {:?}", again.events);
    assert_eq!(again.lease, first.lease);
}

#[test]
fn a_late_report_of_a_live_hold_or_another_principal_changes_nothing() {
    let (lease, lapsed) = lapsed_lease();
    assert!(report_late(&lease, Millis(2_000), &north_claim(), Late::Heartbeat, Millis::ZERO).events.is_empty());
    let other = Claim { principal: Principal::parse("south").unwrap(), ..north_claim() };
    assert!(report_late(&lease, lapsed, &other, Late::Heartbeat, Millis::ZERO).events.is_empty());
}

#[test]
fn retire_refuses_a_live_hold_and_a_running_lock_delay_and_records_a_lapse() {
    let (lease, lapsed) = lapsed_lease();
    assert!(matches!(retire(&lease, Millis(2_000), Millis::ZERO), Err(Denied::LockHeld { .. })));
    // Lapsed with a lock-delay still running: refused (nothing recorded; the reaper will).
    assert_eq!(retire(&lease, lapsed, Millis(2_000)), Err(Denied::LockDelay { until: Millis(8_000) }));
    // Lapsed without a delay: the expiry is recorded before the resource goes.
    let out = retire(&lease, lapsed, Millis::ZERO).unwrap();
    assert_eq!(out.events.iter().map(|e| e.kind).collect::<Vec<_>>(), [EventKind::Expired]);
    // After the delay: allowed.
    assert!(retire(&lease, Millis(8_000), Millis(2_000)).is_ok());
}

#[test]
fn a_release_retried_with_an_older_token_after_a_regrant_succeeds_and_changes_nothing() {
    let lease = Lease::new(ResourceId(uuid::Uuid::from_u128(9)));
    let a = AcquireCmd {
        principal: Principal::parse("north").unwrap(),
        owner: OwnerId::parse("ws-1").unwrap(),
        ttl: Ttl::from_seconds(30, &TtlBounds::default()).unwrap(),
        new_hold_id: HoldId(uuid::Uuid::from_u128(1)),
    };
    let held = acquire(&lease, Millis(1_000), &a, Millis::ZERO).unwrap().lease;
    let claim_a = Claim { token: Some(FencingToken(1)), ..north_claim() };
    let released = release(&held, Millis(2_000), &claim_a).unwrap().lease;
    let b = AcquireCmd {
        principal: Principal::parse("south").unwrap(),
        owner: OwnerId::parse("ws-9").unwrap(),
        new_hold_id: HoldId(uuid::Uuid::from_u128(2)),
        ..a
    };
    let regranted = acquire(&released, Millis(3_000), &b, Millis::ZERO).unwrap().lease;
    let retried = release(&regranted, Millis(3_500), &claim_a).unwrap();
    assert_eq!(retried.lease, regranted, "B keeps its hold");
    assert!(retried.events.is_empty());
    // Without a token the retry cannot be told from a stranger's release: refused as before.
    assert_eq!(release(&regranted, Millis(3_500), &north_claim()), Err(Denied::NotYourHold));
}

#[test]
fn token_floors_only_raise() {
    assert_eq!(token_floor(FencingToken(3), None), FencingToken(3));
    assert_eq!(token_floor(FencingToken(3), Some(FencingToken(9))), FencingToken(9));
    assert_eq!(token_floor(FencingToken(12), Some(FencingToken(9))), FencingToken(12));
}

#[test]
fn the_bearer_scheme_is_case_insensitive_and_reserved_principals_get_no_key() {
    let key = format!("hhs_{}_{}", "a".repeat(12), "b".repeat(64));
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        assert!(hhs_core::auth::parse_bearer(Some(&format!("{scheme} {key}"))).is_ok(), "{scheme}");
    }
    assert!(hhs_core::auth::parse_bearer(Some(&format!("Basic {key}"))).is_err());
    for reserved in ["hhs:reaper", "hhs:anything", "anonymous"] {
        assert!(Principal::for_key(reserved).is_err(), "{reserved}");
        assert!(Principal::parse(reserved).is_ok(), "still a valid name in the audit trail");
    }
    assert!(Principal::for_key("clinic-north").is_ok());
}
