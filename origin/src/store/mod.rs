//! The store: where resources, leases, keys and events live. [`Store`] is what the origin asks of it, one trait
//! per area (leases, the queue, sessions, groups, resources, HL7, types, keys, the log, the reaper) with one
//! implementation, [`SqlStore`], written once for both databases against [`dialect::Dialect`]; each area's file
//! holds its part of the trait, its SQL and the code that runs it. The lease *rules* are not here but in
//! `hhs-core` — a store only locks the row, reads the database clock, runs the transition it is given and writes
//! back the result and its events, all in one transaction.

pub mod dialect;
pub mod groups;
pub mod hl7;
pub mod keys;
pub mod leases;
pub mod log;
pub mod outage;
pub mod postgres;
pub mod queue;
pub mod reap;
pub mod resources;
pub mod rows;
pub mod sessions;
pub mod sql_store;
pub mod sqlite;
pub mod types;

use std::sync::Arc;

use async_trait::async_trait;
use hhs_core::wire::{LockView, Replication};
use hhs_core::{Denied, Lease, Millis, Outcome, ResourceId, ResourceType};

pub use groups::GroupStore;
pub use hhs_core::wire::Actor;
pub use hhs_core::wire::{EventFilter, LockFilter, ResourceFilter};
pub use hl7::Hl7Store;
pub use keys::{KeyRecord, KeyStore};
pub use leases::LeaseStore;
pub use log::{FinishedHold, LogPos, LogStore, Logged};
pub use postgres::PgStore;
pub use queue::QueueStore;
pub use reap::ReapStore;
pub use resources::ResourceStore;
pub use rows::Resource;
pub use sessions::SessionStore;
pub use sql_store::SqlStore;
pub use sqlite::SqliteStore;
pub use types::{TypeRow, TypeStore};

/// A lease transition from `hhs_core::lease`, closed over its request: given the resource, its current lease and
/// the database's `now`, the next state or a refusal.
pub type Transition = Box<dyn FnOnce(&Resource, &Lease, Millis) -> Result<Outcome, Denied> + Send>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
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
    /// A change the policy rule refuses (a 422 with its code).
    #[error("{0}")]
    Invalid(hhs_core::ApiError),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// No session with this id.
    #[error("no such session")]
    NoSession,
    /// No group was granted with this id.
    #[error("no such group")]
    NoGroup,
    /// A group refused as a whole: every member that blocked it, and why.
    #[error("group refused: {0:?}")]
    GroupDenied(Vec<(ResourceId, Denied)>),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::Database(ref db) if db.is_unique_violation() && is_resource_name(db.as_ref()) => {
                StoreError::Exists
            }
            sqlx::Error::Database(ref db) if is_transient(db.as_ref()) => StoreError::Unavailable(e),
            sqlx::Error::PoolTimedOut
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Protocol(_) => StoreError::Unavailable(e),
            e => StoreError::Db(e),
        }
    }
}

/// Whether a unique violation is the one `resource_exists` speaks of — two resources with one type and
/// identifier — by constraint name (PostgreSQL) or by the columns SQLite names. Any other (a key id drawn
/// twice) is an internal error, not a 409 that would send the admin looking for a resource.
fn is_resource_name(db: &dyn sqlx::error::DatabaseError) -> bool {
    db.constraint() == Some("resources_type_identifier_key")
        || db.message().contains("resources.type, resources.identifier")
}

/// Database errors that say "not now" rather than "never": the caller gets 503 with `Retry-After`, never 500.
/// SQLite: the database stayed locked past the busy timeout (`SQLITE_BUSY`/`SQLITE_LOCKED` and their extended
/// codes). PostgreSQL: the connection failed or the server is shutting down, starting or crashed (classes 08,
/// 57), out of resources (53), an operator intervention or system error (58), or the transaction was rolled
/// back for a serialization failure or deadlock (40), or a write reached a server that is now a standby (25006,
/// after a failover; `crate::primary` finds the new primary) — all safe to retry, since nothing was committed.
fn is_transient(db: &dyn sqlx::error::DatabaseError) -> bool {
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        let code: i64 = db.code().and_then(|c| c.parse().ok()).unwrap_or(0);
        return matches!(code & 0xff, 5 | 6);
    }
    let code = db.code().unwrap_or_default();
    code == "25006" || matches!(code.get(..2), Some("08" | "40" | "53" | "57" | "58"))
}

/// What a transition left behind: the resource, the outcome written, and the database time it was decided at.
pub struct Applied {
    pub resource: Resource,
    pub outcome: Outcome,
    pub now: Millis,
}

/// Everything the origin asks of its store: each area's trait, and what concerns the database itself.
#[async_trait]
pub trait Store:
    LeaseStore
    + QueueStore
    + SessionStore
    + GroupStore
    + ResourceStore
    + Hl7Store
    + TypeStore
    + KeyStore
    + LogStore
    + ReapStore
    + Send
    + Sync
    + 'static
{
    /// `"postgres"` or `"sqlite"`, for logs and health.
    fn kind(&self) -> &'static str;

    async fn migrate(&self) -> Result<(), StoreError>;

    /// A round trip to the database.
    async fn ping(&self) -> Result<(), StoreError>;

    /// The connection pool's size and idle connections (`None` while no primary is known), for `/metrics`.
    fn pool_use(&self) -> Option<(u32, usize)>;

    /// The database's clock.
    async fn now(&self) -> Result<Millis, StoreError>;

    /// After a database outage that began at `lost_at` (the last instant this process saw the database work):
    /// gives every hold live then and not renewed since the outage's length back (`hhs_core::lease::resume`,
    /// an `extended` event each, by `hhs:failover`), once per outage — a later call for the same outage, from
    /// this replica or another, changes nothing. The store calls it itself before it uses a new primary.
    /// Returns how many holds it extended.
    async fn resume(&self, lost_at: Millis) -> Result<u64, StoreError>;

    /// The PostgreSQL server written to and how it replicates; `None` for SQLite.
    async fn replication(&self) -> Result<Option<Replication>, StoreError>;
}

pub type DynStore = Arc<dyn Store>;

/// An HL7 message as the store takes it ([`Hl7Store::hl7_ingest`]): its fields, the digest of its content, what
/// the rules plan for it, and how long records are kept.
pub struct Hl7Message {
    pub inbound: hhs_core::hl7::Inbound,
    /// SHA-256 (hex) of `hhs_core::hl7::canonical` of the message.
    pub digest: String,
    /// The beds and statuses (`hhs_core::hl7::plan`), or the refusal.
    pub plan: Result<Vec<hhs_core::hl7::BedUpdate>, (hhs_core::hl7::AckCode, String)>,
    /// The resource type beds are.
    pub bed_type: ResourceType,
    pub window: Millis,
}

/// What [`Hl7Store::hl7_ingest`] answered.
#[derive(Clone, Debug)]
pub struct Hl7Answer {
    pub ack: String,
    pub code: hhs_core::hl7::AckCode,
    pub repeat: hhs_core::hl7::Repeat,
}

/// What a by-id group operation does to each member.
pub use hhs_core::group::GroupOp;

/// What [`QueueStore::acquire_or_wait`] did (returned once per request, never buffered: not boxed).
#[allow(clippy::large_enum_variant)]
pub enum Waited {
    Granted(Applied),
    /// In the queue at this place (1: next).
    Queued {
        position: u32,
    },
}

/// How a wait stands (returned once per poll, never buffered: not boxed).
#[allow(clippy::large_enum_variant)]
pub enum WaitStatus {
    /// Granted: the lease as read then, whose live hold is the one handed to this waiter (now delivered).
    Granted(Applied),
    Waiting {
        position: u32,
    },
    /// Ended without a grant (timed out or gone, or the hold it was handed ended before its request took it),
    /// at this place.
    Ended {
        position: Option<u32>,
    },
}

/// What [`LogStore::changed`] saw.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// Events may have been committed: read the log.
    Events,
    /// A hold was renewed (heartbeat, repeated acquire): no event, but its expiry moved. Boxed: changes wait in
    /// broadcast buffers, whose slots are as large as the largest variant.
    Renewed(Box<LockView>),
    /// A resource was handed over to a waiter (for the waiting requests, not the stream).
    HandedOver(ResourceId),
}
