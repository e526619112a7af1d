//! Regression tests for the faults a review found (issue "Prove the promises under faults"), one or more per
//! fix; each failed before its fix. The two PostgreSQL tests that hold a transaction open on purpose run alone
//! (`TestDb::holding_the_horizon`): a transaction left open anywhere in the cluster holds back the commit
//! horizon that cursor reads stop at (that is the fix), which would slow every other test's stream.

use std::time::Duration;

use crate::support::{mint, Backend, Sse, TestApp, TestDb};
use hhs_core::Role;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::{Connection, Executor, PgConnection, Row, SqliteConnection};

both_stores!(
    deleting_and_recreating_a_resource_keeps_its_names_tokens_rising,
    renaming_onto_a_used_name_continues_above_its_tokens,
    delete_records_an_unrecorded_lapse_first,
    delete_is_refused_during_lock_delay,
    late_calls_are_recorded_once_per_hold_and_do_not_move_another_principals_suggestion,
    lock_and_anomaly_lists_are_paged,
    a_release_retried_after_a_regrant_succeeds_and_changes_nothing,
    path_parameters_that_are_not_utf8_get_json_errors,
    reserved_principals_get_no_key,
    a_flood_of_unknown_key_ids_leaves_the_key_cache_bounded,
);

async fn app(backend: Backend) -> Option<(TestDb, TestApp)> {
    let db = TestDb::new(backend).await?;
    let app = TestApp::spawn(&db).await;
    Some((db, app))
}

fn token(r: &crate::support::Reply) -> i64 {
    r.body["fencing_token"].as_i64().unwrap_or_else(|| panic!("no fencing token in {}", r.body))
}

// --- 1. PostgreSQL: late-committing events ------------------------------------------------------------------

/// An event whose transaction commits after one with a higher id still reaches a live stream, a cursor read and
/// a resumed stream — each exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_late_committing_event_reaches_the_stream_and_every_cursor() {
    let Some(db) = TestDb::holding_the_horizon().await else { return };
    let app = TestApp::spawn(&db).await;
    let bed = app.create_resource("bed", "Late 1").await;
    let before = app.get("/api/locks").await.body["last_event_id"].as_i64().unwrap();
    let mut live = Sse::open(
        app.request_as(reqwest::Method::GET, &format!("/api/events/stream?after={before}"), Some(&app.keys.viewer)),
        None,
    )
    .await;

    // A transaction takes an event id and stays open, as a slow reaper batch or any concurrent writer may.
    let mut slow = PgConnection::connect(db.pg_url().unwrap()).await.unwrap();
    slow.execute("BEGIN").await.unwrap();
    let late_id: i64 =
        sqlx::query_scalar("INSERT INTO events (at_ms, kind, detail) VALUES (0, 'late_marker', '{}') RETURNING id")
            .fetch_one(&mut slow)
            .await
            .unwrap();
    // Meanwhile a grant commits with a higher id.
    let granted = app.acquire(&bed, "ws-1", 30).await;
    assert_eq!(granted.status, StatusCode::OK, "{}", granted.body);
    tokio::time::sleep(Duration::from_millis(600)).await;
    slow.execute("COMMIT").await.unwrap();

    // (Other tests' transactions in the same cluster may hold the horizon back a moment, so `before` may be a little
    // older than the resource's creation: events before the two are allowed, nothing is allowed twice.)
    let mut got: Vec<(String, i64)> = vec![];
    let acquired_id = loop {
        let (kind, data) =
            live.next(Duration::from_secs(5)).await.unwrap_or_else(|| panic!("the stream stopped at {got:?}"));
        got.push((kind.clone(), data["id"].as_i64().unwrap()));
        if kind == "acquired" {
            break data["id"].as_i64().unwrap();
        }
    };
    assert!(live.next(Duration::from_millis(800)).await.is_none(), "nothing after: {got:?}");
    let ids: Vec<i64> = got.iter().map(|(_, id)| *id).collect();
    let late_at = ids
        .iter()
        .position(|i| *i == late_id)
        .unwrap_or_else(|| panic!("the late committer never reached the stream: {got:?}"));
    assert!(late_id < acquired_id && late_at < ids.len() - 1, "commit order (by transaction), not id order: {got:?}");
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "nothing twice: {got:?}");

    // A cursor read from before both returns what the stream did, in the same order; one resumed after the late
    // committer returns the grant and nothing else.
    let page = app.get(&format!("/api/events?after={before}")).await.body;
    let paged: Vec<i64> = page["items"].as_array().unwrap().iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert_eq!(paged, ids, "cursor order is commit order");
    let mut resumed =
        Sse::open(app.request_as(reqwest::Method::GET, "/api/events/stream", Some(&app.keys.viewer)), Some(late_id))
            .await;
    let (_, next) = resumed.next(Duration::from_secs(3)).await.expect("the grant");
    assert_eq!(next["id"].as_i64(), Some(acquired_id));
    assert!(resumed.next(Duration::from_millis(500)).await.is_none());
}

// --- 2. PostgreSQL: the one-statement acquire's clock---------------------------------------------------------

/// An acquire that waits on a locked lease row for longer than its TTL is granted with the time the lock was
/// granted, never born expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_grant_that_waited_for_the_row_lock_is_not_born_expired() {
    let Some(db) = TestDb::holding_the_horizon().await else { return };
    let app = TestApp::spawn_with(&db, None).await;
    let bed = app.create_resource("bed", "Waited 1").await;
    let mut locker = PgConnection::connect(db.pg_url().unwrap()).await.unwrap();
    locker.execute("BEGIN").await.unwrap();
    sqlx::query("SELECT 1 FROM leases WHERE resource_id = $1::uuid FOR UPDATE")
        .bind(&bed)
        .execute(&mut locker)
        .await
        .unwrap();
    let (url, client, bed2) = (app.url.clone(), app.client.clone(), bed.clone());
    let waiting = tokio::spawn(async move {
        client
            .post(format!("{url}/api/locks/acquire"))
            .json(&json!({"resource_id": bed2, "owner_id": "ws-1", "ttl_seconds": 1}))
            .send()
            .await
    });
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let released_at: i64 = sqlx::query_scalar("SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint")
        .fetch_one(&mut locker)
        .await
        .unwrap();
    locker.execute("COMMIT").await.unwrap();
    let resp = waiting.await.unwrap().unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    let ms = |k: &str| chrono::DateTime::parse_from_rfc3339(body[k].as_str().unwrap()).unwrap().timestamp_millis();
    assert!(
        ms("last_heartbeat") >= released_at,
        "heartbeat {} backdated before the lock was granted at {released_at}",
        ms("last_heartbeat")
    );
    assert!(ms("expires_at") > released_at, "born expired: {body}");
    assert_eq!(app.get(&format!("/api/locks/{bed}")).await.body["status"], "HELD");
}

/// Every other transition locks the row, then reads the clock; the clock must come after the lock. A heartbeat
/// that waited for the row past its hold's expiry is refused — never applied as of a moment before the wait,
/// which would renew a hold that had lapsed. (Checked: reading the clock before the lock fails this test.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_heartbeat_that_waited_for_the_row_lock_past_expiry_is_refused() {
    let Some(db) = TestDb::holding_the_horizon().await else { return };
    let app = TestApp::spawn_with(&db, None).await;
    let bed = app.create_resource("bed", "Waited 2").await;
    assert_eq!(app.acquire(&bed, "ws-1", 2).await.status, StatusCode::OK);
    let mut locker = PgConnection::connect(db.pg_url().unwrap()).await.unwrap();
    locker.execute("BEGIN").await.unwrap();
    sqlx::query("SELECT 1 FROM leases WHERE resource_id = $1::uuid FOR UPDATE")
        .bind(&bed)
        .execute(&mut locker)
        .await
        .unwrap();
    let (url, client, key, bed2) = (app.url.clone(), app.client.clone(), app.keys.admin.clone(), bed.clone());
    let waiting = tokio::spawn(async move {
        client
            .post(format!("{url}/api/locks/heartbeat"))
            .bearer_auth(key)
            .json(&json!({"resource_id": bed2, "owner_id": "ws-1"}))
            .send()
            .await
    });
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    locker.execute("COMMIT").await.unwrap();
    let resp = waiting.await.unwrap().unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "lock_expired", "a heartbeat decided with a clock from before its wait: {body}");
}

// --- 3. SQLite durability ------------------------------------------------------------------------------------

#[tokio::test]
async fn sqlite_syncs_every_commit() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let store = hhs_origin::store::SqliteStore::open(db.sqlite_path().unwrap(), 2).await.unwrap();
    let mode: i64 =
        sqlx::query_scalar("PRAGMA synchronous").fetch_one(&store.pool_slot().current().unwrap()).await.unwrap();
    assert_eq!(mode, 2, "synchronous=FULL (2): an acknowledged grant survives power loss");
}

// --- 4. Delete and re-create --------------------------------------------------------------------------------

async fn grant_and_release(app: &TestApp, id: &str) -> i64 {
    let r = app.acquire(id, "ws-1", 30).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(app.release(id, "ws-1").await.status, StatusCode::OK);
    token(&r)
}

async fn deleting_and_recreating_a_resource_keeps_its_names_tokens_rising(backend: Backend) {
    let Some((_db, app)) = app(backend).await else { return };
    let first = app.create_resource("bed", "Ward 3, bed 12").await;
    assert_eq!(grant_and_release(&app, &first).await, 1);
    assert_eq!(grant_and_release(&app, &first).await, 2);
    assert_eq!(app.send(app.client.delete(format!("{}/api/resources/{first}", app.url))).await.status, StatusCode::OK);
    let again = app.create_resource("bed", "Ward 3, bed 12").await;
    assert_eq!(grant_and_release(&app, &again).await, 3, "the old holder's token 2 must be below the new one's");
    // Another name starts at 1 as before.
    let other = app.create_resource("bed", "Ward 3, bed 13").await;
    assert_eq!(grant_and_release(&app, &other).await, 1);
}

async fn renaming_onto_a_used_name_continues_above_its_tokens(backend: Backend) {
    let Some((_db, app)) = app(backend).await else { return };
    let a = app.create_resource("bed", "A").await;
    for _ in 0..3 {
        grant_and_release(&app, &a).await;
    }
    let r = app
        .send(app.client.patch(format!("{}/api/resources/{a}", app.url)).json(&json!({"identifier": "A-old"})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let b = app.create_resource("bed", "B").await;
    let r =
        app.send(app.client.patch(format!("{}/api/resources/{b}", app.url)).json(&json!({"identifier": "A"}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(grant_and_release(&app, &b).await, 4, "a resource renamed onto \"A\" continues above A's tokens");
    assert_eq!(grant_and_release(&app, &a).await, 4, "the renamed resource keeps its own sequence");
}

async fn delete_records_an_unrecorded_lapse_first(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else { return };
    let app = TestApp::spawn_with(&db, None).await; // no reaper: the lapse stays unrecorded
    let bed = app.create_resource("bed", "Lapsed 1").await;
    assert_eq!(app.acquire(&bed, "ws-1", 1).await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let r = app.send(app.client.delete(format!("{}/api/resources/{bed}", app.url))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(app.event_kinds(&bed).await, ["resource_created", "acquired", "expired", "resource_deleted"]);
}

async fn delete_is_refused_during_lock_delay(backend: Backend) {
    let Some((_db, app)) = app(backend).await else { return };
    let room = app.create_resource("or-room", "OR 7").await; // 2 s lock-delay in the test policy
    assert_eq!(app.acquire(&room, "ws-1", 1).await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let r = app.send(app.client.delete(format!("{}/api/resources/{room}", app.url))).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "lock_delay"), "{}", r.body);
    assert!(r.body["error"]["retry_at"].is_string());
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let r = app.send(app.client.delete(format!("{}/api/resources/{room}", app.url))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let kinds = app.event_kinds(&room).await;
    assert_eq!(kinds.iter().filter(|k| *k == "expired").count(), 1, "{kinds:?}");
    assert_eq!(kinds.last().map(String::as_str), Some("resource_deleted"));
}

// --- 5. Late events -----------------------------------------------------------------------------------------

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

// --- 8. Paged lists -----------------------------------------------------------------------------------------

async fn lock_and_anomaly_lists_are_paged(backend: Backend) {
    let Some((_db, app)) = app(backend).await else { return };
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

// --- 9. Release retried after a re-grant --------------------------------------------------------------------

async fn a_release_retried_after_a_regrant_succeeds_and_changes_nothing(backend: Backend) {
    let Some((_db, app)) = app(backend).await else { return };
    let bed = app.create_resource("bed", "Retry 1").await;
    let c = &app.keys.client;
    let a =
        app.post_as(c, "/api/locks/acquire", json!({"resource_id": bed, "owner_id": "ws-a", "ttl_seconds": 30})).await;
    let release = json!({"resource_id": bed, "owner_id": "ws-a", "fencing_token": token(&a)});
    assert_eq!(app.post_as(c, "/api/locks/release", release.clone()).await.status, StatusCode::OK);
    let b = app.acquire(&bed, "hq-ws", 30).await; // another principal (hq)
    assert_eq!(token(&b), 2);
    let retried = app.post_as(c, "/api/locks/release", release).await;
    assert_eq!(retried.status, StatusCode::OK, "{}", retried.body);
    let now = app.get(&format!("/api/locks/{bed}")).await.body;
    assert_eq!(
        (now["status"].as_str(), now["owner_id"].as_str(), now["fencing_token"].as_i64()),
        (Some("HELD"), Some("hq-ws"), Some(2))
    );
    assert_eq!(app.event_kinds(&bed).await.iter().filter(|k| *k == "released").count(), 1);
}

// --- 10. SQLite busy ----------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_busy_is_503_with_retry_after() {
    let mut db = TestDb::new(Backend::Sqlite).await.unwrap();
    db.sqlite_busy_timeout = Some(Duration::from_millis(300));
    let app = TestApp::spawn_with(&db, None).await;
    let bed = app.create_resource("bed", "Busy 1").await;
    let mut other =
        SqliteConnection::connect(&format!("sqlite://{}", db.sqlite_path().unwrap().display())).await.unwrap();
    other.execute("BEGIN EXCLUSIVE").await.unwrap();
    let r = app.acquire(&bed, "ws-1", 30).await;
    assert_eq!((r.status, r.code()), (StatusCode::SERVICE_UNAVAILABLE, "database_unavailable"), "{}", r.body);
    assert_eq!(r.headers.get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    other.execute("COMMIT").await.unwrap();
    assert_eq!(app.acquire(&bed, "ws-1", 30).await.status, StatusCode::OK);
}

// --- 11. Every rejection in the JSON shape ------------------------------------------------------------------

async fn path_parameters_that_are_not_utf8_get_json_errors(backend: Backend) {
    let Some((_db, app)) = app(backend).await else { return };
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

// --- 12. Audit trail ----------------------------------------------------------------------------------------

async fn reserved_principals_get_no_key(backend: Backend) {
    let Some((_db, app)) = app(backend).await else { return };
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
    hhs_origin::grant::grant_service_role(&owner_url, &role).await.unwrap();
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

// --- 7. The key cache ---------------------------------------------------------------------------------------

async fn a_flood_of_unknown_key_ids_leaves_the_key_cache_bounded(backend: Backend) {
    use futures::StreamExt;
    let Some((_db, app)) = app(backend).await else { return };
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

// --- Constraint names (the refactor issue) ------------------------------------------------------------------

/// Only the (type, identifier) collision is `resource_exists`; another unique violation — a key id drawn twice —
/// is not reported as a resource that exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_a_resource_name_collision_is_reported_as_an_existing_resource() {
    use hhs_origin::store::{Actor, KeyRecord, StoreError};
    for backend in [Backend::Postgres, Backend::Sqlite] {
        let Some(db) = TestDb::new(backend).await else { continue };
        let store = db.store().await;
        let key = KeyRecord {
            id: "0123456789ab".into(),
            principal: "hq".into(),
            role: Role::Admin,
            secret_sha256: vec![0; 32],
            created_at_ms: 0,
            revoked_at_ms: None,
        };
        store.create_key(&key, &Actor::system("test")).await.expect("first key");
        let again = store.create_key(&key, &Actor::system("test")).await;
        assert!(matches!(again, Err(StoreError::Db(_))), "{backend:?}: {again:?}");
        let (ty, ident) =
            (hhs_core::ResourceType::parse("bed").unwrap(), hhs_core::Identifier::parse("Twice").unwrap());
        let new_id = || hhs_core::ResourceId(uuid::Uuid::now_v7());
        store
            .create_resource(
                new_id(),
                &ty,
                &ident,
                &hhs_core::Policy::default().for_type("bed"),
                &Actor::system("test"),
            )
            .await
            .expect("first resource");
        let twice = store
            .create_resource(
                new_id(),
                &ty,
                &ident,
                &hhs_core::Policy::default().for_type("bed"),
                &Actor::system("test"),
            )
            .await;
        assert!(matches!(twice, Err(StoreError::Exists)), "{backend:?}: {twice:?}");
    }
}
