//! Property tests of the wait queue (`hhs_core::queue`): requests join, prove they are there, vanish or leave;
//! holders release and lapse; the reaper and the waiters' own polls hand the resource over. Checked: grants go
//! to live waiters in arrival order, never to one that is not live, never over a live hold or a lock-delay; the
//! lease's count is the queue's length; while live waiters queue, nobody else is admitted.

use hhs_core::lease::{acquire, expire, release, AcquireCmd, Claim};
use hhs_core::queue::{admit, enqueue, hand_over, leave, Waiter, PRESENCE_TIMEOUT};
use hhs_core::admission::Gate;
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
                        Err(_) => {
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
