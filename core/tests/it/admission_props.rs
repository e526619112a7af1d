//! Property tests of admission (`hhs_core::admission::admit`), the one order every acquire path decides in:
//! the type's TTL bounds, the status, the lease rule, the queue.

use hhs_core::admission::{self, admit, Gate};
use hhs_core::lease::{acquire, AcquireCmd};
use hhs_core::queue::{self, Waiter};
use hhs_core::status::Status;
use hhs_core::{
    Denied, HoldId, Lease, Millis, OwnerId, Policy, Principal, ResourceId, Ttl, TtlBounds, TypePolicy, WaiterId,
};
use proptest::prelude::*;
use uuid::Uuid;

fn cmd(owner: u8, ttl_s: u32) -> AcquireCmd {
    AcquireCmd {
        principal: Principal::parse("clinic-north").unwrap(),
        owner: OwnerId::parse(&format!("ws-{owner}")).unwrap(),
        ttl: Ttl::from_seconds(ttl_s, &TtlBounds::HARD).unwrap(),
        new_hold_id: HoldId(Uuid::from_u128(u128::from(owner) + 100)),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn a_grant_passes_every_check_and_each_refusal_is_the_first_that_fails(
        // The lease: free, held by the caller, held by another, or in a lock-delay.
        held in 0u8..4,
        status in proptest::sample::select(Status::ALL.to_vec()),
        (min, max) in (1i64..40, 1i64..40).prop_map(|(a, b)| (a.min(b), a.max(b))),
        ttl_s in 1u32..40,
        // Waiters ahead: how many, and how many of them have stopped answering.
        (waiters, silent) in (0usize..3, 0usize..3),
    ) {
        let now = Millis(1_000_000);
        let policy = TypePolicy { min_ttl_seconds: min, max_ttl_seconds: max, default_ttl_seconds: min, ..Policy::default().for_type("bed") };
        let mut lease = Lease::new(ResourceId(Uuid::from_u128(1)));
        match held {
            1 => lease = acquire(&lease, Millis(990_000), &cmd(0, 30), Millis::ZERO).unwrap().lease,
            2 => lease = acquire(&lease, Millis(990_000), &cmd(1, 30), Millis::ZERO).unwrap().lease,
            3 => lease.delay_until = Some(now.plus(Millis(500))),
            _ => {}
        }
        let queue: Vec<Waiter> = (0..waiters)
            .map(|i| {
                let w = Waiter::new(WaiterId(Uuid::from_u128(50 + i as u128)), cmd(2, 5).principal, cmd(2, 5).owner, cmd(2, 5).ttl, Millis(999_500), Millis(30_000));
                // A silent waiter was last heard from long ago: not live.
                if i < silent { Waiter { alive_until: Millis(996_000), ..w } } else { w }
            })
            .collect();
        let gate = Gate { policy: &policy, status, queue: &queue };
        let c = cmd(0, ttl_s);
        let rule = || acquire(&lease, now, &c, policy.lock_delay());
        let decided = admit(&gate, &lease, now, c.ttl, (&c.principal, &c.owner), rule);

        let bounds = policy.admit(c.ttl);
        let available = admission::available(status);
        let ruled = rule();
        let queued = queue::admit(&lease, now, &queue, &c.principal, &c.owner, None);
        match decided {
            // A grant is exactly the rule's, and every check passed.
            Ok(outcome) => {
                prop_assert!(bounds.is_ok() && available.is_ok() && queued.is_ok());
                prop_assert_eq!(Ok(outcome), ruled);
            }
            // A refusal is the first check that fails, in this order.
            Err(d) => {
                let first = bounds.and(available).and(ruled.map(drop)).and(queued).err();
                prop_assert_eq!(Some(d.clone()), first);
                // Nobody live waits ahead of a newcomer; a holder renewing is not a newcomer.
                if matches!(d, Denied::Queued { .. }) {
                    prop_assert!(waiters > silent && held != 1);
                }
            }
        }
    }
}
