//! HL7 v2 bed status on both stores, with real-looking messages: `ADT^A20` sets a bed's status and `A01`/`A02`/
//! `A03` mark beds occupied or free; acquire refuses a bed that is not available and a live hold outlives a
//! status change; unknown beds, statuses outside table 0116, other message types and malformed messages are
//! answered `AE`/`AR` and change nothing; a repeated control id is applied once; MLLP frames in and out; the
//! audit trail has every message and no patient data. And the parser under random bytes and mutated samples.

use std::time::Duration;

use hhs_core::Role;
use proptest::prelude::*;
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{mint, Backend, TestApp, TestDb};

both_stores!(
    statuses_follow_the_adt_feed_and_acquire_follows_the_status,
    bad_messages_are_answered_and_change_nothing,
    a_repeated_control_id_is_applied_once,
    mllp_frames_in_and_acks_out,
    a_type_sets_the_status_its_new_resources_start_in,
);

fn a20(control: &str, bed: &str, status: &str) -> String {
    format!("MSH|^~\\&|ADT|WARD4|HHS|HOSP|20261127083000||ADT^A20^ADT_A20|{control}|P|2.5\rEVN|A20|20261127083000\rNPU|{bed}|{status}\r")
}

/// An admission (or discharge: `A03`) with a patient, who must never reach the audit trail.
fn adt(trigger: &str, control: &str, bed: &str, prior: &str) -> String {
    format!(
        "MSH|^~\\&|ADT|WARD4|HHS|HOSP|20261127083000||ADT^{trigger}|{control}|P|2.5\rEVN|{trigger}|20261127083000\r\
         PID|1||4711^^^HOSP^MR||DOE^JANE||19700101|F\rPV1|1|I|{bed}|||{prior}\r"
    )
}

async fn send(app: &TestApp, key: &str, message: &str) -> String {
    let req = app.request_as(Method::POST, "/api/hl7/v2", Some(key)).header("content-type", "application/hl7-v2").body(message.to_owned());
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/hl7-v2");
    resp.text().await.unwrap()
}

/// `MSA-1` and `MSA-2` of an ACK.
fn msa(ack: &str) -> (String, String) {
    let line = ack.split('\r').find(|l| l.starts_with("MSA|")).unwrap_or_else(|| panic!("no MSA in {ack:?}"));
    let f: Vec<&str> = line.split('|').collect();
    (f[1].to_owned(), f[2].to_owned())
}

async fn status_of(app: &TestApp, id: &str) -> String {
    app.get(&format!("/api/resources/{id}")).await.body["status"].as_str().unwrap().to_owned()
}

async fn statuses_follow_the_adt_feed_and_acquire_follows_the_status(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let feed = mint(&app.store, "adt-feed", Role::Integration).await;
    let (a, bb) = (app.create_resource("bed", "4W^401^A").await, app.create_resource("bed", "4W^401^B").await);
    assert_eq!(status_of(&app, &a).await, "U", "a new bed is unoccupied");
    // Held first, then housekeeping: the hold goes on, shown next to the status; a new grant is refused.
    assert_eq!(app.post_as(&app.keys.client, "/api/locks/acquire", json!({"resource_id": a, "owner_id": "ws-1", "ttl_seconds": 60})).await.status, StatusCode::OK);
    let ack = send(&app, &feed, &a20("C-1", "4W^401^A", "H")).await;
    assert_eq!(msa(&ack), ("AA".into(), "C-1".into()), "{ack}");
    assert!(ack.starts_with("MSH|^~\\&|HHS|HHS|ADT|WARD4|") && ack.contains("|ACK^A20^ACK|"), "{ack}");
    assert_eq!(status_of(&app, &a).await, "H");
    let lock = app.get(&format!("/api/locks/{a}")).await.body;
    assert_eq!((lock["status"].as_str(), lock["owner_id"].as_str()), (Some("HELD"), Some("ws-1")), "{lock}");
    let listed = app.get("/api/locks").await.body;
    let row = listed["items"].as_array().unwrap().iter().find(|l| l["resource_id"] == a.as_str()).unwrap().clone();
    assert_eq!(row["resource_status"], "H", "the board sees the status next to the hold");
    assert_eq!(app.post_as(&app.keys.client, "/api/locks/release", json!({"resource_id": a, "owner_id": "ws-1"})).await.status, StatusCode::OK);
    let refused = app.post_as(&app.keys.client, "/api/locks/acquire", json!({"resource_id": a, "owner_id": "ws-2", "ttl_seconds": 60})).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::CONFLICT, "resource_unavailable"));
    assert!(refused.body["error"]["message"].as_str().unwrap().contains("housekeeping"), "{}", refused.body);
    // A group with it is refused as a whole, naming it.
    let group = app.post_as(&app.keys.client, "/api/locks/acquire-group", json!({"resources": [{"resource_id": a}, {"resource_id": bb}], "owner_id": "ws-2", "ttl_seconds": 60})).await;
    assert_eq!(group.body["error"]["blocked"][0]["code"], "resource_unavailable", "{}", group.body);
    // Admission, transfer, discharge.
    assert_eq!(msa(&send(&app, &feed, &adt("A01", "C-2", "4W^401^B", "")).await).0, "AA");
    assert_eq!(status_of(&app, &bb).await, "O");
    assert_eq!(msa(&send(&app, &feed, &a20("C-3", "4W^401^A", "U")).await).0, "AA");
    assert_eq!(msa(&send(&app, &feed, &adt("A02", "C-4", "4W^401^A", "4W^401^B")).await).0, "AA");
    assert_eq!((status_of(&app, &a).await, status_of(&app, &bb).await), ("O".into(), "U".into()), "moved from B to A");
    assert_eq!(msa(&send(&app, &feed, &adt("A03", "C-5", "4W^401^A", "")).await).0, "AA");
    assert_eq!(status_of(&app, &a).await, "U");
    assert_eq!(app.post_as(&app.keys.client, "/api/locks/acquire", json!({"resource_id": a, "owner_id": "ws-2", "ttl_seconds": 60})).await.status, StatusCode::OK);
    // The integration key sets statuses and nothing else; an admin may too.
    let patch = |key: &str, body: serde_json::Value| app.send(app.request_as(Method::PATCH, &format!("/api/resources/{bb}"), Some(key)).json(&body));
    assert_eq!(patch(&feed, json!({"status": "K"})).await.body["status"], "K");
    assert_eq!(patch(&feed, json!({"identifier": "renamed"})).await.code(), "forbidden");
    assert_eq!(patch(&feed, json!({"status": "X"})).await.code(), "validation_failed");
    assert_eq!(app.send(app.request_as(Method::GET, "/api/locks", Some(&feed))).await.code(), "forbidden", "an integration key reads nothing");
    assert_eq!(patch(&app.keys.client, json!({"status": "U"})).await.code(), "forbidden");
    // Every message in the audit trail, and not the patient.
    let export = app.send(app.request_as(Method::GET, "/api/audit/export", Some(&app.keys.admin))).await.body;
    let export = export.as_str().unwrap_or_default().to_owned();
    assert_eq!(export.matches("\"hl7_received\"").count(), 5, "{export}");
    assert!(export.contains("\"status_changed\""));
    assert!(!export.contains("DOE") && !export.contains("4711"), "no patient data in the audit trail");
    app.stop().await;
}

async fn bad_messages_are_answered_and_change_nothing(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let feed = mint(&app.store, "adt-feed", Role::Integration).await;
    let bed = app.create_resource("bed", "4W^402^A").await;
    let cases = [
        (a20("B-1", "9Z^999^Z", "H"), "AE", "unknown bed"),
        (a20("B-2", "4W^402^A", "X"), "AE", "status outside table 0116"),
        (a20("B-3", "", "H"), "AE", "no bed"),
        ("MSH|^~\\&|LAB|X|HHS|H|20261127||ORU^R01|B-4|P|2.5\rOBX|1|NM|x||1\r".to_owned(), "AR", "another message type"),
        (adt("A08", "B-5", "4W^402^A", ""), "AR", "an ADT event not taken"),
        ("MSH|^~\\&|ADT|W|HHS|H|20261127||ADT^A20||P|2.5\rNPU|4W^402^A|H\r".to_owned(), "AR", "no control id"),
        ("PID|1||4711\rNPU|4W^402^A|H\r".to_owned(), "AR", "no MSH"),
        (String::new(), "AR", "empty"),
        ("MSH#^~\\&#ADT#W#HHS#H#20261127##ADT^A20#B-6#P#2.5\rNPU|4W^402^A|H\r".to_owned(), "AE", "segments not in the declared delimiters"),
        ("\u{1F3E5} not HL7 at all".to_owned(), "AR", "garbage"),
    ];
    for (message, want, why) in cases {
        let ack = send(&app, &feed, &message).await;
        assert_eq!(msa(&ack).0, want, "{why}: {ack:?}");
        assert_eq!(status_of(&app, &bed).await, "U", "{why} changed nothing");
    }
    // Bytes that are not UTF-8, and the wrong media type at the origin.
    let raw = app.request_as(Method::POST, "/api/hl7/v2", Some(&feed)).header("content-type", "application/hl7-v2").body(vec![0xff, 0xfe, 0x0b]);
    let resp = raw.send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.text().await.unwrap().contains("MSA|AR|"));
    let as_json = app.send(app.request_as(Method::POST, "/api/hl7/v2", Some(&feed)).json(&json!({"msh": 1}))).await;
    assert_eq!((as_json.status, as_json.code()), (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"));
    app.stop().await;
}

async fn a_repeated_control_id_is_applied_once(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let feed = mint(&app.store, "adt-feed", Role::Integration).await;
    let bed = app.create_resource("bed", "4W^403^A").await;
    let first = send(&app, &feed, &a20("D-1", "4W^403^A", "C")).await;
    assert_eq!(msa(&first).0, "AA");
    // Reopened by hand; then the feed resends the same message (it never saw the ACK): answered the same,
    // not applied again.
    app.send(app.request_as(Method::PATCH, &format!("/api/resources/{bed}"), Some(&feed)).json(&json!({"status": "U"}))).await;
    let again = send(&app, &feed, &a20("D-1", "4W^403^A", "C")).await;
    assert_eq!(msa(&again), msa(&first));
    assert_eq!(status_of(&app, &bed).await, "U");
    // Another sender's D-1 is another message.
    let other = send(&app, &feed, &a20("D-1", "4W^403^A", "C").replace("|ADT|WARD4|", "|ADT|WARD5|")).await;
    assert_eq!(msa(&other).0, "AA");
    assert_eq!(status_of(&app, &bed).await, "C");
    let events = app.get("/api/events?limit=1000").await.body;
    let dup = events["items"].as_array().unwrap().iter().filter(|e| e["kind"] == "hl7_received" && e["detail"]["duplicate"] == true).count();
    assert_eq!(dup, 1);
    app.stop().await;
}

async fn mllp_frames_in_and_acks_out(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let bed = app.create_resource("bed", "4W^404^A").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(hhs_origin::hl7::serve_mllp(listener, app.store.clone(), hhs_core::hl7::BedMapping::default(), stop.clone()));
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    // Noise, then two frames in one write.
    let mut out = b"noise".to_vec();
    for m in [a20("M-1", "4W^404^A", "I"), a20("M-2", "4W^999^Z", "U")] {
        out.push(0x0b);
        out.extend_from_slice(m.as_bytes());
        out.extend_from_slice(&[0x1c, 0x0d]);
    }
    socket.write_all(&out).await.unwrap();
    let mut acks = Vec::new();
    let mut buf = vec![0u8; 4096];
    while acks.iter().filter(|b| **b == 0x1c).count() < 2 {
        let n = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut buf)).await.expect("ACKs in time").unwrap();
        assert!(n > 0, "connection closed early");
        acks.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8(acks).unwrap();
    let frames: Vec<&str> = text.split('\u{1c}').filter(|f| f.contains("MSA")).collect();
    assert_eq!(frames.len(), 2, "{text:?}");
    assert!(frames[0].starts_with("\u{0b}MSH|") && frames[0].contains("MSA|AA|M-1|"), "{text:?}");
    assert!(frames[1].contains("MSA|AE|M-2|"), "{text:?}");
    assert_eq!(status_of(&app, &bed).await, "I");
    stop.cancel();
    app.stop().await;
}

/// New beds may start in housekeeping (a type's `default_status`); resources made before keep theirs.
async fn a_type_sets_the_status_its_new_resources_start_in(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let before = app.create_resource("bed", "Before").await;
    let set = app.send(app.request_as(Method::PUT, "/api/types/bed", Some(&app.keys.admin)).json(&json!({"default_status": "H"}))).await;
    assert_eq!((set.status, set.body["default_status"].as_str()), (StatusCode::OK, Some("H")), "{}", set.body);
    let after = app.create_resource("bed", "After").await;
    assert_eq!((status_of(&app, &before).await, status_of(&app, &after).await), ("U".into(), "H".into()));
    let refused = app.post_as(&app.keys.client, "/api/locks/acquire", json!({"resource_id": after, "owner_id": "ws", "ttl_seconds": 30})).await;
    assert_eq!(refused.code(), "resource_unavailable");
    let bad = app.send(app.request_as(Method::PUT, "/api/types/bed", Some(&app.keys.admin)).json(&json!({"default_status": "Z"}))).await;
    assert_eq!((bad.status, bad.code()), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"));
    app.stop().await;
}

/// A sample of each kind, for mutation.
fn samples() -> Vec<String> {
    vec![a20("F-1", "4W^401^A", "H"), adt("A01", "F-2", "4W^401^A", ""), adt("A02", "F-3", "4W^401^B", "4W^401^A"), adt("A03", "F-4", "4W^401^A", "")]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// Whatever arrives, reading it and planning it never panic, and the ACK always has an MSA.
    #[test]
    fn the_parser_never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(m) = hhs_origin::hl7::read(&text) {
            let _ = hhs_core::hl7::plan(&m, &hhs_core::hl7::BedMapping::default());
            prop_assert!(hhs_core::hl7::ack(&m, hhs_core::hl7::AckCode::AE, &text, "20260101000000", "x").contains("\rMSA|AE|"));
        }
        let _ = hhs_origin::hl7::frame(&bytes);
    }

    #[test]
    fn the_parser_never_panics_on_mutated_samples(which in 0usize..4, edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..12)) {
        let mut bytes = samples()[which].clone().into_bytes();
        for (at, byte, op) in edits {
            let at = if bytes.is_empty() { 0 } else { at % bytes.len() };
            match op {
                0 if !bytes.is_empty() => bytes[at] = byte,
                1 => bytes.insert(at, [b'|', b'^', b'~', b'\\', b'&', b'\r', byte][usize::from(byte) % 7]),
                _ if !bytes.is_empty() => { bytes.remove(at); }
                _ => {}
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(m) = hhs_origin::hl7::read(&text) {
            if let Ok(updates) = hhs_core::hl7::plan(&m, &hhs_core::hl7::BedMapping::default()) {
                prop_assert!(!updates.is_empty());
            }
        }
    }
}
