//! What the store asks of a database: the primitive operations its generic code is written against (run a
//! statement, read rows, the clock, how a write begins, the row lock, placeholders) and the hooks where one
//! database does more than the other. PostgreSQL's one-statement acquire, heartbeat and release and its
//! `NOTIFY`s are hooks whose default is "none here": SQLite takes the row-lock path and passes changes on inside
//! this process. The two implementations are `postgres.rs` and `sqlite.rs`.

use std::borrow::Cow;
use std::future::Future;

use hhs_core::lease::{AcquireCmd, Claim};
use hhs_core::wire::SessionHold;
use hhs_core::ResourceId;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::Pool;

use super::rows::{Arg, LeaseRecord, Record};
use super::{Actor, Change, StoreError};

/// What a one-statement path did.
pub enum Shortcut<T> {
    /// This database has none: the row-lock path decides.
    None,
    /// It ran and the case was not that simple (no row came back): the row-lock path decides.
    NotSimple,
    /// It did the whole operation.
    Done(T),
}

pub trait Dialect: sqlx::Database {
    /// `"postgres"` or `"sqlite"`, for logs and health.
    const KIND: &'static str;
    /// The database clock in milliseconds. PostgreSQL's is `clock_timestamp()`, not `now()`: `now()` is frozen
    /// at the start of the transaction, which may be long before the row lock was granted.
    const NOW: &'static str;
    /// How a writing transaction begins. SQLite's `BEGIN IMMEDIATE` takes the write lock up front, so a
    /// read-decide-write never races another writer.
    const BEGIN_WRITE: &'static str;
    /// Appended to the reaper's lock of one candidate lease: skip a row another transaction holds, so replicas'
    /// reapers share work (and a row a client holds is reaped next pass).
    const SKIP_LOCKED: &'static str;
    /// The same for its lock of one candidate session (`reap::LOCK_SESSION_SKIP`).
    const SKIP_LOCKED_SESSIONS: &'static str;
    /// The commit horizon (see `log::events_query`). PostgreSQL: the oldest transaction still running when the
    /// statement's snapshot was taken; every transaction below it has finished, so every event it wrote is
    /// visible now or never will be. SQLite: its writers take turns and `txid` is always 0, so everything is.
    const HORIZON: &'static str;
    /// Serializes resumptions after an outage (`outage::LAST_RESUME`); SQLite's `BEGIN IMMEDIATE` already does.
    const LOCK_OUTAGES: &'static str;
    /// The server's replication settings (`Store::replication`); `None`: a database without standbys.
    const REPLICATION: Option<&'static str>;

    const MIGRATOR: &'static Migrator;

    /// Appended to a `SELECT` of `table` (its name or alias) to hold its rows until commit: every transition on a
    /// resource serializes on its lease row, every change to a type on the type's row. SQLite needs none (one
    /// writer at a time, `BEGIN IMMEDIATE`).
    fn lock(table: &str) -> String;

    /// A statement written with `$n` placeholders, in this dialect's.
    fn sql(statement: &str) -> Cow<'_, str>;

    /// Runs `statement` with `args`; the rows it returns.
    fn fetch<T: Record>(
        conn: &mut Self::Connection,
        statement: &str,
        args: Vec<Arg>,
    ) -> impl Future<Output = Result<Vec<T>, StoreError>> + Send;

    /// Runs `statement` with `args`; how many rows it changed.
    fn execute(
        conn: &mut Self::Connection,
        statement: &str,
        args: Vec<Arg>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Applies the migrations [`Dialect::MIGRATOR`] holds.
    fn migrate(pool: &Pool<Self>) -> impl Future<Output = Result<(), MigrateError>> + Send;

    /// The acquire in one statement, for the common case of a resource nobody holds or waits for.
    fn acquire_in_one_statement(
        _pool: &Pool<Self>,
        _id: ResourceId,
        _cmd: &AcquireCmd,
        _actor: &Actor,
    ) -> impl Future<Output = Result<Shortcut<LeaseRecord>, StoreError>> + Send {
        async { Ok(Shortcut::None) }
    }

    /// The heartbeat of the caller's live plain hold in one statement.
    fn heartbeat_in_one_statement(
        _pool: &Pool<Self>,
        _id: ResourceId,
        _claim: &Claim,
    ) -> impl Future<Output = Result<Shortcut<LeaseRecord>, StoreError>> + Send {
        async { Ok(Shortcut::None) }
    }

    /// The release of the caller's live plain hold, with its event, in one statement.
    fn release_in_one_statement(
        _pool: &Pool<Self>,
        _id: ResourceId,
        _claim: &Claim,
        _actor: &Actor,
    ) -> impl Future<Output = Result<Shortcut<LeaseRecord>, StoreError>> + Send {
        async { Ok(Shortcut::None) }
    }

    /// Announces `change` to every replica when the transaction on `conn` commits. `false`: this database
    /// cannot, and the store passes the change on to this process's readers after the commit.
    fn announce(
        _conn: &mut Self::Connection,
        _change: &Change,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        async { Ok(false) }
    }

    /// A keepalive's renewal of its session's holds (`sessions::RENEW_SESSION_HOLDS`' arguments) in a statement
    /// that also announces each renewal to every replica; each renewed hold. `None`: this database cannot, and the
    /// store runs the plain statement and passes the renewals on itself.
    fn renew_session_holds_announced(
        _conn: &mut Self::Connection,
        _args: Vec<Arg>,
    ) -> impl Future<Output = Result<Option<Vec<SessionHold>>, StoreError>> + Send {
        async { Ok(None) }
    }
}
