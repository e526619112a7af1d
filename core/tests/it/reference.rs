//! The fault harness's reference model: what a register may have read under concurrent writes, which answers
//! an acquire or a holder's call must get, the spans a client may believe it holds, and grants in commit order.

use hhs_core::reference::{
    self, acquire, acquire_group, belief, holder_op, possible, AcquireKind, Effect, Known, Logged, Seen, Verdict, Write,
};
use hhs_core::status::Status;
use hhs_core::ErrorCode;
use proptest::prelude::*;

fn w(sent: u64, answered: Option<u64>, effect: Effect, value: Status) -> Write<Status> {
    Write { sent, answered, effect, value }
}

#[test]
fn a_register_is_known_only_when_every_order_agrees() {
    let u = Status::Unoccupied;
    let k = Status::Contaminated;
    assert_eq!(reference::known(&u, &[], 10, 20), Some(u), "never written: the initial value");
    let set_k = w(1, Some(5), Effect::Applied, k);
    assert_eq!(
        reference::known(&u, std::slice::from_ref(&set_k), 10, 20),
        Some(k),
        "written and answered before the send"
    );
    assert_eq!(
        reference::known(&u, &[w(1, Some(15), Effect::Applied, k)], 10, 20),
        None,
        "answered during the operation: either"
    );
    assert_eq!(
        reference::known(&u, &[w(25, Some(30), Effect::Applied, k)], 10, 20),
        Some(u),
        "sent after the answer: after it"
    );
    assert_eq!(reference::known(&u, &[w(1, Some(5), Effect::Refused, k)], 10, 20), Some(u), "refused: no effect");
    assert_eq!(
        reference::known(&u, &[w(1, None, Effect::Unknown, k)], 10, 20),
        None,
        "no answer: may apply at any time after its send"
    );
    assert_eq!(
        reference::known(&u, &[w(1, Some(5), Effect::Unknown, k)], 10, 20),
        None,
        "an answer that does not say: applied or not"
    );
    // K then U, one after the other, both before the send: U.
    let back = w(6, Some(8), Effect::Applied, u);
    assert_eq!(reference::known(&u, &[set_k.clone(), back.clone()], 10, 20), Some(u));
    // Two writes that overlap each other, both before the send: either may have been last.
    let mut both = possible(&u, &[w(1, Some(7), Effect::Applied, k), w(6, Some(8), Effect::Applied, u)], 10, 20);
    both.sort_by_key(|s| s.code());
    assert_eq!(both, vec![k, u]);
    // An unanswered write sent before an applied one: the applied one supersedes it only if it was certainly later.
    assert_eq!(
        reference::known(&u, &[w(1, None, Effect::Unknown, k), back], 10, 20),
        None,
        "the unanswered one may land after"
    );
}

proptest! {
    /// Whatever the writes, a value read in some order consistent with the times is among the possible ones.
    #[test]
    fn any_consistent_order_reads_a_possible_value(
        ws in proptest::collection::vec((0u64..50, 0u64..20, any::<bool>(), 0u8..3, 0u64..100), 0..5),
        op in (0u64..60, 0u64..20, 0u64..100),
    ) {
        let values = [Status::Unoccupied, Status::Contaminated, Status::Closed];
        let writes: Vec<Write<Status>> = ws.iter().map(|(s, d, applied, v, _)| {
            w(*s, Some(s + d), if *applied { Effect::Applied } else { Effect::Refused }, values[*v as usize])
        }).collect();
        // One order: each write at a point of its interval (chosen by its own fraction), the read at one of its own.
        let at = |s: u64, d: u64, f: u64| s * 100 + (d * 100) * f / 100;
        let (os, od, of) = op;
        let read_at = at(os, od, of);
        let mut last: Option<(u64, Status)> = None;
        for (wr, (s, d, _, _, f)) in writes.iter().zip(&ws) {
            let p = at(*s, *d, *f);
            if wr.effect == Effect::Applied && p < read_at && last.is_none_or(|(q, _)| p > q) {
                last = Some((p, wr.value));
            }
        }
        let read = last.map_or(Status::Unoccupied, |(_, v)| v);
        let scaled: Vec<Write<Status>> = writes.iter().map(|x| Write { sent: x.sent * 100, answered: x.answered.map(|a| a * 100), ..x.clone() }).collect();
        let options = possible(&Status::Unoccupied, &scaled, os * 100, (os + od) * 100);
        prop_assert!(options.contains(&read), "read {read:?} in no possible {options:?}");
    }
}

#[test]
fn an_acquire_must_be_refused_where_the_model_knows() {
    let up = Known { exists: Some(true), status: Some(Status::Unoccupied), bounds: Some((1, 3600)) };
    assert_eq!(acquire(&up, 5, AcquireKind::Plain), Verdict::Any, "free or held by another: racing clients decide");
    let k = Known { status: Some(Status::Contaminated), ..up };
    assert_eq!(acquire(&k, 5, AcquireKind::Plain), Verdict::Refused(ErrorCode::ResourceUnavailable));
    assert_eq!(acquire(&k, 5, AcquireKind::Session), Verdict::Refused(ErrorCode::ResourceUnavailable));
    assert_eq!(
        acquire(&k, 5, AcquireKind::Waiting),
        Verdict::NotGranted,
        "a wait may outlast the status: its timeout names the last reason"
    );
    assert_eq!(acquire(&Known { status: None, ..k }, 5, AcquireKind::Plain), Verdict::Any, "status racing a change");
    let narrow = Known { bounds: Some((1, 2)), ..k };
    assert_eq!(
        acquire(&narrow, 5, AcquireKind::Plain),
        Verdict::Refused(ErrorCode::InvalidTtl),
        "bounds come before the status"
    );
    assert_eq!(acquire(&narrow, 5, AcquireKind::Session), Verdict::Any);
    assert_eq!(
        acquire(&Known { bounds: None, ..k }, 5, AcquireKind::Plain),
        Verdict::Any,
        "bounds racing a policy change"
    );
    let gone = Known { exists: Some(false), ..Known::default() };
    assert_eq!(acquire(&gone, 5, AcquireKind::Plain), Verdict::Refused(ErrorCode::ResourceNotFound));
    assert_eq!(acquire_group(&[up, k], 5), Verdict::NotGranted, "all or none");
    assert_eq!(acquire_group(&[up, up], 5), Verdict::Any);
    assert_eq!(
        holder_op(&[false, true]),
        Verdict::NotGranted,
        "a group member force-released: the group's heartbeat is refused"
    );
    assert_eq!(holder_op(&[false]), Verdict::Any);
    // What an answer may be.
    let unavailable = Verdict::Refused(ErrorCode::ResourceUnavailable);
    assert!(unavailable.allows(409, Some("resource_unavailable")));
    assert!(unavailable.allows(503, Some("database_unavailable")), "the database may be down");
    assert!(!unavailable.allows(200, None));
    assert!(!unavailable.allows(409, Some("lock_held")), "the status comes before the holder");
    assert!(Verdict::NotGranted.allows(409, Some("group_blocked")) && !Verdict::NotGranted.allows(200, None));
}

#[test]
fn a_belief_runs_from_the_answer_to_the_last_acknowledged_send_plus_the_ttl() {
    let ack = |sent, answered, ttl| Seen::Ack { sent, answered, until: sent + ttl };
    assert_eq!(belief(&[ack(0, 10, 100)]), vec![(10, 100)], "from the answer, not the send");
    assert_eq!(belief(&[ack(0, 10, 100), ack(50, 60, 100)]), vec![(10, 150)], "renewed from the renewal's send");
    assert_eq!(
        belief(&[ack(0, 10, 100), ack(50, 60, 100), Seen::Released { sent: 70 }]),
        vec![(10, 70)],
        "let go at the release's send"
    );
    assert_eq!(
        belief(&[ack(0, 200, 100)]),
        vec![],
        "answered after its TTL from the send (a long wait): nothing to believe"
    );
    // A renewal with a shorter TTL (an acquire adopts its own): the earlier, longer promise no longer holds.
    assert_eq!(belief(&[ack(0, 10, 2_000), ack(50, 60, 1_000)]), vec![(10, 1_050)]);
    let unanswered = Seen::Renewing { sent: 50, until: 150 };
    assert_eq!(
        belief(&[ack(0, 10, 2_000), unanswered]),
        vec![(10, 150)],
        "a renewal without an answer may have shortened it too"
    );
    // A booking: the hold runs to the booked end, sooner than the TTL if that is what was booked.
    let booked = Seen::Booked { sent: 40, answered: 45, until: 500 };
    assert_eq!(belief(&[ack(0, 10, 100), booked]), vec![(10, 500)]);
    assert_eq!(
        belief(&[ack(0, 10, 100), Seen::Booked { sent: 40, answered: 45, until: 60 }]),
        vec![(10, 60)],
        "booked shorter than the TTL"
    );
    assert_eq!(
        belief(&[ack(0, 10, 100), booked, Seen::Released { sent: 300 }]),
        vec![(10, 300)],
        "a booking cancelled"
    );
    // A force-release: cut at its send; a renewal acknowledged after it (wrongly) makes the client believe again.
    let forced = Seen::ForceReleased { sent: 30, answered: Some(35) };
    assert_eq!(belief(&[ack(0, 10, 100), forced]), vec![(10, 30)]);
    assert_eq!(
        belief(&[ack(0, 10, 100), forced, ack(34, 38, 100)]),
        vec![(10, 30)],
        "sent before the force-release answered: maybe before it"
    );
    assert_eq!(belief(&[ack(0, 10, 100), forced, ack(40, 45, 100)]), vec![(10, 30), (45, 140)]);
    let unanswered = Seen::ForceReleased { sent: 30, answered: None };
    assert_eq!(
        belief(&[ack(0, 10, 100), unanswered, ack(40, 45, 100)]),
        vec![(10, 30)],
        "no answer: it may have ended any renewal"
    );
}

#[test]
fn in_commit_order_no_grant_follows_an_unavailable_status_or_a_delete() {
    let (r, s) = ("r", "s");
    let fine = [
        Logged::Acquired { resource: r, hold: "a" },
        Logged::StatusChanged { resource: r, to: Status::Contaminated },
        Logged::Acquired { resource: s, hold: "b" },
        Logged::StatusChanged { resource: r, to: Status::Unoccupied },
        Logged::Acquired { resource: r, hold: "c" },
    ];
    assert!(
        reference::grants_follow_status(&fine, Status::Unoccupied).is_empty(),
        "a live hold outlives a status change"
    );
    let stale =
        [Logged::StatusChanged { resource: r, to: Status::Housekeeping }, Logged::Acquired { resource: r, hold: "a" }];
    let found = reference::grants_follow_status(&stale, Status::Unoccupied);
    assert_eq!(found.len(), 1);
    assert!(found[0].1.contains("housekeeping"), "{found:?}");
    let gone = [Logged::Deleted { resource: r }, Logged::Acquired { resource: r, hold: "a" }];
    assert_eq!(reference::grants_follow_status(&gone, Status::Unoccupied).len(), 1);
}

/// Found by `cargo xtask chaos` (the client-view check): an acquire by the owner of a booked hold is answered as
/// a renewal that adopts the requested TTL, yet the hold still ends at the booking's end — so the client (as
/// `LeaseGuard` does: the send plus the answer's TTL) believes it past the moment the bed goes to the next
/// holder. Either the acquire keeps its promise or it is refused (`hold_booked`).
#[test]
fn an_acquire_by_a_booked_holder_keeps_the_promise_of_its_answer() {
    use hhs_core::lease::{acquire, AcquireCmd, Claim};
    use hhs_core::{booking, HoldId, Lease, Millis, OwnerId, Principal, ResourceId, Ttl, TtlBounds};
    let bounds = TtlBounds::HARD;
    let cmd = |ttl: u32, id: u128| AcquireCmd {
        principal: Principal::parse("ward-7").unwrap(),
        owner: OwnerId::parse("ws-1").unwrap(),
        ttl: Ttl::from_seconds(ttl, &bounds).unwrap(),
        new_hold_id: HoldId(uuid::Uuid::from_u128(id)),
    };
    let lease = Lease::new(ResourceId(uuid::Uuid::from_u128(1)));
    let held = acquire(&lease, Millis(0), &cmd(1, 10), Millis::ZERO).unwrap().lease;
    let claim = Claim {
        principal: Principal::parse("ward-7").unwrap(),
        owner: OwnerId::parse("ws-1").unwrap(),
        token: held.hold.as_ref().map(|h| h.token),
    };
    let booked = booking::book(&held, Millis(500), &claim, Millis(2_000), Millis(86_400_000)).unwrap().lease;
    match acquire(&booked, Millis(1_500), &cmd(5, 11), Millis::ZERO) {
        Ok(renewed) => {
            let hold = renewed.lease.hold.expect("a hold");
            assert!(
                hold.expires_at() >= Millis(1_500 + 5_000),
                "answered as renewed for 5 s at 1,500 ms, yet it ends at {:?}",
                hold.expires_at()
            );
        }
        Err(d) => assert_eq!(d, hhs_core::Denied::Booked { until: Millis(2_000) }, "refused, saying the booking's end"),
    }
    // A heartbeat would promise the same: refused alike.
    assert_eq!(
        hhs_core::lease::heartbeat(&booked, Millis(1_500), &claim).map(drop),
        Err(hhs_core::Denied::Booked { until: Millis(2_000) })
    );
}
