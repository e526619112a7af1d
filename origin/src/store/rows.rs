//! What every area shares: binding (every statement's arguments are a `Vec<Arg>`, turned into the driver's by
//! one function, [`arguments`]), the filtered list queries' builder, and the resource and lease rows with the
//! SQL fragments that select them.

use hhs_core::stored::StoredLease;
use hhs_core::wire::{Actor, EventView, LogKind};
use hhs_core::{Identifier, Lease, Millis, ResourceId, ResourceType, TypePolicy};
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Arguments, Database, Encode, FromRow, Type};
use uuid::Uuid;

use hhs_core::status::Status;

use super::StoreError;

/// A row type both databases read (every row type of the store: the columns are the same).
pub trait Record: for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow> + Send + Unpin {}

impl<T> Record for T where T: for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow> + Send + Unpin {}

/// A bind argument. Nullable columns bind `None` as SQL NULL.
#[derive(Clone, Debug)]
pub enum Arg {
    Text(Option<String>),
    Uuid(Option<Uuid>),
    Int(Option<i64>),
    Bool(bool),
    Bytes(Vec<u8>),
}

impl Arg {
    pub fn text(s: &str) -> Arg {
        Arg::Text(Some(s.to_owned()))
    }
}

/// The driver's arguments for a statement: the one place where values meet either database.
pub fn arguments<'q, DB: Database>(values: Vec<Arg>) -> Result<DB::Arguments<'q>, StoreError>
where
    Option<String>: Encode<'q, DB> + Type<DB>,
    Option<Uuid>: Encode<'q, DB> + Type<DB>,
    Option<i64>: Encode<'q, DB> + Type<DB>,
    bool: Encode<'q, DB> + Type<DB>,
    Vec<u8>: Encode<'q, DB> + Type<DB>,
{
    let mut args = DB::Arguments::<'q>::default();
    for value in values {
        match value {
            Arg::Text(v) => args.add(v),
            Arg::Uuid(v) => args.add(v),
            Arg::Int(v) => args.add(v),
            Arg::Bool(v) => args.add(v),
            Arg::Bytes(v) => args.add(v),
        }
        .map_err(|e| StoreError::Corrupt(format!("could not bind an argument: {e}")))?;
    }
    Ok(args)
}

/// Collects `WHERE` conditions and their arguments, numbering placeholders as it goes.
#[derive(Default)]
pub struct Filter {
    pub conditions: Vec<String>,
    args: Vec<Arg>,
}

impl Filter {
    pub fn push(&mut self, condition: &str, arg: Arg) {
        let placeholder = self.arg(arg);
        self.conditions.push(condition.replace("{}", &placeholder));
    }

    /// Adds an argument; its placeholder.
    pub fn arg(&mut self, arg: Arg) -> String {
        self.args.push(arg);
        format!("${}", self.args.len())
    }

    pub fn finish(mut self, select: &str, order: &str, limit: Option<u32>) -> (String, Vec<Arg>) {
        let mut sql = String::from(select);
        if !self.conditions.is_empty() {
            sql = format!("{sql} WHERE {}", self.conditions.join(" AND "));
        }
        sql = format!("{sql} {order}");
        if let Some(limit) = limit {
            self.args.push(Arg::Int(Some(i64::from(limit))));
            sql = format!("{sql} LIMIT ${}", self.args.len());
        }
        (sql, self.args)
    }
}

/// Every lease query selects the `leases` row joined with its resource: the columns of [`LeaseRecord`].
macro_rules! lease_columns {
    () => {
        "r.id, r.type, r.identifier, r.created_at_ms, r.status, l.last_token, l.hold_id, l.principal, \
         l.owner_id, l.ttl_ms, l.token, l.acquired_at_ms, l.last_heartbeat_ms, l.state, l.ended_at_ms, l.heartbeats, \
         l.max_gap_ms, l.delay_until_ms, l.late_reported, l.session_id, l.group_id, l.booked_until_ms, l.waiters, l.pickup_by_ms, \
         t.lock_delay_ms, \
         t.min_ttl_seconds, t.max_ttl_seconds, t.default_ttl_seconds, t.booking_max_seconds, t.default_status"
    };
}
pub(crate) use lease_columns;

/// Leases, their resources and the resources' types (every lease read carries the policy it is decided with).
macro_rules! from_leases {
    () => {
        " FROM leases l JOIN resources r ON r.id = l.resource_id JOIN resource_types t ON t.name = r.type"
    };
}
pub(crate) use from_leases;

/// A held lease's expiry instant (`hhs_core::Hold::expires_at`): a booking's end, else the last renewal plus
/// the TTL, or the pickup deadline of a handed-over hold if that comes first (NULL compares false). The index
/// `leases_held_by_expiry` is on exactly this expression.
macro_rules! expiry {
    () => {
        "COALESCE(l.booked_until_ms, CASE WHEN l.pickup_by_ms < l.last_heartbeat_ms + l.ttl_ms \
         THEN l.pickup_by_ms ELSE l.last_heartbeat_ms + l.ttl_ms END)"
    };
}
pub(crate) use expiry;

/// A resource as stored (a row of `resources`, read into core's types: a stored value that does not validate
/// is a decode error).
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Resource {
    #[sqlx(try_from = "Uuid")]
    pub id: ResourceId,
    #[sqlx(rename = "type", try_from = "String")]
    pub resource_type: ResourceType,
    #[sqlx(try_from = "String")]
    pub identifier: Identifier,
    #[sqlx(rename = "created_at_ms", try_from = "i64")]
    pub created_at: Millis,
    /// Its operational status (`hhs_core::status`), read with it: an acquire decides with it.
    #[sqlx(try_from = "String")]
    pub status: Status,
    /// Its type's policy, read with it (in a transition, in the same transaction).
    #[sqlx(flatten)]
    pub policy: TypePolicy,
}

impl Resource {
    /// This resource's `resource_created`/`resource_updated`/`resource_deleted` entry.
    pub fn event(&self, kind: LogKind, at: Millis, actor: &Actor) -> EventView {
        EventView::of_resource(kind, self.id, &self.resource_type, &self.identifier, at, actor)
    }
}

/// A lease row with its resource (`lease_columns!`).
#[derive(sqlx::FromRow)]
pub struct LeaseRecord {
    #[sqlx(flatten)]
    resource: Resource,
    #[sqlx(flatten)]
    lease: StoredLease,
}

impl LeaseRecord {
    pub fn into_parts(self) -> Result<(Resource, Lease), StoreError> {
        let id = self.resource.id;
        let lease =
            self.lease.into_lease(id).map_err(|e| StoreError::Corrupt(format!("lease row of resource {id}: {e}")))?;
        Ok((self.resource, lease))
    }
}

/// A `leases` row alone (what `RETURNING l.*` gives): its resource's id and the stored lease.
#[derive(sqlx::FromRow)]
pub struct LeaseRow {
    resource_id: Uuid,
    #[sqlx(flatten)]
    lease: StoredLease,
}

impl LeaseRow {
    pub fn into_lease(self) -> Result<Lease, StoreError> {
        let id = ResourceId(self.resource_id);
        self.lease.into_lease(id).map_err(|e| StoreError::Corrupt(format!("lease row of resource {id}: {e}")))
    }
}

/// The arguments of `sql_store::UPDATE_LEASE`: the resource id, then the lease's columns.
pub fn lease_args(l: &Lease) -> Vec<Arg> {
    let s = StoredLease::of(l);
    vec![
        Arg::Uuid(Some(l.resource_id.0)),
        Arg::Int(Some(s.last_token)),
        Arg::Uuid(s.hold_id),
        Arg::Text(s.owner_id),
        Arg::Int(s.ttl_ms),
        Arg::Int(s.token),
        Arg::Int(s.acquired_at_ms),
        Arg::Int(s.last_heartbeat_ms),
        Arg::Text(Some(s.state)),
        Arg::Int(s.ended_at_ms),
        Arg::Int(Some(s.heartbeats)),
        Arg::Int(Some(s.max_gap_ms)),
        Arg::Int(s.delay_until_ms),
        Arg::Text(s.principal),
        Arg::Bool(s.late_reported),
        Arg::Uuid(s.session_id),
        Arg::Uuid(s.group_id),
        Arg::Int(s.booked_until_ms),
        Arg::Int(Some(s.waiters)),
        Arg::Int(s.pickup_by_ms),
    ]
}
