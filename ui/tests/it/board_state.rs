//! The board's reducer: a snapshot, then stream events and renewals, fold into the right state.

use std::rc::Rc;

use chrono::{DateTime, Utc};
use hhs_core::api::{EventView, LockList, LockView, RenewalView};
use hhs_core::{HoldId, Lease, LockStatus, Millis, ResourceId};
use hhs_ui::api::UiError;
use hhs_ui::state::{Action, Board, Filters, Link, Notice, Shown};
use serde_json::json;
use uuid::Uuid;
use yew::Reducible;

const T0: i64 = 1_790_000_000_000;

fn rid(n: u128) -> ResourceId {
    ResourceId(Uuid::from_u128(n))
}

fn hid(n: u128) -> HoldId {
    HoldId(Uuid::from_u128(1_000 + n))
}

fn at(ms: i64) -> DateTime<Utc> {
    Millis(T0 + ms).to_utc()
}

fn now(ms: i64) -> Millis {
    Millis(T0 + ms)
}

fn free(id: ResourceId, ty: &str, ident: &str) -> LockView {
    LockView::of(&Lease::new(id), Millis::ZERO).with_resource(ty, ident)
}

/// A board with two free beds and an OR room, as a snapshot at event 10.
fn board() -> Rc<Board> {
    let list = LockList {
        items: vec![free(rid(1), "bed", "Bed 1"), free(rid(2), "bed", "Bed 2"), free(rid(3), "or-room", "OR 1")],
        server_time: at(0),
        last_event_id: 10,
        next_after: None,
    };
    Rc::new(Board::default()).reduce(Action::Snapshot { list, offset_ms: 250 })
}

fn event(id: i64, kind: &str, resource: ResourceId, hold: Option<HoldId>, ms: i64, detail: serde_json::Value) -> EventView {
    EventView {
        id,
        at: at(ms),
        kind: kind.into(),
        resource_id: Some(resource),
        hold_id: hold,
        owner_id: hold.map(|_| "ws-1".into()),
        fencing_token: hold.map(|_| 1),
        detail,
        principal: Some(if kind == "expired" { "hhs:reaper" } else { "clinic-north" }.into()),
        key_id: None,
        request_id: None,
        outcome: "ok".into(),
    }
}

fn acquired(id: i64, resource: ResourceId, ms: i64, ttl: u32) -> EventView {
    event(id, "acquired", resource, Some(hid(1)), ms, json!({"ttl_seconds": ttl, "hold_principal": "clinic-north", "held_ms": null}))
}

fn fold(board: Rc<Board>, actions: impl IntoIterator<Item = Action>) -> Rc<Board> {
    actions.into_iter().fold(board, |b, a| b.reduce(a))
}

#[test]
fn a_snapshot_fills_the_board_with_its_cursor_and_clock_offset() {
    let b = board();
    assert!(b.loaded);
    assert_eq!((b.rows.len(), b.last_event_id, b.offset_ms), (3, 10, 250));
    assert_eq!(b.types(), ["bed", "or-room"]);
    assert_eq!(b.rows[&rid(3)].identifier, "OR 1");
    assert_eq!(b.server_now(T0), now(250));
    assert!(b.rows.values().all(|r| r.shown(now(0)) == Shown::Free));
}

#[test]
fn acquired_makes_the_resource_held_until_its_ttl_runs_out() {
    let b = fold(board(), [Action::Event(acquired(11, rid(1), 1_000, 30))]);
    let row = &b.rows[&rid(1)];
    assert_eq!(b.last_event_id, 11);
    assert_eq!((row.lock.owner_id.as_deref(), row.lock.principal.as_deref()), (Some("ws-1"), Some("clinic-north")));
    assert_eq!((row.lock.fencing_token, row.lock.ttl_seconds), (Some(1), Some(30)));
    assert_eq!(row.lock.expires_at, Some(at(31_000)));
    assert_eq!(row.shown(now(31_000)), Shown::Held, "still held at the last valid instant");
    assert_eq!(row.shown(now(31_001)), Shown::Expired, "lapsed one millisecond later, as hhs-core decides");
    assert_eq!(row.lock.remaining_at(now(21_000)), Some(Millis(10_000)));
    assert_eq!(b.rows[&rid(2)].shown(now(1_000)), Shown::Free, "other rows untouched");
}

#[test]
fn a_heartbeat_renewal_moves_the_expiry_and_an_older_one_is_ignored() {
    let b = fold(board(), [Action::Event(acquired(11, rid(1), 0, 30))]);
    let renewal = |ms: i64| RenewalView {
        resource_id: rid(1),
        hold_id: hid(1),
        owner_id: "ws-1".into(),
        principal: "clinic-north".into(),
        fencing_token: 1,
        ttl_seconds: 30,
        last_heartbeat: at(ms),
        expires_at: at(ms + 30_000),
    };
    let b = fold(b, [Action::Renewal(renewal(20_000))]);
    assert_eq!(b.rows[&rid(1)].lock.expires_at, Some(at(50_000)));
    assert_eq!(b.rows[&rid(1)].shown(now(45_000)), Shown::Held, "renewed: not expired at the old expiry");
    assert_eq!(b.last_event_id, 11, "renewals are not events: the cursor stays");
    let b = fold(b, [Action::Renewal(renewal(10_000))]);
    assert_eq!(b.rows[&rid(1)].lock.expires_at, Some(at(50_000)), "an out-of-order older renewal changes nothing");
}

#[test]
fn released_frees_the_resource() {
    let b = fold(
        board(),
        [
            Action::Event(acquired(11, rid(1), 0, 30)),
            Action::Event(event(12, "released", rid(1), Some(hid(1)), 5_000, json!({"held_ms": 5_000}))),
        ],
    );
    let row = &b.rows[&rid(1)];
    assert_eq!(row.lock.status, LockStatus::Released);
    assert_eq!(row.lock.ended_at, Some(at(5_000)));
    assert_eq!(row.shown(now(6_000)), Shown::Free);
}

#[test]
fn expired_with_a_lock_delay_shows_lock_delay_then_expired() {
    let b = fold(
        board(),
        [
            Action::Event(acquired(11, rid(3), 0, 10)),
            Action::Event(event(12, "expired", rid(3), Some(hid(1)), 10_200, json!({"held_ms": 10_000, "lock_delay_until": "2026-09-21T14:13:40.000Z"}))),
        ],
    );
    let row = &b.rows[&rid(3)];
    assert_eq!(row.lock.status, LockStatus::Expired);
    assert_eq!(row.lock.ended_at, Some(at(10_000)), "it ended at its last valid instant, not when the reaper saw it");
    let until = Millis::from_utc("2026-09-21T14:13:40.000Z".parse().unwrap());
    assert_eq!(row.shown(Millis(until.0 - 1)), Shown::LockDelay);
    assert_eq!(row.shown(until), Shown::Expired);
}

#[test]
fn force_released_ends_the_hold_and_starts_the_lock_delay() {
    let b = fold(
        board(),
        [
            Action::Event(acquired(11, rid(3), 0, 600)),
            Action::Event(event(12, "force_released", rid(3), Some(hid(1)), 5_000, json!({"reason": "drill", "lock_delay_until": at(7_000).to_rfc3339()}))),
        ],
    );
    let row = &b.rows[&rid(3)];
    assert_eq!(row.lock.status, LockStatus::ForceReleased);
    assert_eq!(row.shown(now(6_000)), Shown::LockDelay);
    assert_eq!(row.shown(now(7_000)), Shown::Free);
}

#[test]
fn events_the_snapshot_already_had_change_nothing() {
    let snapshot_held = {
        let mut held = free(rid(1), "bed", "Bed 1");
        held.id = Some(hid(1));
        held.owner_id = Some("ws-1".into());
        held.principal = Some("clinic-north".into());
        held.status = LockStatus::Held;
        held.ttl_seconds = Some(30);
        held.fencing_token = Some(1);
        held.last_heartbeat = Some(at(20_000));
        held.expires_at = Some(at(50_000));
        LockList { items: vec![held], server_time: at(20_000), last_event_id: 10, next_after: None }
    };
    let b = Rc::new(Board::default()).reduce(Action::Snapshot { list: snapshot_held, offset_ms: 0 });
    // At or below the cursor: skipped. Above it but already reflected (the same hold): its heartbeat stays.
    let b = fold(b, [Action::Event(acquired(9, rid(1), 0, 30)), Action::Event(acquired(11, rid(1), 0, 30))]);
    assert_eq!(b.rows[&rid(1)].lock.expires_at, Some(at(50_000)));
    assert_eq!(b.last_event_id, 11);
    // An ending for an older hold than the one shown changes nothing either.
    let old_end = event(12, "released", rid(1), Some(hid(9)), 21_000, json!({}));
    let b = fold(b, [Action::Event(old_end)]);
    assert_eq!(b.rows[&rid(1)].lock.status, LockStatus::Held);
}

#[test]
fn a_resync_snapshot_replaces_the_board() {
    let b = fold(board(), [Action::Event(acquired(11, rid(1), 0, 30)), Action::Link(Link::Reconnecting("lost".into()))]);
    let list = LockList { items: vec![free(rid(2), "bed", "Bed 2")], server_time: at(60_000), last_event_id: 40, next_after: None };
    let b = fold(b, [Action::Snapshot { list, offset_ms: -5 }, Action::Link(Link::Live)]);
    assert_eq!(b.rows.keys().copied().collect::<Vec<_>>(), [rid(2)], "resources gone meanwhile are gone");
    assert_eq!((b.last_event_id, b.offset_ms, b.link.clone()), (40, -5, Link::Live));
}

#[test]
fn resources_are_created_renamed_and_deleted_by_events() {
    let created = EventView { hold_id: None, owner_id: None, fencing_token: None, ..event(11, "resource_created", rid(7), None, 0, json!({"type": "mri", "identifier": "MRI 1"})) };
    let renamed = EventView { id: 12, kind: "resource_updated".into(), detail: json!({"type": "mri", "identifier": "MRI North"}), ..created.clone() };
    let b = fold(board(), [Action::Event(created.clone()), Action::Event(renamed.clone())]);
    assert_eq!((b.rows[&rid(7)].resource_type.as_str(), b.rows[&rid(7)].identifier.as_str()), ("mri", "MRI North"));
    let deleted = EventView { id: 13, kind: "resource_deleted".into(), ..renamed };
    assert!(!fold(b, [Action::Event(deleted)]).rows.contains_key(&rid(7)));
}

#[test]
fn an_event_for_an_unknown_resource_marks_the_board_stale() {
    let b = fold(board(), [Action::Event(acquired(11, rid(99), 0, 30))]);
    assert!(b.stale, "the dashboard reloads its snapshot");
    assert!(!b.rows.contains_key(&rid(99)));
}

#[test]
fn an_action_is_busy_until_answered_and_an_error_is_shown_with_its_code() {
    let b = fold(board(), [Action::Busy(rid(1))]);
    assert!(b.busy.contains(&rid(1)), "its buttons are disabled: no double submit");
    let mut answer = free(rid(1), "bed", "Bed 1");
    answer.status = LockStatus::Held;
    answer.fencing_token = Some(3);
    answer.owner_id = Some("dashboard".into());
    answer.expires_at = Some(at(300_000));
    let b = fold(b, [Action::Done(rid(1), Ok(answer))]);
    assert!(b.busy.is_empty());
    assert_eq!(b.rows[&rid(1)].shown(now(1_000)), Shown::Held, "the answer shows at once, before the stream");
    let err = UiError { status: 409, code: "lock_held".into(), message: "the resource is held by ws-2".into() };
    let b = fold(b, [Action::Busy(rid(2)), Action::Done(rid(2), Err(err))]);
    assert_eq!(b.notice, Some(Notice::Error("the resource is held by ws-2 (lock_held)".into())));
    assert!(b.busy.is_empty());
    assert_eq!(fold(b, [Action::Dismiss]).notice, None);
}

#[test]
fn filters_match_type_state_owner_and_identifier() {
    let b = fold(board(), [Action::Event(acquired(11, rid(2), 0, 600))]);
    let names = |f: Filters| -> Vec<String> {
        b.rows.values().filter(|r| f.matches(r, now(1_000))).map(|r| r.identifier.clone()).collect()
    };
    assert_eq!(names(Filters::default()).len(), 3);
    assert_eq!(names(Filters { resource_type: "bed".into(), ..Filters::default() }), ["Bed 1", "Bed 2"]);
    assert_eq!(names(Filters { state: Some(Shown::Held), ..Filters::default() }), ["Bed 2"]);
    assert_eq!(names(Filters { owner: "NORTH".into(), ..Filters::default() }), ["Bed 2"], "principal, any case");
    assert_eq!(names(Filters { owner: "ws-1".into(), ..Filters::default() }), ["Bed 2"]);
    assert_eq!(names(Filters { search: "or".into(), ..Filters::default() }), ["OR 1"]);
}
