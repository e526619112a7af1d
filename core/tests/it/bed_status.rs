//! Operational status (`hhs_core::status`) and the HL7 bed-status rules (`hhs_core::hl7`): only U is granted;
//! every A20/A01/A02/A03 maps to the right beds and statuses; anything else is refused with the right code; the
//! ACK quotes the control id and escapes what it echoes; the bed mapping makes identifiers as configured.

use hhs_core::admission::available;
use hhs_core::denied::Denied;
use hhs_core::hl7::{ack, escape, plan, AckCode, BedMapping, Inbound};
use hhs_core::status::Status;
use proptest::prelude::*;

fn loc(s: &str) -> Option<Vec<String>> {
    Some(s.split('^').map(str::to_owned).collect())
}

fn adt(trigger: &str) -> Inbound {
    Inbound {
        code: "ADT".into(),
        trigger: trigger.into(),
        control_id: "C1".into(),
        sending_application: "ADT".into(),
        sending_facility: "W".into(),
        version: "2.5".into(),
        ..Inbound::default()
    }
}

#[test]
fn a_bed_not_available_is_handed_to_nobody_but_its_gone_waiters_still_leave() {
    use hhs_core::admission::Gate;
    use hhs_core::queue::{hand_over, Waiter};
    use hhs_core::{HoldId, Lease, Millis, OwnerId, Policy, Principal, ResourceId, Ttl, TtlBounds, WaiterId};
    let now = Millis(1_000_000);
    let waiter = |n: u128, since: i64| {
        let ttl = Ttl::from_seconds(30, &TtlBounds::HARD).unwrap();
        let who = (Principal::parse("clinic-north").unwrap(), OwnerId::parse(&format!("ws-{n}")).unwrap());
        Waiter::new(WaiterId(uuid::Uuid::from_u128(n)), who.0, who.1, ttl, Millis(now.0 - since), Millis(30_000))
    };
    // One waiter stopped answering 5 s ago (gone), one is here.
    let queue = [waiter(1, 5_000), waiter(2, 100)];
    let lease = Lease { waiting: 2, ..Lease::new(ResourceId(uuid::Uuid::from_u128(9))) };
    let policy = Policy::default().for_type("bed");
    let id = HoldId(uuid::Uuid::from_u128(77));
    let cleaning =
        hand_over(&lease, now, &Gate { policy: &policy, status: Status::Housekeeping, queue: &queue }, id).unwrap();
    assert_eq!(
        (cleaning.granted, cleaning.gone.as_slice(), cleaning.outcome.lease.waiting),
        (None, &[queue[0].id][..], 1)
    );
    assert!(
        cleaning.outcome.events.is_empty() && cleaning.outcome.lease.hold.is_none(),
        "nothing granted in housekeeping"
    );
    // Clean again: the live waiter gets it.
    let after = cleaning.outcome.lease;
    let ready =
        hand_over(&after, now, &Gate { policy: &policy, status: Status::Unoccupied, queue: &queue[1..] }, id).unwrap();
    assert_eq!((ready.granted, ready.outcome.lease.waiting), (Some(queue[1].id), 0));
}

#[test]
fn only_an_unoccupied_resource_is_granted() {
    for s in Status::ALL {
        assert_eq!(available(s).is_ok(), s == Status::Unoccupied, "{s:?}");
        assert_eq!(Status::parse(s.code()).unwrap(), s);
        if s != Status::Unoccupied {
            assert_eq!(available(s), Err(Denied::Unavailable { status: s }));
        }
    }
    assert!(Status::parse("X").is_err() && Status::parse("u").is_err() && Status::parse("").is_err());
    assert_eq!(Status::default(), Status::Unoccupied);
}

#[test]
fn each_adt_event_sets_its_beds() {
    let m = BedMapping::default();
    let a20 = Inbound { npu_bed: loc("4W^401^A"), npu_status: Some("H".into()), ..adt("A20") };
    assert_eq!(plan(&a20, &m).unwrap()[0].identifier, "4W^401^A");
    assert_eq!(plan(&a20, &m).unwrap()[0].status, Status::Housekeeping);
    let a01 = Inbound { pv1_bed: loc("4W^401^A"), ..adt("A01") };
    assert_eq!(plan(&a01, &m).unwrap()[0].status, Status::Occupied);
    let a03 = Inbound { pv1_bed: loc("4W^401^A"), ..adt("A03") };
    assert_eq!(plan(&a03, &m).unwrap()[0].status, Status::Unoccupied);
    let a02 = Inbound { pv1_bed: loc("4W^402^B"), pv1_prior_bed: loc("4W^401^A"), ..adt("A02") };
    let moved: Vec<(String, Status)> = plan(&a02, &m).unwrap().into_iter().map(|u| (u.identifier, u.status)).collect();
    assert_eq!(
        moved,
        [("4W^401^A".to_owned(), Status::Unoccupied), ("4W^402^B".to_owned(), Status::Occupied)],
        "the prior bed is freed first"
    );
    // Refusals.
    assert_eq!(plan(&Inbound { npu_status: Some("X".into()), ..a20.clone() }, &m).unwrap_err().0, AckCode::AE);
    assert_eq!(plan(&Inbound { npu_bed: None, ..a20.clone() }, &m).unwrap_err().0, AckCode::AE);
    assert_eq!(plan(&adt("A08"), &m).unwrap_err().0, AckCode::AR);
    assert_eq!(plan(&Inbound { code: "ORU".into(), ..a20 }, &m).unwrap_err().0, AckCode::AR);
}

#[test]
fn a_bed_mapping_makes_identifiers_as_configured() {
    let parts = loc("4W^401^A").unwrap();
    assert_eq!(BedMapping::default().identifier(&parts).unwrap(), "4W^401^A");
    assert_eq!(
        BedMapping::default().identifier(&loc("4W^401^").unwrap()).unwrap(),
        "4W^401",
        "trailing empty components left out"
    );
    assert_eq!(BedMapping::default().identifier(&loc("^^").unwrap()), None);
    let dashed = BedMapping { resource_type: "bed".into(), template: Some("{1}-{2}-{3}".into()) };
    assert_eq!(dashed.identifier(&parts).unwrap(), "4W-401-A");
}

#[test]
fn the_ack_quotes_the_control_id_and_escapes_what_it_echoes() {
    let m = Inbound { control_id: "A|B".into(), ..adt("A20") };
    let a = ack(&m, AckCode::AE, "bed 4W^401^A unknown\r", "20261127000000", "ACK1");
    assert!(a.starts_with("MSH|^~\\&|HHS|HHS|ADT|W|20261127000000||ACK^A20^ACK|ACK1|P|2.5\r"), "{a}");
    assert!(a.ends_with("MSA|AE|A\\F\\B|bed 4W\\S\\401\\S\\A unknown \r"), "{a:?}");
    assert_eq!(a.matches('\r').count(), 2, "exactly two segments");
}

proptest! {
    /// Whatever text is echoed, the ACK stays two segments of the declared delimiters.
    #[test]
    fn escaped_text_never_breaks_a_segment(text in ".{0,200}") {
        let e = escape(&text);
        prop_assert!(!e.contains('|') && !e.contains('^') && !e.contains('~') && !e.contains('&') && !e.contains('\r') && !e.contains('\n'));
        let a = ack(&Inbound { control_id: text.clone(), ..adt(&text) }, AckCode::AR, &text, "20261127000000", "X");
        prop_assert_eq!(a.matches('\r').count(), 2);
    }
}

#[test]
fn an_ack_code_reads_back_as_stored() {
    for c in [AckCode::AA, AckCode::AE, AckCode::AR] {
        assert_eq!(AckCode::parse(c.as_str()), c);
    }
    assert_eq!(AckCode::parse("CA"), AckCode::AR, "anything else is a rejection");
}
