//! The reaper: several at once record each expiry exactly once; the SQL that finds candidates agrees with
//! hhs-core's expiry rule on every generated case; a hand-over it makes late in a long pass is granted at the
//! clock read after that resource's lock, not the pass's start; a row it cannot read is skipped and the rest
//! are reaped; a database outage shows in health.

use std::collections::HashSet;
use std::time::Duration;

use crate::support::{Backend, TestApp, TestDb};
use hhs_core::lease::AcquireCmd;
use hhs_core::{HoldId, HoldState, Millis, OwnerId, Principal, ResourceId, Ttl, TtlBounds, WaiterId};
use hhs_origin::reaper::reap_all;
use hhs_origin::store::dialect::Dialect;
use hhs_origin::store::reap::SELECT_EXPIRED;
use hhs_origin::store::rows::{arguments, Arg};
use hhs_origin::store::{Actor, Waited};
use reqwest::StatusCode;
use sqlx::Row;

both_stores!(
    three_reapers_record_each_expiry_exactly_once,
    reaper_sql_agrees_with_core_expiry_rule,
    a_hand_over_late_in_a_long_pass_is_not_backdated,
    an_unreadable_row_does_not_stop_the_reaper,
);

/// Runs one statement on the test's database, `$1`... bound to `args`.
async fn exec_sql(db: &TestDb, statement: &str, args: Vec<Arg>) {
    match db.backend {
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(db.pg_url().unwrap()).await.unwrap();
            sqlx::query_with(statement, arguments::<sqlx::Postgres>(args).unwrap()).execute(&pool).await.unwrap();
            pool.close().await;
        }
        Backend::Sqlite => {
            let pool =
                sqlx::SqlitePool::connect(&format!("sqlite://{}", db.sqlite_path().unwrap().display())).await.unwrap();
            sqlx::query_with(&sqlx::Sqlite::sql(statement), arguments::<sqlx::Sqlite>(args).unwrap())
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
    }
}

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
        // Every third a handed-over hold not yet renewed, its pickup deadline around the boundary too.
        let pickup = (i % 3 == 0).then(|| now.0 + [-1, 0, 1, 5_000, -5_000][(next() % 5) as usize]);
        cases.push((app.create_resource("bed", &format!("Case {i}")).await, ttl_s, heartbeat, state, pickup));
    }
    for (id, ttl_s, hb, state, pickup) in &cases {
        let sql =
            "UPDATE leases SET state = $1, hold_id = $2, owner_id = 'o', ttl_ms = $3, token = 1, last_token = 1, \
                   acquired_at_ms = $4, last_heartbeat_ms = $4, ended_at_ms = $5, principal = 'clinic-north', \
                   pickup_by_ms = $7 WHERE resource_id = $6";
        let uuid: uuid::Uuid = id.parse().unwrap();
        let ended = (*state != "HELD").then_some(*hb);
        match b {
            Backend::Postgres => {
                let pool = sqlx::PgPool::connect(db.pg_url().unwrap()).await.unwrap();
                sqlx::query(sql)
                    .bind(state)
                    .bind(uuid)
                    .bind(i64::from(*ttl_s) * 1000)
                    .bind(hb)
                    .bind(ended)
                    .bind(uuid)
                    .bind(pickup)
                    .execute(&pool)
                    .await
                    .unwrap();
                pool.close().await;
            }
            Backend::Sqlite => {
                let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.sqlite_path().unwrap().display()))
                    .await
                    .unwrap();
                sqlx::query(&sqlx::Sqlite::sql(sql))
                    .bind(state)
                    .bind(uuid)
                    .bind(i64::from(*ttl_s) * 1000)
                    .bind(hb)
                    .bind(ended)
                    .bind(uuid)
                    .bind(pickup)
                    .execute(&pool)
                    .await
                    .unwrap();
                pool.close().await;
            }
        }
    }

    let picked: HashSet<String> = match b {
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(db.pg_url().unwrap()).await.unwrap();
            let rows = sqlx::query(SELECT_EXPIRED)
                .bind(now.0)
                .bind(10_000i64)
                .bind(i64::MIN)
                .bind(uuid::Uuid::nil())
                .fetch_all(&pool)
                .await
                .unwrap();
            rows.iter().map(|r| r.get::<uuid::Uuid, _>("id").to_string()).collect()
        }
        Backend::Sqlite => {
            let pool =
                sqlx::SqlitePool::connect(&format!("sqlite://{}", db.sqlite_path().unwrap().display())).await.unwrap();
            let rows = sqlx::query(&sqlx::Sqlite::sql(SELECT_EXPIRED))
                .bind(now.0)
                .bind(10_000i64)
                .bind(i64::MIN)
                .bind(uuid::Uuid::nil())
                .fetch_all(&pool)
                .await
                .unwrap();
            rows.iter().map(|r| r.get::<uuid::Uuid, _>("id").to_string()).collect()
        }
    };

    let bounds = hhs_core::TtlBounds { min_seconds: 1, max_seconds: 86_400 };
    let mut expected_count = 0;
    for (id, ttl_s, hb, state, pickup) in &cases {
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
            pickup_by: pickup.map(Millis),
        };
        let core_says = hold.is_expired(now);
        expected_count += usize::from(core_says);
        assert_eq!(
            picked.contains(id),
            core_says,
            "ttl {ttl_s}s, heartbeat {} ms before now, {state}, pickup by {pickup:?}",
            now.0 - hb
        );
    }
    assert!(expected_count > 20 && expected_count < 180, "the cases cover both sides: {expected_count}");
    app.stop().await;
}

/// Two hundred lapsed holds, then one more with a waiter: the pass that records them reaches the last late, and
/// the hand-over it makes there must be granted at the clock read once that lease is locked — not at the pass's
/// start (the hold would be born old by the length of the pass, and lapse that much early).
async fn a_hand_over_late_in_a_long_pass_is_not_backdated(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn_with(&db, None).await;
    for i in 0..200 {
        let id = app.create_resource("bed", &format!("Lapsed {i}")).await;
        assert_eq!(app.acquire(&id, &format!("ws-{i}"), 30).await.status, StatusCode::OK);
    }
    let last = app.create_resource("bed", "Handed over last").await;
    assert_eq!(app.acquire(&last, "holder", 30).await.status, StatusCode::OK);
    let rid = ResourceId(last.parse().unwrap());
    let cmd = AcquireCmd {
        principal: Principal::parse("clinic-north").unwrap(),
        owner: OwnerId::parse("next").unwrap(),
        ttl: Ttl::from_seconds(30, &TtlBounds::HARD).unwrap(),
        new_hold_id: HoldId(uuid::Uuid::now_v7()),
    };
    let waiter = WaiterId(uuid::Uuid::now_v7());
    let queued =
        app.store.acquire_or_wait(rid, cmd, Some((waiter, Millis(30_000))), &Actor::system("test")).await.unwrap();
    assert!(matches!(queued, Waited::Queued { .. }));
    // Every hold lapsed long ago, the waited-for one last of all; the waiter stays there throughout.
    let id = Arg::Uuid(Some(rid.0));
    exec_sql(
        &db,
        "UPDATE leases SET last_heartbeat_ms = last_heartbeat_ms - 120000 WHERE state = 'HELD' AND resource_id <> $1",
        vec![id.clone()],
    )
    .await;
    exec_sql(&db, "UPDATE leases SET last_heartbeat_ms = last_heartbeat_ms - 60000 WHERE resource_id = $1", vec![id])
        .await;
    exec_sql(&db, "UPDATE waiters SET alive_until_ms = alive_until_ms + 600000", vec![]).await;

    let store = db.store().await;
    let start = store.now().await.unwrap();
    assert_eq!(reap_all(&store, 500).await.unwrap(), 201);
    let end = store.now().await.unwrap();
    let (_, lease, _) = store.lease(rid).await.unwrap();
    let hold = lease.hold.expect("handed over");
    assert_eq!(hold.owner.as_str(), "next");
    let (into, pass) = (hold.acquired_at.since(start).0, end.since(start).0);
    assert!(pass > 0 && into * 2 >= pass, "granted {into} ms into a {pass} ms pass that reached it last: backdated");
    app.stop().await;
}

/// Stores lease `rid` as `state = 'BOGUS'` with one waiter counted, past the CHECK that would refuse it (as a
/// restore from another version might leave it).
async fn corrupt_state(db: &TestDb, rid: uuid::Uuid) {
    use sqlx::Connection;
    let update = "UPDATE leases SET state = 'BOGUS', waiters = 1 WHERE resource_id = $1";
    match db.backend {
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(db.pg_url().unwrap()).await.unwrap();
            sqlx::query("ALTER TABLE leases DROP CONSTRAINT leases_state_check").execute(&mut c).await.unwrap();
            sqlx::query(update).bind(rid).execute(&mut c).await.unwrap();
        }
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.sqlite_path().unwrap().display()))
                .await
                .unwrap();
            sqlx::query("PRAGMA ignore_check_constraints = ON").execute(&mut c).await.unwrap();
            sqlx::query(&sqlx::Sqlite::sql(update)).bind(rid).execute(&mut c).await.unwrap();
        }
    }
}

/// A lease row that cannot be read (an owner id no rule would admit, a state no version knows — as a bad restore
/// or a hand edit leaves them) is logged and skipped: the other lapsed holds are still recorded, even with one
/// candidate a page.
async fn an_unreadable_row_does_not_stop_the_reaper(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn_with(&db, None).await;
    let bad = app.create_resource("bed", "Corrupt").await;
    assert_eq!(app.acquire(&bad, "ws-bad", 1).await.status, StatusCode::OK);
    let mut good = vec![];
    for i in 0..3 {
        let id = app.create_resource("bed", &format!("Fine {i}")).await;
        assert_eq!(app.acquire(&id, &format!("ws-{i}"), 1).await.status, StatusCode::OK);
        good.push(id);
    }
    exec_sql(
        &db,
        "UPDATE leases SET owner_id = 'not an owner id' WHERE resource_id = $1",
        vec![Arg::Uuid(Some(bad.parse().unwrap()))],
    )
    .await;
    // And a lease in a state no version knows, with a queue (so the pass that serves queues picks it).
    let bogus = app.create_resource("bed", "Bogus state").await;
    corrupt_state(&db, bogus.parse().unwrap()).await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    // The app's own store, so its /metrics counts what this reaper skipped.
    let expired = app.store.reap(1).await.expect("a bad row does not fail the pass");
    assert_eq!(expired, 3);
    assert_eq!(app.store.rows_skipped(), 2, "each bad row skipped once in the pass: the lapsed one, the queued one");
    assert_eq!(reap_all(&app.store, 1).await.expect("nor the next"), 0);
    for id in &good {
        assert_eq!(app.get(&format!("/api/locks/{id}")).await.body["status"], "EXPIRED", "{id}");
    }
    let metrics = app.get("/metrics").await;
    let skipped = metrics
        .body
        .as_str()
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("hhs_reaper_rows_skipped_total "))
        .map(|n| n.trim().parse::<u64>().unwrap());
    assert!(skipped.is_some_and(|n| n >= 1), "/metrics counts the skipped row: {skipped:?}");
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
