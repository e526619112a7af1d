//! `cargo xtask bench keys [UNKNOWN]`: what a flood of made-up key ids costs a clinic with a real key. A release
//! origin on the embedded store; first a valid key's latency idle (2,000 sequential `GET /api/whoami`), then the
//! same while two threads send UNKNOWN (default 50,000) distinct unknown key ids. Prints p50/p99 of both, their
//! ratio, and the key cache's size afterwards (`hhs_key_cache_entries` in /metrics: bounded, see key_cache.rs).
//! `HHS_ORIGIN_BIN` benches another build, as `bench cycle` does.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::run::step;

/// Two flooders on this 2-core machine: enough to push 50,000 ids through in seconds without the measurement
/// becoming one of CPU starvation rather than of the cache.
const FLOODERS: u64 = 2;

fn latencies(agent: &ureq::Agent, url: &str, key: &str, n: usize, while_flag: Option<&AtomicBool>) -> Vec<u64> {
    let mut out = vec![];
    for _ in 0..n {
        if while_flag.is_some_and(|f| !f.load(Ordering::Relaxed)) {
            break;
        }
        let t = Instant::now();
        let _ = agent.get(url).set("Authorization", &format!("Bearer {key}")).call();
        out.push(t.elapsed().as_micros() as u64);
    }
    out.sort_unstable();
    out
}

fn pct(v: &[u64], p: f64) -> f64 {
    v.get(((v.len().max(1) - 1) as f64 * p).round() as usize).copied().unwrap_or(0) as f64 / 1000.0
}

pub fn run(unknown: u64) -> Result<(), String> {
    let bin = crate::bench::cycle::origin_bin()?;
    let dir = std::env::temp_dir().join(format!("hhs-bench-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let db = dir.join("hhs.db");
    let origin = |args: &[&str]| {
        let mut c = Command::new(&bin);
        c.args(args).env("HHS_SQLITE_PATH", &db).env("RUST_LOG", "error");
        c
    };
    crate::run::status(&mut origin(&["migrate"]))?;
    let out = origin(&["keys", "create", "--principal", "bench", "--role", "viewer"])
        .stderr(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    let key = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let (mut server, base) = crate::bench::cycle::serve(origin(&[]))?;
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(10)).build();
    let whoami = format!("{base}/api/whoami");
    latencies(&agent, &whoami, &key, 200, None); // warm-up
    let idle = latencies(&agent, &whoami, &key, 2_000, None);

    step(&format!("flooding with {unknown} unknown key ids from {FLOODERS} threads while timing the valid key"));
    let (flooding, sent) = (Arc::new(AtomicBool::new(true)), Arc::new(AtomicU64::new(0)));
    let flooders: Vec<_> = (0..FLOODERS)
        .map(|t| {
            let (whoami, sent, flooding) = (whoami.clone(), sent.clone(), flooding.clone());
            thread::spawn(move || {
                let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(10)).build();
                let mut i = t;
                while i < unknown {
                    let made_up = format!("hhs_{:012x}_{}", 0x00ab_0000_0000_u64 + i, "0".repeat(64));
                    let _ = agent.get(&whoami).set("Authorization", &format!("Bearer {made_up}")).call();
                    sent.fetch_add(1, Ordering::Relaxed);
                    i += FLOODERS;
                }
                flooding.store(false, Ordering::Relaxed);
            })
        })
        .collect();
    let during = latencies(&agent, &whoami, &key, usize::MAX, Some(&flooding));
    for f in flooders {
        let _ = f.join();
    }
    let metrics =
        agent.get(&format!("{base}/metrics")).call().ok().and_then(|r| r.into_string().ok()).unwrap_or_default();
    let cache: Vec<&str> = metrics.lines().filter(|l| l.starts_with("hhs_key_cache_entries{")).collect();
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
    println!("\n| valid key, GET /api/whoami | requests | p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|");
    println!("| idle | {} | {:.2} | {:.2} |", idle.len(), pct(&idle, 0.5), pct(&idle, 0.99));
    println!(
        "| during {} unknown ids | {} | {:.2} | {:.2} |",
        sent.load(Ordering::Relaxed),
        during.len(),
        pct(&during, 0.5),
        pct(&during, 0.99)
    );
    println!("\norigin: {}", bin.display());
    println!(
        "p99 ratio {:.2} (target ≤ 2); key cache afterwards: {}",
        pct(&during, 0.99) / pct(&idle, 0.99).max(0.001),
        cache.join(", ")
    );
    Ok(())
}
