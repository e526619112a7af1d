//! HL7 v2 bed status on both stores, with real-looking messages: `ADT^A20` sets a bed's status and `A01`/`A02`/
//! `A03` mark beds occupied or free; acquire refuses a bed that is not available and a live hold outlives a
//! status change; unknown beds, statuses outside table 0116, other message types and malformed messages are
//! answered `AE`/`AR` and change nothing; a repeated control id is applied once; MLLP frames in and out; the
//! audit trail has every message and no patient data. And the parser under random bytes and mutated samples.

use std::sync::Arc;
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
    a_reused_control_id_with_other_content_is_refused,
    the_repeat_record_expires_after_its_window,
    a_message_and_its_record_commit_together,
    an_unknown_bed_changes_nothing_and_is_not_remembered,
    copies_sent_at_once_are_applied_once,
    an_oversize_frame_is_refused,
    mllp_over_tls_serves_mapped_client_certificates_only,
    mllp_connections_are_bounded,
);

/// Runs `sql` on the test's database over a connection of its own.
async fn raw(db: &TestDb, sql: &str) {
    use sqlx::{Connection, Executor};
    match db.backend {
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(db.pg_url().unwrap()).await.unwrap();
            c.execute(sql).await.unwrap();
        }
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.sqlite_path().unwrap().display()))
                .await
                .unwrap();
            c.execute(sql).await.unwrap();
        }
    }
}

/// The one number `sql` selects.
async fn count(db: &TestDb, sql: &str) -> i64 {
    use sqlx::Connection;
    match db.backend {
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(db.pg_url().unwrap()).await.unwrap();
            sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
        }
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.sqlite_path().unwrap().display()))
                .await
                .unwrap();
            sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
        }
    }
}

/// The `hl7_received` events, oldest first.
async fn hl7_events(app: &TestApp) -> Vec<serde_json::Value> {
    let events = app.get("/api/events?limit=1000").await.body;
    events["items"].as_array().unwrap().iter().filter(|e| e["kind"] == "hl7_received").cloned().collect()
}

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
    let req = app
        .request_as(Method::POST, "/api/hl7/v2", Some(key))
        .header("content-type", "application/hl7-v2")
        .body(message.to_owned());
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
    assert_eq!(
        app.post_as(
            &app.keys.client,
            "/api/locks/acquire",
            json!({"resource_id": a, "owner_id": "ws-1", "ttl_seconds": 60})
        )
        .await
        .status,
        StatusCode::OK
    );
    let ack = send(&app, &feed, &a20("C-1", "4W^401^A", "H")).await;
    assert_eq!(msa(&ack), ("AA".into(), "C-1".into()), "{ack}");
    assert!(ack.starts_with("MSH|^~\\&|HHS|HHS|ADT|WARD4|") && ack.contains("|ACK^A20^ACK|"), "{ack}");
    assert_eq!(status_of(&app, &a).await, "H");
    let lock = app.get(&format!("/api/locks/{a}")).await.body;
    assert_eq!((lock["status"].as_str(), lock["owner_id"].as_str()), (Some("HELD"), Some("ws-1")), "{lock}");
    let listed = app.get("/api/locks").await.body;
    let row = listed["items"].as_array().unwrap().iter().find(|l| l["resource_id"] == a.as_str()).unwrap().clone();
    assert_eq!(row["resource_status"], "H", "the board sees the status next to the hold");
    assert_eq!(
        app.post_as(&app.keys.client, "/api/locks/release", json!({"resource_id": a, "owner_id": "ws-1"})).await.status,
        StatusCode::OK
    );
    let refused = app
        .post_as(
            &app.keys.client,
            "/api/locks/acquire",
            json!({"resource_id": a, "owner_id": "ws-2", "ttl_seconds": 60}),
        )
        .await;
    assert_eq!((refused.status, refused.code()), (StatusCode::CONFLICT, "resource_unavailable"));
    assert!(refused.body["error"]["message"].as_str().unwrap().contains("housekeeping"), "{}", refused.body);
    // A group with it is refused as a whole, naming it.
    let group = app
        .post_as(
            &app.keys.client,
            "/api/locks/acquire-group",
            json!({"resources": [{"resource_id": a}, {"resource_id": bb}], "owner_id": "ws-2", "ttl_seconds": 60}),
        )
        .await;
    assert_eq!(group.body["error"]["blocked"][0]["code"], "resource_unavailable", "{}", group.body);
    // Admission, transfer, discharge.
    assert_eq!(msa(&send(&app, &feed, &adt("A01", "C-2", "4W^401^B", "")).await).0, "AA");
    assert_eq!(status_of(&app, &bb).await, "O");
    assert_eq!(msa(&send(&app, &feed, &a20("C-3", "4W^401^A", "U")).await).0, "AA");
    assert_eq!(msa(&send(&app, &feed, &adt("A02", "C-4", "4W^401^A", "4W^401^B")).await).0, "AA");
    assert_eq!((status_of(&app, &a).await, status_of(&app, &bb).await), ("O".into(), "U".into()), "moved from B to A");
    assert_eq!(msa(&send(&app, &feed, &adt("A03", "C-5", "4W^401^A", "")).await).0, "AA");
    assert_eq!(status_of(&app, &a).await, "U");
    assert_eq!(
        app.post_as(
            &app.keys.client,
            "/api/locks/acquire",
            json!({"resource_id": a, "owner_id": "ws-2", "ttl_seconds": 60})
        )
        .await
        .status,
        StatusCode::OK
    );
    // The integration key sets statuses and nothing else; an admin may too.
    let patch = |key: &str, body: serde_json::Value| {
        app.send(app.request_as(Method::PATCH, &format!("/api/resources/{bb}"), Some(key)).json(&body))
    };
    assert_eq!(patch(&feed, json!({"status": "K"})).await.body["status"], "K");
    assert_eq!(patch(&feed, json!({"identifier": "renamed"})).await.code(), "forbidden");
    assert_eq!(patch(&feed, json!({"status": "X"})).await.code(), "validation_failed");
    assert_eq!(
        app.send(app.request_as(Method::GET, "/api/locks", Some(&feed))).await.code(),
        "forbidden",
        "an integration key reads nothing"
    );
    assert_eq!(patch(&app.keys.client, json!({"status": "U"})).await.code(), "forbidden");
    // Every message in the audit trail, and not the patient.
    app.settle_log().await;
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
        (
            "MSH#^~\\&#ADT#W#HHS#H#20261127##ADT^A20#B-6#P#2.5\rNPU|4W^402^A|H\r".to_owned(),
            "AE",
            "segments not in the declared delimiters",
        ),
        ("\u{1F3E5} not HL7 at all".to_owned(), "AR", "garbage"),
    ];
    for (message, want, why) in cases {
        let ack = send(&app, &feed, &message).await;
        assert_eq!(msa(&ack).0, want, "{why}: {ack:?}");
        assert_eq!(status_of(&app, &bed).await, "U", "{why} changed nothing");
    }
    // Bytes that are not UTF-8, and the wrong media type at the origin.
    let raw = app
        .request_as(Method::POST, "/api/hl7/v2", Some(&feed))
        .header("content-type", "application/hl7-v2")
        .body(vec![0xff, 0xfe, 0x0b]);
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
    app.send(
        app.request_as(Method::PATCH, &format!("/api/resources/{bed}"), Some(&feed)).json(&json!({"status": "U"})),
    )
    .await;
    let again = send(&app, &feed, &a20("D-1", "4W^403^A", "C")).await;
    assert_eq!(again, first, "the stored ACK, byte for byte");
    assert_eq!(status_of(&app, &bed).await, "U");
    // Another sender's D-1 is another message.
    let other = send(&app, &feed, &a20("D-1", "4W^403^A", "C").replace("|ADT|WARD4|", "|ADT|WARD5|")).await;
    assert_eq!(msa(&other).0, "AA");
    assert_eq!(status_of(&app, &bed).await, "C");
    // Another integration's D-1 from the same sender is another message too: repeats are the principal's.
    app.send(
        app.request_as(Method::PATCH, &format!("/api/resources/{bed}"), Some(&feed)).json(&json!({"status": "U"})),
    )
    .await;
    let feed2 = mint(&app.store, "adt-feed-2", Role::Integration).await;
    assert_eq!(msa(&send(&app, &feed2, &a20("D-1", "4W^403^A", "C")).await).0, "AA");
    assert_eq!(status_of(&app, &bed).await, "C");
    // A repeat answered from the store is not a new audit event; each message applied is one, by its principal.
    for _ in 0..5 {
        assert_eq!(send(&app, &feed, &a20("D-1", "4W^403^A", "C")).await, first);
    }
    let events = hl7_events(&app).await;
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(
        events.iter().map(|e| e["principal"].as_str().unwrap()).collect::<Vec<_>>(),
        ["adt-feed", "adt-feed", "adt-feed-2"]
    );
    app.stop().await;
}

/// A control id sent again with other content is not a repeat: `AR`, the id named as reused, nothing applied.
async fn a_reused_control_id_with_other_content_is_refused(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let feed = mint(&app.store, "adt-feed", Role::Integration).await;
    let bed = app.create_resource("bed", "4W^405^A").await;
    assert_eq!(msa(&send(&app, &feed, &a20("R-1", "4W^405^A", "H")).await).0, "AA");
    let reused = send(&app, &feed, &a20("R-1", "4W^405^A", "K")).await;
    assert_eq!(msa(&reused), ("AR".into(), "R-1".into()), "{reused}");
    assert!(reused.contains("already used"), "the ACK says why: {reused}");
    assert_eq!(status_of(&app, &bed).await, "H", "not applied");
    // The first is still the one on record: its repeat gets its answer, still not applied again.
    assert_eq!(msa(&send(&app, &feed, &a20("R-1", "4W^405^A", "H")).await).0, "AA");
    assert_eq!(status_of(&app, &bed).await, "H");
    // Only the time stamp differs: other content too (the message is hashed as sent, MSH-7 included).
    let restamped = a20("R-1", "4W^405^A", "H").replace("|20261127083000||ADT^A20", "|20261127083100||ADT^A20");
    assert_eq!(msa(&send(&app, &feed, &restamped).await).0, "AR");
    // Segment terminators are not content: `\r\n` for `\r` is the same message.
    assert_eq!(msa(&send(&app, &feed, &a20("R-1", "4W^405^A", "H").replace('\r', "\r\n")).await).0, "AA");
    app.stop().await;
}

/// The record of a control id is kept for the window (7 days by default), then it is gone: the same message
/// after that is a new one, applied.
async fn the_repeat_record_expires_after_its_window(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let feed = mint(&app.store, "adt-feed", Role::Integration).await;
    let bed = app.create_resource("bed", "4W^406^A").await;
    assert_eq!(msa(&send(&app, &feed, &a20("E-1", "4W^406^A", "H")).await).0, "AA");
    app.send(
        app.request_as(Method::PATCH, &format!("/api/resources/{bed}"), Some(&feed)).json(&json!({"status": "U"})),
    )
    .await;
    // Six days on: still a repeat.
    raw(&db, "UPDATE hl7_messages SET received_at_ms = received_at_ms - 518400000").await;
    assert_eq!(msa(&send(&app, &feed, &a20("E-1", "4W^406^A", "H")).await).0, "AA");
    assert_eq!(status_of(&app, &bed).await, "U", "within the window: answered, not applied");
    // Past seven days: a new message, applied; and expired records are deleted, not kept for ever.
    raw(&db, "UPDATE hl7_messages SET received_at_ms = received_at_ms - 86400000").await;
    assert_eq!(msa(&send(&app, &feed, &a20("E-1", "4W^406^A", "H")).await).0, "AA");
    assert_eq!(status_of(&app, &bed).await, "H", "past the window: applied again");
    raw(&db, "INSERT INTO hl7_messages (principal, sender, control_id, digest, received_at_ms, message_type, ack_code, ack_text, ack) \
              VALUES ('old', 'X^Y', 'OLD-1', '', 0, 'ADT^A20', 'AA', '', '')").await;
    assert_eq!(msa(&send(&app, &feed, &a20("E-2", "4W^406^A", "U")).await).0, "AA");
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM hl7_messages WHERE principal = 'old'").await,
        0,
        "expired records are deleted"
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM hl7_messages").await, 2);
    app.stop().await;
}

/// Copies of one message sent at once: the first to claim its record applies it; every other waits for that
/// claim and gets the stored ACK — one application, one audit event, one answer.
async fn copies_sent_at_once_are_applied_once(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let feed = mint(&app.store, "adt-feed", Role::Integration).await;
    let bed = app.create_resource("bed", "4W^411^A").await;
    let message = a20("P-1", "4W^411^A", "K");
    let acks = futures::future::join_all((0..8).map(|_| send(&app, &feed, &message))).await;
    assert!(acks.iter().all(|a| *a == acks[0]), "one answer: {acks:?}");
    assert_eq!(msa(&acks[0]).0, "AA");
    assert_eq!(status_of(&app, &bed).await, "K");
    assert_eq!(hl7_events(&app).await.len(), 1);
    let changes = app.get(&format!("/api/events?resource_id={bed}&limit=100")).await.body;
    assert_eq!(changes["items"].as_array().unwrap().iter().filter(|e| e["kind"] == "status_changed").count(), 1);
    app.stop().await;
}

/// A message naming one known and one unknown bed changes neither (`AE`) and leaves no record: its resend,
/// once the bed exists, is judged afresh and applied.
async fn an_unknown_bed_changes_nothing_and_is_not_remembered(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let feed = mint(&app.store, "adt-feed", Role::Integration).await;
    let a = app.create_resource("bed", "4W^407^A").await;
    send(&app, &feed, &a20("T-0", "4W^407^A", "O")).await;
    // The prior bed known (to be freed), the new one not: nothing changes, nothing is recorded.
    let transfer = adt("A02", "T-1", "4W^407^C", "4W^407^A");
    assert_eq!(msa(&send(&app, &feed, &transfer).await).0, "AE");
    assert_eq!(status_of(&app, &a).await, "O");
    let c = app.create_resource("bed", "4W^407^C").await;
    assert_eq!(msa(&send(&app, &feed, &transfer).await).0, "AA", "an AE is no record: the resend is judged afresh");
    assert_eq!((status_of(&app, &a).await, status_of(&app, &c).await), ("U".into(), "O".into()));
    app.stop().await;
}

/// A message's status changes and its record commit in one transaction: when the record cannot be written (a
/// trigger refuses it), no bed changed either.
async fn a_message_and_its_record_commit_together(b: Backend) {
    // The refused transaction stays open (aborted) on its pooled connection until that is used again, holding the
    // commit horizon: on PostgreSQL no other test reads the log meanwhile.
    let db = match b {
        Backend::Postgres => TestDb::holding_the_horizon().await,
        Backend::Sqlite => TestDb::new(b).await,
    };
    let Some(db) = db else { return };
    let app = TestApp::spawn(&db).await;
    let feed = mint(&app.store, "adt-feed", Role::Integration).await;
    let bed = app.create_resource("bed", "4W^410^A").await;
    match b {
        Backend::Postgres => {
            raw(&db, "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$").await;
            raw(
                &db,
                "CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON hl7_messages FOR EACH ROW EXECUTE FUNCTION refuse()",
            )
            .await;
        }
        Backend::Sqlite => {
            raw(&db, "CREATE TRIGGER refuse_i BEFORE INSERT ON hl7_messages BEGIN SELECT RAISE(ABORT, 'refused'); END")
                .await;
            raw(&db, "CREATE TRIGGER refuse_u BEFORE UPDATE ON hl7_messages BEGIN SELECT RAISE(ABORT, 'refused'); END")
                .await;
        }
    }
    let req = app
        .request_as(Method::POST, "/api/hl7/v2", Some(&feed))
        .header("content-type", "application/hl7-v2")
        .body(a20("T-2", "4W^410^A", "K"));
    let resp = req.send().await.unwrap();
    assert!(resp.status().is_server_error(), "{}", resp.status());
    assert_eq!(status_of(&app, &bed).await, "U", "the bed is not set without its record");
    app.stop().await;
}

async fn mllp_frames_in_and_acks_out(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let bed = app.create_resource("bed", "4W^404^A").await;
    let (addr, stop) = listen(&app, &plain()).await;
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
        let n =
            tokio::time::timeout(Duration::from_secs(10), socket.read(&mut buf)).await.expect("ACKs in time").unwrap();
        assert!(n > 0, "connection closed early");
        acks.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8(acks).unwrap();
    let frames: Vec<&str> = text.split('\u{1c}').filter(|f| f.contains("MSA")).collect();
    assert_eq!(frames.len(), 2, "{text:?}");
    assert!(frames[0].starts_with("\u{0b}MSH|") && frames[0].contains("MSA|AA|M-1|"), "{text:?}");
    assert!(frames[1].contains("MSA|AE|M-2|"), "{text:?}");
    assert_eq!(status_of(&app, &bed).await, "I");
    let events = hl7_events(&app).await;
    assert!(
        events.len() == 2 && events.iter().all(|e| e["principal"] == "mllp-loopback"),
        "plain loopback: its configured principal: {events:?}"
    );
    stop.cancel();
    app.stop().await;
}

/// A frame over the limit is answered `AR` (addressed to its sender, by its `MSH`) and its connection closed:
/// nothing of it applied, never buffered without bound.
async fn an_oversize_frame_is_refused(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let bed = app.create_resource("bed", "4W^408^A").await;
    let (addr, stop) = listen(&app, &plain()).await;
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut big = vec![0x0b];
    big.extend_from_slice(a20("O-1", "4W^408^A", "K").as_bytes());
    big.extend_from_slice(format!("NTE|1||{}\r", "x".repeat(70 * 1024)).as_bytes());
    big.extend_from_slice(&[0x1c, 0x0d]);
    let _ = socket.write_all(&big).await;
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut got))
        .await
        .expect("answered and closed in time");
    assert!(read.is_ok() || !got.is_empty(), "{read:?}");
    let text = String::from_utf8_lossy(&got);
    assert!(text.contains("MSA|AR|O-1|") && text.contains("larger than"), "an AR naming the message: {text:?}");
    assert_eq!(status_of(&app, &bed).await, "U", "nothing applied");
    stop.cancel();
    app.stop().await;
}

/// New beds may start in housekeeping (a type's `default_status`); resources made before keep theirs.
async fn a_type_sets_the_status_its_new_resources_start_in(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let before = app.create_resource("bed", "Before").await;
    let set = app
        .send(
            app.request_as(Method::PUT, "/api/types/bed", Some(&app.keys.admin)).json(&json!({"default_status": "H"})),
        )
        .await;
    assert_eq!((set.status, set.body["default_status"].as_str()), (StatusCode::OK, Some("H")), "{}", set.body);
    let after = app.create_resource("bed", "After").await;
    assert_eq!((status_of(&app, &before).await, status_of(&app, &after).await), ("U".into(), "H".into()));
    let refused = app
        .post_as(
            &app.keys.client,
            "/api/locks/acquire",
            json!({"resource_id": after, "owner_id": "ws", "ttl_seconds": 30}),
        )
        .await;
    assert_eq!(refused.code(), "resource_unavailable");
    let bad = app
        .send(
            app.request_as(Method::PUT, "/api/types/bed", Some(&app.keys.admin)).json(&json!({"default_status": "Z"})),
        )
        .await;
    assert_eq!((bad.status, bad.code()), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"));
    app.stop().await;
}

/// A certificate authority, a server certificate for 127.0.0.1 and client certificates, made now.
struct Pki {
    dir: tempfile::TempDir,
    ca: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        let ca = rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap()).unwrap();
        let pki = Pki { dir: tempfile::tempdir().unwrap(), ca };
        let (cert, key) = pki.issue("hhs.hospital.example", &["127.0.0.1"], false);
        std::fs::write(pki.path("server.pem"), cert.pem()).unwrap();
        std::fs::write(pki.path("server.key"), key.serialize_pem()).unwrap();
        std::fs::write(pki.path("ca.pem"), pki.ca.pem()).unwrap();
        pki
    }

    fn path(&self, file: &str) -> std::path::PathBuf {
        self.dir.path().join(file)
    }

    /// A certificate with subject CN `cn` and these SANs (IP addresses or DNS names), signed by this CA.
    fn issue(&self, cn: &str, sans: &[&str], client: bool) -> (rcgen::Certificate, rcgen::KeyPair) {
        let mut params = rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        params.extended_key_usages = vec![if client {
            rcgen::ExtendedKeyUsagePurpose::ClientAuth
        } else {
            rcgen::ExtendedKeyUsagePurpose::ServerAuth
        }];
        let key = rcgen::KeyPair::generate().unwrap();
        (params.signed_by(&key, &*self.ca).unwrap(), key)
    }

    /// The listener's settings: TLS with this CA's clients, `clients` mapped.
    fn mllp(&self, clients: &[&str]) -> hhs_origin::hl7::MllpArgs {
        hhs_origin::hl7::MllpArgs {
            cert: Some(self.path("server.pem")),
            key: Some(self.path("server.key")),
            client_ca: Some(self.path("ca.pem")),
            clients: clients.iter().map(|c| c.to_string()).collect(),
            plain_principal: None,
            max_connections: 8,
            idle: Duration::from_secs(10),
        }
    }

    /// A TLS client trusting this CA as the server's, presenting `client` if given.
    fn connector(&self, client: Option<(&rcgen::Certificate, &rcgen::KeyPair)>) -> tokio_rustls::TlsConnector {
        use tokio_rustls::rustls;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match client {
            Some((cert, key)) => builder
                .with_client_auth_cert(
                    vec![cert.der().clone()],
                    rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }
}

/// Starts an MLLP listener on loopback with `args`.
async fn listen(
    app: &TestApp,
    args: &hhs_origin::hl7::MllpArgs,
) -> (std::net::SocketAddr, tokio_util::sync::CancellationToken) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = hhs_origin::hl7::MllpConfig::new(addr, args).expect("listener config");
    let stop = tokio_util::sync::CancellationToken::new();
    let hl7 = Arc::new(hhs_origin::hl7::Hl7Config::default());
    tokio::spawn(hhs_origin::hl7::serve_mllp(listener, app.store.clone(), hl7, Arc::new(config), stop.clone()));
    (addr, stop)
}

/// Sends `message` in a frame and reads one framed answer (`None`: the connection ended without one).
async fn exchange<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    socket: &mut S,
    message: &str,
) -> Option<String> {
    let mut out = vec![0x0b];
    out.extend_from_slice(message.as_bytes());
    out.extend_from_slice(&[0x1c, 0x0d]);
    socket.write_all(&out).await.ok()?;
    socket.flush().await.ok()?;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 4096];
    while !got.contains(&0x1c) {
        let n = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut buf))
            .await
            .expect("an answer or a close in time")
            .ok()?;
        if n == 0 {
            return None;
        }
        got.extend_from_slice(&buf[..n]);
    }
    Some(String::from_utf8_lossy(&got).into_owned())
}

/// TLS with client certificates: a certificate mapped (by a SAN or its CN) is served and its messages are its
/// principal's in the audit trail; no certificate, an unmapped one, or one from another CA is refused.
async fn mllp_over_tls_serves_mapped_client_certificates_only(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let bed = app.create_resource("bed", "4W^409^A").await;
    let pki = Pki::new("Hospital Integration CA");
    let (addr, stop) = listen(&app, &pki.mllp(&["adt.hospital.example=adt-feed", "Lab Engine=lab-feed"])).await;
    let server_name = tokio_rustls::rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let connect = |c: tokio_rustls::TlsConnector| {
        let name = server_name.clone();
        async move { c.connect(name, tokio::net::TcpStream::connect(addr).await.unwrap()).await }
    };
    // Mapped by its DNS SAN.
    let (cert, key) = pki.issue("ADT Engine", &["adt.hospital.example"], true);
    let mut tls = connect(pki.connector(Some((&cert, &key)))).await.expect("handshake");
    let ack = exchange(&mut tls, &a20("S-1", "4W^409^A", "H")).await.expect("an ACK");
    assert_eq!(msa(ack.trim_start_matches('\u{b}')), ("AA".into(), "S-1".into()), "{ack:?}");
    assert_eq!(status_of(&app, &bed).await, "H");
    // Mapped by its CN: another principal.
    let (lab, lab_key) = pki.issue("Lab Engine", &[], true);
    let mut tls = connect(pki.connector(Some((&lab, &lab_key)))).await.expect("handshake");
    assert!(exchange(&mut tls, &a20("S-2", "4W^409^A", "U")).await.expect("an ACK").contains("MSA|AA|S-2|"));
    let events = hl7_events(&app).await;
    let who: Vec<&str> = events.iter().map(|e| e["principal"].as_str().unwrap()).collect();
    assert_eq!(who, ["adt-feed", "lab-feed"], "attributed to the certificates' principals, not the message's sender");
    let kinds = app.get(&format!("/api/events?resource_id={bed}&limit=100")).await.body;
    let changed: Vec<&str> = kinds["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "status_changed")
        .map(|e| e["principal"].as_str().unwrap())
        .collect();
    assert_eq!(changed, ["adt-feed", "lab-feed"]);
    // Refused: no certificate, an unmapped one, one from another CA. Nothing applied.
    let (other, other_key) = pki.issue("Someone", &["someone.example"], true);
    let stranger = Pki::new("Another CA");
    let (foreign, foreign_key) = stranger.issue("ADT Engine", &["adt.hospital.example"], true);
    let foreign_connector = {
        // Trusts our server's CA, presents the other CA's certificate.
        use tokio_rustls::rustls;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(pki.ca.der().clone()).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(
                vec![foreign.der().clone()],
                rustls::pki_types::PrivatePkcs8KeyDer::from(foreign_key.serialize_der()).into(),
            )
            .unwrap();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    };
    for (why, connector) in [
        ("no certificate", pki.connector(None)),
        ("unmapped", pki.connector(Some((&other, &other_key)))),
        ("another CA", foreign_connector),
    ] {
        let answered = match connect(connector).await {
            Err(_) => None,
            Ok(mut tls) => exchange(&mut tls, &a20("S-9", "4W^409^A", "K")).await,
        };
        assert_eq!(answered, None, "{why}: refused");
    }
    assert_eq!(status_of(&app, &bed).await, "U", "nothing applied by a refused client");
    // A plain connection to a TLS listener gets nothing either.
    let mut plain = tokio::net::TcpStream::connect(addr).await.unwrap();
    assert_eq!(exchange(&mut plain, &a20("S-9", "4W^409^A", "K")).await, None);
    assert_eq!(status_of(&app, &bed).await, "U");
    let failed = app.get("/api/events?limit=1000").await.body;
    let refused = failed["items"].as_array().unwrap().iter().filter(|e| e["kind"] == "auth_failed").count();
    assert_eq!(refused, 1, "the unmapped certificate is in the audit trail");
    stop.cancel();
    app.stop().await;
}

/// Off loopback, `serve --mllp` without TLS does not start, and says how to fix it; a TLS listener needs
/// mapped clients.
#[tokio::test]
async fn mllp_off_loopback_without_tls_refuses_to_start() {
    use clap::Parser;
    let cli = hhs_origin::config::Cli::try_parse_from([
        "hhs-origin",
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--mllp",
        "0.0.0.0:0",
    ])
    .unwrap();
    let hhs_origin::config::Command::Serve(args) = cli.command else { panic!("serve") };
    let refused = tokio::time::timeout(Duration::from_secs(20), hhs_origin::server::serve(args))
        .await
        .expect("refused at once, not served");
    let why = refused.expect_err("must not start").to_string();
    assert!(
        why.contains("--mllp-tls-cert") && why.contains("--mllp-client-ca") && why.contains("--mllp-client"),
        "{why}"
    );
    let pki = Pki::new("CA");
    let unmapped = hhs_origin::hl7::MllpConfig::new("0.0.0.0:2575".parse().unwrap(), &pki.mllp(&[]));
    assert!(unmapped.err().unwrap().contains("--mllp-client NAME=PRINCIPAL"));
    assert!(hhs_origin::hl7::MllpConfig::new("0.0.0.0:2575".parse().unwrap(), &pki.mllp(&["a=adt-feed"])).is_ok());
}

/// Connections are bounded: one past `max_connections` is closed at once, and a silent one after the idle time.
async fn mllp_connections_are_bounded(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let args = hhs_origin::hl7::MllpArgs { max_connections: 1, idle: Duration::from_millis(500), ..Default::default() };
    let (addr, stop) = listen(&app, &args).await;
    let mut first = tokio::net::TcpStream::connect(addr).await.unwrap();
    assert!(exchange(&mut first, &a20("L-1", "4W^999^Z", "H")).await.is_some(), "served");
    let mut second = tokio::net::TcpStream::connect(addr).await.unwrap();
    assert_eq!(exchange(&mut second, &a20("L-2", "4W^999^Z", "H")).await, None, "over the limit: closed");
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(5), first.read(&mut buf)).await.expect("closed when idle");
    assert!(matches!(closed, Ok(0) | Err(_)));
    let mut third = tokio::net::TcpStream::connect(addr).await.unwrap();
    assert!(exchange(&mut third, &a20("L-3", "4W^999^Z", "H")).await.is_some(), "a slot again");
    stop.cancel();
    app.stop().await;
}

/// A plain (loopback) listener's settings.
fn plain() -> hhs_origin::hl7::MllpArgs {
    hhs_origin::hl7::MllpArgs { max_connections: 8, idle: Duration::from_secs(10), ..Default::default() }
}

/// A sample of each kind, for mutation.
fn samples() -> Vec<String> {
    vec![
        a20("F-1", "4W^401^A", "H"),
        adt("A01", "F-2", "4W^401^A", ""),
        adt("A02", "F-3", "4W^401^B", "4W^401^A"),
        adt("A03", "F-4", "4W^401^A", ""),
    ]
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
        let _ = hhs_origin::hl7::common_names(&bytes);
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
