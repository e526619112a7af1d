//! Security: the role × endpoint matrix, principal-scoped holds, force-release, key lifecycle (no key for a
//! reserved principal; the key cache bounded under a flood of unknown key ids), the audit trail and its export
//! and guards (SQLite refuses to replace an event; the service's PostgreSQL role may only insert and read
//! events), and that no key ever reaches a log line. Both stores.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::support::{fresh, mint, Backend, TestApp, TestDb};
use hhs_core::Role;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::{Connection, Executor, PgConnection, Row, SqliteConnection};

both_stores!(
    open_routes_need_no_key,
    role_endpoint_matrix,
    another_principal_cannot_heartbeat_or_release_and_changes_nothing,
    force_release_applies_lock_delay_and_old_holder_is_not_holder,
    key_lifecycle_over_http_and_revocation_reaches_other_replicas,
    audit_table_refuses_update_and_delete,
    audit_export_streams_every_event_in_order,
    failed_authentications_are_recorded_rate_limited,
    no_key_or_secret_appears_in_logs,
    reserved_principals_get_no_key,
    a_flood_of_unknown_key_ids_leaves_the_key_cache_bounded,
);

/// Captures every log line of this test binary, so a test can search them for secrets.
fn logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        struct W(Arc<Mutex<Vec<u8>>>);
        impl Write for W {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = buf.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || W(sink.clone()))
            .try_init()
            .ok();
        buf
    })
    .clone()
}

async fn open_routes_need_no_key(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    for path in ["/", "/healthz"] {
        let r = app.send(app.request_as(Method::GET, path, None)).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
    }
    app.stop().await;
}

/// The least role each route needs; every route of the shared table is here (checked below).
fn routes() -> Vec<(&'static str, Role)> {
    vec![
        ("GET /api/resources", Role::Viewer),
        ("GET /api/resources/{id}", Role::Viewer),
        ("POST /api/resources", Role::Admin),
        ("PATCH /api/resources/{id}", Role::Integration),
        ("POST /api/hl7/v2", Role::Integration),
        ("DELETE /api/resources/{id}", Role::Admin),
        ("GET /api/locks", Role::Viewer),
        ("GET /api/locks/{id}", Role::Viewer),
        ("POST /api/locks/acquire", Role::Client),
        ("POST /api/locks/heartbeat", Role::Client),
        ("POST /api/locks/release", Role::Client),
        ("POST /api/locks/force-release", Role::Admin),
        ("GET /api/events", Role::Viewer),
        ("GET /api/events/stream", Role::Viewer),
        ("POST /api/ml/suggest", Role::Viewer),
        ("GET /api/ml/anomalies", Role::Viewer),
        ("GET /api/audit/export", Role::Admin),
        ("GET /api/whoami", Role::Viewer),
        ("GET /api/keys", Role::Admin),
        ("POST /api/keys", Role::Admin),
        ("DELETE /api/keys/{key}", Role::Admin),
        ("GET /api/types", Role::Viewer),
        ("GET /api/types/{type}", Role::Viewer),
        ("PUT /api/types/{type}", Role::Admin),
        ("GET /api/sessions", Role::Viewer),
        ("POST /api/sessions", Role::Client),
        ("GET /api/sessions/{session}", Role::Viewer),
        ("POST /api/sessions/{session}/keepalive", Role::Client),
        ("DELETE /api/sessions/{session}", Role::Client),
        ("POST /api/locks/book", Role::Client),
        ("POST /api/locks/acquire-group", Role::Client),
        ("POST /api/locks/heartbeat-group", Role::Client),
        ("POST /api/locks/release-group", Role::Client),
    ]
}

/// Sets up what a route needs to succeed for a caller with `key` (a fresh resource, held by that caller where it
/// must be), then calls it.
async fn call(app: &TestApp, route: &str, key: Option<&str>, n: usize) -> crate::support::Reply {
    let (method, path) = route.split_once(' ').unwrap();
    let id = app.create_resource("bed", &format!("{route} #{n}")).await;
    let owner = format!("ws-{n}");
    // Hold it as the caller for heartbeat/release (only possible with a client-capable key).
    if matches!(path, "/api/locks/heartbeat" | "/api/locks/release") {
        if let Some(k) = key {
            app.post_as(k, "/api/locks/acquire", json!({"resource_id": id, "owner_id": owner, "ttl_seconds": 60}))
                .await;
        }
    }
    if path == "/api/locks/force-release" {
        app.acquire(&id, "someone", 60).await;
    }
    if path == "/api/locks/book" {
        if let Some(k) = key {
            app.post_as(k, "/api/locks/acquire", json!({"resource_id": id, "owner_id": owner, "ttl_seconds": 60}))
                .await;
        }
    }
    // A session of the caller's where it may open one (else one of the client's: the role check comes first).
    let session = if path.contains("{session}") {
        let opened =
            app.post_as(key.unwrap_or_default(), "/api/sessions", json!({"owner_id": owner, "ttl_seconds": 60})).await;
        let opened = if opened.status.is_success() {
            opened
        } else {
            app.post_as(&app.keys.client, "/api/sessions", json!({"owner_id": owner})).await
        };
        opened.body["id"].as_str().unwrap().to_owned()
    } else {
        String::new()
    };
    // Two more resources, held as a group by the caller where it may (else a group id nobody holds).
    let (second, third) = (
        app.create_resource("bed", &format!("{route} #{n} b")).await,
        app.create_resource("bed", &format!("{route} #{n} c")).await,
    );
    let group = if path.ends_with("-group") && path != "/api/locks/acquire-group" {
        let members = json!([{"resource_id": second}, {"resource_id": third}]);
        let held = app
            .post_as(
                key.unwrap_or_default(),
                "/api/locks/acquire-group",
                json!({"resources": members, "owner_id": owner, "ttl_seconds": 60}),
            )
            .await;
        held.body["group_id"].as_str().unwrap_or("0190a0c4-7a52-7000-8000-000000000001").to_owned()
    } else {
        String::new()
    };
    let until = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    let victim_key = if path.contains("{key}") {
        let created = app.post("/api/keys", json!({"principal": "victim", "role": "viewer"})).await;
        created.body["id"].as_str().unwrap().to_owned()
    } else {
        String::new()
    };
    let path =
        path.replace("{id}", &id).replace("{key}", &victim_key).replace("{type}", "bed").replace("{session}", &session);
    let body: Option<Value> = match (method, path.as_str()) {
        ("POST", "/api/resources") => Some(json!({"type": "mri", "identifier": format!("M{n}")})),
        ("PATCH", _) => Some(json!({"status": "H"})),
        ("POST", "/api/locks/acquire") => Some(json!({"resource_id": id, "owner_id": owner, "ttl_seconds": 60})),
        ("POST", "/api/locks/book") => Some(json!({"resource_id": id, "owner_id": owner, "until": until})),
        ("POST", "/api/locks/heartbeat" | "/api/locks/release") => Some(json!({"resource_id": id, "owner_id": owner})),
        ("POST", "/api/locks/force-release") => Some(json!({"resource_id": id, "reason": "matrix test"})),
        ("POST", "/api/keys") => Some(json!({"principal": format!("p{n}"), "role": "viewer"})),
        ("POST", "/api/ml/suggest") => Some(json!({"resource_id": id, "owner_id": owner})),
        ("PUT", "/api/types/bed") => Some(json!({"default_ttl_seconds": 300})),
        ("POST", "/api/sessions") => Some(json!({"owner_id": owner, "ttl_seconds": 60})),
        ("POST", "/api/locks/acquire-group") => Some(
            json!({"resources": [{"resource_id": second}, {"resource_id": third}], "owner_id": owner, "ttl_seconds": 60}),
        ),
        ("POST", "/api/locks/heartbeat-group" | "/api/locks/release-group") => {
            Some(json!({"group_id": group, "owner_id": owner}))
        }
        _ => None,
    };
    let mut req = app.request_as(method.parse().unwrap(), &path, key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    if path == "/api/hl7/v2" {
        let a20 = format!("MSH|^~\\&|ADT|WARD|HHS|HHS|20261127010000||ADT^A20|M{n}|P|2.5\rNPU|4W^401^A|H\r");
        req = req.header("content-type", "application/hl7-v2").body(a20);
    }
    if path == "/api/events/stream" {
        // A granted stream never ends: judge it by its status and headers.
        let resp = req.send().await.unwrap();
        let (status, headers) = (resp.status(), resp.headers().clone());
        let body = if status.is_success() { Value::Null } else { resp.json().await.unwrap_or(Value::Null) };
        return crate::support::Reply { status, body, headers };
    }
    app.send(req).await
}

async fn role_endpoint_matrix(b: Backend) {
    let covered: Vec<String> = routes()
        .iter()
        .map(|(r, _)| {
            r.replace("{key}", "{key_id}")
                .replace("{id}", "{resource_id}")
                .replace("{type}", "{type_name}")
                .replace("{session}", "{session_id}")
        })
        .collect();
    for route in hhs_core::wire::endpoints::ROUTES {
        let name = format!("{} {}", route.method, route.path);
        let i =
            covered.iter().position(|c| *c == name).unwrap_or_else(|| panic!("{name} is missing from the role matrix"));
        assert_eq!(routes()[i].1, route.role, "{name}: the endpoint table and the matrix disagree on its role");
    }
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let integration = mint(&app.store, "adt-feed", Role::Integration).await;
    let revoked = mint(&app.store, "clinic-gone", Role::Admin).await;
    let revoked_id = revoked.split('_').nth(1).unwrap().to_owned();
    assert_eq!(
        app.send(app.request_as(Method::DELETE, &format!("/api/keys/{revoked_id}"), Some(&app.keys.admin)))
            .await
            .status,
        StatusCode::OK
    );
    let unknown = format!("hhs_{}_{}", "0".repeat(12), "0".repeat(64));
    let wrong_secret = format!(
        "{}{}",
        &app.keys.admin[..app.keys.admin.len() - 1],
        if app.keys.admin.ends_with('0') { "1" } else { "0" }
    );

    let mut n = 0;
    for (route, needed) in routes() {
        for (label, key) in [
            ("no key", None),
            ("garbled", Some("not-a-key")),
            ("unknown", Some(unknown.as_str())),
            ("wrong secret", Some(wrong_secret.as_str())),
            ("revoked", Some(revoked.as_str())),
        ] {
            n += 1;
            let r = call(&app, route, key, n).await;
            assert_eq!((r.status, r.code()), (StatusCode::UNAUTHORIZED, "unauthenticated"), "{route} with {label} key");
            assert!(
                r.headers.get("www-authenticate").is_some_and(|v| v.to_str().unwrap().starts_with("Bearer")),
                "{route}"
            );
        }
        for (role, key) in [
            (Role::Viewer, &app.keys.viewer),
            (Role::Client, &app.keys.client),
            (Role::Admin, &app.keys.admin),
            (Role::Integration, &integration),
        ] {
            n += 1;
            let r = call(&app, route, Some(key), n).await;
            if role.allows(needed) {
                assert!(r.status.is_success(), "{route} as {role:?}: {} {}", r.status, r.body);
            } else {
                assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "forbidden"), "{route} as {role:?}");
                let name = needed.as_str();
                let article = if name.starts_with(['a', 'i']) { "an" } else { "a" };
                let said = r.body["error"]["message"].as_str().unwrap_or_default().to_owned();
                assert!(said.starts_with(&format!("this needs {article} {name} key")), "{route}: {said}");
            }
        }
    }
    app.stop().await;
}

async fn another_principal_cannot_heartbeat_or_release_and_changes_nothing(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let south = mint(&app.store, "clinic-south", Role::Client).await;
    let north2 = mint(&app.store, "clinic-north", Role::Client).await;
    let id = app.create_resource("bed", "B1").await;
    let held = app
        .post_as(
            &app.keys.client,
            "/api/locks/acquire",
            json!({"resource_id": id, "owner_id": "ws-1", "ttl_seconds": 60}),
        )
        .await;
    assert_eq!(held.body["principal"], "clinic-north");
    let before_state = app.get(&format!("/api/locks/{id}")).await.body;
    let before_events = app.event_kinds(&id).await;

    for path in ["/api/locks/heartbeat", "/api/locks/release"] {
        // Same owner id and even the right token: still another clinic's hold.
        let r = app.post_as(&south, path, json!({"resource_id": id, "owner_id": "ws-1", "fencing_token": 1})).await;
        assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "not_your_hold"), "{path}");
    }
    let r = app
        .post_as(&south, "/api/locks/acquire", json!({"resource_id": id, "owner_id": "ws-1", "ttl_seconds": 60}))
        .await;
    assert_eq!(r.code(), "lock_held");
    assert_eq!(app.get(&format!("/api/locks/{id}")).await.body, before_state);
    assert_eq!(app.event_kinds(&id).await, before_events);

    // Within one principal, owner ids still decide; another key of the same clinic is the same principal.
    let r = app.post_as(&north2, "/api/locks/heartbeat", json!({"resource_id": id, "owner_id": "ws-2"})).await;
    assert_eq!(r.code(), "not_holder");
    let r = app.post_as(&north2, "/api/locks/release", json!({"resource_id": id, "owner_id": "ws-1"})).await;
    assert_eq!(r.body["status"], "RELEASED");
    app.stop().await;
}

async fn force_release_applies_lock_delay_and_old_holder_is_not_holder(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let south = mint(&app.store, "clinic-south", Role::Client).await;
    // `or-room` has a 2 s lock-delay in the test policy.
    let id = app.create_resource("or-room", "OR 3").await;
    app.post_as(
        &app.keys.client,
        "/api/locks/acquire",
        json!({"resource_id": id, "owner_id": "ws-1", "ttl_seconds": 600}),
    )
    .await;

    let missing_reason = app.post("/api/locks/force-release", json!({"resource_id": id, "reason": " "})).await;
    assert_eq!(missing_reason.code(), "validation_failed");
    let r = app.post("/api/locks/force-release", json!({"resource_id": id, "reason": "patient moved to OR 4"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["status"], "FORCE_RELEASED");
    assert!(r.body["lock_delay_until"].as_str().is_some());
    let again = app.post("/api/locks/force-release", json!({"resource_id": id, "reason": "again"})).await;
    assert_eq!(again.code(), "lock_not_held");

    let r = app
        .post_as(&south, "/api/locks/acquire", json!({"resource_id": id, "owner_id": "ws-9", "ttl_seconds": 60}))
        .await;
    assert_eq!(r.code(), "lock_delay");
    let r = app.post_as(&app.keys.client, "/api/locks/heartbeat", json!({"resource_id": id, "owner_id": "ws-1"})).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "not_holder"));

    let events = app.get(&format!("/api/events?resource_id={id}")).await.body;
    let forced = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "force_released")
        .expect("force_released event");
    assert_eq!(forced["principal"], "hq");
    assert_eq!(forced["detail"]["reason"], "patient moved to OR 4");
    assert_eq!(forced["detail"]["hold_principal"], "clinic-north");
    assert!(forced["key_id"].as_str().is_some_and(|k| app.keys.admin.contains(k)));
    assert!(forced["request_id"].as_str().is_some());

    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let r = app
        .post_as(&south, "/api/locks/acquire", json!({"resource_id": id, "owner_id": "ws-9", "ttl_seconds": 60}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["fencing_token"], 2);
    app.stop().await;
}

async fn key_lifecycle_over_http_and_revocation_reaches_other_replicas(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let replica = TestApp::spawn(&db).await;
    let created = app.post("/api/keys", json!({"principal": "clinic-east", "role": "client"})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let key = created.body["key"].as_str().unwrap().to_owned();
    let key_id = created.body["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with(&format!("hhs_{key_id}_")));
    assert_eq!(created.body["role"], "client");

    let listed = app.get("/api/keys").await;
    let text = listed.body.to_string();
    assert!(text.contains(&key_id) && !text.contains(&key[key.len() - 64..]), "the list shows ids, never secrets");

    assert_eq!(app.get_as(&key, "/api/locks").await.status, StatusCode::OK);
    assert_eq!(replica.get_as(&key, "/api/locks").await.status, StatusCode::OK, "the replica has it cached now");
    let bad = app.post("/api/keys", json!({"principal": "x", "role": "superuser"})).await;
    assert_eq!(bad.code(), "validation_failed");

    let revoked = app.send(app.request_as(Method::DELETE, &format!("/api/keys/{key_id}"), Some(&app.keys.admin))).await;
    assert_eq!(revoked.status, StatusCode::OK);
    assert!(revoked.body["revoked_at"].as_str().is_some());
    assert_eq!(app.get_as(&key, "/api/locks").await.status, StatusCode::UNAUTHORIZED, "at once where it was revoked");
    let start = Instant::now();
    while replica.get_as(&key, "/api/locks").await.status != StatusCode::UNAUTHORIZED {
        assert!(start.elapsed() < Duration::from_secs(5), "the other replica still accepts a revoked key after 5 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let missing = app.send(app.request_as(Method::DELETE, "/api/keys/000000000000", Some(&app.keys.admin))).await;
    assert_eq!((missing.status, missing.code()), (StatusCode::NOT_FOUND, "key_not_found"));

    let kinds: Vec<Value> = app.get("/api/events?limit=1000").await.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].clone())
        .collect();
    assert!(kinds.contains(&json!("key_created")) && kinds.contains(&json!("key_revoked")));
    replica.stop().await;
    app.stop().await;
}

async fn audit_table_refuses_update_and_delete(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    app.create_resource("bed", "B1").await;
    let attempts = ["UPDATE events SET kind = 'forged'", "DELETE FROM events"];
    for sql in attempts {
        let err = match b {
            Backend::Postgres => {
                let pool = sqlx::PgPool::connect(db.pg_url().unwrap()).await.unwrap();
                sqlx::query(sql).execute(&pool).await.expect_err("refused")
            }
            Backend::Sqlite => {
                let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.sqlite_path().unwrap().display()))
                    .await
                    .unwrap();
                sqlx::query(sql).execute(&pool).await.expect_err("refused")
            }
        };
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    if b == Backend::Postgres {
        let pool = sqlx::PgPool::connect(db.pg_url().unwrap()).await.unwrap();
        let err = sqlx::query("TRUNCATE events").execute(&pool).await.expect_err("refused");
        assert!(err.to_string().contains("append-only"), "{err}");
    }
    let events = app.get("/api/events").await.body;
    assert!(events["items"].as_array().unwrap().iter().any(|e| e["kind"] == "resource_created"), "nothing was changed");
    app.stop().await;
}

async fn audit_export_streams_every_event_in_order(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let id = app.create_resource("bed", "B1").await;
    // Enough events to span more than one export page (1,000 events a page).
    for i in 0..520 {
        let owner = format!("ws-{i}");
        app.post_as(
            &app.keys.client,
            "/api/locks/acquire",
            json!({"resource_id": id, "owner_id": owner, "ttl_seconds": 60}),
        )
        .await;
        app.post_as(&app.keys.client, "/api/locks/release", json!({"resource_id": id, "owner_id": owner})).await;
    }
    app.settle_log().await;
    let resp = app.client.get(format!("{}/api/audit/export", app.url)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
    let body = resp.text().await.unwrap();
    let lines: Vec<Value> = body.lines().map(|l| serde_json::from_str(l).expect("each line is JSON")).collect();
    let ids: Vec<i64> = lines.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in order, no repeats");
    let kinds = |k: &str| lines.iter().filter(|e| e["kind"] == k).count();
    assert_eq!(kinds("acquired"), 520);
    assert_eq!(kinds("released"), 520);
    assert!(lines.len() >= 1 + 3 + 1040, "every event: {}", lines.len());

    // A window: nothing before `since` or at/after `until`.
    let mid = &lines[lines.len() / 2];
    let at = mid["at"].as_str().unwrap();
    let after = app
        .client
        .get(format!("{}/api/audit/export", app.url))
        .query(&[("since", at)])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(after.lines().all(|l| serde_json::from_str::<Value>(l).unwrap()["at"].as_str().unwrap() >= at));
    let before = app
        .client
        .get(format!("{}/api/audit/export", app.url))
        .query(&[("until", at)])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(before.lines().all(|l| serde_json::from_str::<Value>(l).unwrap()["at"].as_str().unwrap() < at));
    assert_eq!(app.get("/api/audit/export?since=yesterday").await.code(), "validation_failed");
    app.stop().await;
}

async fn failed_authentications_are_recorded_rate_limited(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    for _ in 0..25 {
        let r = app.send(app.request_as(Method::GET, "/api/locks", Some("garbage"))).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let events = app.get("/api/events?limit=1000").await.body;
    let failures: Vec<&Value> =
        events["items"].as_array().unwrap().iter().filter(|e| e["kind"] == "auth_failed").collect();
    assert!(!failures.is_empty() && failures.len() <= 2, "rate-limited: {} events for 25 failures", failures.len());
    assert_eq!(failures[0]["outcome"], "unauthenticated");
    assert_eq!(failures[0]["detail"]["reason"], "malformed");
    app.stop().await;
}

async fn no_key_or_secret_appears_in_logs(b: Backend) {
    let logs = logs();
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let id = app.create_resource("bed", "B1").await;
    let created = app.post("/api/keys", json!({"principal": "clinic-west", "role": "client"})).await;
    let west = created.body["key"].as_str().unwrap().to_owned();
    app.post_as(&west, "/api/locks/acquire", json!({"resource_id": id, "owner_id": "ws", "ttl_seconds": 60})).await;
    app.post_as(&app.keys.viewer, "/api/locks/release", json!({"resource_id": id, "owner_id": "ws"})).await;
    let near_miss = format!("{}ff", &west[..west.len() - 2]);
    app.get_as(&near_miss, "/api/locks").await;
    app.get_as(&format!("{west}extra"), "/api/locks").await;
    app.post("/api/locks/force-release", json!({"resource_id": id, "reason": "log test"})).await;
    app.send(app.request_as(
        Method::DELETE,
        &format!("/api/keys/{}", created.body["id"].as_str().unwrap()),
        Some(&app.keys.admin),
    ))
    .await;
    let own_keys = [app.keys.admin.clone(), app.keys.client.clone(), app.keys.viewer.clone()];
    app.stop().await;

    let captured = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(captured.contains("hold force-released"), "the logs were captured");
    for secret in [&west, &near_miss, &own_keys[0], &own_keys[1], &own_keys[2]] {
        let secret_part = &secret[secret.len() - 64..];
        assert!(!captured.contains(secret_part), "a key's secret is in the logs");
    }
    assert!(!captured.to_lowercase().contains("bearer hhs_"), "an Authorization header is in the logs");
}

async fn reserved_principals_get_no_key(backend: Backend) {
    let Some((_db, app)) = fresh(backend).await else { return };
    for principal in ["hhs:reaper", "hhs:cli", "anonymous"] {
        let r = app.post("/api/keys", json!({"principal": principal, "role": "admin"})).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            "{principal}: {}",
            r.body
        );
    }
}

#[tokio::test]
async fn sqlite_refuses_insert_or_replace_into_events() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let app = TestApp::spawn(&db).await;
    app.create_resource("bed", "Audit 1").await;
    let mut conn =
        SqliteConnection::connect(&format!("sqlite://{}", db.sqlite_path().unwrap().display())).await.unwrap();
    let first: (i64, String) =
        sqlx::query_as("SELECT id, kind FROM events ORDER BY id LIMIT 1").fetch_one(&mut conn).await.unwrap();
    for sql in [
        "INSERT OR REPLACE INTO events (id, at_ms, kind) VALUES (?1, 0, 'forged')",
        "REPLACE INTO events (id, at_ms, kind) VALUES (?1, 0, 'forged')",
    ] {
        let err = sqlx::query(sql).bind(first.0).execute(&mut conn).await.expect_err(sql);
        assert!(err.to_string().contains("append-only"), "{err}");
    }
    let kind: String =
        sqlx::query_scalar("SELECT kind FROM events WHERE id = ?1").bind(first.0).fetch_one(&mut conn).await.unwrap();
    assert_eq!(kind, first.1);
}

/// `serve` runs as a role that `migrate --grant-to` made: it works, and it cannot rewrite the audit trail or
/// disable the triggers that guard it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serve_runs_as_a_role_that_may_only_insert_and_select_events() {
    let Some(db) = TestDb::new(Backend::Postgres).await else { return };
    let owner_url = db.pg_url().unwrap().to_owned();
    db.store().await; // migrated by the owner
    let role = format!("hhs_app_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let mut admin = PgConnection::connect(&owner_url).await.unwrap();
    admin.execute(format!("CREATE ROLE {role} LOGIN").as_str()).await.unwrap();
    hhs_origin::service_role::limit_privileges(&owner_url, &role).await.unwrap();
    let app_url = owner_url.replacen("postgres@", &format!("{role}@"), 1);
    assert_ne!(app_url, owner_url);

    let store = std::sync::Arc::new(hhs_origin::store::PgStore::connect(&app_url, 1, 5).await.unwrap());
    use hhs_origin::store::Store;
    store.migrate().await.expect("an up-to-date schema needs nothing from the service role");
    let key = mint(&(store.clone() as hhs_origin::store::DynStore), "hq", Role::Admin).await;
    let (listener, settings) =
        (tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(), crate::support::test_settings());
    let running =
        hhs_origin::server::spawn(listener, store.clone(), settings, tokio_util::sync::CancellationToken::new())
            .unwrap();
    let http = reqwest::Client::new();
    let url = format!("http://{}", running.addr);
    let created: Value = http
        .post(format!("{url}/api/resources"))
        .bearer_auth(&key)
        .json(&json!({"type": "bed", "identifier": "Least privilege"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap();
    for (path, body) in [
        ("acquire", json!({"resource_id": id, "owner_id": "ws-1", "ttl_seconds": 30})),
        ("release", json!({"resource_id": id, "owner_id": "ws-1"})),
    ] {
        let r = http.post(format!("{url}/api/locks/{path}")).bearer_auth(&key).json(&body).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
    // Sessions and the wait queue run as the service role too.
    let session: Value = http
        .post(format!("{url}/api/sessions"))
        .bearer_auth(&key)
        .json(&json!({"owner_id": "ws-1", "ttl_seconds": 30}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sid = session["id"].as_str().unwrap_or_else(|| panic!("no session: {session}"));
    let r = http.post(format!("{url}/api/sessions/{sid}/keepalive")).bearer_auth(&key).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "keepalive");
    let hold = json!({"resource_id": id, "owner_id": "ws-1", "ttl_seconds": 30});
    assert_eq!(
        http.post(format!("{url}/api/locks/acquire")).bearer_auth(&key).json(&hold).send().await.unwrap().status(),
        StatusCode::OK
    );
    let wait = json!({"resource_id": id, "owner_id": "ws-2", "ttl_seconds": 30, "wait_seconds": 1});
    let waited: Value = http
        .post(format!("{url}/api/locks/acquire"))
        .bearer_auth(&key)
        .json(&wait)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(waited["error"]["code"], "lock_held", "a wait in the queue: {waited}");
    let release = json!({"resource_id": id, "owner_id": "ws-1"});
    assert_eq!(
        http.post(format!("{url}/api/locks/release")).bearer_auth(&key).json(&release).send().await.unwrap().status(),
        StatusCode::OK
    );
    let r = http.delete(format!("{url}/api/resources/{id}")).bearer_auth(&key).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let mut svc = PgConnection::connect(&app_url).await.unwrap();
    // What a resumption after an outage takes (`Dialect::LOCK_OUTAGES`).
    svc.execute("BEGIN").await.unwrap();
    svc.execute("LOCK TABLE outages IN SHARE ROW EXCLUSIVE MODE")
        .await
        .expect("the service role may serialise resumptions");
    svc.execute("ROLLBACK").await.unwrap();
    for sql in [
        "UPDATE events SET kind = 'forged'",
        "DELETE FROM events",
        "TRUNCATE events",
        "ALTER TABLE events DISABLE TRIGGER ALL",
        "DROP TRIGGER events_no_update_delete ON events",
        "DROP TABLE events",
    ] {
        let err = svc.execute(sql).await.expect_err(sql);
        let code = err.as_database_error().and_then(|e| e.code()).map(|c| c.into_owned());
        assert_eq!(code.as_deref(), Some("42501"), "{sql}: {err}"); // insufficient_privilege / must be owner
    }
    let n: i64 = sqlx::query("SELECT count(*) AS n FROM events WHERE kind = 'resource_deleted'")
        .fetch_one(&mut svc)
        .await
        .unwrap()
        .get("n");
    assert_eq!(n, 1);
    running.stop().await;
}

async fn a_flood_of_unknown_key_ids_leaves_the_key_cache_bounded(backend: Backend) {
    use futures::StreamExt;
    let Some((_db, app)) = fresh(backend).await else { return };
    assert_eq!(app.get_as(&app.keys.viewer, "/api/whoami").await.status, StatusCode::OK);
    let flood = 5_000 + hhs_origin::http::key_cache::UNKNOWN_CAPACITY;
    let requests = futures::stream::iter(0..flood).map(|i| {
        let key = format!("hhs_{:012x}_{}", 0xabc000000u64 + i as u64, "0".repeat(64));
        let req = app.request_as(reqwest::Method::GET, "/api/whoami", Some(&key));
        async move { req.send().await.map(|r| r.status()).ok() }
    });
    let statuses: Vec<_> = requests.buffer_unordered(32).collect().await;
    assert!(statuses.iter().all(|s| *s == Some(StatusCode::UNAUTHORIZED)));
    let metrics = app.client.get(format!("{}/metrics", app.url)).send().await.unwrap().text().await.unwrap();
    let gauge = |kind: &str| -> usize {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("hhs_key_cache_entries{{kind=\"{kind}\"}} ")))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    assert!(gauge("unknown") <= hhs_origin::http::key_cache::UNKNOWN_CAPACITY, "{metrics}");
    assert!(gauge("known") >= 1, "the viewer key checked before the flood stays cached");
    assert_eq!(app.get_as(&app.keys.viewer, "/api/whoami").await.status, StatusCode::OK);
}
