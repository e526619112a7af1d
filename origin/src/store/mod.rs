//! The store: where leases, resources and events live. One trait, one implementation per database
//! ([`postgres`], [`sqlite`]); the lease *rules* are not here but in `hhs-core` — a store only locks the row,
//! reads the database clock, runs the transition it is given and writes back the result and its events, all in
//! one transaction.

pub mod postgres;
pub mod queries;
pub mod rows;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use hhs_core::api::EventView;
use hhs_core::lease::AcquireCmd;
use hhs_core::{Denied, Identifier, Lease, Millis, Outcome, Policy, ResourceId, ResourceType};

pub use rows::{Resource, ResourceFilter, LockFilter, EventFilter};

/// A lease transition from `hhs_core::lease`, closed over its request: given the resource, its current lease and
/// the database's `now`, the next state or a refusal.
pub type Transition = Box<dyn FnOnce(&Resource, &Lease, Millis) -> Result<Outcome, Denied> + Send>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("resource not found")]
    NotFound,
    #[error("a resource with this type and identifier exists")]
    Exists,
    #[error("refused by the lease rules: {0:?}")]
    Denied(Denied),
    /// The database could not be reached or did not answer in time.
    #[error("database unavailable: {0}")]
    Unavailable(sqlx::Error),
    #[error("database error: {0}")]
    Db(sqlx::Error),
    #[error("stored row is not valid: {0}")]
    Corrupt(String),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::Database(ref db) if db.is_unique_violation() => StoreError::Exists,
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolClosed => {
                StoreError::Unavailable(e)
            }
            e => StoreError::Db(e),
        }
    }
}

/// What a transition left behind: the resource, the outcome written, and the database time it was decided at.
pub struct Applied {
    pub resource: Resource,
    pub outcome: Outcome,
    pub now: Millis,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `"postgres"` or `"sqlite"`, for logs and health.
    fn kind(&self) -> &'static str;

    async fn migrate(&self) -> Result<(), StoreError>;

    /// A round trip to the database.
    async fn ping(&self) -> Result<(), StoreError>;

    /// The database's clock.
    async fn now(&self) -> Result<Millis, StoreError>;

    /// Creates the resource, its (free) lease row and a `resource_created` event in one transaction.
    async fn create_resource(&self, id: ResourceId, ty: &ResourceType, ident: &Identifier) -> Result<Resource, StoreError>;

    async fn resource(&self, id: ResourceId) -> Result<Resource, StoreError>;

    async fn resources(&self, filter: &ResourceFilter) -> Result<Vec<Resource>, StoreError>;

    /// The lease of one resource, with the database time it was read at.
    async fn lease(&self, id: ResourceId) -> Result<(Resource, Lease, Millis), StoreError>;

    async fn leases(&self, filter: &LockFilter) -> Result<(Vec<(Resource, Lease)>, Millis), StoreError>;

    /// Runs `transition` on the resource's lease inside one transaction that holds the lease row exclusively, and
    /// writes its outcome and events. A refusal writes nothing and comes back as [`StoreError::Denied`].
    async fn transact(&self, id: ResourceId, transition: Transition) -> Result<Applied, StoreError>;

    /// Acquire: `hhs_core::lease::acquire` through [`Store::transact`]. PostgreSQL overrides it with a
    /// one-statement fast path for the common case and falls back to this.
    async fn acquire(&self, id: ResourceId, cmd: AcquireCmd, policy: Arc<Policy>) -> Result<Applied, StoreError> {
        self.transact(id, acquire_transition(cmd, policy)).await
    }

    /// Records up to `batch` lapsed holds as expired (one `expired` event each). Safe to run on several replicas
    /// at once: each expiry is recorded exactly once. Returns how many it recorded.
    async fn reap(&self, policy: &Policy, batch: u32) -> Result<usize, StoreError>;

    async fn events(&self, filter: &EventFilter) -> Result<Vec<EventView>, StoreError>;
}

pub type DynStore = Arc<dyn Store>;

/// The acquire rule, with the lock-delay of the resource's type from `policy`.
pub fn acquire_transition(cmd: AcquireCmd, policy: Arc<Policy>) -> Transition {
    Box::new(move |resource, current, now| hhs_core::lease::acquire(current, now, &cmd, policy.lock_delay(&resource.resource_type)))
}
