//! Property tests: random sequences of operations by a few owners at random, non-decreasing times, checked
//! against the invariants documented in `hhs_core::lease`.

use hhs_core::booking::book;
use hhs_core::lease::{
    acquire, expire, force_release, heartbeat, release, report_late, resume, retire, token_floor, AcquireCmd, Claim,
    Late,
};
use hhs_core::stored::StoredLease;
use hhs_core::wire::LockView;
use hhs_core::{
    EventKind, FencingToken, HoldId, HoldState, Lease, Millis, OwnerId, Principal, ResourceId, Ttl, TtlBounds,
};
use proptest::prelude::*;
use uuid::Uuid;

#[derive(Clone, Debug)]
enum Op {
    Acquire {
        owner: u8,
        ttl_s: u32,
    },
    Heartbeat {
        owner: u8,
        token: Option<u64>,
    },
    Release {
        owner: u8,
        token: Option<u64>,
    },
    Expire,
    ForceRelease,
    /// A heartbeat or release refused as late, then reported.
    Late {
        owner: u8,
        release: bool,
    },
    /// Deleting the resource (the rule only; the simulated lease lives on).
    Retire,
    /// The database came back after an outage that began `lost_ago` ms before now.
    Resume {
        lost_ago: i64,
    },
    /// The holder books the hold until `ahead` ms from now (the longest booking: 30 s).
    Book {
        owner: u8,
        ahead: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let owner = 0u8..3;
    let token = proptest::option::of(0u64..6);
    prop_oneof![
        4 => (owner.clone(), 1u32..20).prop_map(|(owner, ttl_s)| Op::Acquire { owner, ttl_s }),
        4 => (owner.clone(), token.clone()).prop_map(|(owner, token)| Op::Heartbeat { owner, token }),
        2 => (owner, token).prop_map(|(owner, token)| Op::Release { owner, token }),
        1 => Just(Op::Expire),
        1 => Just(Op::ForceRelease),
        2 => (0u8..3, any::<bool>()).prop_map(|(owner, release)| Op::Late { owner, release }),
        1 => Just(Op::Retire),
        2 => (0i64..20_000).prop_map(|lost_ago| Op::Resume { lost_ago }),
        2 => (0u8..3, -1_000i64..40_000).prop_map(|(owner, ahead)| Op::Book { owner, ahead }),
    ]
}

fn owner_name(i: u8) -> OwnerId {
    OwnerId::parse(["alpha", "bravo", "charlie"][usize::from(i)]).unwrap()
}

/// Owners 0 and 1 belong to one clinic, owner 2 to another, so cross-principal attempts are generated too.
fn principal_of(i: u8) -> Principal {
    Principal::parse(if i < 2 { "north" } else { "south" }).unwrap()
}

fn claim(i: u8, token: Option<u64>) -> Claim {
    Claim { principal: principal_of(i), owner: owner_name(i), token: token.map(FencingToken) }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn lease_invariants_hold(
        steps in proptest::collection::vec((op(), 0i64..15_000), 1..60),
        delay_ms in prop_oneof![Just(0i64), 1i64..10_000],
    ) {
        let bounds = TtlBounds { min_seconds: 1, max_seconds: 60 };
        let delay = Millis(delay_ms);
        let mut lease = Lease::new(ResourceId(Uuid::from_u128(7)));
        let mut now = Millis(1_000_000);
        let mut highest_token = FencingToken(0);
        let mut next_id = 100u128;
        let mut late_reported_holds = std::collections::HashSet::new();

        for (op, dt) in steps {
            let earlier = now;
            now = now.plus(Millis(dt));
            let before = lease.clone();
            let live_before = before.live_hold(now).cloned();
            let result = match &op {
                Op::Acquire { owner, ttl_s } => {
                    next_id += 1;
                    let cmd = AcquireCmd { principal: principal_of(*owner), owner: owner_name(*owner), ttl: Ttl::from_seconds(*ttl_s, &bounds).unwrap(), new_hold_id: HoldId(Uuid::from_u128(next_id)) };
                    acquire(&before, now, &cmd, delay).map_err(|_| ())
                }
                Op::Heartbeat { owner, token } => heartbeat(&before, now, &claim(*owner, *token)).map_err(|_| ()),
                Op::Release { owner, token } => release(&before, now, &claim(*owner, *token)).map_err(|_| ()),
                Op::Expire => expire(&before, now, delay).ok_or(()),
                Op::ForceRelease => force_release(&before, now, delay).map_err(|_| ()),
                Op::Late { owner, release } => {
                    let late = if *release { Late::Release } else { Late::Heartbeat };
                    Ok(report_late(&before, now, &claim(*owner, None), late, delay))
                }
                Op::Retire => retire(&before, now, delay).map_err(|_| ()),
                Op::Resume { lost_ago } => resume(&before, Millis(now.0 - lost_ago), now).ok_or(()),
                Op::Book { owner, ahead } => book(&before, now, &claim(*owner, None), now.plus(Millis(*ahead)), Millis(30_000)).map_err(|_| ()),
            };
            let Ok(out) = result else { continue };
            let after = out.lease;

            // What a dashboard is sent after the step is never older than what it may show from before it,
            // read at any time up to now: folding views newest-wins never goes back.
            let (shown, sent) = (LockView::of(&before, now), LockView::of(&after, now));
            prop_assert!(!sent.is_older_than(&shown), "{:?} reads older than {:?}", sent, shown);
            prop_assert!(!sent.is_older_than(&LockView::of(&before, earlier)));
            prop_assert!(!sent.is_older_than(&sent));
            // And a step that changes what the row says is strictly newer, so a view read before it and
            // folded after it (a late page) never takes its place again.
            if sent.status != shown.status {
                prop_assert!(shown.is_older_than(&sent), "{:?} does not read older than {:?}", shown, sent);
            }
            // Every store keeps a lease as a flat record: the round trip changes nothing.
            prop_assert_eq!(StoredLease::of(&after).into_lease(after.resource_id), Ok(after.clone()));

            // Tokens never go backwards; a new grant gets a strictly greater token than every earlier one.
            prop_assert!(after.last_token >= before.last_token);
            if let Some(h) = &after.hold {
                prop_assert!(h.token <= after.last_token);
                if before.hold.as_ref().map(|b| b.id) != Some(h.id) {
                    prop_assert!(h.token > highest_token, "new grant {:?} not above {:?}", h.token, highest_token);
                }
            }
            highest_token = highest_token.max(after.last_token);

            // A booking is never ended before its end but by its holder's release or an administrator.
            if let (Some(b), Some(a)) = (&before.hold, &after.hold) {
                if b.id == a.id && b.state == HoldState::Held && b.booked_until.is_some_and(|u| now <= u) {
                    prop_assert!(!matches!(a.state, HoldState::Expired { .. }), "a booking ended early: {:?}", a);
                }
                // A booking that ran out is `completed`, and a planned end starts no lock-delay.
                if b.state == HoldState::Held && b.booked_until.is_some() && matches!(a.state, HoldState::Expired { .. }) {
                    prop_assert_eq!(after.status(now), hhs_core::LockStatus::Completed);
                    prop_assert_eq!(after.delay_until, None);
                    prop_assert!(out.events.iter().any(|e| e.kind == EventKind::Completed));
                }
            }

            // Never two holders: a live hold at `now` before the step can only be replaced by itself.
            if let (Some(prev), Some(cur)) = (&live_before, after.live_hold(now)) {
                prop_assert_eq!(prev.id, cur.id, "a live hold was replaced by another grant");
                prop_assert_eq!(&prev.owner, &cur.owner);
            }

            match &op {
                // Heartbeat never grants and never revives: it only succeeds for the live holder and keeps the grant.
                Op::Heartbeat { owner, .. } => {
                    let prev = live_before.as_ref();
                    prop_assert!(prev.is_some_and(|p| p.owner == owner_name(*owner) && p.principal == principal_of(*owner)), "heartbeat succeeded without a live hold");
                    let cur = after.hold.as_ref().unwrap();
                    prop_assert_eq!(cur.id, prev.unwrap().id);
                    prop_assert_eq!(cur.token, prev.unwrap().token);
                    prop_assert!(out.events.is_empty());
                }
                // A retried release naming an older grant's token: success, nothing changes.
                Op::Release { token: Some(t), .. } if before.hold.as_ref().is_some_and(|h| FencingToken(*t) < h.token) => {
                    prop_assert_eq!(&after, &before, "a stale-token release changed state");
                    prop_assert!(out.events.is_empty());
                }
                // A non-holder never changes state: release succeeds only for the holder of record.
                Op::Release { owner, .. } => {
                    let holder = before.hold.as_ref().map(|h| (h.principal.clone(), h.owner.clone()));
                    prop_assert_eq!(holder, Some((principal_of(*owner), owner_name(*owner))));
                    if !matches!(before.hold.as_ref().unwrap().state, HoldState::Held) {
                        prop_assert_eq!(&after, &before, "an idempotent release changed state");
                    }
                }
                Op::Acquire { owner, .. } => {
                    if let Some(prev) = &live_before {
                        prop_assert_eq!(&prev.owner, &owner_name(*owner), "acquire succeeded over another's live hold");
                    }
                    prop_assert!(after.live_hold(now).is_some());
                }
                Op::Expire | Op::ForceRelease => prop_assert!(after.live_hold(now).is_none()),
                // A late report never grants, never touches a live hold, and is made at most once per hold.
                Op::Late { .. } => {
                    prop_assert_eq!(after.last_token, before.last_token);
                    if live_before.is_some() {
                        prop_assert_eq!(&after, &before, "a late report changed a live hold");
                    }
                    for ev in out.events.iter().filter(|e| matches!(e.kind, EventKind::LateHeartbeat | EventKind::LateRelease)) {
                        prop_assert!(late_reported_holds.insert(ev.hold.id), "a second late report for one hold");
                    }
                }
                // Retiring is allowed only with nothing live and no lock-delay still running.
                Op::Retire => {
                    prop_assert!(live_before.is_none());
                    prop_assert!(after.delay_until.is_none_or(|u| u <= now), "retired during lock-delay");
                    prop_assert!(out.events.iter().all(|e| matches!(e.kind, EventKind::Expired | EventKind::Completed)));
                }
                // Resuming after an outage lengthens a hold that was live when the outage began and was not renewed
                // since, by exactly the outage, and touches nothing else: same hold, same token, same state.
                Op::Resume { lost_ago } => {
                    let lost_at = Millis(now.0 - lost_ago);
                    let (prev, cur) = (before.hold.as_ref().unwrap(), after.hold.as_ref().unwrap());
                    prop_assert!(prev.state == HoldState::Held && prev.last_heartbeat < lost_at && prev.expires_at() >= lost_at);
                    prop_assert_eq!((cur.id, cur.token, cur.state, after.last_token), (prev.id, prev.token, prev.state, before.last_token));
                    prop_assert_eq!(cur.expires_at().since(now), prev.expires_at().since(lost_at), "the time left at the outage's start is given back");
                    prop_assert!(cur.expires_at() > prev.expires_at());
                    prop_assert!(after.live_hold(now).is_some());
                    prop_assert_eq!(out.events.len(), 1);
                    prop_assert_eq!(out.events[0].kind, EventKind::Extended);
                }
                // Booking: only the live holder, within bounds; same grant and token, one `booked` event, and the
                // hold now ends exactly at the booking's end.
                Op::Book { owner, ahead } => {
                    let prev = live_before.as_ref();
                    prop_assert!(prev.is_some_and(|p| p.owner == owner_name(*owner) && p.principal == principal_of(*owner)));
                    prop_assert!(*ahead > 0 && *ahead <= 30_000);
                    let cur = after.hold.as_ref().unwrap();
                    prop_assert_eq!((cur.id, cur.token), (prev.unwrap().id, prev.unwrap().token));
                    prop_assert_eq!(cur.expires_at(), now.plus(Millis(*ahead)));
                    prop_assert_eq!(after.status(now), hhs_core::LockStatus::Booked);
                    prop_assert_eq!(out.events.len(), 1);
                    prop_assert_eq!(out.events[0].kind, EventKind::Booked);
                }
            }
            // Every event carries the hold as it stands after the change.
            for ev in &out.events {
                prop_assert!(ev.at <= now);
            }
            lease = after;
        }
    }
}

proptest! {
    /// Tokens rise per name for ever: resources deleted, created again and renamed onto used names, each grant's
    /// token is above every token ever issued under the name it is granted under.
    #[test]
    fn tokens_rise_per_name_across_delete_and_rename(ops in proptest::collection::vec((0u8..4, 0usize..3), 1..80)) {
        use std::collections::HashMap;
        // Live resources: name -> last token of its lease. Floors: name -> highest token given up.
        let mut live: HashMap<usize, FencingToken> = HashMap::new();
        let mut floors: HashMap<usize, FencingToken> = HashMap::new();
        let mut highest: HashMap<usize, FencingToken> = HashMap::new();
        for (op, name) in ops {
            match op {
                // Create under `name` (if free): the lease continues above the name's floor.
                0 if !live.contains_key(&name) => {
                    live.insert(name, token_floor(FencingToken(0), floors.get(&name).copied()));
                }
                // Grant under `name`.
                1 => if let Some(last) = live.get_mut(&name) {
                    *last = last.next();
                    let top = highest.entry(name).or_default();
                    prop_assert!(*last > *top, "token {:?} under name {} not above {:?}", last, name, top);
                    *top = *last;
                },
                // Delete: the name's floor takes the last token.
                2 => if let Some(last) = live.remove(&name) {
                    let f = floors.entry(name).or_default();
                    *f = token_floor(last, Some(*f));
                },
                // Rename `name` onto the next name (if free): give up the old, take the new.
                3 => {
                    let to = (name + 1) % 3;
                    if live.contains_key(&name) && !live.contains_key(&to) {
                        let last = live.remove(&name).unwrap();
                        let f = floors.entry(name).or_default();
                        *f = token_floor(last, Some(*f));
                        live.insert(to, token_floor(last, floors.get(&to).copied()));
                    }
                }
                _ => {}
            }
        }
    }
}
