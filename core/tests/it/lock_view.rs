//! The dashboard's countdown and state come from these: they must agree with the server's expiry rule.

use hhs_core::api::{LockView, RenewalView};
use hhs_core::lease::{acquire, heartbeat, AcquireCmd, Claim};
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
    assert_eq!(LockView::of(&Lease::new(ResourceId(uuid::Uuid::from_u128(2))), Millis(0)).remaining_at(Millis(0)), None);
}

#[test]
fn a_renewal_carries_the_new_expiry_and_nothing_for_a_free_lease() {
    let lease = held_lease();
    let claim = Claim { principal: Principal::parse("clinic-north").unwrap(), owner: OwnerId::parse("ws-1").unwrap(), token: None };
    let renewed = heartbeat(&lease, Millis(1_020_000), &claim).unwrap().lease;
    let r = RenewalView::of(&renewed).unwrap();
    assert_eq!(Millis::from_utc(r.last_heartbeat), Millis(1_020_000));
    assert_eq!(Millis::from_utc(r.expires_at), Millis(1_050_000));
    assert_eq!((r.fencing_token, r.ttl_seconds, r.owner_id.as_str()), (1, 30, "ws-1"));
    assert!(RenewalView::of(&Lease::new(ResourceId(uuid::Uuid::from_u128(2)))).is_none());
}
