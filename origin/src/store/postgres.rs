//! PostgreSQL: its dialect — with the one-statement acquire, heartbeat and release, and the `NOTIFY`s that carry
//! renewals and hand-overs to every replica — how the store connects (following the primary: `crate::primary`),
//! and how those notifications reach this process.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use hhs_core::lease::{AcquireCmd, Claim};
use hhs_core::wire::{HoldDetail, SessionHold};
use hhs_core::{FencingToken, ResourceId};
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener};
use sqlx::{Pool, Postgres};

use super::dialect::{Dialect, Shortcut};
use super::rows::{arguments, lease_columns, Arg, LeaseRecord, Record};
use super::sessions::renew_session_holds;
use super::sql_store::SqlStore;
use super::{Actor, Change, StoreError};
use crate::pool::PoolSlot;
use crate::primary::{find_primary, follow, targets, CONNECT_WITHIN};

impl Dialect for Postgres {
    const KIND: &'static str = "postgres";
    const NOW: &'static str = "SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint";
    const BEGIN_WRITE: &'static str = "BEGIN";
    const SKIP_LOCKED: &'static str = " FOR UPDATE OF l SKIP LOCKED";
    const SKIP_LOCKED_SESSIONS: &'static str = " FOR UPDATE SKIP LOCKED";
    const HORIZON: &'static str = "pg_snapshot_xmin(pg_current_snapshot())::text::bigint";
    const LOCK_OUTAGES: &'static str = "LOCK TABLE outages IN SHARE ROW EXCLUSIVE MODE";
    /// Synchronous standbys are counted where the role may see them (`pg_monitor`; else the count is NULL).
    const REPLICATION: Option<&'static str> = Some(
        "SELECT current_setting('synchronous_commit'), current_setting('synchronous_standby_names'), \
         (SELECT count(*) FILTER (WHERE sync_state IN ('sync', 'quorum')) FROM pg_stat_replication WHERE sync_state IS NOT NULL)",
    );
    const MIGRATOR: &'static Migrator = &sqlx::migrate!("../migrations/postgres");

    fn sql(statement: &str) -> Cow<'_, str> {
        Cow::Borrowed(statement)
    }

    fn lock(table: &str) -> String {
        format!(" FOR UPDATE OF {table}")
    }

    async fn fetch<T: Record>(conn: &mut PgConnection, statement: &str, args: Vec<Arg>) -> Result<Vec<T>, StoreError> {
        Ok(sqlx::query_as_with(statement, arguments::<Postgres>(args)?).fetch_all(conn).await?)
    }

    async fn execute(conn: &mut PgConnection, statement: &str, args: Vec<Arg>) -> Result<u64, StoreError> {
        Ok(sqlx::query_with(statement, arguments::<Postgres>(args)?).execute(conn).await?.rows_affected())
    }

    async fn migrate(pool: &Pool<Postgres>) -> Result<(), MigrateError> {
        Self::MIGRATOR.run(pool).await
    }

    /// [`ONE_STATEMENT_ACQUIRE`].
    async fn acquire_in_one_statement(
        pool: &Pool<Postgres>,
        id: ResourceId,
        cmd: &AcquireCmd,
        actor: &Actor,
    ) -> Result<Shortcut<LeaseRecord>, StoreError> {
        let detail = serde_json::to_string(&HoldDetail::granted(cmd.ttl, &cmd.principal)).unwrap_or_default();
        let (ids, ttl) =
            ([Arg::Uuid(Some(id.0)), Arg::Uuid(Some(cmd.new_hold_id.0))], Arg::Int(Some(cmd.ttl.as_millis().0)));
        let who =
            [Arg::text(cmd.principal.as_str()), Arg::Text(actor.key_id.clone()), Arg::Text(actor.request_id.clone())];
        let args = [&ids[..], &[Arg::text(cmd.owner.as_str()), ttl, Arg::Text(Some(detail))], &who].concat();
        one_row(pool, ONE_STATEMENT_ACQUIRE, args).await
    }

    /// [`ONE_STATEMENT_HEARTBEAT`].
    async fn heartbeat_in_one_statement(
        pool: &Pool<Postgres>,
        id: ResourceId,
        claim: &Claim,
    ) -> Result<Shortcut<LeaseRecord>, StoreError> {
        one_row(pool, ONE_STATEMENT_HEARTBEAT, holder_args(id, claim)).await
    }

    /// [`ONE_STATEMENT_RELEASE`].
    async fn release_in_one_statement(
        pool: &Pool<Postgres>,
        id: ResourceId,
        claim: &Claim,
        actor: &Actor,
    ) -> Result<Shortcut<LeaseRecord>, StoreError> {
        let who = [Arg::text(&actor.principal), Arg::Text(actor.key_id.clone()), Arg::Text(actor.request_id.clone())];
        one_row(pool, ONE_STATEMENT_RELEASE, [holder_args(id, claim), who.to_vec()].concat()).await
    }

    /// Renewals on [`RENEWALS`] (small: well under NOTIFY's 8 kB), hand-overs on [`QUEUE`].
    async fn announce(conn: &mut PgConnection, change: &Change) -> Result<bool, StoreError> {
        let (channel, payload) = match change {
            Change::Renewed(r) => (RENEWALS, serde_json::to_string(r).unwrap_or_default()),
            Change::HandedOver(id) => (QUEUE, id.to_string()),
            Change::Events => return Ok(false),
        };
        Self::execute(conn, "SELECT pg_notify($1, $2)", vec![Arg::text(channel), Arg::Text(Some(payload))]).await?;
        Ok(true)
    }

    /// [`RENEW_SESSION_HOLDS_NOTIFIED`].
    async fn renew_session_holds_announced(
        conn: &mut PgConnection,
        args: Vec<Arg>,
    ) -> Result<Option<Vec<SessionHold>>, StoreError> {
        let rows: Vec<(uuid::Uuid, Option<i64>)> = Self::fetch(conn, RENEW_SESSION_HOLDS_NOTIFIED, args).await?;
        let holds = rows
            .into_iter()
            .map(|(r, token)| {
                let token = token
                    .and_then(FencingToken::from_i64)
                    .ok_or_else(|| StoreError::Corrupt(format!("held lease {r} has no valid token")))?;
                Ok(SessionHold { resource_id: ResourceId(r), fencing_token: token.0 })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Some(holds))
    }
}

/// A one-statement path's row, or "not that simple" when it returned none.
async fn one_row(pool: &Pool<Postgres>, statement: &str, args: Vec<Arg>) -> Result<Shortcut<LeaseRecord>, StoreError> {
    let row = sqlx::query_as_with(statement, arguments::<Postgres>(args)?).fetch_all(pool).await?.pop();
    Ok(row.map_or(Shortcut::NotSimple, Shortcut::Done))
}

/// The arguments of the one-statement heartbeat and release: resource, then the caller's principal, owner, token.
fn holder_args(id: ResourceId, claim: &Claim) -> Vec<Arg> {
    let token = Arg::Int(claim.token.map(|t| t.to_i64()));
    vec![Arg::Uuid(Some(id.0)), Arg::text(claim.principal.as_str()), Arg::text(claim.owner.as_str()), token]
}

/// The grant rule for a lease that is not held: not in lock-delay at the clock's `ms`. Restates the part of
/// `hhs_core::lease::acquire` that applies when the stored state is not `HELD`; the differential test
/// (`tests/it/fast_grant.rs`) checks both decide every generated case alike.
macro_rules! grantable {
    () => {
        "l.state <> 'HELD' AND (l.delay_until_ms IS NULL OR l.delay_until_ms <= clock.ms)"
    };
}

/// The predicate alone, over `leases l` and a `clock` with the time in `ms`: what the differential test runs.
pub const GRANTABLE: &str = grantable!();

/// PostgreSQL's one-statement acquire for a resource that is free, released, expired-and-recorded or
/// force-released and not in lock-delay: grant the next token, append the `acquired` event, return the lease.
/// No row means "not that simple" (held, lapsed but unrecorded, in lock-delay, unknown resource), and the caller
/// falls back to the row-lock path that asks `hhs_core::lease::acquire`. `xtask pgbench` measured this shape
/// faster than lock-then-decide for the common case. `$1` resource, `$2` hold id, `$3` owner, `$4` TTL in ms,
/// `$5` the event detail, `$6` principal, `$7` key, `$8` request.
///
/// `locked` takes the lease row, and shares the resource's and its type's rows, only if nobody holds a
/// conflicting lock on any of them (`SKIP LOCKED`): this statement never waits, and falls back to the row-lock
/// path (`lock_lease`, which reads after its lock) instead. One statement has one snapshot: PostgreSQL re-reads
/// a row after the snapshot only when the statement locks it and it has changed since. So the status and TTL
/// bounds the grant is decided by are `locked`'s columns — the resource and type rows locked too, read as
/// committed when locked — never a join read from the snapshot, which could predate a status change or a type
/// change that committed before the lock was taken (and the grant would follow it in the log). `clock` reads
/// `clock_timestamp()` from `locked`'s row, so only once the locks are taken. `locked` takes only a row that is
/// not `HELD`: a held row cannot be granted here anyway.
pub const ONE_STATEMENT_ACQUIRE: &str = concat!(
    "WITH locked AS MATERIALIZED (SELECT l.resource_id, r.status, t.min_ttl_seconds, t.max_ttl_seconds FROM leases l \
        JOIN resources r ON r.id = l.resource_id JOIN resource_types t ON t.name = r.type \
        WHERE l.resource_id = $1 AND l.state <> 'HELD' FOR UPDATE OF l SKIP LOCKED FOR SHARE OF r, t SKIP LOCKED), \
     clock AS MATERIALIZED (SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint AS ms FROM locked), \
     granted AS (UPDATE leases l SET last_token = l.last_token + 1, hold_id = $2, owner_id = $3, ttl_ms = $4, \
        token = l.last_token + 1, acquired_at_ms = clock.ms, last_heartbeat_ms = clock.ms, state = 'HELD', \
        ended_at_ms = NULL, heartbeats = 0, max_gap_ms = 0, delay_until_ms = NULL, principal = $6, late_reported = FALSE, \
        session_id = NULL, group_id = NULL, booked_until_ms = NULL, pickup_by_ms = NULL \
        FROM clock, locked k WHERE l.resource_id = k.resource_id \
        AND k.status = 'U' AND $4 BETWEEN k.min_ttl_seconds * 1000 AND k.max_ttl_seconds * 1000 AND ",
    grantable!(),
    // Nobody waits: a queue is served first, by the row-lock path (`hhs_core::queue::admit`).
    " AND l.waiters = 0 RETURNING l.*), \
     logged AS (INSERT INTO events (at_ms, kind, resource_id, hold_id, owner_id, fencing_token, detail, principal, \
        key_id, request_id, outcome) \
        SELECT acquired_at_ms, 'acquired', resource_id, hold_id, owner_id, token, $5, $6, $7, $8, 'ok' FROM granted) \
     SELECT ",
    lease_columns!(),
    " FROM granted l JOIN resources r ON r.id = l.resource_id JOIN resource_types t ON t.name = r.type"
);

/// The caller's live hold, over `leases l` and a `clock` with the time in `ms`: `$2` principal, `$3` owner, `$4`
/// token or NULL; held and not lapsed; a plain hold (a session's or a booking falls back to hhs-core). Restates the success case of `hhs_core::lease::heartbeat` and `release`
/// (`check_holder`, then `Hold::is_expired`); anything else falls back to the row-lock path, where hhs-core
/// decides and names the refusal. `tests/it/fast_paths.rs` checks SQL and hhs-core agree on every generated
/// case, outcome and values.
macro_rules! live_hold_of_caller {
    () => {
        "l.resource_id = $1 AND l.state = 'HELD' AND l.principal = $2 AND l.owner_id = $3 \
         AND ($4::bigint IS NULL OR l.token = $4) AND clock.ms - l.last_heartbeat_ms <= l.ttl_ms \
         AND (l.pickup_by_ms IS NULL OR clock.ms <= l.pickup_by_ms) \
         AND l.session_id IS NULL AND l.booked_until_ms IS NULL"
    };
}

/// The renewal (`Hold::record_heartbeat`: the clock never moves back, the longest gap kept).
macro_rules! renew {
    () => {
        concat!(
            "UPDATE leases l SET heartbeats = LEAST(l.heartbeats + 1, 4294967295), \
                max_gap_ms = GREATEST(l.max_gap_ms, GREATEST(clock.ms, l.last_heartbeat_ms) - l.last_heartbeat_ms), \
                last_heartbeat_ms = GREATEST(clock.ms, l.last_heartbeat_ms), pickup_by_ms = NULL FROM clock WHERE ",
            live_hold_of_caller!(),
            " RETURNING l.*"
        )
    };
}

/// The release (`hhs_core::lease::release`: ended at the later of the clock and the last heartbeat; no
/// lock-delay) and its `released` event, whose detail is `HoldDetail` written in SQL (`$5` actor principal, `$6`
/// key id, `$7` request id).
macro_rules! release_and_log {
    () => {
        concat!(
            "released AS (UPDATE leases l SET state = 'RELEASED', ended_at_ms = GREATEST(clock.ms, l.last_heartbeat_ms), \
                pickup_by_ms = NULL FROM clock WHERE ",
            live_hold_of_caller!(),
            // Nobody waits: a release with a queue hands over in its transaction (the row-lock path).
            " AND l.waiters = 0 RETURNING l.*, clock.ms AS now_ms), \
             logged AS (INSERT INTO events (at_ms, kind, resource_id, hold_id, owner_id, fencing_token, detail, principal, \
                key_id, request_id, outcome) \
                SELECT now_ms, 'released', resource_id, hold_id, owner_id, token, json_build_object('ttl_seconds', ttl_ms / 1000, \
                'heartbeats', heartbeats, 'max_heartbeat_gap_ms', max_gap_ms, 'held_ms', ended_at_ms - acquired_at_ms, \
                'hold_principal', principal, 'ended_at', \
                to_char(TIMESTAMP 'epoch' + ended_at_ms * INTERVAL '1 millisecond', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'))::text, \
                $5, $6, $7, 'ok' FROM released RETURNING detail)"
        )
    };
}

/// The statements' first two steps: lock the row, then read the clock — only once the lock is granted (as the
/// one-statement acquire does: a clock read before a lock wait would decide with a time from before it).
macro_rules! locked_clock {
    () => {
        "WITH locked AS MATERIALIZED (SELECT resource_id FROM leases WHERE resource_id = $1 FOR UPDATE), \
         clock AS MATERIALIZED (SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint AS ms FROM locked), "
    };
}

/// The renewal alone, with the clock given as `$5`: what the differential test runs.
pub const RENEW_AT: &str =
    concat!("WITH clock AS (SELECT $5::bigint AS ms), renewed AS (", renew!(), ") SELECT * FROM renewed");

/// The release alone, with the clock given as `$8`; returns the row and the event's detail.
pub const RELEASE_AT: &str = concat!(
    "WITH clock AS (SELECT $8::bigint AS ms), ",
    release_and_log!(),
    " SELECT released.*, logged.detail FROM released, logged"
);

/// PostgreSQL's one-statement heartbeat: lock, clock, renew, and notify the renewal (`hhs_renewals`, the written
/// row as JSON: `StoredLease::parse_row`) — one round trip instead of six (begin, lock, clock, update, notify,
/// commit). No row: not that simple (another's hold, lapsed, released, a stale token, unknown resource), and the
/// caller falls back to the row-lock path.
pub const ONE_STATEMENT_HEARTBEAT: &str = concat!(
    locked_clock!(),
    "renewed AS (",
    renew!(),
    "), notified AS (SELECT pg_notify('hhs_renewals', row_to_json(renewed)::text) FROM renewed) SELECT ",
    lease_columns!(),
    " FROM renewed l JOIN notified ON TRUE JOIN resources r ON r.id = l.resource_id JOIN resource_types t ON t.name = r.type"
);

/// PostgreSQL's one-statement release of the caller's live hold, with its `released` event. No row: not that
/// simple (an idempotent repeat, a stale token, lapsed, another's hold), and the caller falls back.
pub const ONE_STATEMENT_RELEASE: &str = concat!(
    locked_clock!(),
    release_and_log!(),
    " SELECT ",
    lease_columns!(),
    " FROM released l JOIN resources r ON r.id = l.resource_id JOIN resource_types t ON t.name = r.type"
);

/// PostgreSQL: the same statement also notifies each renewed row (`hhs_renewals`, as a heartbeat does), so every
/// replica's stream carries the new expiries; it returns each renewed hold's resource and token.
pub const RENEW_SESSION_HOLDS_NOTIFIED: &str = concat!(
    "WITH renewed AS (",
    renew_session_holds!(),
    "), notified AS (SELECT resource_id, token, pg_notify('hhs_renewals', row_to_json(renewed)::text) FROM renewed) \
     SELECT resource_id, token FROM notified ORDER BY resource_id"
);

/// The NOTIFY channel of renewals (payload the hold's `LockView`). Events are not notified: readers poll the commit
/// horizon and wake at once on this replica's own commits.
pub const RENEWALS: &str = "hhs_renewals";
/// The NOTIFY channel of hand-overs to waiters (payload the resource id): wakes the waiting requests on every
/// replica at once.
pub const QUEUE: &str = "hhs_queue";

pub type PgStore = SqlStore<Postgres>;

impl SqlStore<Postgres> {
    /// Connects to the writable server among `url`'s hosts ([`targets`]) and follows it from then on; the
    /// renewals' LISTEN connection follows it too.
    pub async fn connect(url: &str, min: u32, max: u32) -> Result<PgStore, StoreError> {
        let hosts = targets(url).map_err(|e| StoreError::Unavailable(sqlx::Error::Configuration(e.into())))?;
        let options: Vec<PgConnectOptions> =
            hosts.iter().map(|h| h.parse()).collect::<Result<_, _>>().map_err(StoreError::Unavailable)?;
        let Some((pool, server)) = find_primary(&options, min, max, CONNECT_WITHIN).await else {
            let why = format!(
                "none of the {} host(s) of DATABASE_URL accepted writes within {CONNECT_WITHIN:?}",
                options.len()
            );
            return Err(StoreError::Unavailable(sqlx::Error::Configuration(why.into())));
        };
        tracing::info!(server = %server, hosts = options.len(), "connected to the PostgreSQL primary");
        let store = SqlStore::new(PoolSlot::new(Some(pool), Some(server)));
        let (slot, changes, queue) = (store.pool_slot().clone(), store.changes.clone(), store.queue_wake.clone());
        let on_found = changes.clone();
        // Readers look at the log: events committed on the new primary may not have been announced.
        let found = move || drop(on_found.send(Change::Events));
        let tasks =
            [tokio::spawn(follow(slot.clone(), options, min, max, found)), tokio::spawn(listen(slot, changes, queue))];
        store.tasks.lock().unwrap_or_else(|p| p.into_inner()).extend(tasks);
        Ok(store)
    }
}

/// Forwards `hhs_renewals` to this store's readers and `hhs_queue` to its waiting requests, reconnecting (to the
/// current primary) after any error. A lost connection is reported as `Change::Events`, so readers look at the
/// log rather than wait for a renewal that may be lost (waiting requests poll on their own as well).
async fn listen(
    slot: Arc<PoolSlot<Postgres>>,
    changes: tokio::sync::broadcast::Sender<Change>,
    queue: tokio::sync::broadcast::Sender<ResourceId>,
) {
    loop {
        let listener = match slot.current() {
            Ok(pool) => match PgListener::connect_with(&pool).await {
                Ok(mut l) => l.listen_all([RENEWALS, QUEUE]).await.map(|()| l),
                Err(e) => Err(e),
            },
            Err(_) => Err(sqlx::Error::PoolClosed),
        };
        match listener {
            Ok(mut l) => loop {
                match l.recv().await {
                    Ok(n) if n.channel() == QUEUE => {
                        if let Ok(id) = n.payload().parse() {
                            let _ = queue.send(ResourceId(id));
                        }
                    }
                    Ok(n) => {
                        let _ =
                            changes.send(renewal(n.payload()).map_or(Change::Events, |r| Change::Renewed(Box::new(r))));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "LISTEN connection lost; reconnecting");
                        let _ = changes.send(Change::Events);
                        break;
                    }
                }
            },
            Err(sqlx::Error::PoolClosed) => {}
            Err(e) => tracing::warn!(error = %e, "LISTEN hhs_renewals failed"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// A renewal notification's hold: a `LockView` (written by the row-lock path) or the `leases` row a one-statement
/// heartbeat wrote (`StoredLease::parse_row`), viewed as `LockView::renewed` would.
fn renewal(payload: &str) -> Option<hhs_core::wire::LockView> {
    serde_json::from_str(payload)
        .ok()
        .or_else(|| hhs_core::wire::LockView::renewed(&hhs_core::stored::StoredLease::parse_row(payload).ok()?))
}
