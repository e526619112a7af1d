//! The dashboard's pure helpers: SSE framing, analytics, the hold timeline, and how durations read.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use hhs_core::wire::EventView;
use hhs_core::{HoldId, Millis, ResourceId};
use hhs_ui::analytics::{duration_histogram, endings_per_hour, hour_start as hh, Endings};
use hhs_ui::history::holds;
use hhs_ui::sse::{Message, Parser};
use hhs_ui::{format, sse};
use serde_json::json;
use uuid::Uuid;

const T0: i64 = 1_790_000_000_000;

fn at(ms: i64) -> DateTime<Utc> {
    Millis(T0 + ms).to_utc()
}

/// An event as the API sends it; a lease event's detail is completed with the fields every one has.
fn ev(id: i64, kind: &str, resource: u128, hold: u128, ms: i64, detail: serde_json::Value) -> EventView {
    let mut full = json!({"ttl_seconds": 30, "heartbeats": 0, "max_heartbeat_gap_ms": 0, "held_ms": null, "hold_principal": "clinic-north"});
    for (k, v) in detail.as_object().cloned().unwrap_or_default() {
        full[k] = v;
    }
    serde_json::from_value(json!({
        "id": id, "at": at(ms), "kind": kind, "resource_id": ResourceId(Uuid::from_u128(resource)),
        "hold_id": HoldId(Uuid::from_u128(hold)), "owner_id": format!("ws-{hold}"), "fencing_token": hold as u64,
        "detail": full, "principal": "clinic-north", "key_id": null, "request_id": null, "outcome": "ok",
    }))
    .unwrap()
}

#[test]
fn sse_messages_are_framed_across_any_chunk_boundary() {
    let stream = "event: acquired\nid: 7\ndata: {\"a\":1}\n\n: keep-alive\n\nevent: heartbeat\ndata: {\"b\":\"é\"}\n\nevent: resync\ndata: {}\n\n";
    let bytes = stream.as_bytes();
    let want = vec![
        Message { event: "acquired".into(), id: Some("7".into()), data: "{\"a\":1}".into() },
        Message { event: "heartbeat".into(), id: None, data: "{\"b\":\"é\"}".into() },
        Message { event: "resync".into(), id: None, data: "{}".into() },
    ];
    // Every split point, including inside the two-byte "é".
    for cut in 0..bytes.len() {
        let mut p = Parser::default();
        let mut got = p.push(&bytes[..cut]);
        got.extend(p.push(&bytes[cut..]));
        assert_eq!(got, want, "split at {cut}");
    }
    let mut p = sse::Parser::default();
    assert_eq!(
        p.push(b"data: a\r\ndata: b\r\n\r\n"),
        [Message { event: "message".into(), id: None, data: "a\nb".into() }]
    );
}

#[test]
fn hold_durations_fall_into_their_buckets_per_type() {
    let types: BTreeMap<ResourceId, String> =
        [(ResourceId(Uuid::from_u128(1)), "bed".to_owned()), (ResourceId(Uuid::from_u128(2)), "mri".to_owned())].into();
    let events = vec![
        ev(1, "released", 1, 1, 0, json!({"held_ms": 59_999})),
        ev(2, "expired", 1, 2, 0, json!({"held_ms": 60_000})),
        ev(3, "force_released", 2, 3, 0, json!({"held_ms": 20_000_000})),
        ev(4, "acquired", 2, 4, 0, json!({"held_ms": null})),
        ev(5, "released", 9, 5, 0, json!({"held_ms": 1_000})),
    ];
    let h = duration_histogram(&events, &types);
    assert_eq!(h["bed"], [1, 1, 0, 0, 0, 0]);
    assert_eq!(h["mri"], [0, 0, 0, 0, 0, 1]);
    assert_eq!(h.len(), 2, "a resource no longer on the board is left out");
}

#[test]
fn endings_are_counted_per_clock_hour_oldest_first() {
    const H: i64 = 3_600_000;
    let hour = Millis(T0).0.div_euclid(H) * H;
    let now = Millis(hour + 30 * 60_000);
    assert_eq!(hh(now), Millis(hour));
    let rel = |ms: i64| ms - T0;
    let events = vec![
        ev(1, "released", 1, 1, rel(hour + 10 * 60_000), json!({})),
        ev(2, "expired", 1, 2, rel(now.0 + 500), json!({})),
        ev(3, "force_released", 1, 3, rel(hour - H + 1), json!({})),
        ev(4, "released", 1, 4, rel(hour - 3 * H), json!({})),
        ev(5, "acquired", 1, 5, rel(hour + 1), json!({})),
    ];
    let per_hour = endings_per_hour(&events, now, 3);
    assert_eq!(
        per_hour[2],
        Endings { released: 1, expired: 1, force_released: 0 },
        "the current hour, incl. a moment 'ahead'"
    );
    assert_eq!(per_hour[1], Endings { released: 0, expired: 0, force_released: 1 });
    assert_eq!(per_hour[0], Endings::default(), "three hours back is outside a 3-hour window");
}

#[test]
fn the_timeline_pairs_each_grant_with_its_end() {
    let events = vec![
        ev(1, "acquired", 1, 1, 0, json!({"hold_principal": "clinic-north"})),
        ev(2, "released", 1, 1, 5_000, json!({"held_ms": 5_000})),
        ev(3, "acquired", 1, 2, 6_000, json!({"hold_principal": "clinic-south"})),
        ev(4, "expired", 1, 2, 99_000, json!({"held_ms": 30_000, "ended_at": at(36_000)})),
        ev(5, "acquired", 1, 3, 100_000, json!({"hold_principal": "hq"})),
        ev(6, "force_released", 1, 3, 101_000, json!({"reason": "drill"})),
        ev(7, "acquired", 1, 4, 102_000, json!({"hold_principal": "clinic-north"})),
    ];
    let spans = holds(&events);
    let summary: Vec<(u64, &str, Option<DateTime<Utc>>, &str)> =
        spans.iter().map(|s| (s.fencing_token, s.principal.as_str(), s.to, s.ended.as_str())).collect();
    assert_eq!(
        summary,
        [
            (4, "clinic-north", None, "held"),
            (3, "hq", Some(at(101_000)), "force-released: drill"),
            (2, "clinic-south", Some(at(36_000)), "expired"),
            (1, "clinic-north", Some(at(5_000)), "released"),
        ]
    );
}

#[test]
fn durations_read_the_way_a_ward_reads_them() {
    assert_eq!(format::duration(Millis(0)), "0 s");
    assert_eq!(format::duration(Millis(59_999)), "59 s");
    assert_eq!(format::duration(Millis(245_000)), "4:05");
    assert_eq!(format::duration(Millis(7_500_000)), "2 h 05 min");
    assert_eq!(format::duration(Millis(100_000_000)), "1 d 3 h");
    assert_eq!(format::duration(Millis(-5)), "0 s");
    assert_eq!(format::ttl(300), "300 s (5:00)");
}
