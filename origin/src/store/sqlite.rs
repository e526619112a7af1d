//! SQLite: its dialect and how the store opens it (one file, no standbys: its slot is filled once).

use std::borrow::Cow;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::{MigrateError, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Pool, Sqlite};

use super::dialect::Dialect;
use super::rows::{arguments, Arg, Record};
use super::sql_store::SqlStore;
use super::StoreError;
use crate::pool::PoolSlot;

impl Dialect for Sqlite {
    const KIND: &'static str = "sqlite";
    const NOW: &'static str = "SELECT CAST(unixepoch('subsec') * 1000 AS INTEGER)";
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    const SKIP_LOCKED: &'static str = "";
    const SKIP_LOCKED_SESSIONS: &'static str = "";
    const HORIZON: &'static str = "1";
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

    async fn fetch<T: Record>(
        conn: &mut SqliteConnection,
        statement: &str,
        args: Vec<Arg>,
    ) -> Result<Vec<T>, StoreError> {
        let statement = Self::sql(statement);
        Ok(sqlx::query_as_with(&statement, arguments::<Sqlite>(args)?).fetch_all(conn).await?)
    }

    async fn execute(conn: &mut SqliteConnection, statement: &str, args: Vec<Arg>) -> Result<u64, StoreError> {
        let statement = Self::sql(statement);
        Ok(sqlx::query_with(&statement, arguments::<Sqlite>(args)?).execute(conn).await?.rows_affected())
    }

    async fn migrate(pool: &Pool<Sqlite>) -> Result<(), MigrateError> {
        Self::MIGRATOR.run(pool).await
    }
}

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
        Ok(SqlStore::new(PoolSlot::new(Some(pool), None)))
    }
}
