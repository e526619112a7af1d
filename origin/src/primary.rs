//! Finding and following the writable PostgreSQL server. sqlx 0.8 knows neither multi-host URLs nor
//! `target_session_attrs`, so the origin does what libpq would: it splits `DATABASE_URL` into one URL per host
//! ([`targets`]), connects only to the one that is not in recovery, probes it twice a second, and when the probe
//! fails or finds it read-only (a failover demoted it) drops the pool and searches again. Meanwhile the store
//! answers `Unavailable` (503 with `Retry-After`) at once instead of waiting on a dead server.
//!
//! The time the database was away is kept ([`Source::lose`]): before the store uses the new primary it gives
//! live holds back that time (`hhs_core::lease::resume`, once per outage), so a failover longer than a TTL does
//! not end every hold at once.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use hhs_core::Millis;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{Database, Pool, Postgres};

use crate::store::dialect::{Dialect, QUEUE, RENEWALS};
use crate::store::sql_store::SqlStore;
use crate::store::{Change, PgStore, StoreError};
use hhs_core::ResourceId;

/// How long the origin looks for a writable server at start-up (a failover may be under way).
const CONNECT_WITHIN: Duration = Duration::from_secs(30);

/// How often the primary is probed, and how long a probe may take before the server counts as gone.
pub const PROBE_EVERY: Duration = Duration::from_millis(500);
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the store's connections come from: the pool of the current primary, or none while it is being found.
pub struct Source<D: Database> {
    pool: RwLock<Option<Pool<D>>>,
    /// The server the pool reaches (`host:port`), for health and logs.
    server: RwLock<Option<String>>,
    /// The database clock at the last successful probe.
    last_seen: Mutex<Option<Millis>>,
    /// Set when the primary was lost: the last instant it was seen working. Cleared once live holds were resumed.
    lost_at: Mutex<Option<Millis>>,
    /// When the current outage began on this process's clock, for the log line that says how long it lasted.
    lost_since: Mutex<Option<Instant>>,
    /// One resumption at a time.
    pub(crate) resuming: tokio::sync::Mutex<()>,
    /// The last outage's length in ms, for `/healthz`.
    last_outage_ms: Mutex<Option<i64>>,
}

impl<D: Database> Source<D> {
    pub fn new(pool: Option<Pool<D>>, server: Option<String>) -> Arc<Source<D>> {
        Arc::new(Source {
            pool: RwLock::new(pool),
            server: RwLock::new(server),
            last_seen: Mutex::new(None),
            lost_at: Mutex::new(None),
            lost_since: Mutex::new(None),
            resuming: tokio::sync::Mutex::new(()),
            last_outage_ms: Mutex::new(None),
        })
    }

    /// The current pool, or `Unavailable` while no primary is known.
    pub fn current(&self) -> Result<Pool<D>, StoreError> {
        self.pool
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(StoreError::Unavailable(sqlx::Error::PoolClosed))
    }

    pub fn server(&self) -> Option<String> {
        self.server.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn last_outage_ms(&self) -> Option<i64> {
        *self.last_outage_ms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// When the outage that has not been resumed yet began, if there is one.
    pub fn pending_resume(&self) -> Option<Millis> {
        *self.lost_at.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Live holds were resumed (by this process or another) after the outage that began at `lost_at`.
    pub fn resumed(&self, lost_at: Millis, now: Millis) {
        let mut pending = self.lost_at.lock().unwrap_or_else(|p| p.into_inner());
        if *pending == Some(lost_at) {
            *pending = None;
            *self.last_outage_ms.lock().unwrap_or_else(|p| p.into_inner()) = Some(now.since(lost_at).0);
        }
    }

    fn seen(&self, now: Millis) {
        *self.last_seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(now);
    }

    /// Drops the pool (closing it in the background) and remembers when the database was last seen working.
    fn lose(&self, why: &str) {
        let old = self.pool.write().unwrap_or_else(|p| p.into_inner()).take();
        let server = self.server.write().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(old) = old {
            tracing::warn!(
                server = server.as_deref().unwrap_or(""),
                why,
                "lost the PostgreSQL primary; answering 503 until a primary is found"
            );
            tokio::spawn(async move { old.close().await });
            let seen = *self.last_seen.lock().unwrap_or_else(|p| p.into_inner());
            let mut lost_at = self.lost_at.lock().unwrap_or_else(|p| p.into_inner());
            if lost_at.is_none() {
                *lost_at = seen;
            }
            self.lost_since.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert_with(Instant::now);
        }
    }

    fn install(&self, pool: Pool<D>, server: String) {
        let away = self.lost_since.lock().unwrap_or_else(|p| p.into_inner()).take();
        match away {
            Some(since) => {
                tracing::warn!(server = %server, away_ms = since.elapsed().as_millis() as u64, "PostgreSQL primary found again")
            }
            None => tracing::info!(server = %server, "connected to the PostgreSQL primary"),
        }
        *self.server.write().unwrap_or_else(|p| p.into_inner()) = Some(server);
        *self.pool.write().unwrap_or_else(|p| p.into_inner()) = Some(pool);
    }
}

/// One connection URL per host of `url`: a libpq-style multi-host URL (`postgres://u@h1:p1,h2:p2/db?…`, as
/// `pg_autoctl show uri` prints) becomes one URL per host, in order, without `target_session_attrs` (the origin
/// always looks for the writable server); several URLs separated by spaces are taken as they are. Pure, so it
/// is tested on its own.
pub fn targets(url: &str) -> Result<Vec<String>, String> {
    let mut out = vec![];
    for one in url.split_whitespace() {
        let (scheme, rest) =
            one.split_once("://").ok_or("DATABASE_URL must start with postgres:// or postgresql://")?;
        let (auth, rest) = match rest.split_once('@') {
            // An '@' after the host list belongs to the path or query, not to the user part.
            Some((auth, after)) if !auth.contains('/') && !auth.contains('?') => (Some(auth), after),
            _ => (None, rest),
        };
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (hosts, tail) = rest.split_at(end);
        let (path, query) = tail.split_once('?').map_or((tail, None), |(p, q)| (p, Some(q)));
        let query: Vec<&str> = query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .filter(|kv| !kv.is_empty() && !kv.starts_with("target_session_attrs="))
            .collect();
        let query = if query.is_empty() { String::new() } else { format!("?{}", query.join("&")) };
        let auth = auth.map(|a| format!("{a}@")).unwrap_or_default();
        let hosts: Vec<&str> = if hosts.is_empty() { vec![""] } else { hosts.split(',').collect() };
        for host in hosts {
            out.push(format!("{scheme}://{auth}{host}{path}{query}"));
        }
    }
    if out.is_empty() {
        return Err("DATABASE_URL is empty".into());
    }
    Ok(out)
}

/// Connects to the first of `targets` that accepts writes, trying them all in turn until `within` has passed.
pub async fn find_primary(
    targets: &[PgConnectOptions],
    min: u32,
    max: u32,
    within: Duration,
) -> Option<(Pool<Postgres>, String)> {
    let deadline = Instant::now() + within;
    loop {
        for options in targets {
            if let Some(found) = try_primary(options, min, max).await {
                return Some(found);
            }
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn try_primary(options: &PgConnectOptions, min: u32, max: u32) -> Option<(Pool<Postgres>, String)> {
    let server = format!("{}:{}", options.get_host(), options.get_port());
    let pool = PgPoolOptions::new()
        .min_connections(min)
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(options.clone().application_name("hhs-origin"));
    match tokio::time::timeout(PROBE_TIMEOUT, probe(&pool)).await {
        Ok(Ok((false, _))) => Some((pool, server)),
        _ => {
            pool.close().await;
            None
        }
    }
}

/// Whether the server is in recovery (a standby), and its clock.
async fn probe(pool: &Pool<Postgres>) -> Result<(bool, Millis), sqlx::Error> {
    let statement =
        format!("SELECT pg_is_in_recovery(), ({})", <Postgres as Dialect>::NOW.trim_start_matches("SELECT "));
    let (standby, ms): (bool, i64) = sqlx::query_as(&statement).fetch_one(pool).await?;
    Ok((standby, Millis(ms)))
}

/// Probes the primary every [`PROBE_EVERY`]; when it is gone or read-only, drops its pool and looks for the new
/// one. Runs until the store is dropped (the task is aborted).
pub async fn follow(
    source: Arc<Source<Postgres>>,
    targets: Vec<PgConnectOptions>,
    min: u32,
    max: u32,
    changes: tokio::sync::broadcast::Sender<Change>,
) {
    loop {
        tokio::time::sleep(PROBE_EVERY).await;
        match source.current() {
            Ok(pool) => match tokio::time::timeout(PROBE_TIMEOUT, probe(&pool)).await {
                Ok(Ok((false, now))) => source.seen(now),
                Ok(Ok((true, _))) => source.lose("the server is now a standby (read-only)"),
                Ok(Err(_)) => source.lose("the probe failed"),
                Err(_) => source.lose("the probe timed out"),
            },
            Err(_) => {
                if let Some((pool, server)) = find_primary(&targets, min, max, Duration::ZERO).await {
                    source.install(pool, server);
                    // Readers look at the log: events committed on the new primary may not have been announced.
                    let _ = changes.send(Change::Events);
                }
            }
        }
    }
}

impl SqlStore<Postgres> {
    /// Connects to the writable server among `url`'s hosts ([`targets`]) and follows it from then on; the
    /// renewals' LISTEN connection follows it too.
    pub async fn connect(url: &str, min: u32, max: u32) -> Result<PgStore, StoreError> {
        let hosts = targets(url).map_err(|e| StoreError::Unavailable(sqlx::Error::Configuration(e.into())))?;
        let options: Vec<PgConnectOptions> =
            hosts.iter().map(|h| h.parse()).collect::<Result<_, _>>().map_err(StoreError::Unavailable)?;
        let Some((pool, server)) = find_primary(&options, min, max, CONNECT_WITHIN).await else {
            let why = format!(
                "none of the {} host(s) of DATABASE_URL accepted writes within {CONNECT_WITHIN:?}",
                options.len()
            );
            return Err(StoreError::Unavailable(sqlx::Error::Configuration(why.into())));
        };
        tracing::info!(server = %server, hosts = options.len(), "connected to the PostgreSQL primary");
        let store = SqlStore::new(Source::new(Some(pool), Some(server)));
        let (source, changes, queue) = (store.source().clone(), store.changes.clone(), store.queue_wake.clone());
        let tasks = [
            tokio::spawn(follow(source.clone(), options, min, max, changes.clone())),
            tokio::spawn(listen(source, changes, queue)),
        ];
        store.tasks.lock().unwrap_or_else(|p| p.into_inner()).extend(tasks);
        Ok(store)
    }
}

/// Forwards `hhs_renewals` to this store's readers and `hhs_queue` to its waiting requests, reconnecting (to the
/// current primary) after any error. A lost connection is reported as `Change::Events`, so readers look at the
/// log rather than wait for a renewal that may be lost (waiting requests poll on their own as well).
async fn listen(
    source: Arc<Source<Postgres>>,
    changes: tokio::sync::broadcast::Sender<Change>,
    queue: tokio::sync::broadcast::Sender<ResourceId>,
) {
    loop {
        let listener = match source.current() {
            Ok(pool) => match PgListener::connect_with(&pool).await {
                Ok(mut l) => l.listen_all([RENEWALS, QUEUE]).await.map(|()| l),
                Err(e) => Err(e),
            },
            Err(_) => Err(sqlx::Error::PoolClosed),
        };
        match listener {
            Ok(mut l) => loop {
                match l.recv().await {
                    Ok(n) if n.channel() == QUEUE => {
                        if let Ok(id) = n.payload().parse() {
                            let _ = queue.send(ResourceId(id));
                        }
                    }
                    Ok(n) => {
                        let _ =
                            changes.send(renewal(n.payload()).map_or(Change::Events, |r| Change::Renewed(Box::new(r))));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "LISTEN connection lost; reconnecting");
                        let _ = changes.send(Change::Events);
                        break;
                    }
                }
            },
            Err(sqlx::Error::PoolClosed) => {}
            Err(e) => tracing::warn!(error = %e, "LISTEN hhs_renewals failed"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// A renewal notification's hold: a `LockView` (written by the row-lock path) or the `leases` row a one-statement
/// heartbeat wrote (`StoredLease::parse_row`), viewed as `LockView::renewed` would.
fn renewal(payload: &str) -> Option<hhs_core::wire::LockView> {
    serde_json::from_str(payload)
        .ok()
        .or_else(|| hhs_core::wire::LockView::renewed(&hhs_core::stored::StoredLease::parse_row(payload).ok()?))
}
