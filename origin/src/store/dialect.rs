//! What differs between PostgreSQL and SQLite, and nothing else: a handful of constants and how SQLite is
//! opened (PostgreSQL's connections, which follow its primary, are `crate::primary`'s). The store's body (`sql_store.rs`) is written once against
//! these.

use std::borrow::Cow;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Postgres, Sqlite};

use super::sql_store::SqlStore;
use super::StoreError;
use crate::primary::Source;

pub trait Dialect: sqlx::Database {
    /// `"postgres"` or `"sqlite"`, for logs and health.
    const KIND: &'static str;
    /// The database clock in milliseconds. PostgreSQL's is `clock_timestamp()`, not `now()`: `now()` is frozen
    /// at the start of the transaction, which may be long before the row lock was granted.
    const NOW: &'static str;
    /// How a writing transaction begins. SQLite's `BEGIN IMMEDIATE` takes the write lock up front, so a
    /// read-decide-write never races another writer.
    const BEGIN_WRITE: &'static str;
    /// Appended to a `SELECT` of `table` (its name or alias) to hold its rows until commit: every transition on a
    /// resource serializes on its lease row, every change to a type on the type's row. SQLite needs none (one
    /// writer at a time, `BEGIN IMMEDIATE`).
    fn lock(table: &str) -> String;
    /// Appended to the reaper's lock of one candidate lease (`sql::SELECT_LEASE`): skip a row another
    /// transaction holds, so replicas' reapers share work (and a row a client holds is reaped next pass).
    const SKIP_LOCKED: &'static str;
    /// The same for its lock of one candidate session (`sql::LOCK_SESSION_SKIP`).
    const SKIP_LOCKED_SESSIONS: &'static str;
    /// The commit horizon (see `sql::events`). PostgreSQL: the oldest transaction still running when the
    /// statement's snapshot was taken; every transaction below it has finished, so every event it wrote is
    /// visible now or never will be. SQLite: its writers take turns and `txid` is always 0, so everything is.
    const HORIZON: &'static str;
    /// Renewals reach every replica by `NOTIFY` (PostgreSQL); otherwise only this process, after commit.
    const NOTIFY_RENEWALS: bool;
    /// Whether PostgreSQL's one-statement paths run here: `sql::FAST_GRANT` (acquire) and `sql::FAST_HEARTBEAT`.
    const FAST_PATHS: bool;
    /// Serializes resumptions after an outage (`sql::LAST_RESUME`); SQLite's `BEGIN IMMEDIATE` already does.
    const LOCK_OUTAGES: &'static str;
    /// The server's replication settings (`sql_store`'s `replication`); `None`: a database without standbys.
    const REPLICATION: Option<&'static str>;

    const MIGRATOR: &'static Migrator;

    /// A statement of `sql.rs` in this dialect's placeholders.
    fn sql(statement: &str) -> Cow<'_, str>;
}

impl Dialect for Postgres {
    const KIND: &'static str = "postgres";
    const NOW: &'static str = "SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint";
    const BEGIN_WRITE: &'static str = "BEGIN";
    const SKIP_LOCKED: &'static str = " FOR UPDATE OF l SKIP LOCKED";
    const SKIP_LOCKED_SESSIONS: &'static str = " FOR UPDATE SKIP LOCKED";
    const HORIZON: &'static str = "pg_snapshot_xmin(pg_current_snapshot())::text::bigint";
    const NOTIFY_RENEWALS: bool = true;
    const FAST_PATHS: bool = true;
    const LOCK_OUTAGES: &'static str = "LOCK TABLE outages IN SHARE ROW EXCLUSIVE MODE";
    /// Synchronous standbys are counted where the role may see them (`pg_monitor`; else the count is NULL).
    const REPLICATION: Option<&'static str> = Some(
        "SELECT current_setting('synchronous_commit'), current_setting('synchronous_standby_names'), \
         (SELECT count(*) FILTER (WHERE sync_state IN ('sync', 'quorum')) FROM pg_stat_replication WHERE sync_state IS NOT NULL)",
    );
    const MIGRATOR: &'static Migrator = &sqlx::migrate!("../migrations/postgres");

    fn sql(statement: &str) -> Cow<'_, str> {
        Cow::Borrowed(statement)
    }

    fn lock(table: &str) -> String {
        format!(" FOR UPDATE OF {table}")
    }
}

impl Dialect for Sqlite {
    const KIND: &'static str = "sqlite";
    const NOW: &'static str = "SELECT CAST(unixepoch('subsec') * 1000 AS INTEGER)";
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    const SKIP_LOCKED: &'static str = "";
    const SKIP_LOCKED_SESSIONS: &'static str = "";
    const HORIZON: &'static str = "1";
    const NOTIFY_RENEWALS: bool = false;
    const FAST_PATHS: bool = false;
    const LOCK_OUTAGES: &'static str = "SELECT 1";
    const REPLICATION: Option<&'static str> = None;
    const MIGRATOR: &'static Migrator = &sqlx::migrate!("../migrations/sqlite");

    /// `$1` as SQLite's positional `?1` (SQLite reads `$1` as a *named* parameter, numbered by first
    /// appearance). None of our statements contains a `$` elsewhere.
    fn sql(statement: &str) -> Cow<'_, str> {
        Cow::Owned(statement.replace('$', "?"))
    }

    fn lock(_table: &str) -> String {
        String::new()
    }
}

/// The NOTIFY channel of renewals (payload the hold's `LockView`). Events are not notified: readers poll the commit
/// horizon and wake at once on this replica's own commits.
pub const RENEWALS: &str = "hhs_renewals";
/// The NOTIFY channel of hand-overs to waiters (payload the resource id): wakes the waiting requests on every
/// replica at once.
pub const QUEUE: &str = "hhs_queue";

pub type PgStore = SqlStore<Postgres>;
pub type SqliteStore = SqlStore<Sqlite>;

/// How long a SQLite writer waits for the database lock before the request is answered 503 (`Retry-After`).
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

impl SqlStore<Sqlite> {
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
        Ok(SqlStore::new(Source::new(Some(pool), None)))
    }
}
