//! `cargo xtask bench …` and `cargo xtask pgbench`: what the figures in README and `docs/` come from. Each
//! bench starts what it measures itself (a release origin, a throwaway PostgreSQL, `wrangler dev`), and every
//! HTTP call goes through ureq with keep-alive, as chaos and the other tasks do: one client, so the benches'
//! figures compare with each other.
//!
//! * `edge` — acquire+release direct, through the edge and through a bare pass-through Worker; the Worker's size.
//! * `ui` — the dashboard's wasm size and its first render of 1,000 resources in headless Chromium.
//! * `cycle` — acquire → heartbeat → release throughput on durable PostgreSQL (or SQLite), and pgbench's floor.
//! * `failover` — the unavailability window when the formation's primary is killed.
//! * `contention` — acquire latency when 50 clients race for one resource.
//! * `heartbeats` — 1,000 holds kept alive by one session's keepalives vs a heartbeat each.
//! * `handover` — the wait queue's hand-over, release to the next waiter's 200.
//! * `keys` — a valid key's latency idle and during a flood of unknown key ids.
//! * `pgbench` — the two transactional-acquire strategies as SQL on a throwaway cluster.

use std::process::Command;

use crate::run::output;

pub mod contention;
pub mod cycle;
mod edge;
pub mod failover;
pub mod handover;
pub mod heartbeats;
pub mod keys;
pub mod pgbench;
mod ui;

pub fn run(args: &[String]) -> Result<(), String> {
    match args.first().map(String::as_str) {
        Some("edge") => edge::run(args.get(1).and_then(|n| n.parse().ok()).unwrap_or(300)),
        Some("ui") => ui::run(args.get(1).and_then(|n| n.parse().ok()).unwrap_or(5)),
        Some("cycle") => {
            let seconds = args.iter().skip(1).find_map(|a| a.parse().ok()).unwrap_or(15);
            cycle::run(seconds, args.iter().any(|a| a == "--sqlite"))
        }
        Some("keys") => keys::run(args.get(1).and_then(|n| n.parse().ok()).unwrap_or(50_000)),
        Some("failover") => failover::run(args.get(1).and_then(|n| n.parse().ok()).unwrap_or(5)),
        Some("contention") => contention::run(args.get(1).and_then(|n| n.parse().ok()).unwrap_or(40)),
        Some("heartbeats") => heartbeats::run(args.get(1).and_then(|n| n.parse().ok()).unwrap_or(10)),
        Some("handover") => handover::run(args.get(1).and_then(|n| n.parse().ok()).unwrap_or(200)),
        _ => Err("usage: cargo xtask bench edge [PAIRS] | ui [LOADS] | cycle [SECONDS] [--sqlite] | keys [UNKNOWN] | failover [KILLS] | contention [ROUNDS] | heartbeats [SECONDS] | handover [ROUNDS]".into()),
    }
}

/// The `p` quantile (0–1) of `sorted` milliseconds.
pub(crate) fn percentile_ms(sorted: &[f64], p: f64) -> f64 {
    sorted.get(((sorted.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0.0)
}

/// A file's size after `gzip -9` (what a browser or Worker download costs).
pub(crate) fn gzipped(file: &std::path::Path) -> Result<u64, String> {
    Ok(output(Command::new("sh").arg("-c").arg(format!("gzip -9 -c '{}' | wc -c", file.display())))?
        .trim()
        .parse::<u64>()
        .unwrap_or(0))
}
