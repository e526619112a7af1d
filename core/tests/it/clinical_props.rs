//! Property tests of the clinical holds: sessions (a lapse ends exactly the session's holds, together), groups
//! (all or nothing; no resource in two live groups; by the group's id every member or none) and their lock order.

use hhs_core::admission::Gate;
use hhs_core::group::{acquire_group, by_id, lock_order, GroupOp, Held, Member, MAX_MEMBERS, MIN_MEMBERS};
use hhs_core::lease::{acquire, expire, force_release, release, resume, AcquireCmd, Claim};
use hhs_core::queue::Waiter;
use hhs_core::session::{self, acquire_in, close, end_hold, keepalive, lapse, open, renew_hold, Session};
use hhs_core::status::Status;
use hhs_core::{
    Denied, GroupId, HoldId, HoldState, Lease, Millis, OwnerId, Policy, Principal, ResourceId, SessionId, Ttl,
    TtlBounds, TypePolicy, WaiterId,
};
use proptest::prelude::*;
use uuid::Uuid;

const LEASES: usize = 4;

#[derive(Clone, Debug)]
enum Step {
    /// The session's owner acquires lease `i` under the session.
    AcquireIn(usize),
    /// Someone acquires lease `i` on their own (owner 0 is the session's owner, under no session).
    AcquireAlone(usize, u8, u32),
    Keepalive,
    /// The holder of lease `i` releases it alone.
    Release(usize),
    Close,
    /// The reaper: records the session's lapse and every lapsed hold.
    Reap,
    /// The store after a database outage that began `lost_ago` ms before now: the session, then every hold.
    Resume(i64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..LEASES).prop_map(Step::AcquireIn),
        2 => (0..LEASES, 0u8..2, 1u32..30).prop_map(|(i, o, t)| Step::AcquireAlone(i, o, t)),
        4 => Just(Step::Keepalive),
        2 => (0..LEASES).prop_map(Step::Release),
        1 => Just(Step::Close),
        2 => Just(Step::Reap),
        2 => (0i64..30_000).prop_map(Step::Resume),
    ]
}

fn principal() -> Principal {
    Principal::parse("ward-7").unwrap()
}

fn owner(i: u8) -> OwnerId {
    OwnerId::parse(["ws-1", "ws-2"][usize::from(i)]).unwrap()
}

fn cmd(o: u8, ttl: Ttl, id: u128) -> AcquireCmd {
    AcquireCmd { principal: principal(), owner: owner(o), ttl, new_hold_id: HoldId(Uuid::from_u128(id)) }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_000))]

    #[test]
    fn a_sessions_holds_expire_with_it_and_only_they_do(
        steps in proptest::collection::vec((step(), 0i64..12_000), 1..50),
        session_ttl_s in 5u32..20,
    ) {
        let bounds = TtlBounds { min_seconds: 1, max_seconds: 60 };
        let mut now = Millis(1_000_000);
        let mut s: Session = open(SessionId(Uuid::from_u128(1)), principal(), owner(0), Ttl::from_seconds(session_ttl_s, &bounds).unwrap(), now);
        let mut leases: Vec<Lease> = (0..LEASES).map(|i| Lease::new(ResourceId(Uuid::from_u128(100 + i as u128)))).collect();
        let mut next_id = 1_000u128;
        for (step, dt) in steps {
            now = now.plus(Millis(dt));
            let before = leases.clone();
            match step {
                Step::AcquireIn(i) => {
                    next_id += 1;
                    if let Ok(o) = acquire_in(&leases[i], now, &cmd(0, s.ttl, next_id), &s, Millis::ZERO) {
                        prop_assert!(s.is_live(now), "granted under a session that is not live");
                        leases[i] = o.lease;
                    }
                }
                Step::AcquireAlone(i, o, ttl) => {
                    next_id += 1;
                    if let Ok(out) = acquire(&leases[i], now, &cmd(o, Ttl::from_seconds(ttl, &bounds).unwrap(), next_id), Millis::ZERO) {
                        leases[i] = out.lease;
                    }
                }
                Step::Keepalive => {
                    if let Ok(renewed) = keepalive(&s, now, &principal()) {
                        s = renewed;
                        for l in &mut leases {
                            let untouched = l.clone();
                            match renew_hold(l, &s, now) {
                                Some(o) => *l = o.lease,
                                // Holds outside the session are untouched by its keepalive.
                                None => prop_assert_eq!(&*l, &untouched),
                            }
                        }
                    } else {
                        prop_assert!(!s.is_live(now), "a live session refused a keepalive");
                    }
                }
                Step::Release(i) => {
                    if let Some(h) = leases[i].hold.clone() {
                        let claim = Claim { principal: h.principal, owner: h.owner, token: None };
                        if let Ok(o) = release(&leases[i], now, &claim) {
                            leases[i] = o.lease;
                        }
                    }
                }
                Step::Close => {
                    if let Ok(closed) = close(&s, now, &principal()) {
                        for l in &mut leases {
                            if let Some(o) = end_hold(l, &s, now) {
                                *l = o.lease;
                            }
                        }
                        s = closed;
                    }
                }
                Step::Resume(lost_ago) => {
                    let lost_at = Millis(now.0 - lost_ago);
                    if let Some(resumed) = session::resume(&s, lost_at, now) {
                        prop_assert!(resumed.expires_at() >= s.expires_at(), "a resumption shortened a session");
                        s = resumed;
                    }
                    for l in &mut leases {
                        if let Some(o) = resume(l, lost_at, now) {
                            *l = o.lease;
                        }
                    }
                }
                Step::Reap => {
                    if let Some(lapsed) = lapse(&s, now) {
                        s = lapsed;
                    }
                    for l in &mut leases {
                        if let Some(o) = expire(l, now, Millis::ZERO) {
                            *l = o.lease;
                        }
                    }
                }
            }
            for (l, b) in leases.iter().zip(&before) {
                // Exclusivity across the new paths too: a live hold is replaced only by itself.
                if let (Some(prev), Some(cur)) = (b.live_hold(now), l.live_hold(now)) {
                    prop_assert_eq!(prev.id, cur.id);
                }
                for h in l.hold.iter().filter(|h| h.session == Some(s.id) && h.is_live(now)) {
                    // Every live hold of the session ends exactly when it does, so it is live only while it is.
                    prop_assert_eq!(h.expires_at(), s.expires_at(), "a session hold and its session disagree");
                    prop_assert!(s.is_live(now), "a hold outlived its session");
                    prop_assert_eq!(&h.owner, &s.owner);
                }
            }
        }
    }

    #[test]
    fn a_group_is_all_or_nothing_and_no_resource_is_in_two(
        // Each lease: free, held by another owner, held by our owner in another group, in lock-delay, in a
        // status other than U, queued for by a live waiter, or of a type whose longest TTL is below ours.
        states in proptest::collection::vec(0u8..7, MIN_MEMBERS..8),
        ttl_s in 2u32..30,
    ) {
        let bounds = TtlBounds { min_seconds: 1, max_seconds: 60 };
        let ttl = Ttl::from_seconds(ttl_s, &bounds).unwrap();
        let now = Millis(5_000_000);
        let (ours, other_group) = (GroupId(Uuid::from_u128(7)), GroupId(Uuid::from_u128(8)));
        let leases: Vec<Lease> = states.iter().enumerate().map(|(i, st)| {
            let mut l = Lease::new(ResourceId(Uuid::from_u128(500 + i as u128)));
            let id = 9_000 + i as u128;
            match st {
                1 => l = acquire(&l, now, &cmd(1, ttl, id), Millis::ZERO).unwrap().lease,
                2 => {
                    l = acquire(&l, now, &cmd(0, ttl, id), Millis::ZERO).unwrap().lease;
                    l.hold.as_mut().unwrap().group = Some(other_group);
                }
                3 => l.delay_until = Some(now.plus(Millis(1_000))),
                _ => {}
            }
            l
        }).collect();
        let open = TypePolicy { min_ttl_seconds: 1, max_ttl_seconds: 60, default_ttl_seconds: 30, ..Policy::default().for_type("bed") };
        let short = TypePolicy { min_ttl_seconds: 1, max_ttl_seconds: i64::from(ttl_s) - 1, default_ttl_seconds: 1, ..open };
        let waiter = Waiter::new(WaiterId(Uuid::from_u128(77)), principal(), owner(1), ttl, now, Millis(10_000));
        let queued = [waiter];
        let members: Vec<Member> = leases.iter().zip(&states).enumerate().map(|(i, (l, st))| {
            let gate = match st {
                4 => Gate { policy: &open, status: Status::Housekeeping, queue: &[] },
                5 => Gate { policy: &open, status: Status::Unoccupied, queue: &queued },
                6 => Gate { policy: &short, status: Status::Unoccupied, queue: &[] },
                _ => Gate { policy: &open, status: Status::Unoccupied, queue: &[] },
            };
            Member { lease: l, gate, new_hold_id: HoldId(Uuid::from_u128(20_000 + i as u128)) }
        }).collect();
        let blocked: Vec<ResourceId> = leases.iter().zip(&states).filter(|(_, st)| **st != 0).map(|(l, _)| l.resource_id).collect();
        match acquire_group(&members, now, ours, &cmd(0, ttl, 0), None) {
            Ok(outcomes) => {
                prop_assert!(blocked.is_empty(), "granted although {:?} were blocked", blocked);
                prop_assert_eq!(outcomes.len(), leases.len());
                for (o, before) in outcomes.iter().zip(&leases) {
                    let h = o.lease.live_hold(now).expect("every member held");
                    prop_assert_eq!((h.group, &h.owner), (Some(ours), &owner(0)));
                    prop_assert!(h.token > before.last_token);
                }
            }
            Err(refused) => {
                // Exactly the blocked members are named, each once, in the members' order.
                let named: Vec<ResourceId> = refused.iter().map(|(r, _)| *r).collect();
                prop_assert_eq!(named, blocked);
                // Each for the reason a single acquire of it would give.
                for ((_, why), st) in refused.iter().zip(states.iter().filter(|st| **st != 0)) {
                    let expected = match st {
                        1 | 2 => matches!(why, Denied::LockHeld { .. }),
                        3 => matches!(why, Denied::LockDelay { .. }),
                        4 => matches!(why, Denied::Unavailable { .. }),
                        5 => matches!(why, Denied::Queued { .. }),
                        _ => matches!(why, Denied::TtlOutOfBounds { .. }),
                    };
                    prop_assert!(expected, "state {} refused with {:?}", st, why);
                }
            }
        }
    }

    #[test]
    fn an_operation_by_the_groups_id_acts_on_every_member_or_none(
        // Each member, after the group was granted: still held by it (0), its hold lapsed unrecorded (1),
        // force-released (2), force-released and then granted to another clinic (3), released alone (4), its
        // resource deleted (5), or re-acquired by the group's own owner on its own after a force-release (6).
        states in proptest::collection::vec(0u8..7, MIN_MEMBERS..8),
        op in prop_oneof![Just(GroupOp::Heartbeat), Just(GroupOp::Release), (1i64..5_000).prop_map(|d| GroupOp::Book { until: Millis(d) })],
        wrong_principal in proptest::bool::weighted(0.2),
    ) {
        let bounds = TtlBounds { min_seconds: 1, max_seconds: 60 };
        let ttl = Ttl::from_seconds(10, &bounds).unwrap();
        let granted_at = Millis(5_000_000);
        let now = granted_at.plus(Millis(4_000));
        let g = GroupId(Uuid::from_u128(7));
        let open = TypePolicy { min_ttl_seconds: 1, max_ttl_seconds: 60, default_ttl_seconds: 30, ..Policy::default().for_type("bed") };
        let fresh: Vec<Lease> = (0..states.len()).map(|i| Lease::new(ResourceId(Uuid::from_u128(500 + i as u128)))).collect();
        let members: Vec<Member> = fresh.iter().enumerate().map(|(i, l)| Member {
            lease: l,
            gate: Gate { policy: &open, status: Status::Unoccupied, queue: &[] },
            new_hold_id: HoldId(Uuid::from_u128(20_000 + i as u128)),
        }).collect();
        let granted = acquire_group(&members, granted_at, g, &cmd(0, ttl, 0), None).expect("a free group is granted");
        let other = AcquireCmd { principal: Principal::parse("clinic-south").unwrap(), ..cmd(1, ttl, 0) };
        let leases: Vec<Option<Lease>> = granted.into_iter().zip(&states).enumerate().map(|(i, (o, st))| {
            let mut l = o.lease;
            let id = HoldId(Uuid::from_u128(30_000 + i as u128));
            let at = granted_at.plus(Millis(1_000));
            match st {
                // Renewed at the grant only: lapsed 10 s later, so not at `now` unless backdated.
                1 => l.hold.as_mut().unwrap().last_heartbeat = Millis(now.0 - 11_000),
                2 => l = force_release(&l, at, Millis::ZERO).unwrap().lease,
                3 => {
                    l = force_release(&l, at, Millis::ZERO).unwrap().lease;
                    l = acquire(&l, at, &AcquireCmd { new_hold_id: id, ..other.clone() }, Millis::ZERO).unwrap().lease;
                }
                4 => {
                    let h = l.hold.clone().unwrap();
                    l = release(&l, at, &Claim { principal: h.principal, owner: h.owner, token: None }).unwrap().lease;
                }
                5 => return None,
                6 => {
                    l = force_release(&l, at, Millis::ZERO).unwrap().lease;
                    l = acquire(&l, at, &cmd(0, ttl, id.0.as_u128()), Millis::ZERO).unwrap().lease;
                }
                _ => {}
            }
            Some(l)
        }).collect();
        let op = match op {
            GroupOp::Book { until } => GroupOp::Book { until: now.plus(until) },
            op => op,
        };
        let held: Vec<Held> = leases.iter().enumerate().map(|(i, l)| Held {
            resource_id: ResourceId(Uuid::from_u128(500 + i as u128)),
            lease: l.as_ref(),
            booking_max: Millis(3_600_000),
        }).collect();
        let claim = Claim { principal: if wrong_principal { other.principal.clone() } else { principal() }, owner: owner(0), token: None };
        // The group's hold is on the lease (live or ended) for 0, 1, 2 and 4; gone for 3, 5 and 6.
        let groups_hold = |st: u8| matches!(st, 0 | 1 | 2 | 4);
        let expected: Vec<(ResourceId, u8)> = held.iter().zip(&states).filter(|(_, st)| match op {
            // A release refuses only another principal's group hold, whatever its state; the rest counts as released.
            GroupOp::Release => wrong_principal && groups_hold(**st),
            _ => wrong_principal || **st != 0,
        }).map(|(h, st)| (h.resource_id, *st)).collect();
        match by_id(&held, g, now, &claim, op) {
            Ok(outcomes) => {
                prop_assert!(expected.is_empty(), "{:?} done although {:?} should refuse", op, expected);
                prop_assert_eq!(outcomes.len(), held.len(), "one answer per member");
                for ((o, before), st) in outcomes.iter().zip(&leases).zip(&states) {
                    match (op, o) {
                        (GroupOp::Heartbeat | GroupOp::Book { .. }, Some(o)) => {
                            let (h, b) = (o.lease.live_hold(now).expect("every member still held"), before.as_ref().unwrap().hold.as_ref().unwrap());
                            prop_assert_eq!((h.group, h.id, h.token), (Some(g), b.id, b.token), "the group's own hold, renewed or booked");
                            if let GroupOp::Book { until } = op {
                                prop_assert_eq!(h.booked_until, Some(until));
                            } else {
                                prop_assert_eq!(h.last_heartbeat, now);
                            }
                        }
                        (GroupOp::Release, Some(o)) => {
                            prop_assert_eq!(*st, 0, "only a member still held is released");
                            let h = o.lease.hold.as_ref().unwrap();
                            let ended = matches!(h.state, HoldState::Released { .. });
                            prop_assert!(ended && h.group == Some(g), "{:?}", h);
                        }
                        // Already ended: counts as released, nothing written (least of all another's hold).
                        (GroupOp::Release, None) => prop_assert!(*st != 0),
                        (_, None) => prop_assert!(false, "a heartbeat or booking skipped a member"),
                    }
                }
            }
            Err(refused) => {
                // Exactly the members that block, in the members' order, each with its reason.
                let named: Vec<ResourceId> = refused.iter().map(|(r, _)| *r).collect();
                let want: Vec<ResourceId> = expected.iter().map(|(r, _)| *r).collect();
                prop_assert_eq!(named, want);
                for ((_, why), (_, st)) in refused.iter().zip(&expected) {
                    let ok = match (wrong_principal && groups_hold(*st), st) {
                        (true, _) => *why == Denied::NotYourHold,
                        (false, 1) => *why == Denied::LockExpired,
                        (false, _) => *why == Denied::NotHolder,
                    };
                    prop_assert!(ok, "member in state {} refused with {:?}", st, why);
                }
            }
        }
    }

    #[test]
    fn groups_lock_in_one_order(ids in proptest::collection::vec(0u128..40, 0..40)) {
        let ids: Vec<ResourceId> = ids.into_iter().map(|n| ResourceId(Uuid::from_u128(n))).collect();
        let mut distinct = ids.clone();
        distinct.sort();
        distinct.dedup();
        match lock_order(&ids) {
            Ok(order) => {
                prop_assert_eq!(&order, &distinct, "ascending, each once");
                prop_assert_eq!(order.len(), ids.len());
                prop_assert!((MIN_MEMBERS..=MAX_MEMBERS).contains(&order.len()));
            }
            Err(e) => prop_assert!(distinct.len() != ids.len() || !(MIN_MEMBERS..=MAX_MEMBERS).contains(&ids.len()), "{e}"),
        }
    }
}
