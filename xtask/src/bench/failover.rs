//! `cargo xtask bench failover [KILLS]`: how long holds are unavailable when the primary dies, and what
//! synchronous replication costs. On a pg_auto_failover formation (`cargo xtask ha`: a primary and two
//! synchronous standbys, the monitor's checks tightened as in `ha.rs`) one release-build origin takes a steady
//! load — 8 workers, each acquire → release on its own resources — while the primary's node is SIGKILLed KILLS
//! times (default 5; revived as a standby and settled between kills). For each kill it prints the window from
//! the first failed call to the first 200 after it, and from the kill to that 200. Then the same load for 10 s
//! without faults on the formation and on a single durable PostgreSQL server, side by side.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::bench::cycle::{origin_bin, start_origin, Started};
use crate::chaos::http::{self, Answer};
use crate::ha::{Formation, Owned};
use crate::postgres::Cluster;
use crate::run::step;

const WORKERS: usize = 8;
const LOAD_SECONDS: u64 = 10;

/// The calls as the load saw them: when each started and ended (ms since the start) and whether it got a 200.
type Seen = Arc<Mutex<Vec<(u64, u64, bool)>>>;

/// An origin on `url` with a steady acquire → release load; dropping it stops both.
struct Loaded {
    server: std::process::Child,
    stop: Arc<AtomicBool>,
    workers: Vec<thread::JoinHandle<u64>>,
    seen: Seen,
    t0: Instant,
}

impl Loaded {
    fn start(bin: &std::path::Path, url: &str) -> Result<Loaded, String> {
        let origin = |args: &[&str]| {
            let mut c = Command::new(bin);
            c.args(args).env("DATABASE_URL", url).env("RUST_LOG", "warn");
            c
        };
        let Started { server, base, admin, client } = start_origin(origin)?;
        let agent = http::agent(Duration::from_secs(10));
        let mut ids = vec![];
        for i in 0..WORKERS * 4 {
            let ident = format!("Failover {i} {}", std::process::id());
            match http::call(
                &agent,
                "POST",
                &format!("{base}/api/resources"),
                &admin,
                Some(&json!({"type": "bed", "identifier": ident})),
            ) {
                Answer::Status(201, body) => ids.push(body["id"].as_str().unwrap_or_default().to_owned()),
                other => return Err(format!("could not create a resource: {other:?}")),
            }
        }
        let (stop, seen, t0) = (Arc::new(AtomicBool::new(false)), Seen::default(), Instant::now());
        let workers = (0..WORKERS)
            .map(|w| {
                let (stop, seen, base, client) = (stop.clone(), seen.clone(), base.clone(), client.clone());
                let mine: Vec<String> = ids.iter().skip(w).step_by(WORKERS).cloned().collect();
                thread::spawn(move || {
                    let agent = http::agent(Duration::from_secs(15));
                    let (mut cycles, mut i) = (0u64, 0usize);
                    while !stop.load(Ordering::Relaxed) {
                        let id = &mine[i % mine.len()];
                        i += 1;
                        let acquire = json!({"resource_id": id, "owner_id": format!("w{w}"), "ttl_seconds": 30});
                        let release = json!({"resource_id": id, "owner_id": format!("w{w}")});
                        let mut ok = true;
                        for (op, body) in [("acquire", acquire), ("release", release)] {
                            let start = t0.elapsed().as_millis() as u64;
                            let got =
                                http::call(&agent, "POST", &format!("{base}/api/locks/{op}"), &client, Some(&body));
                            let good = matches!(got, Answer::Status(200, _));
                            seen.lock().unwrap_or_else(|p| p.into_inner()).push((
                                start,
                                t0.elapsed().as_millis() as u64,
                                good,
                            ));
                            if !good {
                                ok = false;
                                thread::sleep(Duration::from_millis(20));
                                break;
                            }
                        }
                        cycles += u64::from(ok);
                    }
                    cycles
                })
            })
            .collect();
        Ok(Loaded { server, stop, workers, seen, t0 })
    }

    fn ms(&self) -> u64 {
        self.t0.elapsed().as_millis() as u64
    }

    /// Completed cycles per second over the next `seconds`.
    fn rate(&self, seconds: u64) -> f64 {
        let count = || self.seen.lock().unwrap_or_else(|p| p.into_inner()).iter().filter(|(_, _, ok)| *ok).count();
        let before = count();
        thread::sleep(Duration::from_secs(seconds));
        (count() - before) as f64 / 2.0 / seconds as f64
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let cycles = self.workers.drain(..).map(|w| w.join().unwrap_or(0)).sum();
        let _ = self.server.kill();
        let _ = self.server.wait();
        cycles
    }
}

impl Drop for Loaded {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.server.kill();
    }
}

pub fn run(kills: usize) -> Result<(), String> {
    let bin = origin_bin()?;
    let dir = std::env::temp_dir().join(format!("hhs-bench-ha-{}", std::process::id()));
    let formation = Owned(Formation::up(&dir)?);
    let f: &Formation = &formation.0;
    let load = Loaded::start(&bin, &f.url())?;
    step(&format!("bench failover: {WORKERS} workers, {LOAD_SECONDS} s of acquire → release on the formation"));
    thread::sleep(Duration::from_secs(2));
    let formation_rate = load.rate(LOAD_SECONDS);

    let mut windows = vec![];
    for k in 1..=kills {
        thread::sleep(Duration::from_secs(3));
        let killed_at = load.ms();
        let node = f.kill_primary()?;
        eprintln!("[{killed_at:>6} ms] kill {k}/{kills}: SIGKILL the primary (node{node})");
        // The window: from the first failed answer after the kill to the first 200 of a call that began after it
        // (a commit in flight at the kill may still be acknowledged — its standby has it — and says nothing).
        let deadline = Instant::now() + Duration::from_secs(90);
        let window = loop {
            thread::sleep(Duration::from_millis(100));
            let seen = load.seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let first_fail = seen.iter().filter(|(_, end, ok)| *end >= killed_at && !ok).map(|(_, end, _)| *end).min();
            if let Some(fail) = first_fail {
                if let Some(back) =
                    seen.iter().filter(|(start, _, ok)| *start > fail && *ok).map(|(_, end, _)| *end).min()
                {
                    break (fail, back);
                }
            }
            if Instant::now() > deadline {
                return Err("no 200 within 90 s of killing the primary".into());
            }
        };
        eprintln!("[{:>6} ms]        first failure at {} ms, first 200 at {} ms", load.ms(), window.0, window.1);
        windows.push((window.1 - window.0, window.1 - killed_at));
        f.revive()?;
        f.settled(Duration::from_secs(120), None)?;
    }
    let cycles = load.finish();
    drop(formation);

    step(&format!("bench failover: the same load on one durable PostgreSQL server, {LOAD_SECONDS} s"));
    let single = Cluster::start_with(true)?;
    let load = Loaded::start(&bin, &single.url())?;
    thread::sleep(Duration::from_secs(2));
    let single_rate = load.rate(LOAD_SECONDS);
    load.finish();
    drop(single);

    println!("\n| kill | unavailable: first failure → first 200 | kill → first 200 |");
    println!("|---:|---:|---:|");
    for (i, (window, from_kill)) in windows.iter().enumerate() {
        println!("| {} | {:.1} s | {:.1} s |", i + 1, *window as f64 / 1000.0, *from_kill as f64 / 1000.0);
    }
    let mut sorted: Vec<u64> = windows.iter().map(|w| w.0).collect();
    sorted.sort_unstable();
    if let (Some(min), Some(max)) = (sorted.first(), sorted.last()) {
        println!("\nunavailability over {} kills: median {:.1} s, min {:.1} s, max {:.1} s ({cycles} cycles completed across them)", sorted.len(), sorted[sorted.len() / 2] as f64 / 1000.0, *min as f64 / 1000.0, *max as f64 / 1000.0);
    }
    println!("\n| database | acquire → release cycles/s ({WORKERS} workers) |");
    println!("|---|---:|");
    println!("| formation: primary + 2 standbys, synchronous_commit on, ANY 1 | {formation_rate:.0} |");
    println!("| one server, durable (fsync, synchronous_commit on) | {single_rate:.0} |");
    println!(
        "\nsynchronous replication costs {:.0}% of the single server's throughput",
        (1.0 - formation_rate / single_rate) * 100.0
    );
    Ok(())
}
