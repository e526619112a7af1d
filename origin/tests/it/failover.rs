//! Following PostgreSQL's primary: the multi-host `DATABASE_URL`, and the holds an outage would end. The real
//! failover — a primary killed under load — is `cargo xtask chaos --ha` (a short run is part of `cargo xtask
//! test`); `cargo xtask test` also runs the conformance suite against the formation's multi-host URL. On SQLite,
//! what the one file promises instead: every commit synced before it is acknowledged, and a database too busy
//! to answer is a 503 with `Retry-After`, never a hang or a 500.

use std::time::Duration;

use hhs_core::Millis;
use hhs_origin::primary::targets;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::{Connection, Executor, SqliteConnection};

use crate::support::{Backend, TestApp, TestDb};

#[test]
fn a_multi_host_url_becomes_one_url_per_host() {
    let split = targets(
        "postgresql://app:s3cret@10.0.0.1:5432,10.0.0.2:5433,db3/hhs?target_session_attrs=read-write&sslmode=prefer",
    )
    .unwrap();
    assert_eq!(
        split,
        [
            "postgresql://app:s3cret@10.0.0.1:5432/hhs?sslmode=prefer",
            "postgresql://app:s3cret@10.0.0.2:5433/hhs?sslmode=prefer",
            "postgresql://app:s3cret@db3/hhs?sslmode=prefer",
        ]
    );
    // One host, no query: as it was. Several URLs: each as it is.
    assert_eq!(targets("postgres://u@h:1/d").unwrap(), ["postgres://u@h:1/d"]);
    assert_eq!(
        targets("postgres://h1/d  postgres://h2/d?target_session_attrs=any").unwrap(),
        ["postgres://h1/d", "postgres://h2/d"]
    );
    // No user part; an '@' in the query is not one.
    assert_eq!(
        targets("postgres://h1,h2/d?application_name=a@b").unwrap(),
        ["postgres://h1/d?application_name=a@b", "postgres://h2/d?application_name=a@b"]
    );
    assert!(targets("").is_err());
    assert!(targets("h1:5432/hhs").is_err(), "not a URL");
}

both_stores!(
    an_outage_gives_live_holds_their_time_back_once,
    an_outage_gives_a_session_and_its_holds_the_same_time_back,
);

async fn an_outage_gives_live_holds_their_time_back_once(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let store = db.store().await;
    let (kept, renewed, released) = (
        app.create_resource("bed", "Outage 1").await,
        app.create_resource("bed", "Outage 2").await,
        app.create_resource("bed", "Outage 3").await,
    );
    for id in [&kept, &renewed, &released] {
        assert_eq!(app.acquire(id, "ws-1", 30).await.status, StatusCode::OK);
    }
    assert_eq!(app.release(&released, "ws-1").await.status, StatusCode::OK);
    let before: Value = app.get(&format!("/api/locks/{kept}")).await.body;
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The database was last seen working at `lost_at`; it comes back 400 ms later. One hold was renewed after
    // the outage began (by a client of a replica that never lost the database).
    let lost_at = store.now().await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(app.heartbeat(&renewed, "ws-1").await.status, StatusCode::OK);
    let renewed_before: Value = app.get(&format!("/api/locks/{renewed}")).await.body;

    assert_eq!(store.resume(lost_at).await.unwrap(), 1, "only the hold live at the outage and not renewed since");
    let after: Value = app.get(&format!("/api/locks/{kept}")).await.body;
    let ms = |v: &Value, f: &str| Millis::from_utc(v[f].as_str().unwrap().parse().unwrap()).0;
    let moved = ms(&after, "expires_at") - ms(&before, "expires_at");
    assert!(moved >= 400, "expiry moved by the outage's length (≥ 400 ms), moved {moved} ms");
    assert_eq!(after["fencing_token"], before["fencing_token"]);
    assert_eq!(after["status"], "HELD");
    assert_eq!(app.get(&format!("/api/locks/{renewed}")).await.body["expires_at"], renewed_before["expires_at"]);
    let kinds = app.event_kinds(&kept).await;
    assert_eq!(kinds.iter().filter(|k| *k == "extended").count(), 1, "{kinds:?}");
    let events = app.get(&format!("/api/events?resource_id={kept}")).await.body;
    let extended = events["items"].as_array().unwrap().iter().find(|e| e["kind"] == "extended").unwrap().clone();
    assert_eq!(extended["principal"], "hhs:failover");

    // Another replica that lost the database at about the same time comes back later: nothing more.
    assert_eq!(store.resume(lost_at).await.unwrap(), 0);
    assert_eq!(store.resume(Millis(lost_at.0 - 20)).await.unwrap(), 0);
    assert_eq!(app.get(&format!("/api/locks/{kept}")).await.body["expires_at"], after["expires_at"]);
    // The holder carries on as if nothing happened.
    assert_eq!(app.heartbeat(&kept, "ws-1").await.status, StatusCode::OK);
    app.stop().await;
}

/// A session's holds are renewed by its keepalive only, so an outage takes time from the session and its holds
/// alike: both get it back together, and still end at one instant.
async fn an_outage_gives_a_session_and_its_holds_the_same_time_back(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let store = db.store().await;
    let beds = [app.create_resource("bed", "Outage ward 1").await, app.create_resource("bed", "Outage ward 2").await];
    let opened = app.post_as(&app.keys.client, "/api/sessions", json!({"owner_id": "ward-7", "ttl_seconds": 30})).await;
    assert_eq!(opened.status, StatusCode::CREATED, "{}", opened.body);
    let sid = opened.body["id"].as_str().unwrap().to_owned();
    for bed in &beds {
        let r = app
            .post_as(
                &app.keys.client,
                "/api/locks/acquire",
                json!({"resource_id": bed, "owner_id": "ward-7", "session_id": sid}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let lost_at = store.now().await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;

    assert_eq!(store.resume(lost_at).await.unwrap(), 2, "both of the session's holds");
    let session = app.get_as(&app.keys.client, &format!("/api/sessions/{sid}")).await.body;
    let ms = |v: &Value, f: &str| Millis::from_utc(v[f].as_str().unwrap().parse().unwrap()).0;
    let moved = ms(&session, "expires_at") - ms(&opened.body, "expires_at");
    assert!(moved >= 400, "the session's expiry moved by the outage's length (≥ 400 ms), moved {moved} ms");
    for bed in &beds {
        let lock = app.get(&format!("/api/locks/{bed}")).await.body;
        assert_eq!(lock["expires_at"], session["expires_at"], "a session's hold still ends when its session does");
        assert_eq!(lock["session_id"], sid.as_str());
    }
    // Once per outage, and the session carries on: one keepalive renews both.
    assert_eq!(store.resume(lost_at).await.unwrap(), 0);
    let kept = app
        .send(app.request_as(reqwest::Method::POST, &format!("/api/sessions/{sid}/keepalive"), Some(&app.keys.client)))
        .await;
    assert_eq!((kept.status, kept.body["holds"].as_u64()), (StatusCode::OK, Some(2)), "{}", kept.body);
    app.stop().await;
}

#[tokio::test]
async fn sqlite_syncs_every_commit() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let store = hhs_origin::store::SqliteStore::open(db.sqlite_path().unwrap(), 2).await.unwrap();
    let mode: i64 =
        sqlx::query_scalar("PRAGMA synchronous").fetch_one(&store.pool_slot().current().unwrap()).await.unwrap();
    assert_eq!(mode, 2, "synchronous=FULL (2): an acknowledged grant survives power loss");
}

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
