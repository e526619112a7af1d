//! PostgreSQL: a decision taken after waiting for a lease row's lock sees what the transaction it waited for
//! committed — the resource's status and its type's policy, not the snapshot from before the wait — and the
//! clock read after the wait: an acquire is never born expired, a heartbeat past its hold's expiry is refused. (SQLite's
//! writers take turns from `BEGIN IMMEDIATE`, so nothing there reads before a wait.)

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::{Connection, Executor, PgConnection};

use crate::support::{Reply, TestApp, TestDb};

/// Sends `body` to `path` while another transaction holds `bed`'s lease row and runs `change`; commits the
/// change after the request has been waiting for a while, and returns the request's answer.
async fn decided_after_a_wait(db: &TestDb, app: &TestApp, bed: &str, change: &str, path: &str, body: Value) -> Reply {
    let mut side = PgConnection::connect(db.pg_url().unwrap()).await.unwrap();
    side.execute("BEGIN").await.unwrap();
    sqlx::query("SELECT 1 FROM leases WHERE resource_id = $1::uuid FOR UPDATE")
        .bind(bed)
        .execute(&mut side)
        .await
        .unwrap();
    sqlx::query(change).bind(bed).execute(&mut side).await.unwrap();
    let request = app.request_as(Method::POST, path, Some(&app.keys.client)).json(&body);
    let waiting = tokio::spawn(async move { request.send().await });
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!waiting.is_finished(), "the request should wait for the lease row's lock");
    side.execute("COMMIT").await.unwrap();
    let resp = waiting.await.unwrap().unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    Reply { status, body: resp.json().await.unwrap_or(Value::Null), headers }
}

const SET_K: &str = "UPDATE resources SET status = 'K' WHERE id = $1::uuid";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_acquire_queued_behind_a_status_change_sees_the_new_status() {
    let Some(db) = TestDb::holding_the_horizon().await else { return };
    let app = TestApp::spawn_with(&db, None).await;
    let bed = app.create_resource("bed", "Wait K1").await;
    let body = json!({"resource_id": bed, "owner_id": "ws-1", "ttl_seconds": 30});
    let r = decided_after_a_wait(&db, &app, &bed, SET_K, "/api/locks/acquire", body).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "resource_unavailable"),
        "granted on a bed just marked K: {}",
        r.body
    );
    assert_eq!(app.get(&format!("/api/locks/{bed}")).await.body["status"], "FREE");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_session_acquire_queued_behind_a_status_change_sees_the_new_status() {
    let Some(db) = TestDb::holding_the_horizon().await else { return };
    let app = TestApp::spawn_with(&db, None).await;
    let bed = app.create_resource("bed", "Wait K2").await;
    let opened = app
        .send(
            app.request_as(Method::POST, "/api/sessions", Some(&app.keys.client))
                .json(&json!({"owner_id": "ws-1", "ttl_seconds": 30})),
        )
        .await;
    assert_eq!(opened.status, StatusCode::CREATED, "{}", opened.body);
    let body = json!({"resource_id": bed, "owner_id": "ws-1", "session_id": opened.body["id"]});
    let r = decided_after_a_wait(&db, &app, &bed, SET_K, "/api/locks/acquire", body).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "resource_unavailable"),
        "granted on a bed just marked K: {}",
        r.body
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_acquire_queued_behind_a_policy_change_is_decided_by_the_new_policy() {
    let Some(db) = TestDb::holding_the_horizon().await else { return };
    let app = TestApp::spawn_with(&db, None).await;
    let bed = app.create_resource("bed", "Wait P1").await;
    let lower = "UPDATE resource_types SET max_ttl_seconds = 10, default_ttl_seconds = 10 \
                 WHERE name = (SELECT type FROM resources WHERE id = $1::uuid)";
    let body = json!({"resource_id": bed, "owner_id": "ws-1", "ttl_seconds": 60});
    let r = decided_after_a_wait(&db, &app, &bed, lower, "/api/locks/acquire", body).await;
    assert_eq!(r.code(), "invalid_ttl", "a 60 s hold granted under a type that now allows 10 s: {}", r.body);
    app.stop().await;
}

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
