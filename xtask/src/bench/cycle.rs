//! `cargo xtask bench cycle [SECONDS]`: the origin's throughput on PostgreSQL with its durable defaults (`fsync`
//! and `synchronous_commit` on). 32 workers, 1,000 resources; each cycle is acquire (TTL 30 s) → one heartbeat →
//! release, over HTTP with keep-alive. Prints cycles/s and per-call p50/p99, the origin's CPU and PostgreSQL's
//! commits/s during the run; then, in the same sitting on the same server, `pgbench` running the same cycle as
//! SQL straight at the schema (`xtask/pgbench/cycle.sql`, 32 clients): the floor, and the origin's ratio to it.
//! With `--sqlite` the same load runs against the embedded store (a throwaway file; no floor to compare).
//!
//! `HHS_ORIGIN_BIN=/path/to/hhs-origin` benches another build (e.g. the previous commit's) in the same way, so a
//! change can be measured before and after in one sitting.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::postgres::Cluster;
use crate::run::{cargo, free_port, output, root, status, step, target_dir};

const WORKERS: usize = 32;
const RESOURCES: usize = 1_000;

/// The origin to bench: `HHS_ORIGIN_BIN`, else this tree's release build.
pub fn origin_bin() -> Result<PathBuf, String> {
    if let Ok(bin) = std::env::var("HHS_ORIGIN_BIN") {
        return Ok(PathBuf::from(bin));
    }
    step("building hhs-origin (release)");
    status(cargo().args(["build", "--release", "-p", "hhs-origin", "--bin", "hhs-origin"]))?;
    Ok(target_dir().join("release/hhs-origin"))
}

/// Starts `origin serve` (a command with the binary and its environment set) on a free loopback port and waits
/// until `/healthz` answers; returns the process and its base URL.
pub fn serve(mut origin: Command) -> Result<(std::process::Child, String), String> {
    let port = free_port()?;
    let mut server = origin
        .args(["serve", "--bind", &format!("127.0.0.1:{port}"), "--dashboard-dir", "/nonexistent"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let base = format!("http://127.0.0.1:{port}");
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(2)).build();
    let started = Instant::now();
    while agent.get(&format!("{base}/healthz")).call().is_err() {
        if started.elapsed() > Duration::from_secs(30) {
            let _ = server.kill();
            return Err("the origin did not start".into());
        }
        thread::sleep(Duration::from_millis(100));
    }
    Ok((server, base))
}

/// `bin args` on the embedded store in `file` (`sqlite`) or on PostgreSQL at `url`, logging warnings only.
pub fn origin_command(
    bin: &std::path::Path,
    sqlite: bool,
    file: &std::path::Path,
    url: &str,
    args: &[&str],
) -> Command {
    let mut c = Command::new(bin);
    c.args(args).env("RUST_LOG", "warn");
    if sqlite {
        c.env("HHS_SQLITE_PATH", file);
    } else {
        c.env("DATABASE_URL", url);
    }
    c
}

/// Runs `measure` against a release origin on each store in turn — PostgreSQL (its durable defaults, a throwaway
/// cluster), then SQLite — and returns each store's name with its result. `name` names the SQLite file.
pub fn on_each_store<T>(
    name: &str,
    measure: impl Fn(&Started, &str) -> Result<T, String>,
) -> Result<Vec<(&'static str, T)>, String> {
    let bin = origin_bin()?;
    let mut rows = vec![];
    for sqlite in [false, true] {
        let cluster = if sqlite { None } else { Some(Cluster::start_with(true)?) };
        let url = cluster.as_ref().map(Cluster::url).unwrap_or_default();
        let file = target_dir().join(format!("bench-{name}-{}.db", std::process::id()));
        let origin = |args: &[&str]| origin_command(&bin, sqlite, &file, &url, args);
        let store = if sqlite { "SQLite" } else { "PostgreSQL" };
        let mut started = start_origin(origin)?;
        let result = measure(&started, store);
        let _ = started.server.kill();
        let _ = started.server.wait();
        let _ = std::fs::remove_file(&file);
        drop(cluster);
        rows.push((store, result?));
    }
    Ok(rows)
}

/// A benched origin, running: migrated, with an admin and a client key, serving on a free port.
pub struct Started {
    pub server: std::process::Child,
    pub base: String,
    pub admin: String,
    pub client: String,
}

/// Migrates, mints `bench-admin` (admin) and `bench` (client) keys, and starts `serve`; `origin` makes a command
/// of the origin binary with its database set.
pub fn start_origin(origin: impl Fn(&[&str]) -> Command) -> Result<Started, String> {
    status(&mut origin(&["migrate"]))?;
    let key = |principal: &str, role: &str| -> Result<String, String> {
        let out = origin(&["keys", "create", "--principal", principal, "--role", role])
            .stderr(Stdio::null())
            .output()
            .map_err(|e| e.to_string())?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    let (admin, client) = (key("bench-admin", "admin")?, key("bench", "client")?);
    let (server, base) = serve(origin(&[]))?;
    Ok(Started { server, base, admin, client })
}

pub(crate) fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0
}

pub fn run(seconds: u64, sqlite: bool) -> Result<(), String> {
    let bin = origin_bin()?;
    let cluster = if sqlite { None } else { Some(Cluster::start_with(true)?) };
    let url = cluster.as_ref().map(Cluster::url).unwrap_or_default();
    let file = target_dir().join(format!("bench-cycle-{}.db", std::process::id()));
    let origin = |args: &[&str]| origin_command(&bin, sqlite, &file, &url, args);
    let Started { mut server, base, admin, client } = start_origin(origin)?;
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(10)).build();
    step(&format!("creating {RESOURCES} resources"));
    let mut ids = vec![];
    for i in 0..RESOURCES {
        let r: serde_json::Value = agent
            .post(&format!("{base}/api/resources"))
            .set("Authorization", &format!("Bearer {admin}"))
            .send_json(json!({"type": "bed", "identifier": format!("Bench {i}")}))
            .map_err(|e| e.to_string())?
            .into_json()
            .map_err(|e| e.to_string())?;
        ids.push(r["id"].as_str().unwrap_or_default().to_owned());
    }
    step(&format!("{WORKERS} workers, {seconds} s of acquire → heartbeat → release (after 2 s of warm-up)"));
    let ids = Arc::new(ids);
    let (measuring, stop) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let failures_shown = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (ids, base, client, measuring, stop) =
                (ids.clone(), base.clone(), client.clone(), measuring.clone(), stop.clone());
            let failures_shown = failures_shown.clone();
            thread::spawn(move || {
                let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(10)).build();
                let mut lat: [Vec<u64>; 3] = Default::default();
                let (mut cycles, mut errors, mut i) = (0u64, 0u64, w);
                while !stop.load(Ordering::Relaxed) {
                    let id = &ids[i % ids.len()];
                    i += WORKERS;
                    let steps = [
                        ("acquire", json!({"resource_id": id, "owner_id": format!("w{w}"), "ttl_seconds": 30})),
                        ("heartbeat", json!({"resource_id": id, "owner_id": format!("w{w}")})),
                        ("release", json!({"resource_id": id, "owner_id": format!("w{w}")})),
                    ];
                    let mut ok = true;
                    for (n, (op, body)) in steps.into_iter().enumerate() {
                        let t = Instant::now();
                        let r = agent
                            .post(&format!("{base}/api/locks/{op}"))
                            .set("Authorization", &format!("Bearer {client}"))
                            .send_json(body);
                        if measuring.load(Ordering::Relaxed) {
                            lat[n].push(t.elapsed().as_micros() as u64);
                        }
                        if let Err(e) = r {
                            // The first few failures are shown: a benchmark must not hide what went wrong.
                            if failures_shown.fetch_add(1, Ordering::Relaxed) < 3 {
                                let what = match e {
                                    ureq::Error::Status(code, resp) => {
                                        format!("{code} {}", resp.into_string().unwrap_or_default())
                                    }
                                    other => other.to_string(),
                                };
                                eprintln!("bench: {op} failed: {}", what.chars().take(300).collect::<String>());
                            }
                            ok = false;
                            break;
                        }
                    }
                    if measuring.load(Ordering::Relaxed) {
                        if ok {
                            cycles += 1
                        } else {
                            errors += 1
                        }
                    }
                }
                (cycles, errors, lat)
            })
        })
        .collect();
    thread::sleep(Duration::from_secs(2));
    let commits = || -> Result<f64, String> {
        let Some(cluster) = &cluster else { return Ok(0.0) };
        let q = "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()";
        output(Command::new(cluster.bin().join("psql")).args(["-At", &url, "-c", q]))?
            .trim()
            .parse::<f64>()
            .map_err(|e| e.to_string())
    };
    let (cpu_before, commits_before) = (cpu_seconds(server.id()), commits()?);
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    thread::sleep(Duration::from_secs(seconds));
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = (cpu_seconds(server.id()) - cpu_before) / elapsed * 100.0;
    let commit_rate = (commits()? - commits_before) / elapsed;
    stop.store(true, Ordering::Relaxed);
    let (mut cycles, mut errors, mut lat): (u64, u64, [Vec<u64>; 3]) = (0, 0, Default::default());
    for w in workers {
        let (c, e, l) = w.join().map_err(|_| "a worker panicked")?;
        cycles += c;
        errors += e;
        for (all, mine) in lat.iter_mut().zip(l) {
            all.extend(mine);
        }
    }
    let _ = server.kill();
    let _ = server.wait();
    let origin_rate = cycles as f64 / elapsed;

    let store = if sqlite { "SQLite (embedded, synchronous=FULL)" } else { "PostgreSQL, durable" };
    let table = |lat: &mut [Vec<u64>; 3]| {
        println!(
            "\n| origin ({}) | cycles/s | errors | acquire p50 / p99 ms | heartbeat p50 / p99 | release p50 / p99 |",
            bin.display()
        );
        println!("|---|---:|---:|---|---|---|");
        let mut cols = vec![];
        for l in lat.iter_mut() {
            l.sort_unstable();
            cols.push(format!("{:.1} / {:.1}", percentile(l, 0.5), percentile(l, 0.99)));
        }
        println!("| {store} | {origin_rate:.0} | {errors} | {} | {} | {} |", cols[0], cols[1], cols[2]);
        println!("\norigin CPU during the run: {cpu:.0}% of one core");
    };
    let Some(cluster) = cluster else {
        table(&mut lat);
        let _ = std::fs::remove_file(&file);
        return Ok(());
    };
    // The floor, same server, same sitting: the cycle as SQL (every lease freed first).
    step(&format!("pgbench: the same cycle as SQL, {WORKERS} clients, {seconds} s"));
    let psql = |sql: &str| {
        status(Command::new(cluster.bin().join("psql")).args(["-q", "-v", "ON_ERROR_STOP=1", &url, "-c", sql]))
    };
    psql("UPDATE leases SET state = 'FREE', hold_id = NULL, owner_id = NULL")?;
    psql("CREATE TABLE bench_ids AS SELECT row_number() OVER (ORDER BY id) AS n, id FROM resources")?;
    let out = output(
        Command::new(cluster.bin().join("pgbench"))
            .args(["-n", "-c", &WORKERS.to_string(), "-j", "2", "-T", &seconds.to_string(), "-f"])
            .arg(root().join("xtask/pgbench/cycle.sql"))
            .arg(&url),
    )?;
    let floor = out
        .lines()
        .find(|l| l.starts_with("tps"))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|t| t.parse::<f64>().ok())
        .unwrap_or(f64::NAN);
    drop(cluster);
    table(&mut lat);
    println!("PostgreSQL commits/s: {commit_rate:.0}");
    println!(
        "pgbench, the same cycle as SQL on the same server: {floor:.0} cycles/s; the origin is {:.2}x of it",
        origin_rate / floor
    );
    Ok(())
}

/// CPU seconds (user + system) a process has used, from /proc (0 where that cannot be read).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (which may hold spaces, inside parentheses): utime is the 12th, stime the 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect(); // [0] is the state; utime and stime in clock ticks
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}
