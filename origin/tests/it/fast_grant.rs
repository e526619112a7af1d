//! PostgreSQL's one-statement acquire restates part of the acquire rule in SQL (`postgres::GRANTABLE`); here SQL
//! and hhs-core decide every generated lease state alike: SQL grants exactly when the lease is not held and
//! hhs-core grants; everything else falls back to the row-lock path, where hhs-core decides.

use std::collections::HashSet;

use crate::support::{Backend, TestApp, TestDb};
use hhs_core::lease::{acquire, AcquireCmd};
use hhs_core::{EventKind, HoldId, Millis, OwnerId, Ttl, TtlBounds};
use hhs_origin::store::postgres::GRANTABLE;
use sqlx::Row;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_grant_sql_agrees_with_core_acquire() {
    let Some(db) = TestDb::new(Backend::Postgres).await else { return };
    let app = TestApp::spawn_with(&db, None).await;
    let pool = sqlx::PgPool::connect(db.pg_url().unwrap()).await.unwrap();
    let now = Millis(1_800_000_000_000);
    let states = ["FREE", "RELEASED", "EXPIRED", "FORCE_RELEASED", "HELD"];
    let delays: [Option<i64>; 6] = [None, Some(-1), Some(0), Some(1), Some(-90_000), Some(90_000)];
    let mut cases = vec![];
    for (i, state) in states.iter().enumerate() {
        for (j, delay) in delays.iter().enumerate() {
            for heartbeat_age in [1_000i64, 31_000] {
                let id = app.create_resource("bed", &format!("Case {i}-{j}-{heartbeat_age}")).await;
                let uuid: uuid::Uuid = id.parse().unwrap();
                let hb = now.0 - heartbeat_age;
                if *state != "FREE" {
                    sqlx::query(
                        "UPDATE leases SET state = $1, hold_id = $2, owner_id = 'prev', principal = 'clinic-south', ttl_ms = 30000, token = 3, last_token = 3, \
                         acquired_at_ms = $3, last_heartbeat_ms = $3, ended_at_ms = $4, delay_until_ms = $5 WHERE resource_id = $2",
                    )
                    .bind(state)
                    .bind(uuid)
                    .bind(hb)
                    .bind((*state != "HELD").then_some(hb))
                    .bind(delay.map(|d| now.0 + d))
                    .execute(&pool)
                    .await
                    .unwrap();
                } else {
                    sqlx::query("UPDATE leases SET delay_until_ms = $1 WHERE resource_id = $2")
                        .bind(delay.map(|d| now.0 + d))
                        .bind(uuid)
                        .execute(&pool)
                        .await
                        .unwrap();
                }
                cases.push((id, *state));
            }
        }
    }

    let sql = format!("SELECT l.resource_id FROM leases l, (SELECT $1::bigint AS ms) clock WHERE {GRANTABLE}");
    let sql_grants: HashSet<String> = sqlx::query(&sql)
        .bind(now.0)
        .fetch_all(&pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<uuid::Uuid, _>(0).to_string())
        .collect();

    let cmd = AcquireCmd {
        principal: hhs_core::Principal::parse("clinic-north").unwrap(),
        owner: OwnerId::parse("next").unwrap(),
        ttl: Ttl::from_seconds(30, &TtlBounds::default()).unwrap(),
        new_hold_id: HoldId(uuid::Uuid::nil()),
    };
    let mut granted = 0;
    for (id, state) in &cases {
        let (_, lease, _) = app.store.lease(id.parse().map(hhs_core::ResourceId).unwrap()).await.unwrap();
        let core = acquire(&lease, now, &cmd, Millis::ZERO);
        let sql_says = sql_grants.contains(id);
        assert_eq!(
            sql_says,
            core.is_ok() && *state != "HELD",
            "{state}, delay_until {:?}: core says {core:?}",
            lease.delay_until
        );
        if sql_says {
            granted += 1;
            let out = core.unwrap();
            assert_eq!(
                out.events.iter().map(|e| e.kind).collect::<Vec<_>>(),
                [EventKind::Acquired],
                "no lazy expiry to record"
            );
            assert_eq!(out.lease.last_token.0, lease.last_token.0 + 1);
        }
    }
    assert!(granted > 10 && granted < cases.len(), "both outcomes are covered: {granted} of {}", cases.len());
    app.stop().await;
}
