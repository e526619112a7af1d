//! Resource types as data: one policy, in the database, that every replica and the reaper decide with.

use std::time::Duration;

use hhs_core::{Millis, Policy, TtlBounds};
use hhs_origin::reaper::reap_all;
use reqwest::StatusCode;
use serde_json::json;

use crate::support::{test_settings, Backend, TestApp, TestDb};

both_stores!(
    a_type_change_through_one_replica_applies_on_another_and_in_a_standalone_reaper,
    replicas_started_with_different_flags_apply_the_policy_of_the_database,
    a_ttl_outside_the_types_bounds_is_refused_naming_them,
    types_are_listed_shown_and_set_with_an_audit_record,
);

fn at(v: &serde_json::Value) -> Millis {
    Millis::from_utc(v.as_str().unwrap_or_else(|| panic!("not a time: {v}")).parse().unwrap())
}

async fn a_type_change_through_one_replica_applies_on_another_and_in_a_standalone_reaper(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    // Two replicas without reapers; the reaper runs on its own, as `hhs-origin reaper` does.
    let (a, replica) = (TestApp::spawn_with(&db, None).await, TestApp::spawn_with(&db, None).await);
    let or = a.create_resource("or-room", "OR 7").await;
    let set = a
        .send(
            a.request_as(reqwest::Method::PUT, "/api/types/or-room", Some(&a.keys.admin))
                .json(&json!({"lock_delay_seconds": 7})),
        )
        .await;
    assert_eq!((set.status, set.body["lock_delay_seconds"].as_u64()), (StatusCode::OK, Some(7)), "{}", set.body);
    assert_eq!(
        replica.get("/api/types/or-room").await.body["lock_delay_seconds"],
        7,
        "the other replica reads the same row"
    );

    assert_eq!(replica.acquire(&or, "ws-1", 1).await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let reaper = db.store().await;
    assert_eq!(reap_all(&reaper, 100).await.unwrap(), 1, "the standalone reaper records the expiry");
    let events = replica.get(&format!("/api/events?resource_id={or}")).await.body;
    let expired =
        events["items"].as_array().unwrap().iter().find(|e| e["kind"] == "expired").expect("expired event").clone();
    let (ended, until) = (at(&expired["detail"]["ended_at"]), at(&expired["detail"]["lock_delay_until"]));
    assert_eq!(until.0 - ended.0, 7_000, "the reaper applied the type's new lock-delay, not a flag: {expired}");
    let refused = replica.acquire(&or, "ws-2", 30).await;
    assert_eq!(refused.code(), "lock_delay", "{}", refused.body);
    assert_eq!(at(&refused.body["error"]["retry_at"]), until);
    a.stop().await;
    replica.stop().await;
}

async fn replicas_started_with_different_flags_apply_the_policy_of_the_database(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let first = test_settings().policy; // or-room: 2 s lock-delay, TTLs from 1 s
    let other = Policy {
        ttl_bounds: TtlBounds { min_seconds: 10, max_seconds: 3_600 },
        default_ttl_seconds: 60,
        lock_delays: [("or-room".to_owned(), Millis(30_000))].into_iter().collect(),
    };
    // Start-up seeding, as `serve` does: the first replica's flags make the row; the second's change nothing.
    let store = db.store().await;
    hhs_origin::server::seed_types(&store, &first).await.unwrap();
    hhs_origin::server::seed_types(&store, &other).await.unwrap();
    let a = TestApp::spawn(&db).await;
    let b2 = TestApp::spawn_custom(&db, 0, |s| s.policy = other.clone()).await;
    let or = b2.create_resource("or-room", "OR 8").await;
    // A TTL the second replica's flags would refuse is within the stored bounds: granted there.
    assert_eq!(b2.acquire(&or, "ws-1", 2).await.status, StatusCode::OK);
    let forced =
        b2.post_as(&b2.keys.admin, "/api/locks/force-release", json!({"resource_id": or, "reason": "drill"})).await;
    assert_eq!(forced.status, StatusCode::OK, "{}", forced.body);
    let (ended, until) = (at(&forced.body["ended_at"]), at(&forced.body["lock_delay_until"]));
    assert_eq!(until.0 - ended.0, 2_000, "the stored 2 s applies on the replica whose flags say 30 s");
    assert_eq!(a.get("/api/types/or-room").await.body, b2.get("/api/types/or-room").await.body);
    a.stop().await;
    b2.stop().await;
}

async fn a_ttl_outside_the_types_bounds_is_refused_naming_them(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let bed = app.create_resource("bed", "Bed 40").await;
    let set = app
        .send(
            app.request_as(reqwest::Method::PUT, "/api/types/bed", Some(&app.keys.admin))
                .json(&json!({"min_ttl_seconds": 10, "max_ttl_seconds": 600})),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    for ttl in [5, 601] {
        let r = app.acquire(&bed, "ws-1", ttl).await;
        assert_eq!(r.code(), "invalid_ttl", "{ttl}: {}", r.body);
        assert!(r.body["error"]["message"].as_str().unwrap().contains("between 10 and 600"), "{}", r.body);
    }
    assert_eq!(app.acquire(&bed, "ws-1", 10).await.status, StatusCode::OK);
    // Past the hard limit (7 days) nothing is asked of the type.
    assert_eq!(app.acquire(&bed, "ws-2", 604_801).await.code(), "invalid_ttl");
    app.stop().await;
}

async fn types_are_listed_shown_and_set_with_an_audit_record(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    app.create_resource("mri", "MRI 9").await;
    let listed = app.get_as(&app.keys.viewer, "/api/types").await;
    let mri =
        listed.body["items"].as_array().unwrap().iter().find(|t| t["name"] == "mri").expect("mri is listed").clone();
    // Made by its first resource, from this origin's flags (the test policy).
    assert_eq!(
        (mri["min_ttl_seconds"].as_u64(), mri["default_ttl_seconds"].as_u64(), mri["lock_delay_seconds"].as_u64()),
        (Some(1), Some(300), Some(0))
    );
    assert_eq!(app.get("/api/types/ct").await.code(), "type_not_found");
    assert_eq!(app.get("/api/types/NOT%20A%20TYPE").await.code(), "invalid_resource_type");

    let put = |body: serde_json::Value| {
        app.send(app.request_as(reqwest::Method::PUT, "/api/types/mri", Some(&app.keys.admin)).json(&body))
    };
    assert_eq!(put(json!({"min_ttl_seconds": 900, "max_ttl_seconds": 600})).await.code(), "validation_failed");
    assert_eq!(put(json!({"lock_delay_seconds": 86_401})).await.code(), "validation_failed");
    assert_eq!(put(json!({"retention": 5})).await.code(), "validation_failed", "unknown fields are refused");
    let set = put(json!({"default_ttl_seconds": 600, "lock_delay_seconds": 120})).await;
    assert_eq!(
        (
            set.body["default_ttl_seconds"].as_u64(),
            set.body["lock_delay_seconds"].as_u64(),
            set.body["min_ttl_seconds"].as_u64()
        ),
        (Some(600), Some(120), Some(1)),
        "the rest unchanged"
    );
    let new_type = app
        .send(
            app.request_as(reqwest::Method::PUT, "/api/types/ct", Some(&app.keys.admin))
                .json(&json!({"lock_delay_seconds": 60})),
        )
        .await;
    assert_eq!(new_type.status, StatusCode::OK, "PUT makes a type that has no resource yet");

    let events = app.get("/api/events?limit=1000").await.body;
    let changes: Vec<&serde_json::Value> =
        events["items"].as_array().unwrap().iter().filter(|e| e["kind"] == "type_updated").collect();
    let mri_change = changes.iter().find(|e| e["detail"]["name"] == "mri").expect("the change is in the audit trail");
    assert_eq!(mri_change["principal"], "hq");
    assert_eq!(
        (
            mri_change["detail"]["old"]["lock_delay_seconds"].as_u64(),
            mri_change["detail"]["new"]["lock_delay_seconds"].as_u64()
        ),
        (Some(0), Some(120))
    );
    let ct = changes.iter().find(|e| e["detail"]["name"] == "ct").expect("a new type's change");
    assert!(ct["detail"]["old"].is_null());
    app.stop().await;
}
