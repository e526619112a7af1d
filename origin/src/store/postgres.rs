//! The PostgreSQL store: the production one. Acquires serialize on the resource's lease row with
//! `SELECT … FOR UPDATE`; the reaper takes batches with `FOR UPDATE SKIP LOCKED`, so replicas share the work
//! without waiting on each other or recording an expiry twice.

use std::time::Duration;

use async_trait::async_trait;
use hhs_core::api::EventView;
use std::sync::Arc;

use hhs_core::lease::{expire, AcquireCmd};
use hhs_core::{EventKind, Identifier, Lease, LeaseEvent, Millis, Outcome, Policy, ResourceId, ResourceType};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};

use super::queries::{self, bind_args, FAST_GRANT, INSERT_LEASE, INSERT_RESOURCE, SELECT_EXPIRED_SKIP_LOCKED, SELECT_LEASE, SELECT_LEASE_FOR_UPDATE, SELECT_RESOURCE};
use super::rows::{bind_event, bind_lease, hold_detail, EventRecord, EventRow, LeaseColumns, LeaseRecord, ResourceRecord, INSERT_EVENT, UPDATE_LEASE};
use super::{acquire_transition, Applied, EventFilter, LockFilter, Resource, ResourceFilter, Store, StoreError, Transition};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// The database clock, in milliseconds. `clock_timestamp()`, not `now()`: `now()` is frozen at the start of the
/// transaction, which may be long before the row lock was granted.
const NOW: &str = "SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint";

pub struct PgStore {
    pool: PgPool,
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
        Ok(PgStore { pool })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

async fn db_now(tx: &mut Transaction<'_, Postgres>) -> Result<Millis, StoreError> {
    Ok(Millis(sqlx::query_scalar(NOW).fetch_one(&mut **tx).await?))
}

/// Writes a transition's lease and events inside the caller's transaction.
async fn write(tx: &mut Transaction<'_, Postgres>, before: &Lease, outcome: &Outcome) -> Result<(), StoreError> {
    if &outcome.lease != before {
        let id = outcome.lease.resource_id.0;
        bind_lease!(sqlx::query(UPDATE_LEASE), id, LeaseColumns::from(&outcome.lease)).execute(&mut **tx).await?;
    }
    for event in &outcome.events {
        bind_event!(sqlx::query(INSERT_EVENT), EventRow::lease(outcome.lease.resource_id, event)).execute(&mut **tx).await?;
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

    async fn create_resource(&self, id: ResourceId, ty: &ResourceType, ident: &Identifier) -> Result<Resource, StoreError> {
        let mut tx = self.pool.begin().await?;
        let now = db_now(&mut tx).await?;
        let resource = Resource { id, resource_type: ty.as_str().to_owned(), identifier: ident.as_str().to_owned(), created_at: now };
        sqlx::query(INSERT_RESOURCE).bind(id.0).bind(ty.as_str()).bind(ident.as_str()).bind(now.0).execute(&mut *tx).await?;
        sqlx::query(INSERT_LEASE).bind(id.0).execute(&mut *tx).await?;
        bind_event!(sqlx::query(INSERT_EVENT), EventRow::resource_created(&resource)).execute(&mut *tx).await?;
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

    async fn transact(&self, id: ResourceId, transition: Transition) -> Result<Applied, StoreError> {
        let mut tx = self.pool.begin().await?;
        let rec: Option<LeaseRecord> = sqlx::query_as(SELECT_LEASE_FOR_UPDATE).bind(id.0).fetch_optional(&mut *tx).await?;
        let (resource, lease) = rec.ok_or(StoreError::NotFound)?.into_parts()?;
        // Read the clock only once the row lock is ours: a decision must not use a time from before the previous
        // holder's transaction committed.
        let now = db_now(&mut tx).await?;
        let outcome = transition(&resource, &lease, now).map_err(StoreError::Denied)?;
        write(&mut tx, &lease, &outcome).await?;
        tx.commit().await?;
        Ok(Applied { resource, outcome, now })
    }

    async fn acquire(&self, id: ResourceId, cmd: AcquireCmd, policy: Arc<Policy>) -> Result<Applied, StoreError> {
        let detail = hold_detail(cmd.ttl, 0, Millis::ZERO, None);
        let granted: Option<LeaseRecord> = sqlx::query_as(FAST_GRANT)
            .bind(id.0)
            .bind(cmd.new_hold_id.0)
            .bind(cmd.owner.as_str())
            .bind(cmd.ttl.as_millis().0)
            .bind(detail)
            .fetch_optional(&self.pool)
            .await?;
        let Some(rec) = granted else {
            return self.transact(id, acquire_transition(cmd, policy)).await;
        };
        let (resource, lease) = rec.into_parts()?;
        let hold = lease.hold.clone().ok_or_else(|| StoreError::Corrupt("fast grant returned no hold".into()))?;
        let now = hold.acquired_at;
        let events = vec![LeaseEvent { kind: EventKind::Acquired, at: now, hold }];
        Ok(Applied { resource, outcome: Outcome { lease, events }, now })
    }

    async fn reap(&self, policy: &Policy, batch: u32) -> Result<usize, StoreError> {
        let mut tx = self.pool.begin().await?;
        let now = db_now(&mut tx).await?;
        let recs: Vec<LeaseRecord> = sqlx::query_as(SELECT_EXPIRED_SKIP_LOCKED).bind(now.0).bind(i64::from(batch)).fetch_all(&mut *tx).await?;
        let mut expired = 0;
        for rec in recs {
            let (resource, lease) = rec.into_parts()?;
            if let Some(outcome) = expire(&lease, now, policy.lock_delay(&resource.resource_type)) {
                write(&mut tx, &lease, &outcome).await?;
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
}
