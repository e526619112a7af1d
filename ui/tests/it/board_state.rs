//! The board's reducer: a snapshot, then the views that stream messages carry, fold into the right rows. The
//! views here are made the way the origin makes them: by hhs-core's rules, then `LockView::of`.

use std::rc::Rc;

use chrono::{DateTime, Utc};
use hhs_core::lease::{acquire, expire, force_release, heartbeat, release, AcquireCmd, Claim};
use hhs_core::wire::{EventView, LockList, LockView};
use hhs_core::{HoldId, Lease, LockStatus, Millis, OwnerId, Principal, ResourceId, Ttl, TtlBounds};
use hhs_ui::api::UiError;
use hhs_ui::state::{Action, Board, Filters, Link, Notice, Shown};
use serde_json::json;
use uuid::Uuid;
use yew::Reducible;

const T0: i64 = 1_790_000_000_000;

fn rid(n: u128) -> ResourceId {
    ResourceId(Uuid::from_u128(n))
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

fn claim() -> Claim {
    Claim { principal: Principal::parse("clinic-north").unwrap(), owner: OwnerId::parse("ws-1").unwrap(), token: None }
}

/// The lease of `resource` after a grant to ws-1 at `ms` for `ttl` seconds (token 1).
fn granted(resource: ResourceId, ms: i64, ttl: u32) -> Lease {
    let cmd = AcquireCmd {
        principal: Principal::parse("clinic-north").unwrap(),
        owner: OwnerId::parse("ws-1").unwrap(),
        ttl: Ttl::from_seconds_f64(f64::from(ttl), &TtlBounds::default()).unwrap(),
        new_hold_id: HoldId(Uuid::from_u128(1_000)),
    };
    acquire(&Lease::new(resource), now(ms), &cmd, Millis::ZERO).unwrap().lease
}

/// The view a stream message carries: the lease as read at `ms`, with the resource's names.
fn view(lease: &Lease, ms: i64, ty: &str, ident: &str) -> LockView {
    LockView::of(lease, now(ms)).with_resource(ty, ident)
}

/// A stream event carrying `lock`.
fn event(id: i64, kind: &str, resource: ResourceId, lock: Option<LockView>) -> EventView {
    let mut e: EventView = serde_json::from_value(json!({
        "id": id, "at": at(0), "kind": kind, "resource_id": resource, "hold_id": null, "owner_id": null,
        "fencing_token": null, "detail": {}, "principal": "clinic-north", "key_id": null, "request_id": null, "outcome": "ok",
    }))
    .unwrap();
    e.lock = lock;
    e
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
fn an_acquired_event_shows_the_hold_until_its_ttl_runs_out() {
    let lease = granted(rid(1), 1_000, 30);
    let b = fold(board(), [Action::Event(event(11, "acquired", rid(1), Some(view(&lease, 1_000, "bed", "Bed 1"))))]);
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
fn a_heartbeat_moves_the_expiry_and_an_older_one_is_ignored() {
    let lease = granted(rid(1), 0, 30);
    let b = fold(board(), [Action::Event(event(11, "acquired", rid(1), Some(view(&lease, 0, "bed", "Bed 1"))))]);
    let renewed = |ms: i64| LockView::renewed(&heartbeat(&lease, now(ms), &claim()).unwrap().lease).unwrap();
    let b = fold(b, [Action::Renewal(renewed(20_000))]);
    assert_eq!(b.rows[&rid(1)].lock.expires_at, Some(at(50_000)));
    assert_eq!(b.rows[&rid(1)].shown(now(45_000)), Shown::Held, "renewed: not expired at the old expiry");
    assert_eq!(
        (b.rows[&rid(1)].resource_type.as_str(), b.rows[&rid(1)].identifier.as_str()),
        ("bed", "Bed 1"),
        "names kept"
    );
    assert_eq!(b.last_event_id, 11, "renewals are not events: the cursor stays");
    let b = fold(b, [Action::Renewal(renewed(10_000))]);
    assert_eq!(b.rows[&rid(1)].lock.expires_at, Some(at(50_000)), "an out-of-order older renewal changes nothing");
}

#[test]
fn released_frees_the_resource() {
    let held = granted(rid(1), 0, 30);
    let released = release(&held, now(5_000), &claim()).unwrap().lease;
    let b = fold(
        board(),
        [
            Action::Event(event(11, "acquired", rid(1), Some(view(&held, 0, "bed", "Bed 1")))),
            Action::Event(event(12, "released", rid(1), Some(view(&released, 5_000, "bed", "Bed 1")))),
        ],
    );
    let row = &b.rows[&rid(1)];
    assert_eq!(row.lock.status, LockStatus::Released);
    assert_eq!(row.lock.ended_at, Some(at(5_000)));
    assert_eq!(row.shown(now(6_000)), Shown::Free);
}

#[test]
fn an_expiry_with_a_lock_delay_shows_lock_delay_then_expired() {
    let held = granted(rid(3), 0, 10);
    let expired = expire(&held, now(10_200), Millis(2_000)).unwrap().lease;
    let b =
        fold(board(), [Action::Event(event(12, "expired", rid(3), Some(view(&expired, 10_200, "or-room", "OR 1"))))]);
    let row = &b.rows[&rid(3)];
    assert_eq!(row.lock.status, LockStatus::Expired);
    assert_eq!(row.lock.ended_at, Some(at(10_000)), "it ended at its last valid instant, not when the reaper saw it");
    assert_eq!(row.shown(now(11_999)), Shown::LockDelay);
    assert_eq!(row.shown(now(12_000)), Shown::Expired);
}

#[test]
fn a_force_release_ends_the_hold_and_starts_the_lock_delay() {
    let held = granted(rid(3), 0, 600);
    let ended = force_release(&held, now(5_000), Millis(2_000)).unwrap().lease;
    let b = fold(
        board(),
        [Action::Event(event(12, "force_released", rid(3), Some(view(&ended, 5_000, "or-room", "OR 1"))))],
    );
    let row = &b.rows[&rid(3)];
    assert_eq!(row.lock.status, LockStatus::ForceReleased);
    assert_eq!(row.shown(now(6_000)), Shown::LockDelay);
    assert_eq!(row.shown(now(7_000)), Shown::Free);
}

#[test]
fn an_older_view_changes_nothing_and_an_unchanged_row_keeps_its_allocation() {
    let held = granted(rid(1), 0, 30);
    let renewed = heartbeat(&held, now(20_000), &claim()).unwrap().lease;
    let b =
        fold(board(), [Action::Event(event(11, "heartbeat", rid(1), Some(view(&renewed, 20_000, "bed", "Bed 1"))))]);
    let before = b.rows[&rid(1)].clone();
    // The acquire's own view (older heartbeat), the same view again, and an older hold's end: nothing moves.
    let older_hold =
        force_release(&Lease { last_token: hhs_core::FencingToken(0), ..granted(rid(1), 0, 30) }, now(1), Millis::ZERO);
    let mut actions = vec![
        Action::Event(event(12, "acquired", rid(1), Some(view(&held, 0, "bed", "Bed 1")))),
        Action::Event(event(13, "heartbeat", rid(1), Some(view(&renewed, 20_000, "bed", "Bed 1")))),
    ];
    if let Ok(o) = older_hold {
        let mut old = view(&o.lease, 1, "bed", "Bed 1");
        old.fencing_token = Some(0);
        actions.push(Action::Event(event(14, "force_released", rid(1), Some(old))));
    }
    let b = fold(b, actions);
    assert_eq!(b.rows[&rid(1)].lock.expires_at, Some(at(50_000)));
    assert_eq!(b.rows[&rid(1)].lock.status, LockStatus::Held);
    assert!(
        Rc::ptr_eq(&before, &b.rows[&rid(1)]),
        "an unchanged row is the same allocation: its component does not re-render"
    );
    assert_eq!(b.last_event_id, 14);
}

#[test]
fn a_resync_snapshot_replaces_the_board() {
    let held = granted(rid(1), 0, 30);
    let b = fold(
        board(),
        [
            Action::Event(event(11, "acquired", rid(1), Some(view(&held, 0, "bed", "Bed 1")))),
            Action::Link(Link::Reconnecting("lost".into())),
        ],
    );
    let list = LockList {
        items: vec![free(rid(2), "bed", "Bed 2")],
        server_time: at(60_000),
        last_event_id: 40,
        next_after: None,
    };
    let b = fold(b, [Action::Snapshot { list, offset_ms: -5 }, Action::Link(Link::Live)]);
    assert_eq!(b.rows.keys().copied().collect::<Vec<_>>(), [rid(2)], "resources gone meanwhile are gone");
    assert_eq!((b.last_event_id, b.offset_ms, b.link.clone()), (40, -5, Link::Live));
}

#[test]
fn resources_are_created_renamed_and_deleted_by_events() {
    let b = fold(
        board(),
        [
            Action::Event(event(11, "resource_created", rid(7), Some(free(rid(7), "mri", "MRI 1")))),
            Action::Event(event(12, "resource_updated", rid(7), Some(free(rid(7), "mri", "MRI North")))),
        ],
    );
    assert_eq!((b.rows[&rid(7)].resource_type.as_str(), b.rows[&rid(7)].identifier.as_str()), ("mri", "MRI North"));
    assert!(!fold(b, [Action::Event(event(13, "resource_deleted", rid(7), None))]).rows.contains_key(&rid(7)));
}

#[test]
fn a_nameless_view_of_an_unknown_resource_marks_the_board_stale() {
    let lease = granted(rid(99), 0, 30);
    let b = fold(board(), [Action::Renewal(LockView::renewed(&lease).unwrap())]);
    assert!(b.stale, "the dashboard reloads its snapshot");
    assert!(!b.rows.contains_key(&rid(99)));
}

#[test]
fn an_action_is_busy_until_answered_and_an_error_is_shown_with_its_code() {
    let b = fold(board(), [Action::Busy(rid(1))]);
    assert!(b.busy.contains(&rid(1)), "its buttons are disabled: no double submit");
    let answer = LockView::of(&granted(rid(1), 0, 300), now(0));
    let b = fold(b, [Action::Done(rid(1), Ok(answer))]);
    assert!(b.busy.is_empty());
    assert_eq!(b.rows[&rid(1)].shown(now(1_000)), Shown::Held, "the answer shows at once, before the stream");
    assert_eq!(b.rows[&rid(1)].identifier, "Bed 1", "an answer without names keeps the row's");
    let err = UiError { status: 409, code: "lock_held".into(), message: "the resource is held by ws-2".into() };
    let b = fold(b, [Action::Busy(rid(2)), Action::Done(rid(2), Err(err))]);
    assert_eq!(b.notice, Some(Notice::Error("the resource is held by ws-2 (lock_held)".into())));
    assert!(b.busy.is_empty());
    assert_eq!(fold(b, [Action::Dismiss]).notice, None);
}

#[test]
fn filters_match_type_state_owner_and_identifier() {
    let held = granted(rid(2), 0, 600);
    let b = fold(board(), [Action::Event(event(11, "acquired", rid(2), Some(view(&held, 0, "bed", "Bed 2"))))]);
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

#[test]
fn a_groups_live_members_are_listed_together_until_they_lapse() {
    use hhs_core::group::{acquire_group, Member};
    let cmd = AcquireCmd {
        principal: Principal::parse("clinic-north").unwrap(),
        owner: OwnerId::parse("theatre-3").unwrap(),
        ttl: Ttl::from_seconds(30, &TtlBounds::default()).unwrap(),
        new_hold_id: HoldId(Uuid::from_u128(1)),
    };
    let (or, bed) = (Lease::new(rid(3)), Lease::new(rid(2)));
    let policy = hhs_core::Policy::default().for_type("bed");
    let gate = hhs_core::admission::Gate { policy: &policy, status: hhs_core::status::Status::Unoccupied, queue: &[] };
    let members = [
        Member { lease: &bed, gate, new_hold_id: HoldId(Uuid::from_u128(2)) },
        Member { lease: &or, gate, new_hold_id: HoldId(Uuid::from_u128(3)) },
    ];
    let gid = hhs_core::GroupId(Uuid::from_u128(77));
    let out = acquire_group(&members, now(1_000), gid, &cmd, None).unwrap();
    let b = fold(
        board(),
        [
            Action::Event(event(11, "acquired", rid(2), Some(view(&out[0].lease, 1_000, "bed", "Bed 2")))),
            Action::Event(event(12, "acquired", rid(3), Some(view(&out[1].lease, 1_000, "or-room", "OR 1")))),
            // A plain hold is no group's.
            Action::Event(event(
                13,
                "acquired",
                rid(1),
                Some(view(&granted(rid(1), 1_000, 30), 1_000, "bed", "Bed 1")),
            )),
        ],
    );
    let groups = b.groups(now(2_000));
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].0, gid);
    let names: Vec<&str> = groups[0].1.iter().map(|r| r.identifier.as_str()).collect();
    assert_eq!(names, ["Bed 2", "OR 1"], "one row with both members, by name");
    // Past the members' expiry the group is no longer live: no row.
    assert!(b.groups(now(31_001)).is_empty());
}
