//! The embedded SQLite store: HHS on a bare machine with no database server. WAL mode, one writer at a time:
//! every change runs in `BEGIN IMMEDIATE`, which takes the write lock up front, so a read-decide-write never
//! races another writer. Same schema, same statements (with `?n` placeholders), same events as PostgreSQL.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use hhs_core::api::{EventView, RenewalView};
use hhs_core::lease::expire;
use hhs_core::{Identifier, Lease, Millis, Outcome, Policy, ResourceId, ResourceType};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};

use super::queries::{
    self, bind_args, NEWEST_EVENT_ID, SELECT_FINISHED_HOLDS, DELETE_RESOURCE, INSERT_KEY, INSERT_LEASE, INSERT_RESOURCE, REVOKE_KEY, SELECT_EXPIRED, SELECT_KEY, SELECT_KEYS,
    SELECT_LEASE, SELECT_RESOURCE, UPDATE_IDENTIFIER,
};
use super::rows::{
    bind_event, bind_lease, sqlite_placeholders as q, EventRecord, LeaseColumns, LeaseRecord, ResourceRecord, INSERT_EVENT,
    UPDATE_LEASE,
};
use super::{
    held_refusal, renewal, Actor, Change, Applied, FinishedHold, EventFilter, EventRow, KeyRecord, LockFilter, Resource, ResourceFilter, Store, StoreError, Transition,
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

impl SqliteStore {
    pub async fn open(path: &Path, max: u32) -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::from_str("sqlite://")
            .map_err(StoreError::Unavailable)?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            // Writers queue on the database lock; under a burst of acquires they wait rather than fail.
            .busy_timeout(Duration::from_secs(30));
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
        insert_event(&mut tx, EventRow::resource("resource_created", &resource, now, actor)).await?;
        tx.commit().await?;
        self.written.notify_waiters();
        Ok(resource)
    }

    async fn update_resource(&self, id: ResourceId, ident: &Identifier, actor: &Actor) -> Result<Resource, StoreError> {
        let (mut tx, mut resource, _, now) = self.lock_lease(id).await?;
        sqlx::query(&q(UPDATE_IDENTIFIER)).bind(id.0).bind(ident.as_str()).execute(&mut *tx).await?;
        resource.identifier = ident.as_str().to_owned();
        insert_event(&mut tx, EventRow::resource("resource_updated", &resource, now, actor)).await?;
        tx.commit().await?;
        self.written.notify_waiters();
        Ok(resource)
    }

    async fn delete_resource(&self, id: ResourceId, actor: &Actor) -> Result<Resource, StoreError> {
        let (mut tx, resource, lease, now) = self.lock_lease(id).await?;
        if let Some(refusal) = held_refusal(&lease, now) {
            return Err(refusal);
        }
        sqlx::query(&q(DELETE_RESOURCE)).bind(id.0).execute(&mut *tx).await?;
        insert_event(&mut tx, EventRow::resource("resource_deleted", &resource, now, actor)).await?;
        tx.commit().await?;
        self.written.notify_waiters();
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
        tx.commit().await?;
        self.written.notify_waiters();
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
        tx.commit().await?;
        self.written.notify_waiters();
        Ok(expired)
    }

    async fn events(&self, filter: &EventFilter) -> Result<Vec<EventView>, StoreError> {
        let (sql, args) = queries::events(filter);
        let sql = q(&sql);
        let recs: Vec<EventRecord> = bind_args!(sqlx::query_as(&sql), args).fetch_all(&self.pool).await?;
        Ok(recs.into_iter().map(EventView::from).collect())
    }

    async fn newest_event_id(&self) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar(NEWEST_EVENT_ID).fetch_one(&self.pool).await?)
    }

    async fn changed(&self) -> Change {
        let mut rx = self.renewals_rx.lock().await;
        tokio::select! {
            _ = self.written.notified() => Change::Events,
            r = rx.recv() => r.map(Change::Renewed).unwrap_or(Change::Events),
        }
    }

    async fn finished_holds(&self, after: i64, limit: u32) -> Result<Vec<FinishedHold>, StoreError> {
        Ok(sqlx::query_as(&q(SELECT_FINISHED_HOLDS)).bind(after).bind(i64::from(limit)).fetch_all(&self.pool).await?)
    }

    async fn append_event(&self, mut event: EventRow) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        event.at_ms = db_now(&mut tx).await?.0;
        insert_event(&mut tx, event).await?;
        tx.commit().await?;
        self.written.notify_waiters();
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
        tx.commit().await?;
        self.written.notify_waiters();
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
        tx.commit().await?;
        self.written.notify_waiters();
        Ok(key)
    }
}
