//! The dashboard's countdown and state come from these: they must agree with the server's expiry rule.

use hhs_core::lease::{acquire, heartbeat, AcquireCmd, Claim};
use hhs_core::wire::LockView;
use hhs_core::{HoldId, Lease, LockStatus, Millis, OwnerId, Principal, ResourceId, Ttl, TtlBounds};

fn held_lease() -> Lease {
    let cmd = AcquireCmd {
        principal: Principal::parse("clinic-north").unwrap(),
        owner: OwnerId::parse("ws-1").unwrap(),
        ttl: Ttl::from_seconds_f64(30.0, &TtlBounds::default()).unwrap(),
        new_hold_id: HoldId(uuid::Uuid::from_u128(7)),
    };
    acquire(&Lease::new(ResourceId(uuid::Uuid::from_u128(1))), Millis(1_000_000), &cmd, Millis::ZERO).unwrap().lease
}

#[test]
fn status_at_agrees_with_the_hold_rule_at_every_instant_around_expiry() {
    let lease = held_lease();
    let view = LockView::of(&lease, Millis(1_000_000));
    let hold = lease.hold.as_ref().unwrap();
    for now in [1_000_000, 1_029_999, 1_030_000, 1_030_001, 1_100_000] {
        assert_eq!(view.status_at(Millis(now)), hold.status(Millis(now)), "at {now}");
    }
    assert_eq!(view.status_at(Millis(1_030_000)), LockStatus::Held);
    assert_eq!(view.status_at(Millis(1_030_001)), LockStatus::Expired);
}

#[test]
fn remaining_counts_down_to_zero_and_never_below() {
    let view = LockView::of(&held_lease(), Millis(1_000_000));
    assert_eq!(view.remaining_at(Millis(1_000_000)), Some(Millis(30_000)));
    assert_eq!(view.remaining_at(Millis(1_029_500)), Some(Millis(500)));
    assert_eq!(view.remaining_at(Millis(1_040_000)), Some(Millis(0)));
    assert_eq!(
        LockView::of(&Lease::new(ResourceId(uuid::Uuid::from_u128(2))), Millis(0)).remaining_at(Millis(0)),
        None
    );
}

#[test]
fn a_renewal_carries_the_new_expiry_and_nothing_for_a_free_lease() {
    let lease = held_lease();
    let claim = Claim {
        principal: Principal::parse("clinic-north").unwrap(),
        owner: OwnerId::parse("ws-1").unwrap(),
        token: None,
    };
    let renewed = heartbeat(&lease, Millis(1_020_000), &claim).unwrap().lease;
    let r = LockView::renewed(&renewed).unwrap();
    assert_eq!(r.last_heartbeat.map(Millis::from_utc), Some(Millis(1_020_000)));
    assert_eq!(r.expires_at.map(Millis::from_utc), Some(Millis(1_050_000)));
    assert_eq!(
        (r.fencing_token, r.ttl_seconds, r.owner_id.as_deref(), r.status),
        (Some(1), Some(30), Some("ws-1"), LockStatus::Held)
    );
    assert!(!r.is_older_than(&LockView::of(&lease, Millis(1_000_000))), "a renewal is newer than the grant");
    assert!(LockView::of(&lease, Millis(1_000_000)).is_older_than(&r));
    assert!(LockView::renewed(&Lease::new(ResourceId(uuid::Uuid::from_u128(2)))).is_none());
}

#[test]
fn a_lock_delay_and_a_heartbeat_age_count_from_the_view() {
    use hhs_core::lease::force_release;
    let lease = held_lease();
    let view = LockView::of(&lease, Millis(1_000_000));
    assert_eq!(view.since_heartbeat_at(Millis(1_004_000)), Some(Millis(4_000)));
    assert_eq!(
        view.since_heartbeat_at(Millis(999_000)),
        Some(Millis(0)),
        "a clock a little behind never reads negative"
    );
    assert_eq!(view.lock_delay_remaining_at(Millis(1_004_000)), None);
    let ended =
        LockView::of(&force_release(&lease, Millis(1_010_000), Millis(5_000)).unwrap().lease, Millis(1_010_000));
    assert_eq!(ended.lock_delay_remaining_at(Millis(1_012_000)), Some(Millis(3_000)));
    assert_eq!(
        ended.lock_delay_remaining_at(Millis(1_015_000)),
        None,
        "over at its end instant, as in_lock_delay says"
    );
    assert!(!ended.in_lock_delay(Millis(1_015_000)) && ended.in_lock_delay(Millis(1_014_999)));
}
