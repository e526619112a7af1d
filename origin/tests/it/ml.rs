//! The TTL model over HTTP: suggestions from history, acquire without a TTL, the anomaly list, and late
//! releases feeding the model — one late report per hold, which moves no other principal's suggestion. Both
//! stores.

use std::time::Duration;

use crate::support::{mint, Backend, TestApp, TestDb};
use hhs_core::Role;
use reqwest::StatusCode;
use serde_json::json;

both_stores!(
    suggestions_start_at_the_default_and_learn_from_released_holds,
    acquire_without_ttl_uses_the_suggestion,
    a_session_without_ttl_gets_one_from_its_owners_renewal_gaps,
    a_hold_far_older_than_its_history_is_listed_as_an_anomaly,
    a_release_after_expiry_is_recorded_and_learned_from,
    a_heartbeat_after_expiry_is_recorded_with_its_gap,
    late_calls_are_recorded_once_per_hold_and_do_not_move_another_principals_suggestion,
);

/// The suggestion for `owner` of the admin key's principal (the one `history` acquires with).
async fn suggest(app: &TestApp, id: &str, owner: &str) -> serde_json::Value {
    let r = app.post("/api/ml/suggest", json!({"resource_id": id, "owner_id": owner})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // A viewer may ask too (for its own principal).
    let v = app.post_as(&app.keys.viewer, "/api/ml/suggest", json!({"resource_id": id, "owner_id": owner})).await;
    assert_eq!(v.status, StatusCode::OK);
    r.body
}

/// `n` quick acquire → release cycles by `owner` on `id`, and waits for the model to read them.
async fn history(app: &TestApp, id: &str, owner: &str, n: usize) {
    for _ in 0..n {
        assert_eq!(app.acquire(id, owner, 30).await.status, StatusCode::OK);
        assert_eq!(app.release(id, owner).await.status, StatusCode::OK);
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
}

/// A session's holds learn its keepalive gaps; the next session opened without `ttl_seconds` by the same owner
/// gets a TTL that covers them (here: gaps of milliseconds, so the hard floor), not the default.
async fn a_session_without_ttl_gets_one_from_its_owners_renewal_gaps(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let open = |body: serde_json::Value| app.post_as(&app.keys.client, "/api/sessions", body);
    let first = open(json!({"owner_id": "ward-7"})).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert_eq!(
        (first.body["ttl_seconds"].as_u64(), first.body["ttl_source"].as_str()),
        (Some(300), Some("suggested")),
        "no history: the default"
    );
    let sid = first.body["id"].as_str().unwrap().to_owned();
    for i in 0..6 {
        let bed = app.create_resource("bed", &format!("Learning bed {i}")).await;
        let r = app
            .post_as(
                &app.keys.client,
                "/api/locks/acquire",
                json!({"resource_id": bed, "owner_id": "ward-7", "session_id": sid}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let kept = app
        .send(app.request_as(reqwest::Method::POST, &format!("/api/sessions/{sid}/keepalive"), Some(&app.keys.client)))
        .await;
    assert_eq!(kept.body["holds"], 6);
    let closed = app
        .send(app.request_as(reqwest::Method::DELETE, &format!("/api/sessions/{sid}"), Some(&app.keys.client)))
        .await;
    assert_eq!(closed.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(600)).await;

    let next = open(json!({"owner_id": "ward-7"})).await;
    assert_eq!(
        (next.body["ttl_seconds"].as_u64(), next.body["ttl_source"].as_str()),
        (Some(1), Some("suggested")),
        "{}",
        next.body
    );
    let asked = open(json!({"owner_id": "ward-7", "ttl_seconds": 45})).await;
    assert_eq!((asked.body["ttl_seconds"].as_u64(), asked.body["ttl_source"].as_str()), (Some(45), Some("requested")));
    // Another owner has no history yet.
    assert_eq!(open(json!({"owner_id": "ward-9"})).await.body["ttl_seconds"], 300);
    app.stop().await;
}

async fn suggestions_start_at_the_default_and_learn_from_released_holds(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let id = app.create_resource("mri", "MRI 1").await;
    let fresh = suggest(&app, &id, "ws-1").await;
    assert_eq!(fresh["suggested_ttl"], 300, "no history: the policy default");
    assert_eq!(fresh["anomaly_score"], 0.0);
    assert_eq!(fresh["basis"]["scope"], "default");
    assert_eq!(fresh["basis"]["learned_from"], "policy_default");

    history(&app, &id, "ws-1", 12).await;
    let learned = suggest(&app, &id, "ws-1").await;
    assert_eq!(learned["basis"]["scope"], "owner");
    assert_eq!(learned["basis"]["learned_from"], "hold_durations", "these holds never heartbeat");
    assert_eq!(learned["basis"]["samples"], 12);
    // Holds of milliseconds: the suggestion is the policy's floor (1 s in the test policy), never below.
    assert_eq!(learned["suggested_ttl"], 1);
    // Another owner of the same type gets the type's basis.
    assert_eq!(suggest(&app, &id, "ws-2").await["basis"]["scope"], "type");
    let bad = app.post_as(&app.keys.viewer, "/api/ml/suggest", json!({"resource_id": id})).await;
    assert_eq!(bad.code(), "validation_failed");
    app.stop().await;
}

async fn acquire_without_ttl_uses_the_suggestion(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let id = app.create_resource("ct", "CT 1").await;
    let r = app.post("/api/locks/acquire", json!({"resource_id": id, "owner_id": "ws-1"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["ttl_source"], "suggested");
    assert_eq!(r.body["ttl_seconds"], 300);
    app.release(&id, "ws-1").await;
    let r = app.acquire(&id, "ws-1", 45).await;
    assert_eq!((r.body["ttl_source"].clone(), r.body["ttl_seconds"].clone()), (json!("requested"), json!(45)));
    app.release(&id, "ws-1").await;
    history(&app, &id, "ws-1", 11).await;
    let s = suggest(&app, &id, "ws-1").await;
    let r = app.post("/api/locks/acquire", json!({"resource_id": id, "owner_id": "ws-1"})).await;
    assert_eq!(r.body["ttl_seconds"], s["suggested_ttl"]);
    app.stop().await;
}

async fn a_hold_far_older_than_its_history_is_listed_as_an_anomaly(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let id = app.create_resource("wheelchair", "WC 1").await;
    let other = app.create_resource("wheelchair", "WC 2").await;
    history(&app, &id, "porter-1", 25).await;
    let empty = app.get_as(&app.keys.viewer, "/api/ml/anomalies").await;
    assert_eq!(empty.body["items"], json!([]));

    // History says milliseconds; this one is held for seconds and counting.
    app.acquire(&other, "porter-1", 600).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let listed = app.get_as(&app.keys.viewer, "/api/ml/anomalies?min_score=0.8").await;
    let items = listed.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", listed.body);
    assert_eq!(items[0]["resource_id"], other);
    assert_eq!(items[0]["owner_id"], "porter-1");
    assert!(items[0]["anomaly_score"].as_f64().unwrap() >= 0.8);
    assert!(items[0]["held_seconds"].as_f64().unwrap() >= 1.0);
    let s = suggest(&app, &other, "porter-1").await;
    assert!(s["anomaly_score"].as_f64().unwrap() >= 0.8);
    assert_eq!(app.get("/api/ml/anomalies?min_score=2").await.code(), "validation_failed");
    app.stop().await;
}

async fn a_release_after_expiry_is_recorded_and_learned_from(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn_with(&db, None).await;
    let id = app.create_resource("bed", "B1").await;
    app.acquire(&id, "ward-1", 1).await;
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let r = app.release(&id, "ward-1").await;
    assert_eq!(r.code(), "lock_expired");
    let events = app.get(&format!("/api/events?resource_id={id}")).await.body;
    let late =
        events["items"].as_array().unwrap().iter().find(|e| e["kind"] == "late_release").expect("late_release event");
    assert!(late["detail"]["held_ms"].as_i64().unwrap() >= 1_300);
    assert_eq!(late["owner_id"], "ward-1");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let s = suggest(&app, &id, "ward-1").await;
    assert_eq!(s["basis"]["scope"], "default", "one sample is not yet a basis");
    app.stop().await;
}

async fn a_heartbeat_after_expiry_is_recorded_with_its_gap(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn_with(&db, None).await;
    let id = app.create_resource("mri", "M1").await;
    app.acquire(&id, "ws-1", 1).await;
    assert_eq!(app.heartbeat(&id, "ws-1").await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    assert_eq!(app.heartbeat(&id, "ws-1").await.code(), "lock_expired");
    let events = app.get(&format!("/api/events?resource_id={id}")).await.body;
    let late = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "late_heartbeat")
        .expect("late_heartbeat event");
    assert!(late["detail"]["max_heartbeat_gap_ms"].as_i64().unwrap() >= 1_300, "{late}");
    assert_eq!(late["detail"]["heartbeats"], 1);
    app.stop().await;
}

async fn suggestion(app: &TestApp, key: &str, id: &str, owner: &str) -> f64 {
    let r = app.post_as(key, "/api/ml/suggest", json!({"resource_id": id, "owner_id": owner})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body["suggested_ttl"].as_f64().unwrap()
}

async fn late_calls_are_recorded_once_per_hold_and_do_not_move_another_principals_suggestion(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else { return };
    let app = TestApp::spawn_with(&db, None).await;
    let south = mint(&app.store, "clinic-south", Role::Client).await;
    // South's history: 12 holds with a heartbeat each, so the type has a learned suggestion.
    let bed = app.create_resource("bed", "Shared").await;
    for _ in 0..12 {
        assert_eq!(
            app.post_as(
                &south,
                "/api/locks/acquire",
                json!({"resource_id": bed, "owner_id": "ws-s", "ttl_seconds": 30})
            )
            .await
            .status,
            StatusCode::OK
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            app.post_as(&south, "/api/locks/heartbeat", json!({"resource_id": bed, "owner_id": "ws-s"})).await.status,
            StatusCode::OK
        );
        assert_eq!(
            app.post_as(&south, "/api/locks/release", json!({"resource_id": bed, "owner_id": "ws-s"})).await.status,
            StatusCode::OK
        );
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    let before = suggestion(&app, &south, &bed, "ws-s").await;

    // North lets 30 holds lapse and calls each 10 times after: 300 late heartbeats, each hold reported once.
    let mut beds = vec![];
    for i in 0..30 {
        let id = app.create_resource("bed", &format!("North {i}")).await;
        assert_eq!(
            app.post_as(
                &app.keys.client,
                "/api/locks/acquire",
                json!({"resource_id": id, "owner_id": "ws-n", "ttl_seconds": 1})
            )
            .await
            .status,
            StatusCode::OK
        );
        beds.push(id);
    }
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    for id in &beds {
        for _ in 0..10 {
            let r = app
                .post_as(&app.keys.client, "/api/locks/heartbeat", json!({"resource_id": id, "owner_id": "ws-n"}))
                .await;
            assert_eq!(r.code(), "lock_expired");
        }
    }
    for id in &beds {
        let kinds = app.event_kinds(id).await;
        assert_eq!(kinds.iter().filter(|k| *k == "late_heartbeat").count(), 1, "{kinds:?}");
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    let after = suggestion(&app, &south, &bed, "ws-s").await;
    assert!((after - before).abs() <= 0.1 * before, "south's suggestion moved from {before} to {after}");
}
