//! PostgreSQL's one-statement heartbeat restates the heartbeat rule's success case and its renewal in SQL
//! (`sql::RENEW_AT`); here SQL and hhs-core decide every generated lease state and claim alike, and write the
//! same values: SQL renews exactly when hhs-core's `heartbeat` succeeds, to the same `last_heartbeat`, count and
//! longest gap. Everything else falls back to the row-lock path, where hhs-core decides.

use hhs_core::lease::{heartbeat, Claim};
use hhs_core::stored::StoredLease;
use hhs_core::{FencingToken, Millis, OwnerId, Principal, ResourceId};
use hhs_origin::store::sql::RENEW_AT;
use sqlx::{Connection, Row};

use crate::support::{Backend, TestApp, TestDb};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_heartbeat_sql_agrees_with_core_heartbeat() {
    let Some(db) = TestDb::new(Backend::Postgres).await else { return };
    let app = TestApp::spawn_with(&db, None).await;
    let id = app.create_resource("bed", "Heartbeat cases").await;
    let uuid: uuid::Uuid = id.parse().unwrap();
    let mut conn = sqlx::PgConnection::connect(db.pg_url().unwrap()).await.unwrap();
    let now = Millis(1_800_000_000_000);
    let (mut cases, mut renewed) = (0, 0);
    for state in ["FREE", "HELD", "RELEASED", "EXPIRED", "FORCE_RELEASED"] {
        // How long ago the last heartbeat was: well within the 30 s TTL, exactly at it, just past it, and in the
        // future (another replica's clock ahead of this one).
        for age in [1_000i64, 30_000, 30_001, -500] {
            for (principal, owner) in [("clinic-north", "ws-1"), ("clinic-north", "ws-2"), ("clinic-south", "ws-1")] {
                for token in [None, Some(4u64), Some(3)] {
                    for max_gap in [0i64, 500, 20_000] {
                        cases += 1;
                        let hb = now.0 - age;
                        let mut tx = conn.begin().await.unwrap();
                        sqlx::query(
                            "UPDATE leases SET state = $1, hold_id = $2, owner_id = 'ws-1', principal = 'clinic-north', ttl_ms = 30000, \
                             token = 4, last_token = 4, acquired_at_ms = $3 - 60000, last_heartbeat_ms = $3, ended_at_ms = $4, heartbeats = 7, \
                             max_gap_ms = $5 WHERE resource_id = $2",
                        )
                        .bind(state)
                        .bind(uuid)
                        .bind(hb)
                        .bind((state != "HELD" && state != "FREE").then_some(hb))
                        .bind(max_gap)
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                        if state == "FREE" {
                            sqlx::query("UPDATE leases SET hold_id = NULL, owner_id = NULL, principal = NULL, ttl_ms = NULL, token = NULL, acquired_at_ms = NULL, last_heartbeat_ms = NULL WHERE resource_id = $1")
                                .bind(uuid).execute(&mut *tx).await.unwrap();
                        }
                        let before: StoredLease = sqlx::query_as("SELECT * FROM leases WHERE resource_id = $1").bind(uuid).fetch_one(&mut *tx).await.unwrap();
                        let lease = before.clone().into_lease(ResourceId(uuid)).unwrap();
                        let claim = Claim { principal: Principal::parse(principal).unwrap(), owner: OwnerId::parse(owner).unwrap(), token: token.map(FencingToken) };
                        let core = heartbeat(&lease, now, &claim);
                        let sql = sqlx::query(RENEW_AT)
                            .bind(uuid)
                            .bind(principal)
                            .bind(owner)
                            .bind(token.map(|t| t as i64))
                            .bind(now.0)
                            .fetch_optional(&mut *tx)
                            .await
                            .unwrap();
                        let case = format!("{state}, heartbeat {age} ms ago, claim {principal}/{owner}/{token:?}, max gap {max_gap}");
                        assert_eq!(sql.is_some(), core.is_ok(), "{case}: core says {core:?}");
                        if let (Some(row), Ok(out)) = (sql, core) {
                            renewed += 1;
                            let want = StoredLease::of(&out.lease);
                            let got = (row.get::<i64, _>("last_heartbeat_ms"), row.get::<i64, _>("heartbeats"), row.get::<i64, _>("max_gap_ms"));
                            assert_eq!(got, (want.last_heartbeat_ms.unwrap(), want.heartbeats, want.max_gap_ms), "{case}");
                            assert!(out.events.is_empty());
                        }
                        tx.rollback().await.unwrap();
                    }
                }
            }
        }
    }
    assert!(renewed > 10 && renewed < cases, "both outcomes are covered: {renewed} of {cases}");
    app.stop().await;
}
