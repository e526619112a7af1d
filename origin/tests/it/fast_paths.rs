//! PostgreSQL's one-statement heartbeat and release restate the success case of the heartbeat and release rules
//! in SQL (`postgres::RENEW_AT`, `postgres::RELEASE_AT`); here SQL and hhs-core decide every generated lease state and
//! claim alike and write the same values: SQL renews exactly when hhs-core's `heartbeat` succeeds, to the same
//! `last_heartbeat`, count and longest gap; SQL releases exactly when hhs-core's `release` ends the hold, with
//! the same end and the same `released` detail. Everything else falls back to the row-lock path.

use hhs_core::lease::{heartbeat, release, Claim, Outcome};
use hhs_core::stored::StoredLease;
use hhs_core::wire::HoldDetail;
use hhs_core::{Denied, EventKind, FencingToken, Lease, Millis, OwnerId, Principal, ResourceId};
use hhs_origin::store::postgres::{RELEASE_AT, RENEW_AT};
use sqlx::postgres::PgRow;
use sqlx::{Connection, PgConnection, Row};

use crate::support::{Backend, TestApp, TestDb};

/// Which rule a case runs.
#[derive(Clone, Copy, PartialEq)]
enum Rule {
    Heartbeat,
    Release,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_heartbeat_sql_agrees_with_core_heartbeat() {
    differential(Rule::Heartbeat).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_release_sql_agrees_with_core_release() {
    differential(Rule::Release).await;
}

async fn run_sql(
    rule: Rule,
    tx: &mut PgConnection,
    uuid: uuid::Uuid,
    principal: &str,
    owner: &str,
    token: Option<u64>,
    now: Millis,
) -> Option<PgRow> {
    let q = sqlx::query(if rule == Rule::Heartbeat { RENEW_AT } else { RELEASE_AT })
        .bind(uuid)
        .bind(principal)
        .bind(owner)
        .bind(token.map(|t| t as i64));
    let q = match rule {
        Rule::Heartbeat => q.bind(now.0),
        Rule::Release => q.bind("clinic-north").bind(Some("key1")).bind(Some("req1")).bind(now.0),
    };
    q.fetch_optional(tx).await.unwrap()
}

fn run_core(rule: Rule, lease: &Lease, now: Millis, claim: &Claim) -> Result<Outcome, Denied> {
    match rule {
        Rule::Heartbeat => heartbeat(lease, now, claim),
        // The fast path is the release that ends a hold; idempotent repeats (no event) fall back.
        Rule::Release => {
            release(lease, now, claim).and_then(|o| if o.events.is_empty() { Err(Denied::NotHeld) } else { Ok(o) })
        }
    }
}

async fn differential(rule: Rule) {
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
                    for (max_gap, pickup) in [0i64, 500, 20_000].into_iter().flat_map(|g| {
                        // A handed-over hold's pickup deadline: none, ahead, exactly now, just passed.
                        [None, Some(now.0 + 1_000), Some(now.0), Some(now.0 - 1)].map(move |p| (g, p))
                    }) {
                        cases += 1;
                        let hb = now.0 - age;
                        let mut tx = conn.begin().await.unwrap();
                        sqlx::query(
                            "UPDATE leases SET state = $1, hold_id = $2, owner_id = 'ws-1', principal = 'clinic-north', ttl_ms = 30000, \
                             token = 4, last_token = 4, acquired_at_ms = $3 - 60000, last_heartbeat_ms = $3, ended_at_ms = $4, heartbeats = 7, \
                             max_gap_ms = $5, pickup_by_ms = $6 WHERE resource_id = $2",
                        )
                        .bind(state)
                        .bind(uuid)
                        .bind(hb)
                        .bind((state != "HELD" && state != "FREE").then_some(hb))
                        .bind(max_gap)
                        .bind(pickup)
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                        if state == "FREE" {
                            sqlx::query("UPDATE leases SET hold_id = NULL, owner_id = NULL, principal = NULL, ttl_ms = NULL, token = NULL, acquired_at_ms = NULL, last_heartbeat_ms = NULL WHERE resource_id = $1")
                                .bind(uuid).execute(&mut *tx).await.unwrap();
                        }
                        let before: StoredLease = sqlx::query_as("SELECT * FROM leases WHERE resource_id = $1")
                            .bind(uuid)
                            .fetch_one(&mut *tx)
                            .await
                            .unwrap();
                        let lease = before.clone().into_lease(ResourceId(uuid)).unwrap();
                        let claim = Claim {
                            principal: Principal::parse(principal).unwrap(),
                            owner: OwnerId::parse(owner).unwrap(),
                            token: token.map(FencingToken),
                        };
                        let core = run_core(rule, &lease, now, &claim);
                        let sql = run_sql(rule, &mut tx, uuid, principal, owner, token, now).await;
                        let case = format!(
                            "{state}, heartbeat {age} ms ago, claim {principal}/{owner}/{token:?}, max gap {max_gap}, \
                             pickup by {pickup:?}"
                        );
                        assert_eq!(sql.is_some(), core.is_ok(), "{case}: core says {core:?}");
                        if let (Some(row), Ok(out)) = (sql, core) {
                            renewed += 1;
                            let want = StoredLease::of(&out.lease);
                            let got = (
                                row.get::<i64, _>("last_heartbeat_ms"),
                                row.get::<i64, _>("heartbeats"),
                                row.get::<i64, _>("max_gap_ms"),
                                row.get::<Option<i64>, _>("pickup_by_ms"),
                            );
                            assert_eq!(
                                got,
                                (want.last_heartbeat_ms.unwrap(), want.heartbeats, want.max_gap_ms, want.pickup_by_ms),
                                "{case}"
                            );
                            let ended = (row.get::<String, _>("state"), row.get::<Option<i64>, _>("ended_at_ms"));
                            assert_eq!(ended, (want.state.clone(), want.ended_at_ms), "{case}");
                            match rule {
                                Rule::Heartbeat => assert!(out.events.is_empty()),
                                Rule::Release => {
                                    assert_eq!(
                                        out.events.iter().map(|e| e.kind).collect::<Vec<_>>(),
                                        [EventKind::Released]
                                    );
                                    let detail: serde_json::Value =
                                        serde_json::from_str(&row.get::<String, _>("detail")).unwrap();
                                    let want = serde_json::to_value(HoldDetail::of(
                                        &out.events[0],
                                        out.lease.delay_until,
                                        None,
                                    ))
                                    .unwrap();
                                    assert_eq!(detail, want, "{case}");
                                }
                            }
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
