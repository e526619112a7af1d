//! The PostgreSQL store: the production one. Transitions serialize on the resource's lease row with
//! `SELECT … FOR UPDATE`; the common acquire is one statement (`queries::FAST_GRANT`); the reaper takes batches
//! with `FOR UPDATE SKIP LOCKED`, so replicas share the work without waiting on each other or recording an
//! expiry twice.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hhs_core::lease::{expire, retire, token_floor, AcquireCmd};
use hhs_core::{EventKind, FencingToken, Identifier, Lease, LeaseEvent, Millis, Outcome, Policy, ResourceId, ResourceType};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};

use super::queries::{
    self, bind_args, DELETE_RESOURCE, FAST_GRANT, INSERT_KEY, INSERT_LEASE, INSERT_RESOURCE, LOG_POSITION, PG_HORIZON, RAISE_FLOOR,
    REVOKE_KEY, SELECT_EXPIRED_SKIP_LOCKED, SELECT_FLOOR, SELECT_KEY, SELECT_KEYS, SELECT_LEASE, SELECT_LEASE_FOR_UPDATE, SELECT_RESOURCE,
    SET_LAST_TOKEN, UPDATE_IDENTIFIER,
};
use super::rows::{bind_event, bind_lease, hold_detail, EventRecord, LeaseColumns, LeaseRecord, ResourceRecord, INSERT_EVENT, UPDATE_LEASE};
use super::{
    acquire_transition, renewal, Actor, Applied, Change, EventFilter, EventRow, FinishedHold, KeyRecord, LockFilter, LogPos, Logged, Resource,
    ResourceFilter, Store, StoreError, Transition,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// The database clock, in milliseconds. `clock_timestamp()`, not `now()`: `now()` is frozen at the start of the
/// transaction, which may be long before the row lock was granted.
const NOW: &str = "SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint";

type Tx = Transaction<'static, Postgres>;

/// The NOTIFY channel of renewals (payload a `RenewalView`). Events are not notified: readers poll the commit
/// horizon (see `queries::events`) and wake at once on this replica's own commits.
const RENEWALS: &str = "hhs_renewals";

pub struct PgStore {
    pool: PgPool,
    /// `LISTEN hhs_renewals`, connected on first use and again after any error.
    listener: tokio::sync::Mutex<Option<PgListener>>,
    /// Woken after this replica commits events, so its own stream need not wait for the next poll.
    written: tokio::sync::Notify,
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
        Ok(PgStore { pool, listener: tokio::sync::Mutex::new(None), written: tokio::sync::Notify::new() })
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

    /// Commits, then wakes this replica's event pump.
    async fn commit(&self, tx: Tx) -> Result<(), StoreError> {
        tx.commit().await?;
        self.written.notify_one();
        Ok(())
    }
}

/// The floor of a name (`None`: never given up).
async fn floor(tx: &mut Tx, ty: &str, ident: &str) -> Result<Option<FencingToken>, StoreError> {
    let f: Option<i64> = sqlx::query_scalar(SELECT_FLOOR).bind(ty).bind(ident).fetch_optional(&mut **tx).await?;
    Ok(f.and_then(FencingToken::from_i64))
}

/// Gives up a resource's name: its last token becomes the name's floor.
async fn give_up_name(tx: &mut Tx, r: &Resource, last_token: FencingToken) -> Result<(), StoreError> {
    sqlx::query(RAISE_FLOOR).bind(&r.resource_type).bind(&r.identifier).bind(last_token.to_i64()).execute(&mut **tx).await?;
    Ok(())
}

/// Takes a name: the lease continues above the name's floor.
async fn take_name(tx: &mut Tx, r: &Resource, last_token: FencingToken) -> Result<(), StoreError> {
    let raised = token_floor(last_token, floor(tx, &r.resource_type, &r.identifier).await?);
    if raised > last_token {
        sqlx::query(SET_LAST_TOKEN).bind(r.id.0).bind(raised.to_i64()).execute(&mut **tx).await?;
    }
    Ok(())
}

/// Grants `role` what the service needs and no more: it reads and writes resources, leases, keys and token
/// floors, but may only SELECT and INSERT events — it cannot rewrite the audit trail, and, not owning the table,
/// cannot drop or disable the triggers that refuse UPDATE, DELETE and TRUNCATE. Run as the schema's owner (the
/// role that ran the migrations).
pub async fn grant_service_role(url: &str, role: &str) -> Result<(), StoreError> {
    let valid = !role.is_empty() && role.len() <= 63 && role.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !valid {
        return Err(StoreError::Corrupt("the role name must be 1-63 characters of A-Z a-z 0-9 _".into()));
    }
    let pool = PgPoolOptions::new().max_connections(1).connect(url).await?;
    for grant in [
        format!("GRANT USAGE ON SCHEMA public TO {role}"),
        format!("GRANT SELECT, INSERT, UPDATE, DELETE ON resources, leases, api_keys, token_floors TO {role}"),
        format!("GRANT SELECT, INSERT ON events TO {role}"),
        format!("GRANT USAGE ON SEQUENCE events_id_seq TO {role}"),
        format!("GRANT SELECT ON _sqlx_migrations TO {role}"),
    ] {
        sqlx::query(&grant).execute(&pool).await?;
    }
    pool.close().await;
    Ok(())
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
        // A service role that may not create tables (see `grant_service_role`) starts on an up-to-date schema
        // without touching it; anything pending is applied (and needs the owner).
        let applied: Result<Vec<i64>, sqlx::Error> =
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success").fetch_all(&self.pool).await;
        if let Ok(applied) = applied {
            if MIGRATOR.iter().all(|m| applied.contains(&m.version)) {
                return Ok(());
            }
        }
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
        take_name(&mut tx, &resource, FencingToken(0)).await?;
        insert_event(&mut tx, EventRow::resource("resource_created", &resource, now, actor)).await?;
        self.commit(tx).await?;
        Ok(resource)
    }

    async fn update_resource(&self, id: ResourceId, ident: &Identifier, actor: &Actor) -> Result<Resource, StoreError> {
        let (mut tx, mut resource, lease, now) = self.lock_lease(id).await?;
        give_up_name(&mut tx, &resource, lease.last_token).await?;
        sqlx::query(UPDATE_IDENTIFIER).bind(id.0).bind(ident.as_str()).execute(&mut *tx).await?;
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
        sqlx::query(DELETE_RESOURCE).bind(id.0).execute(&mut *tx).await?;
        insert_event(&mut tx, EventRow::resource("resource_deleted", &resource, now, actor)).await?;
        self.commit(tx).await?;
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
        self.commit(tx).await?;
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
        self.written.notify_one();
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
        self.commit(tx).await?;
        Ok(expired)
    }

    async fn events(&self, filter: &EventFilter) -> Result<Vec<Logged>, StoreError> {
        let (sql, args) = queries::events(filter, PG_HORIZON);
        let recs: Vec<EventRecord> = bind_args!(sqlx::query_as(&sql), args).fetch_all(&self.pool).await?;
        Ok(recs.into_iter().map(Logged::from).collect())
    }

    async fn newest_event(&self) -> Result<Option<LogPos>, StoreError> {
        let row: Option<(i64, i64)> = sqlx::query_as(&queries::newest_event(PG_HORIZON)).fetch_optional(&self.pool).await?;
        Ok(row.map(|(txid, id)| LogPos { txid, id }))
    }

    async fn log_position(&self, id: i64) -> Result<Option<LogPos>, StoreError> {
        let row: Option<(i64, i64)> = sqlx::query_as(LOG_POSITION).bind(id).fetch_optional(&self.pool).await?;
        Ok(row.map(|(txid, id)| LogPos { txid, id }))
    }

    async fn changed(&self) -> Change {
        let mut guard = self.listener.lock().await;
        if guard.is_none() {
            match PgListener::connect_with(&self.pool).await {
                Ok(mut l) => match l.listen(RENEWALS).await {
                    Ok(()) => *guard = Some(l),
                    Err(e) => tracing::warn!(error = %e, "LISTEN hhs_renewals failed"),
                },
                Err(e) => tracing::warn!(error = %e, "could not open a LISTEN connection"),
            }
        }
        let renewal = async {
            match guard.as_mut() {
                Some(l) => match l.recv().await {
                    Ok(n) => serde_json::from_str(n.payload()).map(Change::Renewed).unwrap_or(Change::Events),
                    Err(e) => {
                        tracing::warn!(error = %e, "LISTEN connection lost; reconnecting");
                        *guard = None;
                        Change::Events
                    }
                },
                // No listener: the caller's timer decides when to look again.
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.written.notified() => Change::Events,
            change = renewal => change,
        }
    }

    async fn finished_holds(&self, after: i64, limit: u32) -> Result<Vec<FinishedHold>, StoreError> {
        Ok(sqlx::query_as(&queries::finished_holds(PG_HORIZON)).bind(after).bind(i64::from(limit)).fetch_all(&self.pool).await?)
    }

    async fn append_event(&self, mut event: EventRow) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        event.at_ms = db_now(&mut tx).await?.0;
        insert_event(&mut tx, event).await?;
        self.commit(tx).await?;
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
        self.commit(tx).await?;
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
        self.commit(tx).await?;
        Ok(key)
    }
}
