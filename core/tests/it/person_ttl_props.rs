//! Property tests of `ttl_model::ttl_for_person`, the TTL the dashboard offers a person: never shorter than the
//! type's default unless the suggestion was learned from that person's own holds.

use hhs_core::ttl_model::{ttl_for_person, Observation, Scope, TtlModel};
use hhs_core::{Millis, Policy, TtlBounds, TypePolicy};
use proptest::prelude::*;

const TYPE: &str = "bed";
const PRINCIPAL: &str = "clinic-north";
const PERSON: &str = "dashboard";

fn policy(min: u32, default: u32, max: u32) -> TypePolicy {
    Policy {
        ttl_bounds: TtlBounds { min_seconds: min, max_seconds: max },
        default_ttl_seconds: default,
        ..Policy::default()
    }
    .for_type(TYPE)
}

fn scope() -> impl Strategy<Value = Scope> {
    prop_oneof![Just(Scope::Owner), Just(Scope::Type), Just(Scope::Default)]
}

/// A finished hold: held for `held_ms`, with `heartbeats` heartbeats at most `gap_ms` apart.
fn observation() -> impl Strategy<Value = Observation> {
    (0u32..4, 1i64..600_000, 1i64..3_600_000).prop_map(|(heartbeats, gap_ms, held_ms)| Observation {
        heartbeats,
        max_gap: Millis(gap_ms.min(held_ms)),
        held: Millis(held_ms),
    })
}

proptest! {
    #[test]
    fn only_the_persons_own_holds_go_below_the_default(suggested in 1u32..700_000, s in scope(), default in 1u32..700_000) {
        let ttl = ttl_for_person(suggested, s, default);
        if s == Scope::Owner {
            prop_assert_eq!(ttl, suggested, "learned from this owner: kept as it is");
        } else {
            prop_assert!(ttl >= default && ttl >= suggested, "{ttl} from {suggested} ({s:?}), default {default}");
            prop_assert!(ttl == suggested || ttl == default, "nothing made up: {ttl}");
        }
    }

    /// Whatever other owners of the type teach (sub-second scripted holds included), and however few holds of
    /// its own the person has, the person is offered at least the default, within the type's bounds.
    #[test]
    fn other_owners_holds_never_shorten_a_persons_ttl(
        others in proptest::collection::vec((0u8..4, observation()), 0..60),
        own in proptest::collection::vec(observation(), 0..4),
        (min, default, max) in (1u32..60).prop_flat_map(|min| (Just(min), min..3_600)).prop_flat_map(|(min, d)| (Just(min), Just(d), d..86_400)),
    ) {
        let p = policy(min, default, max);
        let mut model = TtlModel::default();
        for (i, o) in &others {
            model.observe(TYPE, PRINCIPAL, &format!("script-{i}"), o);
        }
        for o in &own {
            model.observe(TYPE, PRINCIPAL, PERSON, o);
        }
        let s = model.suggest(TYPE, PRINCIPAL, PERSON, &p);
        prop_assert_ne!(s.scope, Scope::Owner, "too few holds of its own to be its own scope");
        let ttl = ttl_for_person(s.ttl.seconds(), s.scope, p.default_ttl_seconds());
        prop_assert!(ttl >= default && ttl <= max, "{ttl} from {s:?}, bounds {min}..={max}, default {default}");
    }

    /// A person whose own holds are short is offered what those holds taught, even below the default.
    #[test]
    fn the_persons_own_short_holds_are_kept(n in 5usize..30, held_ms in 1i64..900, others in 10usize..40) {
        let p = policy(1, 300, 86_400);
        let mut model = TtlModel::default();
        let short = Observation { heartbeats: 0, max_gap: Millis(held_ms), held: Millis(held_ms) };
        for i in 0..others {
            model.observe(TYPE, PRINCIPAL, &format!("script-{}", i % 3), &short);
        }
        for _ in 0..n {
            model.observe(TYPE, PRINCIPAL, PERSON, &short);
        }
        let s = model.suggest(TYPE, PRINCIPAL, PERSON, &p);
        prop_assert_eq!(s.scope, Scope::Owner);
        let ttl = ttl_for_person(s.ttl.seconds(), s.scope, p.default_ttl_seconds());
        prop_assert_eq!(ttl, s.ttl.seconds());
        prop_assert!(ttl < 300, "sub-second holds teach a short TTL: {ttl}");
    }
}
