//! Property tests of the wait queue (`hhs_core::queue`): requests join, prove they are there, vanish or leave;
//! holders release and lapse; the reaper and the waiters' own polls hand the resource over. Checked: grants go
//! to live waiters in arrival order, never to one that is not live, never over a live hold or a lock-delay; the
//! lease's count is the queue's length; while live waiters queue, nobody else is admitted. A waiter is answered
//! only with the hold it was handed, never a later holder's; a hand-over nobody takes is given back within the
//! pickup window, without a lock-delay.

use hhs_core::admission::Gate;
use hhs_core::lease::{acquire, expire, release, AcquireCmd, Claim};
use hhs_core::queue::{
    abandoned, admit, enqueue, hand_over, handed_hold, leave, reclaim, waiting_can_end, Waiter, WaiterState,
    PICKUP_TIMEOUT, PRESENCE_TIMEOUT,
};
use hhs_core::status::Status;
use hhs_core::{HoldId, Lease, Millis, OwnerId, Policy, Principal, ResourceId, Ttl, TtlBounds, TypePolicy, WaiterId};
use proptest::prelude::*;
use uuid::Uuid;

#[derive(Clone, Debug)]
enum Step {
    /// Client `c` acquires with a wait: granted now, or queued.
    Arrive(u8),
    /// The `i`-th queued request proves it is there and tries for a hand-over (its own poll).
    Poll(usize),
    /// The `i`-th queued request's client goes away and the origin notices: it leaves the queue.
    Leave(usize),
    /// The holder releases.
    Release,
    /// The reaper: records a lapse, then hands over.
    Reap,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0u8..12).prop_map(Step::Arrive),
        6 => (0usize..8).prop_map(Step::Poll),
        1 => (0usize..8).prop_map(Step::Leave),
        3 => Just(Step::Release),
        2 => Just(Step::Reap),
    ]
}

fn principal() -> Principal {
    Principal::parse("clinic-north").unwrap()
}

fn owner(c: u8) -> OwnerId {
    OwnerId::parse(&format!("ws-{c}")).unwrap()
}

fn ttl() -> Ttl {
    Ttl::from_seconds(3, &TtlBounds::HARD).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn waiters_are_granted_live_in_arrival_order_and_never_over_a_hold(
        steps in proptest::collection::vec((step(), 0i64..1_500), 1..80),
        delay_ms in prop_oneof![Just(0i64), 0i64..3_000],
    ) {
        let lock_delay = Millis(delay_ms);
        // A type whose bounds admit every waiter's TTL, with this lock-delay; resources available.
        let policy = TypePolicy { lock_delay_ms: delay_ms, min_ttl_seconds: 1, max_ttl_seconds: 3_600, default_ttl_seconds: 3, ..Policy::default().for_type("bed") };
        let mut now = Millis(1_000_000);
        let mut lease = Lease::new(ResourceId(Uuid::from_u128(1)));
        // The queue in arrival order; each with whether its request is still there (polls).
        let mut queue: Vec<(Waiter, bool)> = vec![];
        let mut next_id = 100u128;
        let mut granted_order: Vec<u128> = vec![];
        for (step, dt) in steps {
            now = now.plus(Millis(dt));
            let before = lease.clone();
            let waiters: Vec<Waiter> = queue.iter().map(|(w, _)| w.clone()).collect();
            // Any hand-over below: checked against this queue.
            let check = |h: &hhs_core::queue::HandOver, waiters: &[Waiter]| -> Result<(), TestCaseError> {
                if let Some(g) = h.granted {
                    let first_live = waiters.iter().find(|w| w.is_live(now));
                    prop_assert_eq!(Some(g), first_live.map(|w| w.id), "granted out of order or to a waiter that is not live");
                    match before.live_hold(now) {
                        // Its owner holds already (an earlier request of its own): served by a renewal.
                        Some(held) => prop_assert!(h.outcome.events.is_empty() && Some(&held.owner) == first_live.map(|w| &w.owner), "handed over a live hold"),
                        None => prop_assert!(before.delay_until.is_none_or(|u| now >= u), "handed over during a lock-delay"),
                    }
                }
                for gone in &h.gone {
                    prop_assert!(waiters.iter().find(|w| w.id == *gone).unwrap().is_gone(now), "dropped a waiter that is not gone");
                }
                Ok(())
            };
            let apply = |h: hhs_core::queue::HandOver, queue: &mut Vec<(Waiter, bool)>, lease: &mut Lease, order: &mut Vec<u128>| {
                queue.retain(|(w, _)| Some(w.id) != h.granted && !h.gone.contains(&w.id));
                if let Some(g) = h.granted {
                    order.push(g.0.as_u128());
                }
                *lease = h.outcome.lease;
            };
            match step {
                Step::Arrive(c) => {
                    next_id += 1;
                    let cmd = AcquireCmd { principal: principal(), owner: owner(c), ttl: ttl(), new_hold_id: HoldId(Uuid::from_u128(next_id)) };
                    let admitted = admit(&lease, now, &waiters, &principal(), &owner(c), None);
                    if !waiters.iter().any(|w| w.is_live(now)) {
                        prop_assert!(admitted.is_ok(), "refused with nobody live waiting");
                    }
                    match admitted.and_then(|()| acquire(&lease, now, &cmd, lock_delay)) {
                        Ok(o) => {
                            if waiters.iter().any(|w| w.is_live(now)) {
                                // Only the holder's renewal passes a live queue.
                                prop_assert!(o.events.is_empty(), "a newcomer was granted past live waiters");
                            }
                            lease = o.lease;
                        }
                        Err(d) => {
                            prop_assert!(waiting_can_end(&d), "an arrival refused for what waiting cannot end: {d:?}");
                            let w = Waiter::new(WaiterId(Uuid::from_u128(next_id)), principal(), owner(c), ttl(), now, Millis(30_000));
                            queue.push((w, true));
                            lease = enqueue(&lease);
                        }
                    }
                }
                Step::Poll(i) => {
                    if let Some((w, true)) = queue.get(i).cloned() {
                        if w.is_live(now) {
                            queue[i].0 = w.seen(now);
                        }
                        let waiters: Vec<Waiter> = queue.iter().map(|(w, _)| w.clone()).collect();
                        next_id += 1;
                        if let Some(h) = hand_over(&lease, now, &Gate { policy: &policy, status: Status::Unoccupied, queue: &waiters }, HoldId(Uuid::from_u128(next_id))) {
                            check(&h, &waiters)?;
                            apply(h, &mut queue, &mut lease, &mut granted_order);
                        }
                    }
                    // Some requests stop proving they are there (their replica died).
                    if let Some(q) = queue.get_mut(i.wrapping_mul(7) % 8) {
                        if dt % 5 == 0 {
                            q.1 = false;
                        }
                    }
                }
                Step::Leave(i) => {
                    if i < queue.len() {
                        queue.remove(i);
                        lease = leave(&lease);
                    }
                }
                Step::Release => {
                    if let Some(h) = lease.live_hold(now).cloned() {
                        let claim = Claim { principal: h.principal, owner: h.owner, token: Some(h.token) };
                        let o = release(&lease, now, &claim).unwrap();
                        lease = o.lease;
                        next_id += 1;
                        if let Some(h) = hand_over(&lease, now, &Gate { policy: &policy, status: Status::Unoccupied, queue: &waiters }, HoldId(Uuid::from_u128(next_id))) {
                            let freed = lease.clone();
                            prop_assert!(freed.live_hold(now).is_none());
                            // Checked against the state the release left.
                            if let Some(g) = h.granted {
                                prop_assert_eq!(Some(g), waiters.iter().find(|w| w.is_live(now)).map(|w| w.id));
                            }
                            apply(h, &mut queue, &mut lease, &mut granted_order);
                        }
                    }
                }
                Step::Reap => {
                    if let Some(o) = expire(&lease, now, lock_delay) {
                        lease = o.lease;
                    }
                    let expired = lease.clone();
                    next_id += 1;
                    if let Some(h) = hand_over(&expired, now, &Gate { policy: &policy, status: Status::Unoccupied, queue: &waiters }, HoldId(Uuid::from_u128(next_id))) {
                        if h.granted.is_some() && !h.outcome.events.is_empty() {
                            prop_assert!(expired.live_hold(now).is_none() && expired.delay_until.is_none_or(|u| now >= u));
                        }
                        apply(h, &mut queue, &mut lease, &mut granted_order);
                    }
                }
            }
            // The count is the queue's length.
            prop_assert_eq!(lease.waiting as usize, queue.len());
            // A waiter that stopped proving it is there becomes not live within the presence timeout.
            for (w, polling) in &queue {
                if !polling {
                    prop_assert!(w.alive_until <= now.plus(PRESENCE_TIMEOUT).plus(Millis(1_500)));
                }
            }
            // Arrival order: ids rise with arrival, so grants to waiters rise too.
            prop_assert!(granted_order.windows(2).all(|p| p[0] < p[1]), "{:?}", granted_order);
        }
    }
}

/// What may happen to a resource after its hold was handed to a waiter.
#[derive(Clone, Debug)]
enum After {
    /// Time passes.
    Wait(i64),
    /// The handed hold's holder releases it (the guard of a request that went away).
    Release,
    /// The reaper records a lapse.
    Expire,
    /// Anyone acquires (a later waiter, a plain acquire), if the rule allows it.
    Acquire(u8),
}

fn after() -> impl Strategy<Value = After> {
    prop_oneof![
        3 => (0i64..4_000).prop_map(After::Wait),
        1 => Just(After::Release),
        1 => Just(After::Expire),
        2 => (0u8..4).prop_map(After::Acquire),
    ]
}

fn handed_over(now: Millis, ttl_s: u32) -> (Lease, HoldId) {
    let hold = HoldId(Uuid::from_u128(7));
    let cmd = AcquireCmd {
        principal: principal(),
        owner: owner(99),
        ttl: Ttl::from_seconds(ttl_s, &TtlBounds::HARD).unwrap(),
        new_hold_id: hold,
    };
    let lease = acquire(&Lease::new(ResourceId(Uuid::from_u128(1))), now, &cmd, Millis::ZERO).unwrap().lease;
    (lease, hold)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// Whatever becomes of the hold a waiter was handed, the waiter is answered with that hold or with nothing:
    /// once it ended, a later grant of the bed (another holder's token) is never its answer.
    #[test]
    fn a_waiter_is_answered_only_with_the_hold_it_was_handed(
        steps in proptest::collection::vec(after(), 1..30),
        ttl_s in 1u32..5,
        delay_ms in 0i64..3_000,
    ) {
        let mut now = Millis(5_000_000);
        let (mut lease, handed) = handed_over(now, ttl_s);
        let mut next = 100u128;
        let mut ended = false;
        for step in steps {
            match step {
                After::Wait(dt) => now = now.plus(Millis(dt)),
                After::Release => {
                    if let Some(h) = lease.live_hold(now).cloned() {
                        let claim = Claim { principal: h.principal, owner: h.owner, token: Some(h.token) };
                        lease = release(&lease, now, &claim).unwrap().lease;
                    }
                }
                After::Expire => {
                    if let Some(o) = expire(&lease, now, Millis(delay_ms)) {
                        lease = o.lease;
                    }
                }
                After::Acquire(c) => {
                    next += 1;
                    let cmd = AcquireCmd { principal: principal(), owner: owner(c), ttl: ttl(), new_hold_id: HoldId(Uuid::from_u128(next)) };
                    if let Ok(o) = acquire(&lease, now, &cmd, Millis(delay_ms)) {
                        lease = o.lease;
                    }
                }
            }
            let current = lease.hold.as_ref().expect("a hold was granted");
            ended |= current.id != handed || !current.is_live(now);
            match handed_hold(&lease, now, handed) {
                Some(h) => {
                    prop_assert_eq!(h.id, handed, "answered with another hold");
                    prop_assert!(h.is_live(now) && !ended, "answered with a hold that had ended");
                    prop_assert_eq!(&h.owner, &owner(99));
                }
                None => prop_assert!(ended, "the handed hold is live and held, yet not answered"),
            }
        }
    }

    /// A hand-over never taken is given back once the pickup window has passed, and not before: the bed is then
    /// grantable at once (no lock-delay, whatever the type's), and only the handed hold is ever ended by it.
    #[test]
    fn an_untaken_hand_over_is_given_back_after_the_pickup_window_without_lock_delay(
        since in 0i64..8_000,
        ttl_s in 1u32..5,
        delay_ms in 0i64..5_000,
        other_holds in any::<bool>(),
    ) {
        let granted_at = Millis(9_000_000);
        let (mut lease, handed) = handed_over(granted_at, ttl_s);
        if other_holds {
            // The handed hold ended and the bed went to someone else: that hold is not the reclaim's to end.
            let h = lease.hold.clone().unwrap();
            lease = release(&lease, granted_at, &Claim { principal: h.principal, owner: h.owner, token: Some(h.token) }).unwrap().lease;
            let cmd = AcquireCmd { principal: principal(), owner: owner(1), ttl: ttl(), new_hold_id: HoldId(Uuid::from_u128(8)) };
            lease = acquire(&lease, granted_at, &cmd, Millis(delay_ms)).unwrap().lease;
        }
        let now = granted_at.plus(Millis(since));
        prop_assert_eq!(abandoned(granted_at, now), since > PICKUP_TIMEOUT.0);
        // Once abandoned, abandoned for good.
        prop_assert!(!abandoned(granted_at, now) || abandoned(granted_at, now.plus(Millis(1))));
        match reclaim(&lease, now, handed, granted_at) {
            None => prop_assert!(!abandoned(granted_at, now) || other_holds, "an abandoned hand-over kept its bed"),
            Some(o) => {
                prop_assert!(abandoned(granted_at, now) && !other_holds, "reclaimed too soon, or another's hold");
                prop_assert!(o.lease.live_hold(now).is_none());
                prop_assert_eq!(o.lease.delay_until, None, "a lock-delay after a hold nobody used");
                prop_assert!(o.events.len() == 1 && o.events[0].hold.id == handed);
                let cmd = AcquireCmd { principal: principal(), owner: owner(2), ttl: ttl(), new_hold_id: HoldId(Uuid::from_u128(9)) };
                prop_assert!(acquire(&o.lease, now, &cmd, Millis(delay_ms)).is_ok(), "the bed is not grantable at once");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// A hold handed over from the queue lasts until its pickup deadline (a third of its TTL and 10 s) unless
    /// renewed first: an answer that reached no one costs the bed that, not its TTL; the renewal, made in time,
    /// gives it its own TTL. A grant that is not a hand-over has no pickup deadline.
    #[test]
    fn a_hand_over_lapses_at_its_pickup_deadline_unless_renewed(
        ttl_s in 1u32..600,
        renew_after in proptest::option::of(0i64..250_000),
        probe in 0i64..700_000,
    ) {
        use hhs_core::lease::heartbeat;
        let policy = TypePolicy { min_ttl_seconds: 1, max_ttl_seconds: 3_600, ..Policy::default().for_type("bed") };
        let t = Ttl::from_seconds(ttl_s, &TtlBounds::HARD).unwrap();
        let now = Millis(7_000_000);
        let w = Waiter::new(WaiterId(Uuid::from_u128(3)), principal(), owner(3), t, now.plus(Millis(-100)), Millis(30_000));
        let lease = enqueue(&Lease::new(ResourceId(Uuid::from_u128(1))));
        let queue = [w];
        let h = hand_over(&lease, now, &Gate { policy: &policy, status: Status::Unoccupied, queue: &queue }, HoldId(Uuid::from_u128(4))).unwrap();
        let handed = h.outcome.lease.hold.clone().unwrap();
        // A third of the TTL and ten seconds, never past the TTL.
        let pickup = now.plus(Millis((t.as_millis().0 / 3 + 10_000).min(t.as_millis().0)));
        prop_assert_eq!(handed.expires_at(), pickup);
        prop_assert_eq!(&h.outcome.events[0].hold, &handed, "the log's grant says the same deadline");
        let claim = Claim { principal: principal(), owner: owner(3), token: Some(handed.token) };
        let (lease, ends) = match renew_after.map(|dt| now.plus(Millis(dt))) {
            Some(at) => match heartbeat(&h.outcome.lease, at, &claim) {
                Ok(o) => {
                    prop_assert!(at <= pickup, "renewed after its pickup deadline");
                    (o.lease, at.plus(t.as_millis()))
                }
                Err(_) => {
                    prop_assert!(at > pickup, "a renewal in time was refused");
                    (h.outcome.lease.clone(), pickup)
                }
            },
            None => (h.outcome.lease.clone(), pickup),
        };
        let at = now.plus(Millis(probe));
        prop_assert_eq!(lease.live_hold(at).is_some(), at <= ends, "live at {:?}, ends {:?}", at, ends);
        // A plain grant of the same TTL: no pickup deadline.
        let cmd = AcquireCmd { principal: principal(), owner: owner(5), ttl: t, new_hold_id: HoldId(Uuid::from_u128(9)) };
        let plain = acquire(&Lease::new(ResourceId(Uuid::from_u128(2))), now, &cmd, Millis::ZERO).unwrap().lease;
        prop_assert_eq!(plain.hold.unwrap().expires_at(), now.plus(t.as_millis()));
    }
}

/// A hand-over its request did not take on the replica that made it may still have reached its client another
/// way (the client's retry on another replica is answered as the owner's renewal; or it heartbeats, or books):
/// once touched, it is never given back, by the reaper's reclaim or by the request's own end.
#[test]
fn a_hand_over_renewed_by_its_owner_is_never_given_back() {
    use hhs_core::lease::heartbeat;
    use hhs_core::queue::give_back;
    let granted_at = Millis(9_000_000);
    let (lease, handed) = handed_over(granted_at, 30);
    let later = granted_at.plus(Millis(500));
    let h = lease.hold.clone().unwrap();
    let claim = Claim { principal: h.principal.clone(), owner: h.owner.clone(), token: Some(h.token) };
    let retried = AcquireCmd {
        principal: h.principal.clone(),
        owner: h.owner.clone(),
        ttl: h.ttl,
        new_hold_id: HoldId(Uuid::from_u128(77)),
    };
    let past_window = granted_at.plus(PICKUP_TIMEOUT).plus(Millis(1));
    assert!(reclaim(&lease, past_window, handed, granted_at).is_some(), "untouched: given back");
    let s = hhs_core::session::open(
        hhs_core::SessionId(Uuid::from_u128(5)),
        h.principal.clone(),
        h.owner.clone(),
        h.ttl,
        granted_at,
    );
    let in_session = hhs_core::session::acquire_in(&lease, granted_at, &retried, &s, Millis::ZERO).unwrap().lease;
    for touched in [
        heartbeat(&lease, later, &claim).unwrap().lease,
        acquire(&lease, later, &retried, Millis::ZERO).unwrap().lease,
        in_session,
    ] {
        assert!(reclaim(&touched, past_window, handed, granted_at).is_none(), "a renewed hand-over was taken back");
        assert!(give_back(&touched, past_window, handed).is_none());
    }
}

#[test]
fn waiter_states_read_back_as_stored_and_nothing_else_parses() {
    for s in WaiterState::ALL {
        assert_eq!(WaiterState::parse(s.as_str()), Some(s));
    }
    for bad in ["", "waiting", "BOGUS", "GRANTED ", "DELIVERED\0"] {
        assert_eq!(WaiterState::parse(bad), None, "{bad:?}");
    }
}

/// Which refusals a request that asked to wait queues on, and which it is refused with, for every refusal.
#[test]
fn waiting_ends_a_hold_a_lock_delay_a_queue_and_a_status_and_nothing_else() {
    use hhs_core::Denied;
    let at = Millis(1_000);
    let ends = [
        Denied::LockHeld { holder: owner(1), expires_at: at, booked: false },
        Denied::LockDelay { until: at },
        Denied::Queued { waiting: 2 },
        Denied::Unavailable { status: Status::Housekeeping },
    ];
    let stays = [
        Denied::NotHolder,
        Denied::NotYourHold,
        Denied::LockExpired,
        Denied::StaleToken,
        Denied::NotHeld,
        Denied::TtlOutOfBounds { min_seconds: 5, max_seconds: 60 },
        Denied::BookingOutOfBounds { latest: at },
        Denied::InSession,
        Denied::SessionEnded,
        Denied::NotSessionOwner,
        Denied::Booked { until: at },
    ];
    for d in &ends {
        assert!(waiting_can_end(d), "{d:?}");
    }
    for d in &stays {
        assert!(!waiting_can_end(d), "{d:?}");
    }
}
