//! The embedded SQLite store: HHS on a bare machine with no database server. WAL mode, one writer at a time:
//! every change runs in `BEGIN IMMEDIATE`, which takes the write lock up front, so a read-decide-write never
//! races another writer. Same schema, same statements (with `?n` placeholders), same events as PostgreSQL.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use hhs_core::api::RenewalView;
use hhs_core::lease::{expire, retire, token_floor};
use hhs_core::{FencingToken, Identifier, Lease, Millis, Outcome, Policy, ResourceId, ResourceType};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};

use super::queries::{
    self, bind_args, DELETE_RESOURCE, INSERT_KEY, INSERT_LEASE, INSERT_RESOURCE, LOG_POSITION, RAISE_FLOOR, REVOKE_KEY, SELECT_EXPIRED,
    SELECT_FLOOR, SELECT_KEY, SELECT_KEYS, SELECT_LEASE, SELECT_RESOURCE, SET_LAST_TOKEN, SQLITE_HORIZON, UPDATE_IDENTIFIER,
};
use super::rows::{
    bind_event, bind_lease, sqlite_placeholders as q, EventRecord, LeaseColumns, LeaseRecord, ResourceRecord, INSERT_EVENT,
    UPDATE_LEASE,
};
use super::{
    renewal, Actor, Applied, Change, EventFilter, EventRow, FinishedHold, KeyRecord, LockFilter, LogPos, Logged, Resource, ResourceFilter, Store,
    StoreError, Transition,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");

const NOW: &str = "SELECT CAST(unixepoch('subsec') * 1000 AS INTEGER)";

type Tx = Transaction<'static, Sqlite>;

pub struct SqliteStore {
    pool: SqlitePool,
    /// Woken after every commit that wrote events: one process owns the file, so it knows.
    written: tokio::sync::Notify,
    /// Renewals committed (heartbeats), for the event pump; a receiver buffers them while the pump is busy.
    renewals: tokio::sync::broadcast::Sender<RenewalView>,
    renewals_rx: tokio::sync::Mutex<tokio::sync::broadcast::Receiver<RenewalView>>,
}

/// How long a writer waits for the database lock before the request is answered 503 (with `Retry-After`).
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

impl SqliteStore {
    pub async fn open(path: &Path, max: u32) -> Result<SqliteStore, StoreError> {
        Self::open_with(path, max, BUSY_TIMEOUT).await
    }

    /// `open` with another busy timeout (tests of the busy path).
    pub async fn open_with(path: &Path, max: u32, busy_timeout: Duration) -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::from_str("sqlite://")
            .map_err(StoreError::Unavailable)?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL, not NORMAL: in WAL mode NORMAL syncs only at checkpoints, so a power loss can roll back
            // transactions that were acknowledged — a grant the client was told of, whose fencing token would
            // then be issued a second time. FULL syncs the WAL at every commit.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            // Writers queue on the database lock; under a burst of acquires they wait rather than fail.
            .busy_timeout(busy_timeout);
        let pool = SqlitePoolOptions::new()
            .max_connections(max.max(1))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await?;
        let (renewals, renewals_rx) = tokio::sync::broadcast::channel(1_024);
        Ok(SqliteStore { pool, written: tokio::sync::Notify::new(), renewals, renewals_rx: tokio::sync::Mutex::new(renewals_rx) })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    async fn begin_write(&self) -> Result<Tx, StoreError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Begins a transaction holding the resource's lease row; the clock is read after the lock is granted.
    async fn lock_lease(&self, id: ResourceId) -> Result<(Tx, Resource, Lease, Millis), StoreError> {
        let mut tx = self.begin_write().await?;
        let rec: Option<LeaseRecord> = sqlx::query_as(&q(SELECT_LEASE)).bind(id.0).fetch_optional(&mut *tx).await?;
        let (resource, lease) = rec.ok_or(StoreError::NotFound)?.into_parts()?;
        let now = db_now(&mut tx).await?;
        Ok((tx, resource, lease, now))
    }

    /// Commits, then wakes the event pump.
    async fn commit(&self, tx: Tx) -> Result<(), StoreError> {
        tx.commit().await?;
        self.written.notify_one();
        Ok(())
    }
}

/// The floor of a name (`None`: never given up).
async fn floor(tx: &mut Tx, ty: &str, ident: &str) -> Result<Option<FencingToken>, StoreError> {
    let f: Option<i64> = sqlx::query_scalar(&q(SELECT_FLOOR)).bind(ty).bind(ident).fetch_optional(&mut **tx).await?;
    Ok(f.and_then(FencingToken::from_i64))
}

/// Gives up a resource's name: its last token becomes the name's floor.
async fn give_up_name(tx: &mut Tx, r: &Resource, last_token: FencingToken) -> Result<(), StoreError> {
    sqlx::query(&q(RAISE_FLOOR)).bind(&r.resource_type).bind(&r.identifier).bind(last_token.to_i64()).execute(&mut **tx).await?;
    Ok(())
}

/// Takes a name: the lease continues above the name's floor.
async fn take_name(tx: &mut Tx, r: &Resource, last_token: FencingToken) -> Result<(), StoreError> {
    let raised = token_floor(last_token, floor(tx, &r.resource_type, &r.identifier).await?);
    if raised > last_token {
        sqlx::query(&q(SET_LAST_TOKEN)).bind(r.id.0).bind(raised.to_i64()).execute(&mut **tx).await?;
    }
    Ok(())
}

async fn db_now(tx: &mut Tx) -> Result<Millis, StoreError> {
    Ok(Millis(sqlx::query_scalar(NOW).fetch_one(&mut **tx).await?))
}

async fn insert_event(tx: &mut Tx, event: EventRow) -> Result<(), StoreError> {
    bind_event!(sqlx::query(&q(INSERT_EVENT)), event).execute(&mut **tx).await?;
    Ok(())
}

/// Writes a transition's lease and events inside the caller's transaction.
async fn write(tx: &mut Tx, before: &Lease, outcome: &Outcome, actor: &Actor) -> Result<(), StoreError> {
    if &outcome.lease != before {
        let id = outcome.lease.resource_id.0;
        bind_lease!(sqlx::query(&q(UPDATE_LEASE)), id, LeaseColumns::from(&outcome.lease)).execute(&mut **tx).await?;
    }
    for event in &outcome.events {
        insert_event(tx, EventRow::lease(&outcome.lease, event, actor)).await?;
    }
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn now(&self) -> Result<Millis, StoreError> {
        Ok(Millis(sqlx::query_scalar(NOW).fetch_one(&self.pool).await?))
    }

    async fn create_resource(&self, id: ResourceId, ty: &ResourceType, ident: &Identifier, actor: &Actor) -> Result<Resource, StoreError> {
        let mut tx = self.begin_write().await?;
        let now = db_now(&mut tx).await?;
        let resource = Resource { id, resource_type: ty.as_str().to_owned(), identifier: ident.as_str().to_owned(), created_at: now };
        sqlx::query(&q(INSERT_RESOURCE)).bind(id.0).bind(ty.as_str()).bind(ident.as_str()).bind(now.0).execute(&mut *tx).await?;
        sqlx::query(&q(INSERT_LEASE)).bind(id.0).execute(&mut *tx).await?;
        take_name(&mut tx, &resource, FencingToken(0)).await?;
        insert_event(&mut tx, EventRow::resource("resource_created", &resource, now, actor)).await?;
        self.commit(tx).await?;
        Ok(resource)
    }

    async fn update_resource(&self, id: ResourceId, ident: &Identifier, actor: &Actor) -> Result<Resource, StoreError> {
        let (mut tx, mut resource, lease, now) = self.lock_lease(id).await?;
        give_up_name(&mut tx, &resource, lease.last_token).await?;
        sqlx::query(&q(UPDATE_IDENTIFIER)).bind(id.0).bind(ident.as_str()).execute(&mut *tx).await?;
        resource.identifier = ident.as_str().to_owned();
        take_name(&mut tx, &resource, lease.last_token).await?;
        insert_event(&mut tx, EventRow::resource("resource_updated", &resource, now, actor)).await?;
        self.commit(tx).await?;
        Ok(resource)
    }

    async fn delete_resource(&self, id: ResourceId, policy: &Policy, actor: &Actor) -> Result<Resource, StoreError> {
        let (mut tx, resource, lease, now) = self.lock_lease(id).await?;
        let outcome = retire(&lease, now, policy.lock_delay(&resource.resource_type)).map_err(StoreError::Denied)?;
        write(&mut tx, &lease, &outcome, actor).await?;
        give_up_name(&mut tx, &resource, lease.last_token).await?;
        sqlx::query(&q(DELETE_RESOURCE)).bind(id.0).execute(&mut *tx).await?;
        insert_event(&mut tx, EventRow::resource("resource_deleted", &resource, now, actor)).await?;
        self.commit(tx).await?;
        Ok(resource)
    }

    async fn resource(&self, id: ResourceId) -> Result<Resource, StoreError> {
        let rec: Option<ResourceRecord> = sqlx::query_as(&q(SELECT_RESOURCE)).bind(id.0).fetch_optional(&self.pool).await?;
        rec.map(Resource::from).ok_or(StoreError::NotFound)
    }

    async fn resources(&self, filter: &ResourceFilter) -> Result<Vec<Resource>, StoreError> {
        let (sql, args) = queries::resources(filter);
        let sql = q(&sql);
        let recs: Vec<ResourceRecord> = bind_args!(sqlx::query_as(&sql), args).fetch_all(&self.pool).await?;
        Ok(recs.into_iter().map(Resource::from).collect())
    }

    async fn lease(&self, id: ResourceId) -> Result<(Resource, Lease, Millis), StoreError> {
        let mut tx = self.pool.begin().await?;
        let rec: Option<LeaseRecord> = sqlx::query_as(&q(SELECT_LEASE)).bind(id.0).fetch_optional(&mut *tx).await?;
        let now = db_now(&mut tx).await?;
        tx.commit().await?;
        let (resource, lease) = rec.ok_or(StoreError::NotFound)?.into_parts()?;
        Ok((resource, lease, now))
    }

    async fn leases(&self, filter: &LockFilter) -> Result<(Vec<(Resource, Lease)>, Millis), StoreError> {
        let (sql, args) = queries::leases(filter);
        let sql = q(&sql);
        let mut tx = self.pool.begin().await?;
        let recs: Vec<LeaseRecord> = bind_args!(sqlx::query_as(&sql), args).fetch_all(&mut *tx).await?;
        let now = db_now(&mut tx).await?;
        tx.commit().await?;
        let leases = recs.into_iter().map(LeaseRecord::into_parts).collect::<Result<_, _>>()?;
        Ok((leases, now))
    }

    async fn transact(&self, id: ResourceId, actor: &Actor, transition: Transition) -> Result<Applied, StoreError> {
        let (mut tx, resource, lease, now) = self.lock_lease(id).await?;
        let outcome = transition(&resource, &lease, now).map_err(StoreError::Denied)?;
        write(&mut tx, &lease, &outcome, actor).await?;
        self.commit(tx).await?;
        if let Some(r) = renewal(&lease, &outcome) {
            let _ = self.renewals.send(r);
        }
        Ok(Applied { resource, outcome, now })
    }

    async fn reap(&self, policy: &Policy, batch: u32) -> Result<usize, StoreError> {
        let actor = Actor::system("reaper");
        let mut tx = self.begin_write().await?;
        let now = db_now(&mut tx).await?;
        let recs: Vec<LeaseRecord> =
            sqlx::query_as(&q(SELECT_EXPIRED)).bind(now.0).bind(i64::from(batch)).fetch_all(&mut *tx).await?;
        let mut expired = 0;
        for rec in recs {
            let (resource, lease) = rec.into_parts()?;
            if let Some(outcome) = expire(&lease, now, policy.lock_delay(&resource.resource_type)) {
                write(&mut tx, &lease, &outcome, &actor).await?;
                expired += 1;
            }
        }
        self.commit(tx).await?;
        Ok(expired)
    }

    async fn events(&self, filter: &EventFilter) -> Result<Vec<Logged>, StoreError> {
        let (sql, args) = queries::events(filter, SQLITE_HORIZON);
        let sql = q(&sql);
        let recs: Vec<EventRecord> = bind_args!(sqlx::query_as(&sql), args).fetch_all(&self.pool).await?;
        Ok(recs.into_iter().map(Logged::from).collect())
    }

    async fn newest_event(&self) -> Result<Option<LogPos>, StoreError> {
        let row: Option<(i64, i64)> = sqlx::query_as(&queries::newest_event(SQLITE_HORIZON)).fetch_optional(&self.pool).await?;
        Ok(row.map(|(txid, id)| LogPos { txid, id }))
    }

    async fn log_position(&self, id: i64) -> Result<Option<LogPos>, StoreError> {
        let row: Option<(i64, i64)> = sqlx::query_as(&q(LOG_POSITION)).bind(id).fetch_optional(&self.pool).await?;
        Ok(row.map(|(txid, id)| LogPos { txid, id }))
    }

    async fn changed(&self) -> Change {
        let mut rx = self.renewals_rx.lock().await;
        tokio::select! {
            _ = self.written.notified() => Change::Events,
            r = rx.recv() => r.map(Change::Renewed).unwrap_or(Change::Events),
        }
    }

    async fn finished_holds(&self, after: i64, limit: u32) -> Result<Vec<FinishedHold>, StoreError> {
        Ok(sqlx::query_as(&q(&queries::finished_holds(SQLITE_HORIZON))).bind(after).bind(i64::from(limit)).fetch_all(&self.pool).await?)
    }

    async fn append_event(&self, mut event: EventRow) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        event.at_ms = db_now(&mut tx).await?.0;
        insert_event(&mut tx, event).await?;
        self.commit(tx).await?;
        Ok(())
    }

    async fn create_key(&self, key: &KeyRecord, actor: &Actor) -> Result<KeyRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        let now = db_now(&mut tx).await?;
        let key = KeyRecord { created_at_ms: now.0, ..key.clone() };
        sqlx::query(&q(INSERT_KEY))
            .bind(&key.id)
            .bind(&key.principal)
            .bind(&key.role)
            .bind(&key.secret_sha256)
            .bind(key.created_at_ms)
            .execute(&mut *tx)
            .await?;
        insert_event(&mut tx, EventRow::key("key_created", &key, now, actor)).await?;
        self.commit(tx).await?;
        Ok(key)
    }

    async fn key(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        Ok(sqlx::query_as(&q(SELECT_KEY)).bind(id).fetch_optional(&self.pool).await?)
    }

    async fn keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        Ok(sqlx::query_as(&q(SELECT_KEYS)).fetch_all(&self.pool).await?)
    }

    async fn revoke_key(&self, id: &str, actor: &Actor) -> Result<KeyRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        let now = db_now(&mut tx).await?;
        let changed = sqlx::query(&q(REVOKE_KEY)).bind(id).bind(now.0).execute(&mut *tx).await?.rows_affected();
        let key: KeyRecord = sqlx::query_as(&q(SELECT_KEY)).bind(id).fetch_optional(&mut *tx).await?.ok_or(StoreError::NotFound)?;
        if changed > 0 {
            insert_event(&mut tx, EventRow::key("key_revoked", &key, now, actor)).await?;
        }
        self.commit(tx).await?;
        Ok(key)
    }
}
