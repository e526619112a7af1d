//! The reaper: several at once record each expiry exactly once; the SQL that finds candidates agrees with
//! hhs-core's expiry rule on every generated case; a database outage shows in health.


use std::collections::HashSet;
use std::time::Duration;

use hhs_core::{HoldId, HoldState, Millis, OwnerId, Ttl};
use hhs_origin::reaper::reap_all;
use hhs_origin::store::dialect::Dialect;
use hhs_origin::store::sql::SELECT_EXPIRED;
use reqwest::StatusCode;
use sqlx::Row;
use crate::support::{Backend, TestApp, TestDb};

both_stores!(three_reapers_record_each_expiry_exactly_once, reaper_sql_agrees_with_core_expiry_rule);

async fn three_reapers_record_each_expiry_exactly_once(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn_with(&db, None).await;
    let mut ids = vec![];
    for i in 0..40 {
        let id = app.create_resource("bed", &format!("Bed {i}")).await;
        assert_eq!(app.acquire(&id, &format!("ws-{i}"), 1).await.status, StatusCode::OK);
        ids.push(id);
    }
    // One more that stays live.
    let live = app.create_resource("bed", "Live").await;
    app.acquire(&live, "keeper", 600).await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;

    // Three reapers, each with its own connection pool as if on its own replica, small batches, racing.
    let stores = [db.store().await, db.store().await, db.store().await];
    let counts = futures::future::join_all(stores.iter().map(|s| async move {
        let mut n = 0;
        for _ in 0..5 {
            n += reap_all(s, 3).await.expect("reap");
        }
        n
    }))
    .await;
    assert_eq!(counts.iter().sum::<usize>(), 40, "expiries recorded per reaper: {counts:?}");

    for id in &ids {
        let kinds = app.event_kinds(id).await;
        assert_eq!(kinds.iter().filter(|k| *k == "expired").count(), 1, "{id}: {kinds:?}");
        assert_eq!(app.get(&format!("/api/locks/{id}")).await.body["status"], "EXPIRED");
    }
    assert_eq!(app.event_kinds(&live).await, ["resource_created", "acquired"]);
    assert_eq!(app.get(&format!("/api/locks/{live}")).await.body["status"], "HELD");
    app.stop().await;
}

/// `SELECT_EXPIRED` restates `now - last_heartbeat > ttl` in SQL; here both decide the same generated cases,
/// boundaries included.
async fn reaper_sql_agrees_with_core_expiry_rule(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn_with(&db, None).await;
    let now = Millis(1_800_000_000_000);
    let mut cases = vec![];
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for i in 0..200 {
        let ttl_s = 1 + (next() % 100) as u32;
        let ttl_ms = i64::from(ttl_s) * 1000;
        // Around the boundary most of the time, anywhere otherwise.
        let offset = match i % 4 {
            0 => -1,
            1 => 0,
            2 => 1,
            _ => (next() % 400_000) as i64 - 200_000,
        };
        let heartbeat = now.0 - ttl_ms + offset;
        let state = if i % 7 == 0 { "RELEASED" } else { "HELD" };
        cases.push((app.create_resource("bed", &format!("Case {i}")).await, ttl_s, heartbeat, state));
    }
    for (id, ttl_s, hb, state) in &cases {
        let sql = "UPDATE leases SET state = $1, hold_id = $2, owner_id = 'o', ttl_ms = $3, token = 1, last_token = 1, \
                   acquired_at_ms = $4, last_heartbeat_ms = $4, ended_at_ms = $5, principal = 'clinic-north' WHERE resource_id = $6";
        let uuid: uuid::Uuid = id.parse().unwrap();
        let ended = (*state != "HELD").then_some(*hb);
        match b {
            Backend::Postgres => {
                let pool = sqlx::PgPool::connect(db.pg_url().unwrap()).await.unwrap();
                sqlx::query(sql).bind(state).bind(uuid).bind(i64::from(*ttl_s) * 1000).bind(hb).bind(ended).bind(uuid).execute(&pool).await.unwrap();
                pool.close().await;
            }
            Backend::Sqlite => {
                let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.sqlite_path().unwrap().display())).await.unwrap();
                sqlx::query(&sqlx::Sqlite::sql(sql)).bind(state).bind(uuid).bind(i64::from(*ttl_s) * 1000).bind(hb).bind(ended).bind(uuid).execute(&pool).await.unwrap();
                pool.close().await;
            }
        }
    }

    let picked: HashSet<String> = match b {
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(db.pg_url().unwrap()).await.unwrap();
            let rows = sqlx::query(SELECT_EXPIRED).bind(now.0).bind(10_000i64).fetch_all(&pool).await.unwrap();
            rows.iter().map(|r| r.get::<uuid::Uuid, _>("id").to_string()).collect()
        }
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.sqlite_path().unwrap().display())).await.unwrap();
            let rows = sqlx::query(&sqlx::Sqlite::sql(SELECT_EXPIRED)).bind(now.0).bind(10_000i64).fetch_all(&pool).await.unwrap();
            rows.iter().map(|r| r.get::<uuid::Uuid, _>("id").to_string()).collect()
        }
    };

    let bounds = hhs_core::TtlBounds { min_seconds: 1, max_seconds: 86_400 };
    let mut expected_count = 0;
    for (id, ttl_s, hb, state) in &cases {
        let hold = hhs_core::Hold {
            id: HoldId(uuid::Uuid::nil()),
            principal: hhs_core::Principal::parse("clinic-north").unwrap(),
            owner: OwnerId::parse("o").unwrap(),
            ttl: Ttl::from_seconds(*ttl_s, &bounds).unwrap(),
            token: hhs_core::FencingToken(1),
            acquired_at: Millis(*hb),
            last_heartbeat: Millis(*hb),
            state: if *state == "HELD" { HoldState::Held } else { HoldState::Released { at: Millis(*hb) } },
            heartbeats: 0,
            max_gap: Millis::ZERO,
            late_reported: false,
            session: None,
            group: None,
            booked_until: None,
        };
        let core_says = hold.is_expired(now);
        expected_count += usize::from(core_says);
        assert_eq!(picked.contains(id), core_says, "ttl {ttl_s}s, heartbeat {} ms before now, {state}", now.0 - hb);
    }
    assert!(expected_count > 20 && expected_count < 180, "the cases cover both sides: {expected_count}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_shows_as_503_and_database_unavailable() {
    let Some(db) = TestDb::new(Backend::Postgres).await else { return };
    let app = TestApp::spawn(&db).await;
    let id = app.create_resource("bed", "B1").await;
    // Take the database away under the running origin.
    let admin = std::env::var("HHS_TEST_PG_URL").unwrap();
    let name = db.pg_url().unwrap().rsplit('/').next().unwrap().to_owned();
    let pool = sqlx::PgPool::connect(&admin).await.unwrap();
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)")).execute(&pool).await.unwrap();

    let health = app.get("/healthz").await;
    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(health.body["database"], "unavailable");
    let r = app.acquire(&id, "alice", 30).await;
    assert!(r.status.is_server_error(), "{}", r.body);
    assert!(["database_unavailable", "internal"].contains(&r.code()), "{}", r.body);
    let text = r.body.to_string();
    assert!(!text.contains(&name) && !text.to_lowercase().contains("sqlx"), "database text leaked: {text}");
    app.stop().await;
}
