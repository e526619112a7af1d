//! The conformance suite: every endpoint's happy path and every error code, black-box over HTTP, against both
//! stores. Lists are paged, a release retried after the resource was granted again succeeds and changes
//! nothing, and a path parameter that is not UTF-8 gets a JSON error like any other.

use std::time::Duration;

use crate::support::{fencing_token, fresh, Backend, TestApp, TestDb};
use reqwest::StatusCode;
use serde_json::json;

both_stores!(
    health_reports_database_and_version,
    create_list_and_show_resources,
    resource_validation_and_duplicates,
    acquire_heartbeat_release_happy_path,
    acquire_on_held_resource_returns_409_with_holder,
    same_owner_reacquire_is_idempotent,
    lock_errors_have_stable_codes,
    fencing_token_must_match_when_given,
    malformed_requests_get_json_errors_never_500,
    expired_hold_is_reported_and_regranted_with_next_token,
    lock_delay_blocks_regrant_after_expiry_only,
    lock_listing_filters,
    request_id_is_honoured_or_generated,
    hold_survives_restart_and_tokens_keep_increasing,
    the_origin_serves_exactly_the_endpoint_table,
    cors_allows_only_the_configured_origins,
    lock_and_anomaly_lists_are_paged,
    a_release_retried_after_a_regrant_succeeds_and_changes_nothing,
    path_parameters_that_are_not_utf8_get_json_errors,
);

async fn health_reports_database_and_version(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    for path in ["/", "/healthz"] {
        let r = app.get(path).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body["status"], "ok");
        assert_eq!(r.body["database"], "ok");
        assert_eq!(r.body["version"], env!("CARGO_PKG_VERSION"));
        // PostgreSQL: the server written to, and whether commits wait for a standby (the test cluster has
        // none; the formation of `cargo xtask test` does).
        let rep = &r.body["replication"];
        match b {
            Backend::Postgres => {
                assert!(rep["server"].as_str().is_some_and(|s| s.starts_with("127.0.0.1:")), "{rep}");
                let names = rep["synchronous_standby_names"].as_str().unwrap();
                assert_eq!(rep["synchronous"], !names.is_empty() && rep["synchronous_commit"] == "on", "{rep}");
            }
            Backend::Sqlite => assert!(rep.is_null(), "{rep}"),
        }
    }
    app.stop().await;
}

async fn create_list_and_show_resources(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let r = app.post("/api/resources", json!({"type": "bed", "identifier": "Ward 3, bed 12"})).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.body["type"], "bed");
    assert_eq!(r.body["identifier"], "Ward 3, bed 12");
    assert!(r.body["created_at"].as_str().is_some());
    let bed = r.body["id"].as_str().unwrap().to_owned();

    let mut ids = vec![bed.clone()];
    for i in 0..4 {
        ids.push(app.create_resource("mri", &format!("Scanner {i}")).await);
    }
    let shown = app.get(&format!("/api/resources/{bed}")).await;
    assert_eq!(shown.status, StatusCode::OK);
    assert_eq!(shown.body, r.body);

    let mris = app.get("/api/resources?type=mri").await;
    assert_eq!(mris.body["items"].as_array().unwrap().len(), 4);

    // Keyset pagination walks every resource exactly once, in creation order.
    let mut seen = vec![];
    let mut after = String::new();
    loop {
        let page = app.get(&format!("/api/resources?limit=2{after}")).await;
        assert_eq!(page.status, StatusCode::OK);
        seen.extend(page.body["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_owned()));
        match page.body["next_after"].as_str() {
            Some(next) => after = format!("&after={next}"),
            None => break,
        }
    }
    assert_eq!(seen, ids);

    let missing = app.get("/api/resources/0190a0c4-7a52-7000-8000-000000000001").await;
    assert_eq!((missing.status, missing.code()), (StatusCode::NOT_FOUND, "resource_not_found"));
    let bad = app.get("/api/resources/not-a-uuid").await;
    assert_eq!((bad.status, bad.code()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_resource_id"));
    let bad_limit = app.get("/api/resources?limit=0").await;
    assert_eq!(bad_limit.code(), "validation_failed");
    let bad_param = app.get("/api/resources?limit=abc").await;
    assert_eq!((bad_param.status, bad_param.code()), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"));
    app.stop().await;
}

async fn resource_validation_and_duplicates(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    app.create_resource("or-room", "OR 1").await;
    let dup = app.post("/api/resources", json!({"type": "or-room", "identifier": "OR 1"})).await;
    assert_eq!((dup.status, dup.code()), (StatusCode::CONFLICT, "resource_exists"));
    // Same identifier, other type: a different resource.
    app.create_resource("bed", "OR 1").await;
    for (body, code) in [
        (json!({"type": "Bed!", "identifier": "x"}), "invalid_resource_type"),
        (json!({"type": "bed", "identifier": ""}), "invalid_identifier"),
        (json!({"type": "bed", "identifier": " padded "}), "invalid_identifier"),
        (json!({"type": "bed"}), "validation_failed"),
        (json!({"type": "bed", "identifier": "x", "floor": 3}), "validation_failed"),
    ] {
        let r = app.post("/api/resources", body.clone()).await;
        assert_eq!((r.status, r.code()), (StatusCode::UNPROCESSABLE_ENTITY, code), "{body}");
    }
    app.stop().await;
}

async fn acquire_heartbeat_release_happy_path(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let id = app.create_resource("bed", "B1").await;

    let free = app.get(&format!("/api/locks/{id}")).await;
    assert_eq!(free.status, StatusCode::OK);
    assert_eq!(free.body["status"], "FREE");
    assert_eq!(free.body["fencing_token"], json!(null));

    let a = app.acquire(&id, "ward-3:ws-1", 30).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    for field in [
        "id",
        "resource_id",
        "owner_id",
        "status",
        "ttl_seconds",
        "fencing_token",
        "created_at",
        "last_heartbeat",
        "expires_at",
    ] {
        assert!(!a.body[field].is_null(), "acquire response lacks {field}: {}", a.body);
    }
    assert_eq!(a.body["status"], "HELD");
    assert_eq!(a.body["resource_id"], id);
    assert_eq!(a.body["owner_id"], "ward-3:ws-1");
    assert_eq!(a.body["ttl_seconds"], 30);
    assert_eq!(a.body["fencing_token"], 1);
    let acquired_at = chrono::DateTime::parse_from_rfc3339(a.body["created_at"].as_str().unwrap()).unwrap();
    let expires = chrono::DateTime::parse_from_rfc3339(a.body["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!((expires - acquired_at).num_seconds(), 30);

    tokio::time::sleep(Duration::from_millis(20)).await;
    let h = app.heartbeat(&id, "ward-3:ws-1").await;
    assert_eq!(h.status, StatusCode::OK, "{}", h.body);
    assert_eq!(h.body["fencing_token"], 1);
    assert!(h.body["last_heartbeat"].as_str().unwrap() > a.body["last_heartbeat"].as_str().unwrap());
    assert!(h.body["expires_at"].as_str().unwrap() > a.body["expires_at"].as_str().unwrap());

    let shown = app.get(&format!("/api/locks/{id}")).await;
    assert_eq!(shown.body["status"], "HELD");
    assert_eq!(shown.body["owner_id"], "ward-3:ws-1");

    let r = app.release(&id, "ward-3:ws-1").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["status"], "RELEASED");
    assert!(r.body["ended_at"].as_str().is_some());
    // Releasing again is idempotent for the same holder.
    let again = app.release(&id, "ward-3:ws-1").await;
    assert_eq!((again.status, again.body["status"].clone()), (StatusCode::OK, json!("RELEASED")));

    // The next grant gets the next token; the history is in the event log.
    let next = app.acquire(&id, "ward-3:ws-2", 30).await;
    assert_eq!(next.body["fencing_token"], 2);
    assert_eq!(app.event_kinds(&id).await, ["resource_created", "acquired", "released", "acquired"]);
    let events = app.get(&format!("/api/events?resource_id={id}")).await;
    let released = &events.body["items"][2];
    assert_eq!(released["detail"]["heartbeats"], 1, "the heartbeat summary rides on the release event");
    assert_eq!(released["fencing_token"], 1);
    app.stop().await;
}

async fn acquire_on_held_resource_returns_409_with_holder(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let id = app.create_resource("bed", "B1").await;
    let a = app.acquire(&id, "alice", 30).await;
    let b2 = app.acquire(&id, "bob", 30).await;
    assert_eq!((b2.status, b2.code()), (StatusCode::CONFLICT, "lock_held"));
    assert_eq!(b2.body["error"]["holder"], "alice");
    assert_eq!(b2.body["error"]["expires_at"], a.body["expires_at"]);
    // Nothing changed.
    let shown = app.get(&format!("/api/locks/{id}")).await;
    assert_eq!(shown.body["owner_id"], "alice");
    assert_eq!(app.event_kinds(&id).await, ["resource_created", "acquired"]);
    app.stop().await;
}

async fn same_owner_reacquire_is_idempotent(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let id = app.create_resource("bed", "B1").await;
    let first = app.acquire(&id, "alice", 30).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let second = app.acquire(&id, "alice", 60).await;
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(second.body["id"], first.body["id"]);
    assert_eq!(second.body["fencing_token"], 1);
    assert_eq!(second.body["ttl_seconds"], 60);
    assert!(second.body["last_heartbeat"].as_str().unwrap() > first.body["last_heartbeat"].as_str().unwrap());
    assert_eq!(app.event_kinds(&id).await, ["resource_created", "acquired"]);
    app.stop().await;
}

async fn lock_errors_have_stable_codes(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let id = app.create_resource("bed", "B1").await;
    let unknown = "0190a0c4-7a52-7000-8000-000000000001";

    let r = app.acquire(unknown, "alice", 30).await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "resource_not_found"));
    let r = app.get(&format!("/api/locks/{unknown}")).await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "resource_not_found"));
    for (ttl, owner, rid, code) in [
        (json!(0), "alice", id.as_str(), "invalid_ttl"),
        (json!(86_401), "alice", id.as_str(), "invalid_ttl"),
        (json!(2.5), "alice", id.as_str(), "invalid_ttl"),
        (json!(30), "al ice", id.as_str(), "invalid_owner_id"),
        (json!(30), "", id.as_str(), "invalid_owner_id"),
        (json!(30), "alice", "bed-1", "invalid_resource_id"),
        (json!("30"), "alice", id.as_str(), "validation_failed"),
    ] {
        let r =
            app.post("/api/locks/acquire", json!({"resource_id": rid, "owner_id": owner, "ttl_seconds": ttl})).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::UNPROCESSABLE_ENTITY, code),
            "ttl {ttl} owner {owner:?} id {rid}"
        );
    }

    // Heartbeat and release of a resource nobody holds.
    assert_eq!(app.heartbeat(&id, "alice").await.code(), "not_holder");
    assert_eq!(app.release(&id, "alice").await.code(), "not_holder");
    app.acquire(&id, "alice", 30).await;
    let r = app.heartbeat(&id, "bob").await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "not_holder"));
    let r = app.release(&id, "bob").await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "not_holder"));
    // A released hold is not revived by a heartbeat.
    app.release(&id, "alice").await;
    assert_eq!(app.heartbeat(&id, "alice").await.code(), "not_holder");
    assert_eq!(app.get(&format!("/api/locks/{id}")).await.body["status"], "RELEASED");
    app.stop().await;
}

async fn fencing_token_must_match_when_given(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let id = app.create_resource("bed", "B1").await;
    app.acquire(&id, "alice", 30).await;
    let hb = |token: serde_json::Value| {
        app.post("/api/locks/heartbeat", json!({"resource_id": id, "owner_id": "alice", "fencing_token": token}))
    };
    assert_eq!(hb(json!(1)).await.status, StatusCode::OK);
    let stale = hb(json!(2)).await;
    assert_eq!((stale.status, stale.code()), (StatusCode::CONFLICT, "stale_token"));
    assert_eq!(hb(json!(-1)).await.code(), "invalid_fencing_token");
    let r = app.post("/api/locks/release", json!({"resource_id": id, "owner_id": "alice", "fencing_token": 7})).await;
    assert_eq!(r.code(), "stale_token");
    assert_eq!(app.get(&format!("/api/locks/{id}")).await.body["status"], "HELD");
    let r = app.post("/api/locks/release", json!({"resource_id": id, "owner_id": "alice", "fencing_token": 1})).await;
    assert_eq!(r.body["status"], "RELEASED");
    app.stop().await;
}

async fn malformed_requests_get_json_errors_never_500(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let id = app.create_resource("bed", "B1").await;
    let url = |p: &str| format!("{}{p}", app.url);
    let raw = |body: &'static str| {
        app.client.post(url("/api/locks/acquire")).header("content-type", "application/json").body(body)
    };

    let cases: Vec<(reqwest::RequestBuilder, StatusCode, &str)> = vec![
        (raw("{not json"), StatusCode::BAD_REQUEST, "invalid_json"),
        (raw(""), StatusCode::BAD_REQUEST, "invalid_json"),
        (raw("[1,2]"), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        (raw("null"), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        (
            app.client.post(url("/api/locks/acquire")).header("content-type", "text/plain").body("{}"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            app.client.post(url("/api/locks/acquire")).body("{}"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            app.client.post(url("/api/locks/acquire")).header("content-type", "application/json").body(format!(
                r#"{{"resource_id":"{id}","owner_id":"a","ttl_seconds":30,"pad":"{}"}}"#,
                "x".repeat(70 * 1024)
            )),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            app.client
                .post(url("/api/locks/heartbeat"))
                .json(&json!({"resource_id": id, "owner_id": "a", "extra": true})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (app.client.put(url("/api/locks/acquire")), StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
        (app.client.delete(url("/api/resources")), StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
        (app.client.get(url("/api/nothing-here")), StatusCode::NOT_FOUND, "not_found"),
        (app.client.get(url("/api/locks/%E2%9C%93")), StatusCode::UNPROCESSABLE_ENTITY, "invalid_resource_id"),
        (app.client.get(url("/api/locks?status=ASLEEP")), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        (app.client.get(url("/api/locks?bogus=1")), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
    ];
    for (req, status, code) in cases {
        let req = req.build().unwrap();
        let what = format!("{} {}", req.method(), req.url().path());
        let r = app
            .send(
                app.client
                    .request(req.method().clone(), req.url().clone())
                    .headers(req.headers().clone())
                    .body(req.body().and_then(|b| b.as_bytes()).map(|b| b.to_vec()).unwrap_or_default()),
            )
            .await;
        assert_eq!((r.status, r.code()), (status, code), "{what}: {}", r.body);
        assert!(r.body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    app.stop().await;
}

async fn expired_hold_is_reported_and_regranted_with_next_token(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    // No reaper: an expired hold must read as EXPIRED and be grantable without one.
    let app = TestApp::spawn_with(&db, None).await;
    let id = app.create_resource("bed", "B1").await;
    app.acquire(&id, "alice", 1).await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(app.get(&format!("/api/locks/{id}")).await.body["status"], "EXPIRED");
    assert_eq!(app.get("/api/locks?status=EXPIRED").await.body["items"].as_array().unwrap().len(), 1);
    let hb = app.heartbeat(&id, "alice").await;
    assert_eq!((hb.status, hb.code()), (StatusCode::CONFLICT, "lock_expired"));
    let rel = app.release(&id, "alice").await;
    assert_eq!(rel.code(), "lock_expired");

    let bob = app.acquire(&id, "bob", 30).await;
    assert_eq!(bob.status, StatusCode::OK, "{}", bob.body);
    assert_eq!(bob.body["fencing_token"], 2);
    // The first late call is on record (the TTL model learns from it), after the expiry it records first; the
    // late release adds nothing (one late report per hold); then the new grant.
    assert_eq!(app.event_kinds(&id).await, ["resource_created", "acquired", "expired", "late_heartbeat", "acquired"]);
    app.stop().await;

    // With the reaper: the expiry is recorded by itself, once.
    let app = TestApp::spawn(&db).await;
    let id = app.create_resource("bed", "B2").await;
    app.acquire(&id, "carol", 1).await;
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    assert_eq!(app.event_kinds(&id).await, ["resource_created", "acquired", "expired"]);
    let events = app.get(&format!("/api/events?resource_id={id}")).await;
    assert_eq!(events.body["items"][2]["owner_id"], "carol");
    app.stop().await;
}

async fn lock_delay_blocks_regrant_after_expiry_only(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    // The test policy gives `or-room` a 2 s lock-delay.
    let room = app.create_resource("or-room", "OR 7").await;
    app.acquire(&room, "alice", 1).await;
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let r = app.acquire(&room, "bob", 30).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "lock_delay"), "{}", r.body);
    assert!(r.body["error"]["retry_at"].as_str().is_some());
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    let r = app.acquire(&room, "bob", 30).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["fencing_token"], 2);
    // A clean release has no delay.
    app.release(&room, "bob").await;
    assert_eq!(app.acquire(&room, "carol", 30).await.status, StatusCode::OK);
    app.stop().await;
}

async fn lock_listing_filters(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let b1 = app.create_resource("bed", "B1").await;
    let b2 = app.create_resource("bed", "B2").await;
    let m1 = app.create_resource("mri", "M1").await;
    app.acquire(&b1, "alice", 30).await;
    app.acquire(&m1, "alice", 30).await;
    app.acquire(&b2, "bob", 30).await;
    app.release(&b2, "bob").await;

    let ids = |r: &crate::support::Reply| {
        let mut v: Vec<String> =
            r.body["items"].as_array().unwrap().iter().map(|i| i["resource_id"].as_str().unwrap().to_owned()).collect();
        v.sort();
        v
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(ids(&app.get("/api/locks").await), sorted(vec![b1.clone(), b2.clone(), m1.clone()]));
    assert_eq!(ids(&app.get("/api/locks?status=HELD").await), sorted(vec![b1.clone(), m1.clone()]));
    assert_eq!(ids(&app.get("/api/locks?status=held&type=bed").await), vec![b1.clone()]);
    assert_eq!(ids(&app.get("/api/locks?owner_id=bob").await), vec![b2.clone()]);
    assert_eq!(ids(&app.get("/api/locks?status=RELEASED").await), vec![b2.clone()]);
    let listed = app.get("/api/locks?type=mri").await;
    assert_eq!(listed.body["items"][0]["identifier"], "M1");
    assert_eq!(listed.body["items"][0]["type"], "mri");
    app.stop().await;
}

async fn request_id_is_honoured_or_generated(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let r = app.send(app.client.get(format!("{}/healthz", app.url)).header("x-request-id", "clinic-north-42")).await;
    assert_eq!(r.headers["x-request-id"], "clinic-north-42");
    let r = app.get("/api/nowhere").await;
    let generated = r.headers["x-request-id"].to_str().unwrap();
    assert_eq!(generated.len(), 36, "a UUID is generated: {generated}");
    // An unusable id (too long, odd characters) is replaced rather than logged.
    let r = app.send(app.client.get(format!("{}/healthz", app.url)).header("x-request-id", "x".repeat(300))).await;
    assert_ne!(r.headers["x-request-id"].len(), 300);
    app.stop().await;
}

async fn hold_survives_restart_and_tokens_keep_increasing(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let id = app.create_resource("bed", "B1").await;
    for owner in ["a", "b", "c"] {
        assert_eq!(app.acquire(&id, owner, 30).await.status, StatusCode::OK);
        app.release(&id, owner).await;
    }
    let held = app.acquire(&id, "d", 60).await;
    assert_eq!(held.body["fencing_token"], 4);
    app.stop().await;

    let app = TestApp::spawn(&db).await;
    let shown = app.get(&format!("/api/locks/{id}")).await;
    assert_eq!(shown.body["status"], "HELD");
    assert_eq!(shown.body["owner_id"], "d");
    assert_eq!(shown.body["fencing_token"], 4);
    assert_eq!(app.acquire(&id, "e", 30).await.code(), "lock_held");
    assert_eq!(app.heartbeat(&id, "d").await.status, StatusCode::OK);
    app.release(&id, "d").await;
    assert_eq!(app.acquire(&id, "e", 30).await.body["fencing_token"], 5);
    app.stop().await;
}

/// The edge answers 404/405 from `hhs_core::wire::endpoints::ROUTES`; the origin must serve exactly those
/// routes, in both directions: every (method, path) of the table is served, every other method on a table path
/// is 405, and paths outside the table are 404.
async fn the_origin_serves_exactly_the_endpoint_table(b: Backend) {
    use hhs_core::wire::endpoints::ROUTES;
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let concrete = |p: &str| {
        p.replace("{resource_id}", "0190a0c4-7a52-7000-8000-000000000001").replace("{key_id}", "0123456789ab")
    };
    let mut paths: Vec<&str> = ROUTES.iter().map(|r| r.path).collect();
    paths.dedup();
    for path in paths {
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            let declared = ROUTES.iter().any(|r| r.path == path && r.method == method);
            let req =
                app.client.request(method.parse().unwrap(), format!("{}{}", app.url, concrete(path))).json(&json!({}));
            if declared && path == "/api/events/stream" {
                // Served means a stream that stays open; its status is all there is to check.
                assert_eq!(req.send().await.unwrap().status(), StatusCode::OK, "the event stream is served");
                continue;
            }
            let r = app.send(req).await;
            if declared {
                assert!(
                    !matches!(r.code(), "not_found" | "method_not_allowed"),
                    "{method} {path} is declared but answers {} {}",
                    r.status,
                    r.body
                );
            } else {
                assert_eq!(
                    r.code(),
                    "method_not_allowed",
                    "{method} {path} is not declared but answers {} {}",
                    r.status,
                    r.body
                );
            }
        }
    }
    for path in
        ["/api/lock", "/api/locks/acquire/x", "/api/resource", "/api/events/streams", "/api/keys/a/b", "/api/admin"]
    {
        assert_eq!(app.get(path).await.code(), "not_found", "{path} is not in the table");
    }
    app.stop().await;
}

async fn cors_allows_only_the_configured_origins(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn_custom(&db, 0, |s| s.cors_origins = vec!["https://board.hospital.example".into()]).await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, format!("{}/api/locks/acquire", app.url))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization,content-type")
            .send()
    };
    let ok = preflight("https://board.hospital.example").await.unwrap();
    assert_eq!(ok.headers()["access-control-allow-origin"], "https://board.hospital.example");
    let allowed_headers = ok.headers()["access-control-allow-headers"].to_str().unwrap().to_lowercase();
    assert!(allowed_headers.contains("authorization") && allowed_headers.contains("content-type"));
    let other = preflight("https://evil.example").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
    // Without configured origins, no CORS headers at all.
    let plain = TestApp::spawn(&db).await;
    let r = plain
        .client
        .get(format!("{}/healthz", plain.url))
        .header("origin", "https://board.hospital.example")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    plain.stop().await;
    app.stop().await;
}

async fn lock_and_anomaly_lists_are_paged(backend: Backend) {
    let Some((_db, app)) = fresh(backend).await else { return };
    for i in 0..5 {
        let id = app.create_resource("bed", &format!("Paged {i}")).await;
        assert_eq!(app.acquire(&id, "ws-1", 60).await.status, StatusCode::OK);
    }
    for path in ["/api/locks", "/api/ml/anomalies?min_score=0"] {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut seen = vec![];
        let mut next: Option<String> = None;
        loop {
            let url = match &next {
                Some(after) => format!("{path}{sep}limit=2&after={after}"),
                None => format!("{path}{sep}limit=2"),
            };
            let r = app.get(&url).await;
            assert_eq!(r.status, StatusCode::OK, "{url}: {}", r.body);
            let items = r.body["items"].as_array().unwrap();
            assert!(items.len() <= 2);
            seen.extend(items.iter().map(|i| i["resource_id"].as_str().unwrap().to_owned()));
            match r.body["next_after"].as_str() {
                Some(after) => next = Some(after.to_owned()),
                None => break,
            }
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 5, "{path}: every row once over the pages");
        for bad in ["limit=0", "limit=1001", "after=nope"] {
            let r = app.get(&format!("{path}{sep}{bad}")).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{path} {bad}: {}", r.body);
        }
    }
}

async fn a_release_retried_after_a_regrant_succeeds_and_changes_nothing(backend: Backend) {
    let Some((_db, app)) = fresh(backend).await else { return };
    let bed = app.create_resource("bed", "Retry 1").await;
    let c = &app.keys.client;
    let a =
        app.post_as(c, "/api/locks/acquire", json!({"resource_id": bed, "owner_id": "ws-a", "ttl_seconds": 30})).await;
    let release = json!({"resource_id": bed, "owner_id": "ws-a", "fencing_token": fencing_token(&a)});
    assert_eq!(app.post_as(c, "/api/locks/release", release.clone()).await.status, StatusCode::OK);
    let b = app.acquire(&bed, "hq-ws", 30).await; // another principal (hq)
    assert_eq!(fencing_token(&b), 2);
    let retried = app.post_as(c, "/api/locks/release", release).await;
    assert_eq!(retried.status, StatusCode::OK, "{}", retried.body);
    let now = app.get(&format!("/api/locks/{bed}")).await.body;
    assert_eq!(
        (now["status"].as_str(), now["owner_id"].as_str(), now["fencing_token"].as_i64()),
        (Some("HELD"), Some("hq-ws"), Some(2))
    );
    assert_eq!(app.event_kinds(&bed).await.iter().filter(|k| *k == "released").count(), 1);
}

async fn path_parameters_that_are_not_utf8_get_json_errors(backend: Backend) {
    let Some((_db, app)) = fresh(backend).await else { return };
    for (method, path, status, code) in [
        (reqwest::Method::GET, "/api/resources/%00%ff", 422, "invalid_resource_id"),
        (reqwest::Method::GET, "/api/locks/%ff", 422, "invalid_resource_id"),
        (reqwest::Method::DELETE, "/api/resources/%c3%28", 422, "invalid_resource_id"),
        (reqwest::Method::DELETE, "/api/keys/%ff%fe", 404, "key_not_found"),
    ] {
        let r = app.send(app.request_as(method.clone(), path, Some(&app.keys.admin))).await;
        assert_eq!((r.status.as_u16(), r.code()), (status, code), "{method} {path}: {}", r.body);
    }
}
