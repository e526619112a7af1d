//! Sessions on both stores: holds taken under one are renewed by its keepalive (and only by it), released when
//! it closes and expire with it when it lapses; the audit trail records each; another principal can do nothing
//! with it; a keepalive names each hold it renewed (so a force-released one is seen to be gone) and reads the
//! clock only once it holds the rows. And the keepalive's one-statement renewal (`sessions::RENEW_SESSION_HOLDS`) agrees with
//! `hhs_core::session::renew_hold` on generated leases.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{Backend, TestApp, TestDb};

both_stores!(
    a_session_renews_its_holds_with_one_keepalive_and_releases_them_when_closed,
    a_lapsed_session_takes_exactly_its_holds_with_it,
    sessions_refuse_the_wrong_caller_and_bad_requests,
    keepalive_statement_agrees_with_core,
    a_keepalive_names_the_holds_it_renewed_and_not_one_force_released,
    a_keepalive_reads_the_clock_after_it_holds_the_rows,
);

async fn open(app: &TestApp, owner: &str, ttl: u32) -> Value {
    let r = app
        .send(
            app.request_as(Method::POST, "/api/sessions", Some(&app.keys.client))
                .json(&json!({"owner_id": owner, "ttl_seconds": ttl})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body
}

async fn acquire_in(app: &TestApp, resource: &str, owner: &str, session: &str) -> crate::support::Reply {
    let body = json!({"resource_id": resource, "owner_id": owner, "session_id": session});
    app.send(app.request_as(Method::POST, "/api/locks/acquire", Some(&app.keys.client)).json(&body)).await
}

async fn session_call(app: &TestApp, method: Method, path: &str, key: &str) -> crate::support::Reply {
    app.send(app.request_as(method, path, Some(key))).await
}

async fn a_session_renews_its_holds_with_one_keepalive_and_releases_them_when_closed(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let mut beds = vec![];
    for i in 0..3 {
        beds.push(app.create_resource("bed", &format!("Ward 7, bed {i}")).await);
    }
    let loose = app.create_resource("bed", "Ward 7, bed 9").await;
    let s = open(&app, "ward-7", 30).await;
    let sid = s["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (s["status"].as_str(), s["ttl_seconds"].as_u64(), s["holds"].as_u64()),
        (Some("OPEN"), Some(30), Some(0))
    );

    for bed in &beds {
        let r = acquire_in(&app, bed, "ward-7", &sid).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!((r.body["ttl_seconds"].as_u64(), r.body["ttl_source"].as_str()), (Some(30), Some("session")));
        assert_eq!(r.body["expires_at"], s["expires_at"], "a session's hold ends when its session does");
    }
    // A hold outside the session, by the same owner: untouched by the session.
    let alone = app
        .post_as(
            &app.keys.client,
            "/api/locks/acquire",
            json!({"resource_id": loose, "owner_id": "ward-7", "ttl_seconds": 60}),
        )
        .await;
    assert_eq!(alone.status, StatusCode::OK);
    let loose_before = app.get(&format!("/api/locks/{loose}")).await.body;

    tokio::time::sleep(Duration::from_millis(50)).await;
    let kept = session_call(&app, Method::POST, &format!("/api/sessions/{sid}/keepalive"), &app.keys.client).await;
    assert_eq!(kept.status, StatusCode::OK, "{}", kept.body);
    assert_eq!(kept.body["holds"], 3, "one keepalive renewed all three");
    assert!(kept.body["expires_at"].as_str() > s["expires_at"].as_str());
    for bed in &beds {
        let lock = app.get(&format!("/api/locks/{bed}")).await.body;
        assert_eq!(lock["expires_at"], kept.body["expires_at"], "renewed to the session's new expiry");
        assert_eq!(lock["last_heartbeat"], kept.body["last_keepalive"]);
    }
    assert_eq!(app.get(&format!("/api/locks/{loose}")).await.body, loose_before);
    // A session's hold is renewed by its session only.
    let beat = app
        .send(
            app.request_as(Method::POST, "/api/locks/heartbeat", Some(&app.keys.client))
                .json(&json!({"resource_id": beds[0], "owner_id": "ward-7"})),
        )
        .await;
    assert_eq!((beat.status, beat.code()), (StatusCode::CONFLICT, "renewed_by_session"));
    // Listed and shown, with its holds.
    let listed = app.get_as(&app.keys.viewer, "/api/sessions").await;
    assert!(
        listed.body["items"].as_array().unwrap().iter().any(|x| x["id"] == sid.as_str() && x["holds"] == 3),
        "{}",
        listed.body
    );
    assert_eq!(app.get(&format!("/api/sessions/{sid}")).await.body["holds"], 3);
    // Another session counts its own holds only.
    let other = open(&app, "ward-7", 30).await;
    assert_eq!(app.get(&format!("/api/sessions/{}", other["id"].as_str().unwrap())).await.body["holds"], 0);

    // One hold released on its own; the others go when the session closes.
    let released = app
        .post_as(&app.keys.client, "/api/locks/release", json!({"resource_id": beds[0], "owner_id": "ward-7"}))
        .await;
    assert_eq!(released.status, StatusCode::OK, "{}", released.body);
    let closed = session_call(&app, Method::DELETE, &format!("/api/sessions/{sid}"), &app.keys.client).await;
    assert_eq!((closed.status, closed.body["status"].as_str()), (StatusCode::OK, Some("CLOSED")), "{}", closed.body);
    for bed in &beds {
        assert_eq!(app.get(&format!("/api/locks/{bed}")).await.body["status"], "RELEASED");
    }
    assert_eq!(app.get(&format!("/api/locks/{loose}")).await.body["status"], "HELD");
    let again = session_call(&app, Method::POST, &format!("/api/sessions/{sid}/keepalive"), &app.keys.client).await;
    assert_eq!((again.status, again.code()), (StatusCode::CONFLICT, "session_ended"));
    // The audit trail: opened and closed, by the client's principal.
    let log = app.get("/api/events?limit=1000").await.body;
    let kinds: Vec<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["detail"]["session_id"] == sid.as_str())
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["session_opened", "session_closed"]);
    assert_eq!(app.event_kinds(&beds[1]).await, ["resource_created", "acquired", "released"]);
    app.stop().await;
}

async fn a_lapsed_session_takes_exactly_its_holds_with_it(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let (a, c, loose) = (
        app.create_resource("bed", "L1").await,
        app.create_resource("bed", "L2").await,
        app.create_resource("bed", "L3").await,
    );
    let s = open(&app, "ward-8", 1).await;
    let sid = s["id"].as_str().unwrap().to_owned();
    for bed in [&a, &c] {
        assert_eq!(acquire_in(&app, bed, "ward-8", &sid).await.status, StatusCode::OK);
    }
    assert_eq!(app.acquire(&loose, "ward-8", 60).await.status, StatusCode::OK);
    // No keepalive: after its TTL the session and both its holds lapse together; the reaper records each.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let shown = app.get(&format!("/api/sessions/{sid}")).await.body;
        let kinds = (app.event_kinds(&a).await, app.event_kinds(&c).await);
        if shown["status"] == "LAPSED"
            && kinds.0.last().map(String::as_str) == Some("expired")
            && kinds.1.last().map(String::as_str) == Some("expired")
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not lapsed: {shown} {kinds:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        app.get(&format!("/api/locks/{loose}")).await.body["status"],
        "HELD",
        "a hold outside the session is not touched"
    );
    let log = app.get("/api/events?limit=1000").await.body;
    assert!(log["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["kind"] == "session_lapsed" && e["detail"]["session_id"] == sid.as_str()));
    // Nothing more under it.
    let late = acquire_in(&app, &loose, "ward-8", &sid).await;
    assert_eq!((late.status, late.code()), (StatusCode::CONFLICT, "session_ended"));
    app.stop().await;
}

async fn sessions_refuse_the_wrong_caller_and_bad_requests(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let bed = app.create_resource("bed", "R1").await;
    let s = open(&app, "ward-9", 30).await;
    let sid = s["id"].as_str().unwrap().to_owned();
    let south = crate::support::mint(&app.store, "clinic-south", hhs_core::Role::Client).await;
    // Another principal's session: neither kept alive, closed nor used.
    let r = session_call(&app, Method::POST, &format!("/api/sessions/{sid}/keepalive"), &south).await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "not_your_hold"));
    let r = app
        .send(
            app.request_as(Method::POST, "/api/locks/acquire", Some(&south))
                .json(&json!({"resource_id": bed, "owner_id": "ward-9", "session_id": sid})),
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "not_your_hold"));
    // The session's owner only; a TTL and a session are one too many; unknown and malformed ids.
    assert_eq!(acquire_in(&app, &bed, "ward-1", &sid).await.code(), "validation_failed");
    let both = json!({"resource_id": bed, "owner_id": "ward-9", "session_id": sid, "ttl_seconds": 30});
    assert_eq!(
        app.send(app.request_as(Method::POST, "/api/locks/acquire", Some(&app.keys.client)).json(&both)).await.code(),
        "validation_failed"
    );
    let unknown = "0190a0c4-7a52-7000-8000-000000000001";
    assert_eq!(acquire_in(&app, &bed, "ward-9", unknown).await.code(), "session_not_found");
    assert_eq!(
        session_call(&app, Method::GET, &format!("/api/sessions/{unknown}"), &app.keys.viewer).await.code(),
        "session_not_found"
    );
    assert_eq!(
        session_call(&app, Method::GET, "/api/sessions/not-a-uuid", &app.keys.viewer).await.code(),
        "invalid_session_id"
    );
    // A viewer may look, not open.
    let r = app
        .send(app.request_as(Method::POST, "/api/sessions", Some(&app.keys.viewer)).json(&json!({"owner_id": "x"})))
        .await;
    assert_eq!(r.code(), "forbidden");
    // Without a TTL: the default.
    let d = app
        .send(
            app.request_as(Method::POST, "/api/sessions", Some(&app.keys.client)).json(&json!({"owner_id": "ward-9"})),
        )
        .await;
    assert_eq!(d.body["ttl_seconds"], 300);
    app.stop().await;
}

/// `sessions::RENEW_SESSION_HOLDS` against `hhs_core::session::renew_hold`, on leases in every state, of this session
/// or another, fresh, at and past their expiry: the same leases renewed, to the same values.
async fn keepalive_statement_agrees_with_core(b: Backend) {
    use hhs_core::session::{open as open_session, renew_hold};
    use hhs_core::stored::StoredLease;
    use hhs_core::{Millis, OwnerId, Principal, ResourceId, SessionId, Ttl, TtlBounds};

    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn_with(&db, None).await;
    let bounds = TtlBounds { min_seconds: 1, max_seconds: 600 };
    let (sid, other) = (SessionId(uuid::Uuid::from_u128(11)), SessionId(uuid::Uuid::from_u128(12)));
    let now = Millis(1_800_000_000_000);
    let mut s = open_session(
        sid,
        Principal::parse("clinic-north").unwrap(),
        OwnerId::parse("ws").unwrap(),
        Ttl::from_seconds(30, &bounds).unwrap(),
        Millis(now.0 - 20_000),
    );
    s.last_keepalive = now; // the keepalive, already applied to the session
    let mut cases = vec![];
    for (i, state) in ["HELD", "RELEASED", "EXPIRED"].into_iter().enumerate() {
        for (j, ago) in [0i64, 10_000, 30_000, 30_001, 90_000].into_iter().enumerate() {
            for (k, session) in [Some(sid), Some(other), None].into_iter().enumerate() {
                for booked in [None, Some(now.0 + 5_000)] {
                    let id = app.create_resource("bed", &format!("K{i}{j}{k}{}", booked.is_some())).await;
                    let rid: uuid::Uuid = id.parse().unwrap();
                    let ended = (state != "HELD").then_some(now.0 - ago);
                    cases.push((
                        rid,
                        StoredLease {
                            last_token: 3,
                            hold_id: Some(uuid::Uuid::from_u128(900 + cases.len() as u128)),
                            principal: Some("clinic-north".into()),
                            owner_id: Some("ws".into()),
                            ttl_ms: Some(30_000),
                            token: Some(3),
                            acquired_at_ms: Some(now.0 - 100_000),
                            last_heartbeat_ms: Some(now.0 - 20_000 - ago),
                            state: state.into(),
                            ended_at_ms: ended,
                            heartbeats: 4,
                            max_gap_ms: 7_000,
                            delay_until_ms: None,
                            late_reported: false,
                            session_id: session.map(|s| s.0),
                            group_id: None,
                            booked_until_ms: booked,
                            waiters: 0,
                            pickup_by_ms: None,
                        },
                    ));
                }
            }
        }
    }
    // Stored as generated, then renewed by the statement at "now" (a keepalive 20 s after the last one).
    let expected: Vec<(uuid::Uuid, StoredLease)> = cases
        .iter()
        .map(|(rid, rec)| {
            let lease = rec.clone().into_lease(ResourceId(*rid)).unwrap();
            let after = renew_hold(&lease, &s, now).map_or(lease, |o| o.lease);
            (*rid, StoredLease::of(&after))
        })
        .collect();
    let renewed = crate::support::renew_session_holds(&db, &cases, &s, now).await;
    let core_renewed = cases.iter().zip(&expected).filter(|((_, a), (_, b))| a != b).count();
    assert_eq!(renewed, core_renewed as u64, "the statement and hhs-core renew the same number of holds");
    assert!(core_renewed > 0 && core_renewed < cases.len());
    for (rid, want) in expected {
        let got = crate::support::stored_lease(&db, rid).await;
        assert_eq!(got, want, "lease {rid}");
    }
    app.stop().await;
}

/// A keepalive names each hold it renewed (resource and token), so a hold force-released under the session is
/// missing from the answer rather than hidden in a count.
async fn a_keepalive_names_the_holds_it_renewed_and_not_one_force_released(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let mut beds = vec![];
    for i in 0..3 {
        beds.push(app.create_resource("bed", &format!("Ward 5, bed {i}")).await);
    }
    let s = open(&app, "ward-5", 30).await;
    let sid = s["id"].as_str().unwrap().to_owned();
    let mut tokens = vec![];
    for bed in &beds {
        let r = acquire_in(&app, bed, "ward-5", &sid).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        tokens.push(r.body["fencing_token"].as_u64().unwrap());
    }
    let path = format!("/api/sessions/{sid}/keepalive");
    let kept = session_call(&app, Method::POST, &path, &app.keys.client).await;
    assert_eq!(kept.status, StatusCode::OK, "{}", kept.body);
    let mut all: Vec<(String, u64)> = beds.iter().cloned().zip(tokens.iter().copied()).collect();
    all.sort();
    let named = |body: &Value| -> Vec<(String, u64)> {
        body["renewed"]
            .as_array()
            .unwrap_or_else(|| panic!("no renewed holds in {body}"))
            .iter()
            .map(|h| (h["resource_id"].as_str().unwrap().to_owned(), h["fencing_token"].as_u64().unwrap()))
            .collect()
    };
    assert_eq!(named(&kept.body), all, "{}", kept.body);

    let forced = app
        .post_as(&app.keys.admin, "/api/locks/force-release", json!({"resource_id": beds[1], "reason": "bed needed"}))
        .await;
    assert_eq!(forced.status, StatusCode::OK, "{}", forced.body);
    let kept = session_call(&app, Method::POST, &path, &app.keys.client).await;
    assert_eq!(kept.status, StatusCode::OK, "{}", kept.body);
    let left: Vec<(String, u64)> = all.iter().filter(|(r, _)| *r != beds[1]).cloned().collect();
    assert_eq!(named(&kept.body), left, "the force-released hold is not among those renewed: {}", kept.body);
    assert_eq!(kept.body["holds"], 2);
    app.stop().await;
}

/// The keepalive took the session's row, read the clock, then renewed the holds with one `UPDATE` that waited
/// for their row locks: a wait longer than the hold's time left renewed it from before the wait. Here a side
/// transaction holds one hold's lease row for 1.5 s; the keepalive must renew from after it let go.
async fn a_keepalive_reads_the_clock_after_it_holds_the_rows(b: Backend) {
    use hhs_origin::store::dialect::Dialect;
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let bed = app.create_resource("bed", "Ward 6, bed 1").await;
    let s = open(&app, "ward-6", 30).await;
    let sid = s["id"].as_str().unwrap().to_owned();
    assert_eq!(acquire_in(&app, &bed, "ward-6", &sid).await.status, StatusCode::OK);
    let rid: uuid::Uuid = bed.parse().unwrap();
    let (locked_tx, locked_rx) = tokio::sync::oneshot::channel();
    macro_rules! side {
        ($conn:expr, $db:ty, $begin:expr, $lock:expr) => {{
            let mut conn = $conn;
            sqlx::query($begin).execute(&mut conn).await.unwrap();
            sqlx::query(&<$db as Dialect>::sql($lock)).bind(rid).execute(&mut conn).await.unwrap();
            let _ = locked_tx.send(());
            tokio::time::sleep(Duration::from_millis(1_500)).await;
            let (let_go,): (i64,) = sqlx::query_as(<$db as Dialect>::NOW).fetch_one(&mut conn).await.unwrap();
            sqlx::query("COMMIT").execute(&mut conn).await.unwrap();
            let_go
        }};
    }
    let side = {
        let (pg, lite) = (db.pg_url().map(str::to_owned), db.sqlite_path().map(|p| p.to_owned()));
        tokio::spawn(async move {
            use sqlx::Connection;
            match (pg, lite) {
                (Some(url), _) => side!(
                    sqlx::PgConnection::connect(&url).await.unwrap(),
                    sqlx::Postgres,
                    "BEGIN",
                    "SELECT resource_id FROM leases WHERE resource_id = $1 FOR UPDATE"
                ),
                (_, Some(path)) => side!(
                    sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap(),
                    sqlx::Sqlite,
                    "BEGIN IMMEDIATE",
                    "UPDATE leases SET waiters = waiters WHERE resource_id = $1"
                ),
                _ => unreachable!("a database"),
            }
        })
    };
    locked_rx.await.unwrap();
    let kept = session_call(&app, Method::POST, &format!("/api/sessions/{sid}/keepalive"), &app.keys.client).await;
    let let_go = side.await.unwrap();
    assert_eq!(kept.status, StatusCode::OK, "{}", kept.body);
    let renewed: chrono::DateTime<chrono::Utc> = kept.body["last_keepalive"].as_str().unwrap().parse().unwrap();
    assert!(renewed.timestamp_millis() >= let_go, "renewed from {renewed}, before the row was let go at {let_go} ms");
    let lock = app.get(&format!("/api/locks/{bed}")).await.body;
    assert_eq!(lock["last_heartbeat"], kept.body["last_keepalive"], "{lock}");
    app.stop().await;
}
