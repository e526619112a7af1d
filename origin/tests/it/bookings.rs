//! Hold → book on both stores: a booking outlives its TTL and its session, keeps its token, is never taken by
//! someone else before its end, and ends `completed` (no lock-delay) or by its holder's release.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{Backend, Reply, TestApp, TestDb};

both_stores!(
    a_booking_outlives_its_ttl_and_completes_at_its_end,
    bookings_refuse_bad_ends_and_lapsed_holds_and_cancel_by_release,
    how_far_ahead_a_hold_is_booked_is_its_types_policy,
    a_booked_hold_is_not_renewed_by_its_holders_acquire_or_heartbeat,
);

/// The server's time in a reply, plus `ms`, as RFC 3339.
fn after(t: &serde_json::Value, ms: i64) -> String {
    let t: DateTime<Utc> = t.as_str().unwrap().parse().unwrap();
    (t + chrono::Duration::milliseconds(ms)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Books as the admin key's principal, who holds through `TestApp::acquire`.
async fn book(app: &TestApp, resource: &str, owner: &str, until: &str) -> Reply {
    book_as(app, &app.keys.admin, resource, owner, until).await
}

async fn book_as(app: &TestApp, key: &str, resource: &str, owner: &str, until: &str) -> Reply {
    let body = json!({"resource_id": resource, "owner_id": owner, "until": until});
    app.send(app.request_as(Method::POST, "/api/locks/book", Some(key)).json(&body)).await
}

async fn a_booking_outlives_its_ttl_and_completes_at_its_end(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    // or-room has a 2 s lock-delay in the tests: a completed booking must not start one.
    let room = app.create_resource("or-room", "OR 3").await;
    let held = app.acquire(&room, "theatre-desk", 1).await;
    assert_eq!(held.status, StatusCode::OK);
    let until = after(&held.body["last_heartbeat"], 2_500);
    let booked = book(&app, &room, "theatre-desk", &until).await;
    assert_eq!(booked.status, StatusCode::OK, "{}", booked.body);
    assert_eq!(
        (booked.body["status"].as_str(), booked.body["expires_at"].as_str()),
        (Some("BOOKED"), Some(until.as_str()))
    );
    assert_eq!(booked.body["fencing_token"], held.body["fencing_token"], "the booking keeps its token");

    // Past its 1 s TTL with no heartbeat: still booked, and refused to others until its end.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(app.get(&format!("/api/locks/{room}")).await.body["status"], "BOOKED");
    let other = app.acquire(&room, "ward-2", 30).await;
    assert_eq!((other.status, other.code()), (StatusCode::CONFLICT, "lock_held"));
    assert_eq!(other.body["error"]["expires_at"].as_str(), Some(until.as_str()));

    // At its end the reaper records it completed, and the room is free at once (no lock-delay).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while app.event_kinds(&room).await.last().map(String::as_str) != Some("completed") {
        assert!(std::time::Instant::now() < deadline, "not completed: {:?}", app.event_kinds(&room).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let lock = app.get(&format!("/api/locks/{room}")).await.body;
    assert_eq!(
        (lock["status"].as_str(), &lock["lock_delay_until"]),
        (Some("COMPLETED"), &serde_json::Value::Null),
        "{lock}"
    );
    assert_eq!(app.event_kinds(&room).await, ["resource_created", "acquired", "booked", "completed"]);
    let next = app.acquire(&room, "ward-2", 30).await;
    assert_eq!(next.status, StatusCode::OK, "{}", next.body);
    assert_eq!(next.body["fencing_token"], held.body["fencing_token"].as_u64().unwrap() + 1);
    app.stop().await;
}

async fn bookings_refuse_bad_ends_and_lapsed_holds_and_cancel_by_release(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let bed = app.create_resource("bed", "Booked 1").await;
    let held = app.acquire(&bed, "ws-1", 30).await;
    let now = &held.body["last_heartbeat"];
    for (until, why) in [
        (after(now, -1_000), "in the past"),
        (after(now, 31 * 24 * 3600 * 1000), "past 30 days"),
        ("tomorrow".into(), "not RFC 3339"),
    ] {
        let r = book(&app, &bed, "ws-1", &until).await;
        assert_eq!((r.status, r.code()), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"), "{why}: {}", r.body);
    }
    // Only the holder books.
    assert_eq!(book(&app, &bed, "ws-2", &after(now, 60_000)).await.code(), "not_holder");
    // A session's hold may be booked, and the booking outlives the session.
    let s = app.post_as(&app.keys.client, "/api/sessions", json!({"owner_id": "desk", "ttl_seconds": 30})).await;
    let sid = s.body["id"].as_str().unwrap().to_owned();
    let other = app.create_resource("bed", "Booked 2").await;
    assert_eq!(
        app.post_as(
            &app.keys.client,
            "/api/locks/acquire",
            json!({"resource_id": other, "owner_id": "desk", "session_id": sid})
        )
        .await
        .status,
        StatusCode::OK
    );
    let booked = book_as(&app, &app.keys.client, &other, "desk", &after(now, 600_000)).await;
    assert_eq!(booked.body["status"], "BOOKED", "{}", booked.body);
    assert!(booked.body.get("session_id").is_none(), "a booking has left its session: {}", booked.body);
    assert_eq!(
        app.send(app.request_as(Method::DELETE, &format!("/api/sessions/{sid}"), Some(&app.keys.client))).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.get(&format!("/api/locks/{other}")).await.body["status"],
        "BOOKED",
        "closing the session leaves the booking"
    );
    // Cancelled by its holder's release.
    let cancelled =
        app.post_as(&app.keys.client, "/api/locks/release", json!({"resource_id": other, "owner_id": "desk"})).await;
    assert_eq!(cancelled.body["status"], "RELEASED", "{}", cancelled.body);
    // A lapsed hold cannot be booked.
    let short = app.create_resource("bed", "Booked 3").await;
    let h = app.acquire(&short, "ws-3", 1).await;
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    assert_eq!(book(&app, &short, "ws-3", &after(&h.body["last_heartbeat"], 60_000)).await.code(), "lock_expired");
    app.stop().await;
}

/// The booking maximum is the type's (`booking_max_seconds`, 30 days unless set), read in the booking's
/// transaction: an admin's change applies to the next booking on every replica.
async fn how_far_ahead_a_hold_is_booked_is_its_types_policy(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let scanner = app.create_resource("scanner", "CT 2").await;
    let ty = app.get("/api/types/scanner").await;
    assert_eq!(ty.body["booking_max_seconds"], 30 * 86_400, "{}", ty.body);
    let held = app.acquire(&scanner, "radiology", 30).await;
    let now = held.body["last_heartbeat"].clone();
    // Two hours at most for scanners from now on.
    let set = app
        .send(
            app.request_as(Method::PUT, "/api/types/scanner", Some(&app.keys.admin))
                .json(&json!({"booking_max_seconds": 7_200})),
        )
        .await;
    assert_eq!((set.status, set.body["booking_max_seconds"].as_u64()), (StatusCode::OK, Some(7_200)), "{}", set.body);
    let far = book(&app, &scanner, "radiology", &after(&now, 3 * 3_600_000)).await;
    assert_eq!((far.status, far.code()), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"), "{}", far.body);
    assert!(far.body["error"]["message"].as_str().unwrap().contains("no later than"), "{}", far.body);
    let near = book(&app, &scanner, "radiology", &after(&now, 3_600_000)).await;
    assert_eq!((near.status, near.body["status"].as_str()), (StatusCode::OK, Some("BOOKED")), "{}", near.body);
    // Out of range: refused, the row unchanged.
    let bad = app
        .send(
            app.request_as(Method::PUT, "/api/types/scanner", Some(&app.keys.admin))
                .json(&json!({"booking_max_seconds": 30})),
        )
        .await;
    assert_eq!((bad.status, bad.code()), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"));
    assert_eq!(app.get("/api/types/scanner").await.body["booking_max_seconds"], 7_200);
    // Another type keeps its own.
    assert_eq!(
        app.get("/api/types/bed").await.body["booking_max_seconds"].as_u64().unwrap_or(30 * 86_400),
        30 * 86_400
    );
    app.stop().await;
}

/// A renewal promises its caller the hold for a TTL from now; a booking ends at its end whatever renewals say.
/// So the holder's acquire and heartbeat of a booked hold are refused (`hold_booked`, with the end), never
/// answered as renewals that the booking's end cuts short.
async fn a_booked_hold_is_not_renewed_by_its_holders_acquire_or_heartbeat(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let bed = app.create_resource("bed", "Booked 9").await;
    let held = app.acquire(&bed, "ws-1", 30).await;
    let until = after(&held.body["last_heartbeat"], 3_000);
    assert_eq!(book(&app, &bed, "ws-1", &until).await.status, StatusCode::OK);
    for r in [app.acquire(&bed, "ws-1", 60).await, app.heartbeat(&bed, "ws-1").await] {
        assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "hold_booked"), "{}", r.body);
        assert_eq!(r.body["error"]["expires_at"].as_str(), Some(until.as_str()), "the refusal names the booking's end");
    }
    let lock = app.get(&format!("/api/locks/{bed}")).await.body;
    assert_eq!((lock["status"].as_str(), lock["expires_at"].as_str()), (Some("BOOKED"), Some(until.as_str())));
    app.stop().await;
}
