//! The TTL model's estimators on known distributions, and on degenerate input.

use hhs_core::lease::{acquire, AcquireCmd};
use hhs_core::ttl_model::{Basis, LogSummary, Observation, Scope, TtlModel};
use hhs_core::{HoldId, Lease, Millis, OwnerId, Policy, Principal, ResourceId, Ttl, TtlBounds, TypePolicy};

/// A deterministic standard-normal stream (SplitMix64 + Box-Muller).
struct Normal(u64);
impl Normal {
    fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
    fn next(&mut self) -> f64 {
        let (u1, u2) = (self.uniform().max(1e-12), self.uniform());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

fn policy() -> TypePolicy {
    Policy { ttl_bounds: TtlBounds { min_seconds: 5, max_seconds: 86_400 }, ..Policy::default() }.for_type("any")
}

#[test]
fn lognormal_quantiles_are_recovered() {
    // Median 600 s, σ = 0.5: the 99.5th percentile is 600·e^(2.5758·0.5) ≈ 2,168 s.
    let mut s = LogSummary::default();
    let mut n = Normal(7);
    for _ in 0..20_000 {
        s.add(600_000.0 * (0.5 * n.next()).exp());
    }
    let fit = s.fit().unwrap();
    let q = fit.quantile_ms(2.575_829) / 1000.0;
    assert!((q - 2_168.0).abs() / 2_168.0 < 0.03, "p99.5 {q}");
    assert!((fit.sigma - 0.5).abs() < 0.02);
}

#[test]
fn degenerate_inputs_give_bounded_answers() {
    let mut one = LogSummary::default();
    one.add(10_000.0);
    let f = one.fit().unwrap();
    assert!(
        f.quantile_ms(2.575_829) > 10_000.0 && f.quantile_ms(2.575_829) < 20_000.0,
        "one sample: a small floor on σ"
    );
    let mut equal = LogSummary::default();
    for _ in 0..100 {
        equal.add(30_000.0);
    }
    assert!(equal.fit().unwrap().quantile_ms(2.575_829).is_finite());
    let mut outliers = LogSummary::default();
    for x in [f64::NAN, -5.0, 0.0, f64::INFINITY, 1e300, 20_000.0] {
        outliers.add(x);
    }
    assert!(outliers.fit().unwrap().mu.is_finite());
    assert!(LogSummary::default().fit().is_none());

    // Whatever the history, a suggestion is within the bounds.
    let mut model = TtlModel::default();
    for x in [1.0, 1e12, 5.0, 1e15, 3.0, 2e13, 7.0, 9e14, 1.0, 1e12, 4.0] {
        let o = Observation { heartbeats: 0, max_gap: Millis(0), held: Millis(x as i64) };
        model.observe("bed", "p", "o", &o);
    }
    let s = model.suggest("bed", "p", "o", &policy());
    assert!((5..=86_400).contains(&s.ttl.seconds()), "{s:?}");
}

#[test]
fn no_history_is_the_policy_default() {
    let model = TtlModel::default();
    let s = model.suggest("bed", "p", "o", &policy());
    assert_eq!((s.ttl.seconds(), s.scope, s.basis, s.samples), (300, Scope::Default, Basis::PolicyDefault, 0));
}

#[test]
fn heartbeating_owners_get_gap_based_ttls_and_silent_ones_duration_based() {
    let mut model = TtlModel::default();
    let mut n = Normal(3);
    for _ in 0..200 {
        // Heartbeats every ~10 s; holds of ~30 min.
        let gap = 10_000.0 * (1.0 + 0.1 * n.next().abs());
        model.observe(
            "mri",
            "north",
            "ws-1",
            &Observation { heartbeats: 180, max_gap: Millis(gap as i64), held: Millis(1_800_000) },
        );
        // A silent client with ~20 min holds.
        let held = 1_200_000.0 * (0.3 * n.next()).exp();
        model.observe(
            "mri",
            "north",
            "ws-2",
            &Observation { heartbeats: 0, max_gap: Millis(held as i64), held: Millis(held as i64) },
        );
    }
    let hb = model.suggest("mri", "north", "ws-1", &policy());
    assert_eq!((hb.basis, hb.scope), (Basis::HeartbeatGaps, Scope::Owner));
    assert!((12..=25).contains(&hb.ttl.seconds()), "{hb:?}");
    let silent = model.suggest("mri", "north", "ws-2", &policy());
    assert_eq!(silent.basis, Basis::HoldDurations);
    assert!((2_400..=3_600).contains(&silent.ttl.seconds()), "{silent:?}");
}

#[test]
fn shrinkage_moves_a_thin_owner_toward_its_type() {
    let mut model = TtlModel::default();
    for _ in 0..100 {
        model.observe(
            "bed",
            "north",
            "many",
            &Observation { heartbeats: 0, max_gap: Millis(0), held: Millis(4 * 3_600_000) },
        );
    }
    // One sample of a much shorter hold: not enough to drag the suggestion down to it.
    model.observe("bed", "north", "new", &Observation { heartbeats: 0, max_gap: Millis(0), held: Millis(600_000) });
    let thin = model.suggest("bed", "north", "new", &policy());
    let typ = model.suggest("bed", "north", "nobody", &policy());
    assert_eq!(thin.scope, Scope::Type, "one sample is reported as the type's basis");
    assert!(thin.ttl.seconds() < typ.ttl.seconds(), "it moves toward the owner a little");
    assert!(thin.ttl.seconds() > 3 * 3_600, "but stays near the type: {thin:?} vs {typ:?}");
}

#[test]
fn forgotten_holds_score_high_and_fresh_ones_low() {
    let mut model = TtlModel::default();
    let mut n = Normal(11);
    for _ in 0..300 {
        let held = 1_800_000.0 * (0.4 * n.next()).exp();
        model.observe(
            "mri",
            "north",
            "ws-1",
            &Observation { heartbeats: 100, max_gap: Millis(10_000), held: Millis(held as i64) },
        );
    }
    let bounds = TtlBounds::default();
    let cmd = AcquireCmd {
        principal: Principal::parse("north").unwrap(),
        owner: OwnerId::parse("ws-1").unwrap(),
        ttl: Ttl::from_seconds(60, &bounds).unwrap(),
        new_hold_id: HoldId(uuid::Uuid::nil()),
    };
    let lease = acquire(&Lease::new(ResourceId(uuid::Uuid::nil())), Millis(0), &cmd, Millis::ZERO).unwrap().lease;
    let mut hold = lease.hold.clone().unwrap();
    hold.heartbeats = 10;
    // 20 minutes in, heartbeat 5 s ago: ordinary.
    hold.last_heartbeat = Millis(1_195_000);
    assert!(model.anomaly("mri", &hold, Millis(1_200_000)) < 0.2);
    // Six hours in, still heartbeating: forgotten.
    hold.last_heartbeat = Millis(6 * 3_600_000 - 5_000);
    assert!(model.anomaly("mri", &hold, Millis(6 * 3_600_000)) > 0.9);
    // Not live: 0.
    assert_eq!(model.anomaly("mri", &hold, Millis(6 * 3_600_000 + 60_001)), 0.0);
}

#[test]
fn a_late_heartbeat_gap_raises_the_suggestion() {
    let mut model = TtlModel::default();
    for _ in 0..50 {
        model.observe(
            "ct",
            "north",
            "ws-1",
            &Observation { heartbeats: 60, max_gap: Millis(10_000), held: Millis(600_000) },
        );
    }
    let before = model.suggest("ct", "north", "ws-1", &policy()).ttl.seconds();
    for _ in 0..20 {
        model.observe_gap("ct", "north", "ws-1", Millis(40_000));
    }
    let after = model.suggest("ct", "north", "ws-1", &policy()).ttl.seconds();
    assert!(after > before, "{before} -> {after}");
}

/// One principal's lapses (late heartbeats and late releases, however many) never move another principal's
/// suggestion: late reports teach only the owner that made them.
#[test]
fn one_principals_late_reports_leave_another_principals_suggestion_alone() {
    let mut model = TtlModel::default();
    let mut n = Normal(7);
    for i in 0..40 {
        let gap = (8_000.0 * (0.3 * n.next()).exp()) as i64;
        let owner = if i % 2 == 0 { "ws-south" } else { "ws-east" };
        model.observe(
            "bed",
            "south",
            owner,
            &Observation { heartbeats: 20, max_gap: Millis(gap), held: Millis(600_000) },
        );
    }
    let before = model.suggest("bed", "south", "ws-south", &policy()).ttl.seconds();
    let type_before = model.suggest("bed", "other", "new-ws", &policy()).ttl.seconds();
    for i in 0..300 {
        let gap = Millis(3_600_000 + i * 1_000);
        model.observe_gap("bed", "north", "ws-1", gap);
        model.observe_late(
            "bed",
            "north",
            "ws-1",
            &Observation { heartbeats: 3, max_gap: gap, held: Millis(7_200_000) },
        );
    }
    let after = model.suggest("bed", "south", "ws-south", &policy()).ttl.seconds();
    let type_after = model.suggest("bed", "other", "new-ws", &policy()).ttl.seconds();
    assert!((f64::from(after) - f64::from(before)).abs() <= 0.1 * f64::from(before), "{before} -> {after}");
    assert_eq!(type_before, type_after, "a newcomer leans on the type, which late reports do not touch");
    // The owner that lapsed learns its lesson.
    assert!(model.suggest("bed", "north", "ws-1", &policy()).ttl.seconds() > before);
}

#[test]
fn a_session_ttl_covers_the_owners_gaps_pooled_over_types() {
    let bounds = TtlBounds::HARD;
    let default = Ttl::from_seconds(300, &bounds).unwrap();
    let mut model = TtlModel::default();
    let none = model.suggest_session("ward-7", "ws-1", default, &bounds);
    assert_eq!((none.ttl.seconds(), none.scope, none.basis), (300, Scope::Default, Basis::PolicyDefault));
    // Renewed every ~20 s, on beds and on monitors (3 holds each: too few on one type, enough pooled); another
    // owner's long gaps teach this one nothing.
    let mut n = Normal(9);
    for ty in ["bed", "monitor"] {
        for _ in 0..3 {
            let gap = 20_000.0 * (1.0 + 0.1 * n.next().abs());
            model.observe(
                ty,
                "ward-7",
                "ws-1",
                &Observation { heartbeats: 30, max_gap: Millis(gap as i64), held: Millis(600_000) },
            );
            model.observe(
                ty,
                "ward-7",
                "ws-2",
                &Observation { heartbeats: 3, max_gap: Millis(900_000), held: Millis(3_600_000) },
            );
        }
    }
    let s = model.suggest_session("ward-7", "ws-1", default, &bounds);
    assert_eq!((s.scope, s.basis, s.samples), (Scope::Owner, Basis::HeartbeatGaps, 6));
    assert!((22..=40).contains(&s.ttl.seconds()), "{s:?}");
    // Another principal's owner of the same name is someone else.
    assert_eq!(model.suggest_session("ward-9", "ws-1", default, &bounds).basis, Basis::PolicyDefault);
}

proptest::proptest! {
    /// Whatever the history, a session's suggestion is within the bounds, and above the learned quantile
    /// unless a bound caps it.
    #[test]
    fn a_session_suggestion_stays_in_bounds(gaps in proptest::collection::vec(0i64..10_000_000, 0..40), min in 1u32..60, span in 0u32..3_600) {
        let bounds = TtlBounds { min_seconds: min, max_seconds: min + span };
        let mut model = TtlModel::default();
        for (i, g) in gaps.iter().enumerate() {
            let ty = ["bed", "or", "scanner"][i % 3];
            model.observe(ty, "p", "o", &Observation { heartbeats: 1, max_gap: Millis(*g), held: Millis(g.saturating_mul(2)) });
        }
        let s = model.suggest_session("p", "o", Ttl::from_seconds(300, &TtlBounds::HARD).unwrap(), &bounds);
        proptest::prop_assert!((bounds.min_seconds..=bounds.max_seconds).contains(&s.ttl.seconds()), "{:?}", s);
        if let Some(q) = s.quantile {
            proptest::prop_assert!(s.ttl.seconds() == bounds.max_seconds || i64::from(s.ttl.seconds()) * 1000 >= q.0);
        }
    }
}

/// One principal sending a fresh owner id with every hold: its summaries stay bounded, a busy owner of its is
/// kept with exactly the suggestion an unbounded model gives, and another principal's owners are untouched.
#[test]
fn owner_summaries_are_bounded_per_principal_and_a_kept_owners_suggestion_is_unchanged() {
    use hhs_core::ttl_model::MAX_OWNERS_PER_PRINCIPAL;
    let cap = 50;
    let mut bounded = TtlModel::with_owner_capacity(cap);
    let mut unbounded = TtlModel::with_owner_capacity(usize::MAX);
    let mut n = Normal(5);
    for i in 0..5_000u32 {
        let held = Millis((1_200_000.0 * (0.3 * n.next()).exp()) as i64);
        let gap = Millis((10_000.0 * (1.0 + 0.1 * n.next().abs())) as i64);
        let steady = Observation { heartbeats: 30, max_gap: gap, held };
        let fresh = Observation { heartbeats: 0, max_gap: held, held };
        for m in [&mut bounded, &mut unbounded] {
            m.observe("bed", "flooder", &format!("random-{i}"), &fresh);
            // The flooder's own busy workstation, updated more often than `cap` new ids arrive.
            if i % 10 == 0 {
                m.observe("bed", "flooder", "ws-busy", &steady);
            }
            // Another principal's owner, updated rarely: the flood is not its problem.
            if i % 1_000 == 0 {
                m.observe("bed", "north", "ws-1", &steady);
                m.observe_gap("bed", "north", "ws-1", Millis(25_000));
            }
        }
    }
    assert!(bounded.owner_summaries() <= 2 * cap, "{} summaries", bounded.owner_summaries());
    assert!(unbounded.owner_summaries() > 5_000);
    assert!(!bounded.knows_owner("bed", "flooder", "random-0"), "the least recently updated is forgotten");
    assert!(bounded.knows_owner("bed", "flooder", "random-4999"));
    let policy = policy();
    for (p, o) in [("flooder", "ws-busy"), ("north", "ws-1"), ("flooder", "random-4999")] {
        assert!(bounded.knows_owner("bed", p, o), "{p}/{o} was kept");
        assert_eq!(bounded.suggest("bed", p, o, &policy), unbounded.suggest("bed", p, o, &policy), "{p}/{o}");
        let default = Ttl::from_seconds(300, &TtlBounds::HARD).unwrap();
        assert_eq!(
            bounded.suggest_session(p, o, default, &TtlBounds::HARD),
            unbounded.suggest_session(p, o, default, &TtlBounds::HARD),
            "{p}/{o}"
        );
    }
    assert!(TtlModel::default().owner_summaries() == 0 && MAX_OWNERS_PER_PRINCIPAL >= 1_000);
}

proptest::proptest! {
    /// Whatever the order of updates, a principal keeps at most `cap` summaries: exactly its `cap` most recently
    /// updated owners.
    #[test]
    fn each_principal_keeps_its_most_recently_updated_owners(
        updates in proptest::collection::vec((0u8..3, 0u8..12, proptest::bool::ANY), 0..200),
        cap in 1usize..6,
    ) {
        let mut model = TtlModel::with_owner_capacity(cap);
        let o = Observation { heartbeats: 1, max_gap: Millis(5_000), held: Millis(60_000) };
        for &(p, owner, gap_only) in &updates {
            let (p, owner) = (format!("p{p}"), format!("o{owner}"));
            if gap_only { model.observe_gap("bed", &p, &owner, Millis(7_000)) } else { model.observe("bed", &p, &owner, &o) }
        }
        for p in 0u8..3 {
            // The principal's owners, most recently updated first, each once.
            let mut recent: Vec<u8> = Vec::new();
            for &(_, owner, _) in updates.iter().rev().filter(|(q, _, _)| *q == p) {
                if !recent.contains(&owner) { recent.push(owner) }
            }
            for owner in 0u8..12 {
                let kept = recent.iter().take(cap).any(|r| *r == owner);
                proptest::prop_assert_eq!(model.knows_owner("bed", &format!("p{p}"), &format!("o{owner}")), kept, "p{} o{}", p, owner);
            }
        }
        proptest::prop_assert!(model.owner_summaries() <= 3 * cap);
    }
}
