//! PostgreSQL: its dialect, how the store connects (following the primary: `crate::primary`), and how its
//! notifications reach this process.

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
use super::rows::{arguments, Arg, LeaseRecord, Record};
use super::sql::{ONE_STATEMENT_ACQUIRE, ONE_STATEMENT_HEARTBEAT, ONE_STATEMENT_RELEASE, RENEW_SESSION_HOLDS_NOTIFIED};
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
