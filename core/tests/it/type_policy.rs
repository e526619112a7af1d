//! A resource type's policy: what a row may hold, how a change applies, which TTLs it admits.

use hhs_core::denied::Denied;
use hhs_core::{Policy, Ttl, TtlBounds, TypeChange, TypePolicy};
use proptest::prelude::*;

fn change() -> impl Strategy<Value = TypeChange> {
    let secs = proptest::option::of(prop_oneof![0u32..120, 0u32..700_000]);
    let booking = proptest::option::of(prop_oneof![0u32..120, 0u32..40_000_000]);
    (secs.clone(), secs.clone(), secs.clone(), secs, booking).prop_map(|(d, min, def, max, booking)| TypeChange {
        lock_delay_seconds: d,
        min_ttl_seconds: min,
        default_ttl_seconds: def,
        max_ttl_seconds: max,
        booking_max_seconds: booking,
        default_status: None,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// Applying any change to a valid row gives a valid row or a refusal — never a row that breaks the rule —
    /// and what the change leaves out stays as it was.
    #[test]
    fn a_change_keeps_the_row_valid_and_the_rest_unchanged(c in change(), min in 1i64..100, spread in 0i64..10_000) {
        let row = TypePolicy { lock_delay_ms: 0, min_ttl_seconds: min, default_ttl_seconds: min + spread / 2, max_ttl_seconds: min + spread, booking_max_seconds: None, default_status: Default::default() };
        prop_assert!(row.validate().is_ok());
        match row.apply(&c) {
            Ok(next) => {
                prop_assert!(next.validate().is_ok());
                prop_assert!(1 <= next.min_ttl_seconds && next.min_ttl_seconds <= next.default_ttl_seconds);
                prop_assert!(next.default_ttl_seconds <= next.max_ttl_seconds && next.max_ttl_seconds <= 604_800);
                if c.min_ttl_seconds.is_none() { prop_assert_eq!(next.min_ttl_seconds, row.min_ttl_seconds); }
                if c.lock_delay_seconds.is_none() { prop_assert_eq!(next.lock_delay_ms, row.lock_delay_ms); }
                if c.booking_max_seconds.is_none() { prop_assert_eq!(next.booking_max_seconds, row.booking_max_seconds); }
                // A booking maximum is one minute to 366 days, and the rule books up to exactly it.
                prop_assert!((60_000..=366 * 86_400_000).contains(&next.booking_max().0));
                // The edge's check, which needs no row, never refuses what the row accepts.
                prop_assert!(c.check().is_ok());
            }
            Err(e) => prop_assert_eq!(e.code, hhs_core::ErrorCode::ValidationFailed),
        }
    }

    /// A row admits exactly the TTLs within its bounds, and says which bounds when it refuses.
    #[test]
    fn a_row_admits_exactly_its_bounds(min in 1u32..100, spread in 0u32..1_000, ttl in 1u32..2_000) {
        let row = TypePolicy { lock_delay_ms: 0, min_ttl_seconds: i64::from(min), default_ttl_seconds: i64::from(min), max_ttl_seconds: i64::from(min + spread), booking_max_seconds: None, default_status: Default::default() };
        let ttl = Ttl::from_seconds(ttl, &TtlBounds::HARD).unwrap();
        let inside = (min..=min + spread).contains(&ttl.seconds());
        match row.admit(ttl) {
            Ok(()) => prop_assert!(inside),
            Err(d) => {
                prop_assert!(!inside);
                prop_assert_eq!(d, Denied::TtlOutOfBounds { min_seconds: min, max_seconds: min + spread });
            }
        }
    }
}

#[test]
fn flags_seed_a_new_type_within_their_own_bounds() {
    let flags = Policy {
        ttl_bounds: TtlBounds { min_seconds: 10, max_seconds: 600 },
        default_ttl_seconds: 5, // below the minimum: clamped, so the seeded row is valid
        lock_delays: [("or-room".to_owned(), hhs_core::Millis(120_000))].into_iter().collect(),
    };
    let or = flags.for_type("or-room");
    assert_eq!(
        (or.lock_delay_ms, or.min_ttl_seconds, or.default_ttl_seconds, or.max_ttl_seconds),
        (120_000, 10, 10, 600)
    );
    assert!(or.validate().is_ok());
    assert_eq!(flags.for_type("bed").lock_delay_ms, 0);
}

#[test]
fn a_type_without_its_own_booking_maximum_books_up_to_30_days() {
    let row = Policy::default().for_type("bed");
    assert_eq!(row.booking_max(), hhs_core::Millis(30 * 86_400_000));
    let or = row.apply(&TypeChange { booking_max_seconds: Some(365 * 86_400), ..TypeChange::default() }).unwrap();
    assert_eq!(or.booking_max(), hhs_core::Millis(365 * 86_400_000));
    for bad in [0, 59, 366 * 86_400 + 1] {
        let change = TypeChange { booking_max_seconds: Some(bad), ..TypeChange::default() };
        assert!(change.check().is_err() && row.apply(&change).is_err(), "{bad}");
    }
}

#[test]
fn a_type_sets_the_status_its_new_resources_start_in() {
    use hhs_core::status::Status;
    let row = Policy::default().for_type("bed");
    assert_eq!(row.default_status, Status::Unoccupied);
    let cleaned_first =
        row.apply(&TypeChange { default_status: Some(Status::Housekeeping), ..TypeChange::default() }).unwrap();
    assert_eq!(cleaned_first.default_status, Status::Housekeeping);
    assert_eq!(
        cleaned_first.apply(&TypeChange::default()).unwrap().default_status,
        Status::Housekeeping,
        "unchanged when not given"
    );
    let bad: Result<TypeChange, _> = serde_json::from_str(r#"{"default_status":"X"}"#);
    assert!(bad.is_err(), "only table 0116 codes");
}
