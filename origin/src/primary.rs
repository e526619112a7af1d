//! Finding and following the writable PostgreSQL server. sqlx 0.8 knows neither multi-host URLs nor
//! `target_session_attrs`, so the origin does what libpq would: it splits `DATABASE_URL` into one URL per host
//! ([`targets`]), connects only to the one that is not in recovery, probes it twice a second, and when the probe
//! fails or finds it read-only (a failover demoted it) empties the [`PoolSlot`] and searches again. Meanwhile the
//! store answers `Unavailable` (503 with `Retry-After`) at once instead of waiting on a dead server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hhs_core::Millis;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Pool, Postgres};

use crate::pool::PoolSlot;

/// How long the origin looks for a writable server at start-up (a failover may be under way).
pub const CONNECT_WITHIN: Duration = Duration::from_secs(30);

/// How often the primary is probed, and how long a probe may take before the server counts as gone.
pub const PROBE_EVERY: Duration = Duration::from_millis(500);
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

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

/// Whether the server is in recovery (a standby), and its clock (as the store's `Dialect::NOW` reads it).
const PROBE: &str = "SELECT pg_is_in_recovery(), (floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint)";

/// Whether the server is in recovery (a standby), and its clock.
async fn probe(pool: &Pool<Postgres>) -> Result<(bool, Millis), sqlx::Error> {
    let (standby, ms): (bool, i64) = sqlx::query_as(PROBE).fetch_one(pool).await?;
    Ok((standby, Millis(ms)))
}

/// Probes the primary every [`PROBE_EVERY`]; when it is gone or read-only, empties the slot and looks for the new
/// one, calling `found` once it is in the slot. Runs until the store is dropped (the task is aborted).
pub async fn follow(
    slot: Arc<PoolSlot<Postgres>>,
    targets: Vec<PgConnectOptions>,
    min: u32,
    max: u32,
    found: impl Fn() + Send + 'static,
) {
    loop {
        tokio::time::sleep(PROBE_EVERY).await;
        match slot.current() {
            Ok(pool) => match tokio::time::timeout(PROBE_TIMEOUT, probe(&pool)).await {
                Ok(Ok((false, now))) => slot.seen(now),
                Ok(Ok((true, _))) => slot.lose("the server is now a standby (read-only)"),
                Ok(Err(_)) => slot.lose("the probe failed"),
                Err(_) => slot.lose("the probe timed out"),
            },
            Err(_) => {
                if let Some((pool, server)) = find_primary(&targets, min, max, Duration::ZERO).await {
                    slot.install(pool, server);
                    found();
                }
            }
        }
    }
}
