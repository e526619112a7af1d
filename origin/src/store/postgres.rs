//! The PostgreSQL store: the production one. Transitions serialize on the resource's lease row with
//! `SELECT … FOR UPDATE`; the common acquire is one statement (`queries::FAST_GRANT`); the reaper takes batches
//! with `FOR UPDATE SKIP LOCKED`, so replicas share the work without waiting on each other or recording an
//! expiry twice.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hhs_core::api::EventView;
use hhs_core::lease::{expire, AcquireCmd};
use hhs_core::{EventKind, Identifier, Lease, LeaseEvent, Millis, Outcome, Policy, ResourceId, ResourceType};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};

use super::queries::{
    self, bind_args, NEWEST_EVENT_ID, SELECT_FINISHED_HOLDS, DELETE_RESOURCE, FAST_GRANT, INSERT_KEY, INSERT_LEASE, INSERT_RESOURCE, REVOKE_KEY, SELECT_EXPIRED_SKIP_LOCKED,
    SELECT_KEY, SELECT_KEYS, SELECT_LEASE, SELECT_LEASE_FOR_UPDATE, SELECT_RESOURCE, UPDATE_IDENTIFIER,
};
use super::rows::{bind_event, bind_lease, hold_detail, EventRecord, LeaseColumns, LeaseRecord, ResourceRecord, INSERT_EVENT, UPDATE_LEASE};
use super::{
    acquire_transition, held_refusal, renewal, Actor, Change, FinishedHold, Applied, EventFilter, EventRow, KeyRecord, LockFilter, Resource, ResourceFilter, Store,
    StoreError, Transition,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// The database clock, in milliseconds. `clock_timestamp()`, not `now()`: `now()` is frozen at the start of the
/// transaction, which may be long before the row lock was granted.
const NOW: &str = "SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint";

type Tx = Transaction<'static, Postgres>;

/// NOTIFY channels: committed events (payload empty, sent by a trigger) and renewals (payload a `RenewalView`).
const EVENTS: &str = "hhs_events";
const RENEWALS: &str = "hhs_renewals";

pub struct PgStore {
    pool: PgPool,
    /// `LISTEN hhs_events`, connected on first use and again after any error.
    listener: tokio::sync::Mutex<Option<PgListener>>,
}

impl PgStore {
    pub async fn connect(url: &str, min: u32, max: u32) -> Result<PgStore, StoreError> {
        let options: PgConnectOptions = url.parse().map_err(StoreError::Unavailable)?;
        let pool = PgPoolOptions::new()
            .min_connections(min)
            .max_connections(max)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options.application_name("hhs-origin"))
            .await?;
        Ok(PgStore { pool, listener: tokio::sync::Mutex::new(None) })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Begins a transaction holding the resource's lease row; the clock is read after the lock is granted.
    async fn lock_lease(&self, id: ResourceId) -> Result<(Tx, Resource, Lease, Millis), StoreError> {
        let mut tx = self.pool.begin().await?;
        let rec: Option<LeaseRecord> = sqlx::query_as(SELECT_LEASE_FOR_UPDATE).bind(id.0).fetch_optional(&mut *tx).await?;
        let (resource, lease) = rec.ok_or(StoreError::NotFound)?.into_parts()?;
        let now = db_now(&mut tx).await?;
        Ok((tx, resource, lease, now))
    }
}

async fn db_now(tx: &mut Tx) -> Result<Millis, StoreError> {
    Ok(Millis(sqlx::query_scalar(NOW).fetch_one(&mut **tx).await?))
}

async fn insert_event(tx: &mut Tx, event: EventRow) -> Result<(), StoreError> {
    bind_event!(sqlx::query(INSERT_EVENT), event).execute(&mut **tx).await?;
    Ok(())
}

/// Writes a transition's lease and events inside the caller's transaction.
async fn write(tx: &mut Tx, before: &Lease, outcome: &Outcome, actor: &Actor) -> Result<(), StoreError> {
    if &outcome.lease != before {
        let id = outcome.lease.resource_id.0;
        bind_lease!(sqlx::query(UPDATE_LEASE), id, LeaseColumns::from(&outcome.lease)).execute(&mut **tx).await?;
    }
    for event in &outcome.events {
        insert_event(tx, EventRow::lease(&outcome.lease, event, actor)).await?;
    }
    if let Some(r) = renewal(before, outcome) {
        // Delivered at commit to every replica's LISTEN, like the event trigger; small (well under NOTIFY's 8 kB).
        let payload = serde_json::to_string(&r).unwrap_or_default();
        sqlx::query("SELECT pg_notify($1, $2)").bind(RENEWALS).bind(payload).execute(&mut **tx).await?;
    }
    Ok(())
}

#[async_trait]
impl Store for PgStore {
    fn kind(&self) -> &'static str {
        "postgres"
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
        let mut tx = self.pool.begin().await?;
        let now = db_now(&mut tx).await?;
        let resource = Resource { id, resource_type: ty.as_str().to_owned(), identifier: ident.as_str().to_owned(), created_at: now };
        sqlx::query(INSERT_RESOURCE).bind(id.0).bind(ty.as_str()).bind(ident.as_str()).bind(now.0).execute(&mut *tx).await?;
        sqlx::query(INSERT_LEASE).bind(id.0).execute(&mut *tx).await?;
        insert_event(&mut tx, EventRow::resource("resource_created", &resource, now, actor)).await?;
        tx.commit().await?;
        Ok(resource)
    }

    async fn update_resource(&self, id: ResourceId, ident: &Identifier, actor: &Actor) -> Result<Resource, StoreError> {
        let (mut tx, mut resource, _, now) = self.lock_lease(id).await?;
        sqlx::query(UPDATE_IDENTIFIER).bind(id.0).bind(ident.as_str()).execute(&mut *tx).await?;
        resource.identifier = ident.as_str().to_owned();
        insert_event(&mut tx, EventRow::resource("resource_updated", &resource, now, actor)).await?;
        tx.commit().await?;
        Ok(resource)
    }

    async fn delete_resource(&self, id: ResourceId, actor: &Actor) -> Result<Resource, StoreError> {
        let (mut tx, resource, lease, now) = self.lock_lease(id).await?;
        if let Some(refusal) = held_refusal(&lease, now) {
            return Err(refusal);
        }
        sqlx::query(DELETE_RESOURCE).bind(id.0).execute(&mut *tx).await?;
        insert_event(&mut tx, EventRow::resource("resource_deleted", &resource, now, actor)).await?;
        tx.commit().await?;
        Ok(resource)
    }

    async fn resource(&self, id: ResourceId) -> Result<Resource, StoreError> {
        let rec: Option<ResourceRecord> = sqlx::query_as(SELECT_RESOURCE).bind(id.0).fetch_optional(&self.pool).await?;
        rec.map(Resource::from).ok_or(StoreError::NotFound)
    }

    async fn resources(&self, filter: &ResourceFilter) -> Result<Vec<Resource>, StoreError> {
        let (sql, args) = queries::resources(filter);
        let recs: Vec<ResourceRecord> = bind_args!(sqlx::query_as(&sql), args).fetch_all(&self.pool).await?;
        Ok(recs.into_iter().map(Resource::from).collect())
    }

    async fn lease(&self, id: ResourceId) -> Result<(Resource, Lease, Millis), StoreError> {
        let mut tx = self.pool.begin().await?;
        let rec: Option<LeaseRecord> = sqlx::query_as(SELECT_LEASE).bind(id.0).fetch_optional(&mut *tx).await?;
        let now = db_now(&mut tx).await?;
        tx.commit().await?;
        let (resource, lease) = rec.ok_or(StoreError::NotFound)?.into_parts()?;
        Ok((resource, lease, now))
    }

    async fn leases(&self, filter: &LockFilter) -> Result<(Vec<(Resource, Lease)>, Millis), StoreError> {
        let (sql, args) = queries::leases(filter);
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
        Ok(Applied { resource, outcome, now })
    }

    async fn acquire(&self, id: ResourceId, cmd: AcquireCmd, policy: Arc<Policy>, actor: &Actor) -> Result<Applied, StoreError> {
        let detail = hold_detail(cmd.ttl, 0, Millis::ZERO, None, &cmd.principal).to_string();
        let granted: Option<LeaseRecord> = sqlx::query_as(FAST_GRANT)
            .bind(id.0)
            .bind(cmd.new_hold_id.0)
            .bind(cmd.owner.as_str())
            .bind(cmd.ttl.as_millis().0)
            .bind(detail)
            .bind(cmd.principal.as_str())
            .bind(actor.key_id.as_deref())
            .bind(actor.request_id.as_deref())
            .fetch_optional(&self.pool)
            .await?;
        let Some(rec) = granted else {
            return self.transact(id, actor, acquire_transition(cmd, policy)).await;
        };
        let (resource, lease) = rec.into_parts()?;
        let hold = lease.hold.clone().ok_or_else(|| StoreError::Corrupt("fast grant returned no hold".into()))?;
        let now = hold.acquired_at;
        let events = vec![LeaseEvent { kind: EventKind::Acquired, at: now, hold }];
        Ok(Applied { resource, outcome: Outcome { lease, events }, now })
    }

    async fn reap(&self, policy: &Policy, batch: u32) -> Result<usize, StoreError> {
        let actor = Actor::system("reaper");
        let mut tx = self.pool.begin().await?;
        let now = db_now(&mut tx).await?;
        let recs: Vec<LeaseRecord> =
            sqlx::query_as(SELECT_EXPIRED_SKIP_LOCKED).bind(now.0).bind(i64::from(batch)).fetch_all(&mut *tx).await?;
        let mut expired = 0;
        for rec in recs {
            let (resource, lease) = rec.into_parts()?;
            if let Some(outcome) = expire(&lease, now, policy.lock_delay(&resource.resource_type)) {
                write(&mut tx, &lease, &outcome, &actor).await?;
                expired += 1;
            }
        }
        tx.commit().await?;
        Ok(expired)
    }

    async fn events(&self, filter: &EventFilter) -> Result<Vec<EventView>, StoreError> {
        let (sql, args) = queries::events(filter);
        let recs: Vec<EventRecord> = bind_args!(sqlx::query_as(&sql), args).fetch_all(&self.pool).await?;
        Ok(recs.into_iter().map(EventView::from).collect())
    }

    async fn newest_event_id(&self) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar(NEWEST_EVENT_ID).fetch_one(&self.pool).await?)
    }

    async fn changed(&self) -> Change {
        let mut guard = self.listener.lock().await;
        if guard.is_none() {
            match PgListener::connect_with(&self.pool).await {
                Ok(mut l) => match l.listen_all([EVENTS, RENEWALS]).await {
                    Ok(()) => *guard = Some(l),
                    Err(e) => tracing::warn!(error = %e, "LISTEN hhs_events, hhs_renewals failed"),
                },
                Err(e) => tracing::warn!(error = %e, "could not open a LISTEN connection"),
            }
        }
        match guard.as_mut() {
            Some(l) => match l.recv().await {
                Ok(n) if n.channel() == RENEWALS => {
                    serde_json::from_str(n.payload()).map(Change::Renewed).unwrap_or(Change::Events)
                }
                Ok(_) => Change::Events,
                Err(e) => {
                    tracing::warn!(error = %e, "LISTEN connection lost; reconnecting");
                    *guard = None;
                    // Whatever was sent meanwhile is in the log: have the caller read it.
                    Change::Events
                }
            },
            // No listener: let the caller's timer decide when to look again.
            None => std::future::pending().await,
        }
    }

    async fn finished_holds(&self, after: i64, limit: u32) -> Result<Vec<FinishedHold>, StoreError> {
        Ok(sqlx::query_as(SELECT_FINISHED_HOLDS).bind(after).bind(i64::from(limit)).fetch_all(&self.pool).await?)
    }

    async fn append_event(&self, mut event: EventRow) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        event.at_ms = db_now(&mut tx).await?.0;
        insert_event(&mut tx, event).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_key(&self, key: &KeyRecord, actor: &Actor) -> Result<KeyRecord, StoreError> {
        let mut tx = self.pool.begin().await?;
        let now = db_now(&mut tx).await?;
        let key = KeyRecord { created_at_ms: now.0, ..key.clone() };
        sqlx::query(INSERT_KEY)
            .bind(&key.id)
            .bind(&key.principal)
            .bind(&key.role)
            .bind(&key.secret_sha256)
            .bind(key.created_at_ms)
            .execute(&mut *tx)
            .await?;
        insert_event(&mut tx, EventRow::key("key_created", &key, now, actor)).await?;
        tx.commit().await?;
        Ok(key)
    }

    async fn key(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        Ok(sqlx::query_as(SELECT_KEY).bind(id).fetch_optional(&self.pool).await?)
    }

    async fn keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        Ok(sqlx::query_as(SELECT_KEYS).fetch_all(&self.pool).await?)
    }

    async fn revoke_key(&self, id: &str, actor: &Actor) -> Result<KeyRecord, StoreError> {
        let mut tx = self.pool.begin().await?;
        let now = db_now(&mut tx).await?;
        let changed = sqlx::query(REVOKE_KEY).bind(id).bind(now.0).execute(&mut *tx).await?.rows_affected();
        let key: KeyRecord = sqlx::query_as(SELECT_KEY).bind(id).fetch_optional(&mut *tx).await?.ok_or(StoreError::NotFound)?;
        if changed > 0 {
            insert_event(&mut tx, EventRow::key("key_revoked", &key, now, actor)).await?;
        }
        tx.commit().await?;
        Ok(key)
    }
}
