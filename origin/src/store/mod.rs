//! The store: where resources, leases, keys and events live. One trait and one implementation
//! ([`sql_store`]) for both databases, which differ only in what [`dialect`] says; all SQL is in [`sql`]. The
//! lease *rules* are not here but in `hhs-core` — a store only locks the row, reads the database clock, runs
//! the transition it is given and writes back the result and its events, all in one transaction.

pub mod dialect;
pub mod postgres;
pub mod rows;
pub mod sql;
pub mod sql_store;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use hhs_core::lease::{AcquireCmd, Claim};
use hhs_core::session::Session;
use hhs_core::status::Status;
use hhs_core::wire::{EventView, LockView, Replication, SessionHold};
use hhs_core::{
    Denied, GroupId, Identifier, Lease, Millis, Outcome, OwnerId, Policy, Principal, ResourceId, ResourceType,
    SessionId, Ttl, TypeChange, TypePolicy, WaiterId,
};

pub use hhs_core::wire::Actor;
pub use hhs_core::wire::{EventFilter, LockFilter, ResourceFilter};
pub use postgres::PgStore;
pub use rows::{FinishedHold, KeyRecord, LogPos, Logged, Resource, TypeRow};
pub use sqlite::SqliteStore;

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

#[async_trait]
pub trait Store: Send + Sync + 'static {
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

    /// Creates the resource, its (free) lease row and a `resource_created` event in one transaction; a type
    /// without a row gets one with `seed` (the process's flags for new types).
    async fn create_resource(
        &self,
        id: ResourceId,
        ty: &ResourceType,
        ident: &Identifier,
        seed: &TypePolicy,
        actor: &Actor,
    ) -> Result<Resource, StoreError>;

    /// Renames a resource (`resource_updated`).
    async fn update_resource(&self, id: ResourceId, ident: &Identifier, actor: &Actor) -> Result<Resource, StoreError>;

    /// Sets a resource's operational status (`status_changed`, with the old and new), holding its lease row: a
    /// live hold goes on; a resource that becomes available is handed to its first waiter.
    async fn set_status(&self, id: ResourceId, status: Status, actor: &Actor) -> Result<Resource, StoreError>;

    /// One HL7 message, decided and recorded in one transaction: its record claimed under its key (the
    /// principal, sender and control id: a concurrent copy waits for it), a repeat answered from the record
    /// (`hhs_core::hl7::repeat`: the same content gets the stored ACK and writes nothing; other content `AR`), else
    /// its beds' statuses set — each lease row locked in resource-id order, then `resources.status` updated and
    /// the queue served, as [`Store::set_status`] does — with the record (an `AA` only: `hl7::recorded`) and its
    /// `hl7_received` event. Records past the window are deleted after the commit.
    async fn hl7_ingest(&self, message: &Hl7Message, actor: &Actor) -> Result<Hl7Answer, StoreError>;

    /// Deletes a resource and its lease (`resource_deleted`) by `hhs_core::lease::retire`: refused while a hold
    /// is live (`LockHeld`) or a lock-delay (of `lock_delay` for its type) runs (`LockDelay`); a lapse nobody
    /// recorded is recorded first (`expired`). The name's last token is kept as its floor.
    async fn delete_resource(&self, id: ResourceId, actor: &Actor) -> Result<Resource, StoreError>;

    async fn resources(&self, filter: &ResourceFilter) -> Result<Vec<Resource>, StoreError>;

    /// One resource and its lease, with the database time it was read at.
    async fn lease(&self, id: ResourceId) -> Result<(Resource, Lease, Millis), StoreError> {
        let (mut found, now) = self.leases(&LockFilter { resources: Some(vec![id]), ..LockFilter::default() }).await?;
        found.pop().map(|(r, l)| (r, l, now)).ok_or(StoreError::NotFound)
    }

    async fn leases(&self, filter: &LockFilter) -> Result<(Vec<(Resource, Lease)>, Millis), StoreError>;

    /// Runs `transition` on the resource's lease inside one transaction that holds the lease row exclusively, and
    /// writes its outcome and events (attributed to `actor`). A refusal writes nothing and comes back as
    /// [`StoreError::Denied`].
    async fn transact(&self, id: ResourceId, actor: &Actor, transition: Transition) -> Result<Applied, StoreError>;

    /// Acquire: `hhs_core::lease::acquire` through [`Store::transact`]. PostgreSQL overrides it with a
    /// one-statement fast path for the common case and falls back to this.
    async fn acquire(&self, id: ResourceId, cmd: AcquireCmd, actor: &Actor) -> Result<Applied, StoreError> {
        self.transact(id, actor, acquire_transition(cmd)).await
    }

    /// Heartbeat: `hhs_core::lease::heartbeat` for `claim` through [`Store::transact`]. PostgreSQL overrides it
    /// with a one-statement fast path for the caller's live hold and falls back to this.
    async fn heartbeat(&self, id: ResourceId, claim: Claim, actor: &Actor) -> Result<Applied, StoreError> {
        self.transact(id, actor, Box::new(move |_, current, now| hhs_core::lease::heartbeat(current, now, &claim)))
            .await
    }

    /// Release: `hhs_core::lease::release` for `claim` through [`Store::transact`]. PostgreSQL overrides it with
    /// a one-statement fast path for the caller's live hold and falls back to this.
    async fn release(&self, id: ResourceId, claim: Claim, actor: &Actor) -> Result<Applied, StoreError> {
        self.transact(id, actor, Box::new(move |_, current, now| hhs_core::lease::release(current, now, &claim))).await
    }

    /// Acquire, waiting if asked (`hhs_core::queue`): granted now if the type's policy, the queue (only its first
    /// live waiter passes a queue) and the acquire rule allow it; otherwise, with `wait` (the waiter's id and how
    /// long it may wait), a refusal that waiting can end (held, lock-delay, others queued) puts the request in the
    /// resource's queue (`queued`) and returns its place. Without `wait`, the refusal.
    async fn acquire_or_wait(
        &self,
        id: ResourceId,
        cmd: AcquireCmd,
        wait: Option<(WaiterId, Millis)>,
        actor: &Actor,
    ) -> Result<Waited, StoreError>;

    /// A waiting request's poll: it proves it is there, takes the resource if it is the first live waiter and
    /// the resource is grantable (a lock-delay ended, a waiter ahead went away), and learns how it stands.
    /// [`StoreError::NotFound`] if its resource was deleted.
    async fn poll_wait(&self, waiter: WaiterId) -> Result<WaitStatus, StoreError>;

    /// Ends a wait: its `wait_seconds` passed (`gone` false: `wait_ended`, `timed_out`), or its request went away
    /// (`gone` true) — then a hold already granted to it is released, since nobody would heartbeat it.
    async fn end_wait(&self, waiter: WaiterId, gone: bool, actor: &Actor) -> Result<WaitStatus, StoreError>;

    /// Resources handed over to a waiter, as they commit (on this replica; on PostgreSQL, on any, by NOTIFY):
    /// what wakes the waiting requests.
    fn queue_wakeups(&self) -> tokio::sync::broadcast::Receiver<ResourceId>;

    /// A pass of the reaper over everything due when it begins, `batch` candidates a page: records lapsed holds
    /// as expired (one `expired` event each, by `hhs:reaper`; a booking that ran out as `completed`), gives back
    /// hand-overs their waiters never took (`hhs_core::queue::reclaim`), serves queues that can be served, and
    /// lapses sessions (`session_lapsed`; their holds lapse with them and are among the expiries). Each is decided
    /// in its own short transaction with the clock read after its row's lock; a row that cannot be read is
    /// logged, counted ([`Store::rows_skipped`]) and skipped. Safe to run on several replicas at once: each is
    /// recorded exactly once. Returns how many holds it recorded as expired.
    async fn reap(&self, batch: u32) -> Result<usize, StoreError>;

    /// How many stored rows the reaper has skipped as unreadable since this store opened (`/metrics`).
    fn rows_skipped(&self) -> u64 {
        0
    }

    /// Opens a session from the database's now (`session_opened`).
    async fn open_session(
        &self,
        id: SessionId,
        principal: &Principal,
        owner: &OwnerId,
        ttl: Ttl,
        actor: &Actor,
    ) -> Result<Session, StoreError>;

    /// One session (`Some(id)`; [`StoreError::NoSession`] if unknown) or every open one, each with how many live
    /// holds it renews, and the database time of the read.
    async fn sessions(&self, id: Option<SessionId>) -> Result<(Vec<(Session, u64)>, Millis), StoreError>;

    /// Keepalive (`hhs_core::session::keepalive`): the session and every live hold under it renewed in one
    /// transaction — the session's row, then its holds' lease rows in resource-id order are locked, then the
    /// clock is read, then the holds are renewed by one statement (`sql::RENEW_SESSION_HOLDS`), however many
    /// there are. Returns the session, each hold it renewed (by resource id) and the database time.
    async fn keepalive(
        &self,
        id: SessionId,
        principal: &Principal,
    ) -> Result<(Session, Vec<SessionHold>, Millis), StoreError>;

    /// Closes a session (`session_closed`) and releases every live hold under it (`released` each), in one
    /// transaction that holds the session's row, then its leases' rows.
    async fn close_session(
        &self,
        id: SessionId,
        principal: &Principal,
        actor: &Actor,
    ) -> Result<(Session, Millis), StoreError>;

    /// Acquire under a session (`hhs_core::session::acquire_in`): the session's row, then the lease's row, are
    /// held (every session operation takes them in this order, so none waits on another in a cycle); the
    /// session's TTL must be within the resource type's bounds.
    async fn acquire_in(
        &self,
        id: ResourceId,
        session: SessionId,
        cmd: AcquireCmd,
        actor: &Actor,
    ) -> Result<Applied, StoreError>;

    /// A group acquire (`hhs_core::group::acquire_group`) in one transaction: the session's row if there is one,
    /// then each member's lease row in `ids`' order (the caller passes `group::lock_order`, so two overlapping
    /// groups never wait on each other in a cycle). All granted, with the members recorded (`group_members`), or
    /// [`StoreError::GroupDenied`] with every refusal (a TTL outside a member's type bounds among them) and
    /// nothing written.
    async fn acquire_group(
        &self,
        ids: &[ResourceId],
        group: GroupId,
        cmd: AcquireCmd,
        session: Option<SessionId>,
        actor: &Actor,
    ) -> Result<Vec<Applied>, StoreError>;

    /// `op` on every member of `group` (as recorded when it was granted) by `claim`, their lease rows locked in
    /// `group::lock_order`, all or none (`hhs_core::group::by_id`): any member refused refuses the group
    /// ([`StoreError::GroupDenied`]) — a heartbeat or booking every member the group no longer holds; a release
    /// counts a member already ended as released and answers the holds it released. [`StoreError::NoGroup`]
    /// for an id no group was granted with.
    async fn group_op(
        &self,
        group: GroupId,
        claim: Claim,
        op: GroupOp,
        actor: &Actor,
    ) -> Result<Vec<Applied>, StoreError>;

    /// Every resource type and its policy, by name.
    async fn types(&self) -> Result<Vec<TypeRow>, StoreError>;

    /// Applies `change` to a type's policy (a new type starts from `seed`) and records `type_updated` with the
    /// old and new values, in one transaction. [`StoreError::Invalid`] if the result breaks the policy rule.
    async fn put_type(
        &self,
        name: &ResourceType,
        change: &TypeChange,
        seed: &TypePolicy,
        actor: &Actor,
    ) -> Result<TypeRow, StoreError>;

    /// Fills the rows nobody has set (made by the migration) and makes the ones `seed` names, from the process's
    /// flags; never changes a set row. Each change is a `type_updated` event. Returns the rows it changed.
    async fn seed_types(&self, seed: &Policy, actor: &Actor) -> Result<Vec<TypeRow>, StoreError>;

    /// Events in commit order; with `after_id`, a cursor that never skips a late committer (`queries::events`).
    async fn events(&self, filter: &EventFilter) -> Result<Vec<Logged>, StoreError>;

    /// The newest event every later reader will see after nothing it has not seen yet: the last one below the
    /// commit horizon.
    async fn newest_event(&self) -> Result<Option<LogPos>, StoreError>;

    /// Where event `id` stands in commit order (`None`: no such event).
    async fn log_position(&self, id: i64) -> Result<Option<LogPos>, StoreError>;

    /// Resolves when events may have been committed since the last call (by anyone, where the database can
    /// tell), or with a hold renewed without an event. Callers also poll on a timer, so a wake-up that never
    /// comes costs latency, not correctness (a lost renewal leaves a dashboard's countdown short until the next).
    async fn changed(&self) -> Change;

    /// Finished holds (`released`, `late_release` events) after event id `after`, oldest first: the TTL model's food.
    async fn finished_holds(&self, after: i64, limit: u32) -> Result<Vec<FinishedHold>, StoreError>;

    /// Appends one event on its own (failed authentications). Its `at_ms` is replaced by the database clock.
    async fn append_event(&self, event: EventView) -> Result<(), StoreError>;

    /// Stores a new key and its `key_created` event.
    async fn create_key(&self, key: &KeyRecord, actor: &Actor) -> Result<KeyRecord, StoreError>;

    async fn key(&self, id: &str) -> Result<Option<KeyRecord>, StoreError>;

    async fn keys(&self) -> Result<Vec<KeyRecord>, StoreError>;

    /// Revokes a key (`key_revoked`); revoking a revoked key changes nothing. `NotFound` for an unknown id.
    async fn revoke_key(&self, id: &str, actor: &Actor) -> Result<KeyRecord, StoreError>;
}

pub type DynStore = Arc<dyn Store>;

/// An HL7 message as the store takes it ([`Store::hl7_ingest`]): its fields, the digest of its content, what
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

/// What [`Store::hl7_ingest`] answered.
#[derive(Clone, Debug)]
pub struct Hl7Answer {
    pub ack: String,
    pub code: hhs_core::hl7::AckCode,
    pub repeat: hhs_core::hl7::Repeat,
}

/// What a by-id group operation does to each member.
pub use hhs_core::group::GroupOp;

/// What [`Store::acquire_or_wait`] did (returned once per request, never buffered: not boxed).
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

/// What [`Store::changed`] saw.
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

/// The acquire rule under the resource type's policy as read in the transaction: its TTL bounds and lock-delay.
pub fn acquire_transition(cmd: AcquireCmd) -> Transition {
    Box::new(move |resource, current, now| {
        resource.policy.admit(cmd.ttl)?;
        hhs_core::lease::acquire(current, now, &cmd, resource.policy.lock_delay())
    })
}
