//! `cargo xtask chaos`: tries to break HHS's promises under faults and checks that none broke.
//!
//! It starts a throwaway PostgreSQL with durable settings and three origin replicas (separate processes, each
//! with its reaper) — or, with `--sqlite`, one origin on the embedded store — and optionally the edge
//! (`--edge`, in front of the first replica). Clients acquire short holds (1–5 s) on a few contended
//! resources, write to a fenced register after each grant, heartbeat, release, sometimes vanish, and when told
//! to, freeze past their TTL and then write with their old token; a third of their acquires wait in the queue
//! (`wait_seconds` 1–3); they also book holds for a moment (cancelled
//! or left to complete), acquire groups of 2–3 all or nothing (renewed, released or booked by the group's id,
//! or left to lapse) and hold under sessions (kept alive by keepalives, closed or left to lapse). An admin steward
//! changes statuses (over HTTP and HL7), force-releases holds, narrows types' TTL bounds and deletes and
//! re-creates beds, one call at a time. On a schedule drawn from `--seed` it kills a
//! replica with SIGKILL (restarted after a pause), crashes PostgreSQL (immediate stop, then start) and freezes
//! clients. A subscriber follows `GET /api/events/stream` across all of it. Afterwards it reads the event log
//! back and runs the eight checks of `checks.rs` — the seventh on the clients' own views of their holds in real
//! time, the eighth on the answers the reference model (`hhs_core::reference`) decides; it prints a table and
//! fails on any violation.
//!
//! With `--ha` the database is a pg_auto_failover formation (`cargo xtask ha`: a primary and two synchronous
//! standbys) and the origins get its multi-host URL; the database faults are then a SIGKILL of the primary's
//! node (an unplanned failover; the node is revived as a standby once a new primary is up), a planned
//! switchover and a SIGKILL of a standby (which must cost nothing: the other standby acknowledges).
//!
//! Everything talks to 127.0.0.1 only and stops by itself after `--duration` seconds (plus recovery).

mod checks;
pub(crate) mod http;
mod rng;
mod workload;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::{self, sleep};
use std::time::{Duration, Instant};

use serde_json::json;

pub use checks::Check;
use checks::{LogEvent, Window};
use rng::Rng;
use workload::Shared;

use crate::postgres::Cluster;
use crate::run::{cargo, free_port, step, target_dir};

#[derive(Clone, Debug)]
pub struct Options {
    pub duration: Duration,
    pub seed: u64,
    pub sqlite: bool,
    pub edge: bool,
    pub clients: usize,
    pub release: bool,
    pub ha: bool,
}

impl Options {
    pub fn parse(args: &[String]) -> Result<Options, String> {
        let mut o = Options {
            duration: Duration::from_secs(60),
            seed: 1,
            sqlite: false,
            edge: false,
            clients: 12,
            release: false,
            ha: false,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut num = |name: &str| -> Result<u64, String> {
                it.next().and_then(|v| v.parse().ok()).ok_or_else(|| format!("{name} takes a whole number"))
            };
            match a.as_str() {
                "--duration" => o.duration = Duration::from_secs(num("--duration")?),
                "--seed" => o.seed = num("--seed")?,
                "--clients" => o.clients = num("--clients")?.clamp(1, 200) as usize,
                "--sqlite" => o.sqlite = true,
                "--edge" => o.edge = true,
                "--release" => o.release = true,
                "--ha" => o.ha = true,
                other => {
                    return Err(format!(
                    "unknown chaos option {other:?} (--duration S --seed N --clients N --sqlite --ha --edge --release)"
                ))
                }
            }
        }
        Ok(o)
    }
}

pub fn run(args: &[String]) -> Result<(), String> {
    let checks = run_checks(&Options::parse(args)?)?;
    let failed = checks.iter().filter(|c| !c.ok).count();
    if failed > 0 {
        return Err(format!("{failed} of {} checks found violations", checks.len()));
    }
    Ok(())
}

/// A replica: the origin process and how to start it again.
struct Replica {
    port: u16,
    child: Option<Child>,
}

/// Everything the run started, stopped when dropped.
struct World {
    bin: PathBuf,
    db_env: (&'static str, String),
    replicas: Mutex<Vec<Replica>>,
    cluster: Option<Cluster>,
    formation: Option<crate::ha::Owned>,
    logs: PathBuf,
}

impl World {
    fn origin(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.args(args).env(self.db_env.0, &self.db_env.1).env("RUST_LOG", "warn").env_remove("HHS_LOCK_DELAYS");
        c
    }

    fn start_replica(&self, i: usize, port: u16) -> Result<Child, String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs.join(format!("replica-{i}.log")))
            .map_err(|e| e.to_string())?;
        let bind = format!("127.0.0.1:{port}");
        self.origin(&[
            "serve",
            "--bind",
            &bind,
            "--min-ttl",
            "1",
            "--max-ttl",
            "3600",
            "--lock-delay",
            "or-room=2",
            "--reaper-interval",
            "1",
            "--log-format",
            "json",
            "--dashboard-dir",
            "/nonexistent",
        ])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("could not start hhs-origin: {e}"))
    }

    fn kill(&self, i: usize) {
        if let Some(mut c) = self.replicas.lock().unwrap_or_else(|p| p.into_inner())[i].child.take() {
            let _ = c.kill(); // SIGKILL
            let _ = c.wait();
        }
    }

    fn revive(&self, i: usize) -> Result<(), String> {
        let mut replicas = self.replicas.lock().unwrap_or_else(|p| p.into_inner());
        if replicas[i].child.is_none() {
            replicas[i].child = Some(self.start_replica(i, replicas[i].port)?);
        }
        Ok(())
    }

    fn urls(&self) -> Vec<String> {
        self.replicas
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|r| format!("http://127.0.0.1:{}", r.port))
            .collect()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        // The count first: a guard taken in the `for` expression would live through the loop, and `kill` locks too.
        let replicas = self.replicas.lock().unwrap_or_else(|p| p.into_inner()).len();
        for i in 0..replicas {
            self.kill(i);
        }
    }
}

/// Waits until `url/healthz` answers 200.
fn healthy(url: &str, within: Duration) -> Result<(), String> {
    let agent = http::agent(Duration::from_secs(2));
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(r) = agent.get(&format!("{url}/healthz")).call() {
            if r.status() == 200 {
                return Ok(());
            }
        }
        sleep(Duration::from_millis(100));
    }
    Err(format!("{url} did not become healthy within {within:?}"))
}

fn output(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.stderr(Stdio::inherit()).output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("{cmd:?} failed"));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The event log after event `after`, read through the API (commit order, every page), from any replica that
/// answers.
pub(crate) fn read_log(endpoints: &[String], key: &str, after: i64) -> Vec<LogEvent> {
    let agent = http::agent(Duration::from_secs(10));
    let mut out = vec![];
    let mut cursor = after;
    let mut failures = 0;
    loop {
        let base = &endpoints[failures % endpoints.len()];
        let answer = http::call(&agent, "GET", &format!("{base}/api/events?after={cursor}&limit=1000"), key, None);
        let page = match answer {
            http::Answer::Status(200, body) => serde_json::from_value::<hhs_core::wire::EventPage>(body).ok(),
            _ => None,
        };
        match page {
            Some(page) => {
                for view in page.items {
                    cursor = view.id;
                    out.push(log_event(view));
                }
                if page.next_after.is_none() {
                    return out;
                }
            }
            None => {
                failures += 1;
                if failures > 50 {
                    return out;
                }
                sleep(Duration::from_millis(200));
            }
        }
    }
}

fn log_event(view: hhs_core::wire::EventView) -> LogEvent {
    LogEvent {
        id: view.id,
        kind: view.kind.as_str().to_owned(),
        resource_id: view.resource_id.map(|r| r.0.to_string()),
        hold_id: view.hold_id.map(|h| h.0.to_string()),
        token: view.fencing_token.map(|t| t as i64),
        at: hhs_core::Millis::from_utc(view.at).0,
        held_ms: view.detail.hold().and_then(|d| d.held_ms),
        status_to: match &view.detail {
            hhs_core::wire::events::Detail::Status(s) => Some(s.to),
            _ => None,
        },
    }
}

/// Runs one chaos run and returns its checks (printed as a table).
pub fn run_checks(o: &Options) -> Result<Vec<Check>, String> {
    let profile = if o.release { "release" } else { "debug" };
    step(&format!("chaos: building hhs-origin ({profile})"));
    let mut build = cargo();
    build.args(["build", "-p", "hhs-origin", "--bin", "hhs-origin"]);
    if o.release {
        build.arg("--release");
    }
    crate::run::status(&mut build)?;
    let bin = target_dir().join(profile).join("hhs-origin");
    let logs = target_dir().join("chaos");
    let _ = std::fs::remove_dir_all(&logs);
    std::fs::create_dir_all(&logs).map_err(|e| e.to_string())?;

    let (mut formation, mut cluster) = (None, None);
    let (db_env, sqlite_dir) = if o.sqlite {
        let dir = std::env::temp_dir().join(format!("hhs-chaos-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let file = dir.join("hhs.db").to_string_lossy().into_owned();
        (("HHS_SQLITE_PATH", file), Some(dir))
    } else if o.ha {
        let f = crate::ha::Formation::up(&std::env::temp_dir().join(format!("hhs-chaos-ha-{}", std::process::id())))?;
        let url = f.url();
        formation = Some(crate::ha::Owned(f));
        (("DATABASE_URL", url), None)
    } else {
        let c = Cluster::start_with(true)?;
        let url = c.url();
        cluster = Some(c);
        (("DATABASE_URL", url), None)
    };
    let replicas = if o.sqlite { 1 } else { 3 };
    let ports: Vec<u16> = (0..replicas).map(|_| free_port()).collect::<Result<_, _>>()?;
    let world = Arc::new(World {
        bin,
        db_env,
        replicas: Mutex::new(ports.iter().map(|p| Replica { port: *p, child: None }).collect()),
        cluster,
        formation,
        logs: logs.clone(),
    });
    let store = match (o.sqlite, o.ha) {
        (true, _) => "SQLite, 1 origin",
        (false, true) => "a PostgreSQL formation (primary + 2 synchronous standbys), 3 replicas",
        (false, false) => "PostgreSQL (durable), 3 replicas",
    };
    step(&format!(
        "chaos: {store}, {} clients, {} s, seed {}; logs in {}",
        o.clients,
        o.duration.as_secs(),
        o.seed,
        logs.display()
    ));
    crate::run::status(&mut world.origin(&["migrate"]))?;
    let key = |principal: &str, role: &str| {
        output(&mut world.origin(&["keys", "create", "--principal", principal, "--role", role]))
    };
    let (admin, client, viewer) =
        (key("chaos-admin", "admin")?, key("chaos", "client")?, key("chaos-watch", "viewer")?);
    let integration = key("chaos-adt", "integration")?;
    for i in 0..replicas {
        world.revive(i)?;
    }
    let mut endpoints = world.urls();
    for url in &endpoints {
        healthy(url, Duration::from_secs(30))?;
    }
    let _edge = if o.edge {
        crate::edge::build(false)?;
        let w = crate::edge::start_wrangler(
            free_port()?,
            Some("bench"),
            &[("ORIGIN_URL", endpoints[0].clone())],
            &logs.join("wrangler.log"),
            true,
        )?;
        endpoints.push(w.url.clone());
        Some(w)
    } else {
        None
    };

    let agent = http::agent(Duration::from_secs(10));
    let mut resources = vec![];
    // Contended (12 clients, 1–3 holds each), yet with room for a group's 2–3 members to be free together.
    let named = (1..=12)
        .map(|i| ("bed", format!("Chaos {i}")))
        .chain([("scanner", "Chaos CT".to_owned()), ("or-room", "Chaos OR".to_owned())]);
    for (ty, ident) in named {
        match http::call(
            &agent,
            "POST",
            &format!("{}/api/resources", endpoints[0]),
            &admin,
            Some(&json!({"type": ty, "identifier": ident})),
        ) {
            http::Answer::Status(201, body) => {
                resources.push((body["id"].as_str().unwrap_or_default().to_owned(), ty.to_owned(), ident))
            }
            other => return Err(format!("could not create a resource: {other:?}")),
        }
    }
    let start_cursor = match http::call(&agent, "GET", &format!("{}/api/locks", endpoints[0]), &viewer, None) {
        http::Answer::Status(200, body) => body["last_event_id"].as_i64().unwrap_or(0),
        other => return Err(format!("could not read /api/locks: {other:?}")),
    };

    let sh = Arc::new(Shared::new(endpoints.clone(), client, viewer.clone(), resources, o.clients));
    for ty in ["bed", "scanner", "or-room"] {
        match http::call(&agent, "GET", &format!("{}/api/types/{ty}", endpoints[0]), &viewer, None) {
            http::Answer::Status(200, body) => {
                let bound = |f: &str| body[f].as_u64().map(|v| v as u32);
                let (Some(min), Some(max)) = (bound("min_ttl_seconds"), bound("max_ttl_seconds")) else {
                    return Err(format!("type {ty}: {body}"));
                };
                sh.facts.lock().unwrap_or_else(|p| p.into_inner()).initial_bounds.insert(ty.to_owned(), (min, max));
            }
            other => return Err(format!("could not read type {ty}: {other:?}")),
        }
    }
    let root = Rng::new(o.seed);
    let target = Arc::new(Mutex::new(None::<i64>));
    let subscriber = {
        let (sh, target) = (sh.clone(), target.clone());
        thread::spawn(move || workload::subscriber(&sh, start_cursor, &target))
    };
    let clients: Vec<_> = (0..o.clients)
        .map(|i| {
            let (sh, rng) = (sh.clone(), root.fork(i as u64 + 1));
            thread::spawn(move || workload::client(&sh, i, rng))
        })
        .collect();
    let steward = {
        let (sh, rng, id) = (sh.clone(), root.fork(o.clients as u64 + 1), o.clients);
        let (admin, integration) = (admin.clone(), integration.clone());
        thread::spawn(move || workload::steward(&sh, id, &admin, &integration, rng))
    };

    // The fault schedule, on this thread.
    let mut rng = root.fork(0);
    let deadline = Instant::now() + o.duration;
    let (mut kills, mut crashes, mut freezes) = (0, 0, 0);
    let mut ha_faults = HaFaults::default();
    let mut down: Vec<Window> = vec![];
    let mut round: Vec<u64> = vec![];
    loop {
        let pause = Duration::from_millis(rng.range(3_000, 7_000));
        if Instant::now() + pause + Duration::from_secs(3) >= deadline {
            break;
        }
        sleep(pause);
        // Every kind of fault in each round, in an order drawn from the seed (a formation's primary is killed
        // first, so even a short run has a failover).
        if round.is_empty() {
            round = match (&world.cluster, &world.formation) {
                (Some(_), _) => vec![0, 1, 2],
                (None, Some(_)) => vec![0, 2, 4, 5, 3],
                (None, None) => vec![0, 2],
            };
            let n = round.len() - usize::from(world.formation.is_some());
            let swap = rng.range(0, n as u64) as usize;
            round.swap(0, swap);
        }
        let pick = round.pop().unwrap_or(0);
        if let (Some(f), true) = (&world.formation, pick >= 3) {
            let start = sh.ms();
            let window = ha_fault(&f.0, pick, &mut ha_faults, &|| sh.ms())?;
            if window {
                down.push(Window { start, end: sh.ms() });
            }
        } else if pick == 0 {
            let i = rng.range(0, replicas as u64) as usize;
            eprintln!("[{:>6} ms] fault: kill -9 replica {i}", sh.ms());
            world.kill(i);
            sleep(Duration::from_millis(rng.range(500, 2_500)));
            world.revive(i)?;
            kills += 1;
        } else if pick == 1 && world.cluster.is_some() {
            let c = world.cluster.as_ref().expect("cluster");
            let start = sh.ms();
            eprintln!("[{start:>6} ms] fault: PostgreSQL crash (immediate stop)");
            c.crash()?;
            sleep(Duration::from_millis(rng.range(1_000, 3_000)));
            c.restart()?;
            let end = sh.ms();
            eprintln!("[{end:>6} ms]        PostgreSQL back");
            down.push(Window { start, end });
            crashes += 1;
        } else {
            let i = rng.range(0, o.clients as u64) as usize;
            eprintln!("[{:>6} ms] fault: freeze client {i} during its next hold", sh.ms());
            sh.freeze[i].store(true, Ordering::Relaxed);
            freezes += 1;
        }
    }
    while Instant::now() < deadline {
        sleep(Duration::from_millis(100));
    }
    sh.stop.store(true, Ordering::Relaxed);
    step("chaos: stopping clients, waiting for recovery");
    for c in clients {
        let _ = c.join();
    }
    let _ = steward.join();
    for url in &endpoints[..replicas] {
        healthy(url, Duration::from_secs(30))?;
    }
    // Let lapsed holds be reaped, so the log ends every hold that ended.
    sleep(Duration::from_secs(7));
    let log = read_log(&endpoints[..replicas], &admin, start_cursor);
    *target.lock().unwrap_or_else(|p| p.into_inner()) = Some(log.last().map_or(start_cursor, |e| e.id));
    sh.stop_subscriber.store(true, Ordering::Relaxed);
    let received = subscriber.join().unwrap_or_default();

    let calls = sh.calls.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let writes = sh.writes.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let sightings = sh.sightings.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let facts = sh.facts.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let views = checks::views(&sightings, &calls, &log);
    let checks = vec![
        checks::no_overlap(&log),
        checks::tokens_rise(&log),
        checks::acknowledged_are_logged(&calls, &log),
        checks::register_fenced(&writes),
        checks::stream_complete(&log, start_cursor, &received),
        checks::server_errors(&calls, &down, 5_000),
        checks::client_views(&views),
        checks::model_outcomes(&calls, &facts, &log),
    ];
    print_table(o, &calls, (kills, crashes, freezes), &checks, world.cluster.is_some() || world.formation.is_some());
    let all: Vec<String> =
        checks.iter().flat_map(|c| c.violations.iter().map(move |v| format!("{}: {v}", c.name))).collect();
    let _ = std::fs::write(logs.join("violations.txt"), all.join("\n") + "\n");
    // What the checks judged, for reading a violation back: every call, and what each client saw of its holds.
    let trace: Vec<String> =
        calls.iter().map(|c| format!("{c:?}")).chain(sightings.iter().map(|s| format!("{s:?}"))).collect();
    let _ = std::fs::write(logs.join("calls.txt"), trace.join("\n") + "\n");
    if world.formation.is_some() {
        println!(
            "formation faults: {} primary kills (failover {}), {} switchovers, {} standby kills",
            ha_faults.primary_kills,
            ha_faults.failovers_ms.iter().map(|ms| format!("{ms} ms")).collect::<Vec<_>>().join(", "),
            ha_faults.switchovers,
            ha_faults.standby_kills
        );
    }
    drop(world);
    if let Some(dir) = sqlite_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(checks)
}

fn print_table(
    o: &Options,
    calls: &[checks::Call],
    (kills, crashes, freezes): (u32, u32, u32),
    checks: &[Check],
    pg: bool,
) {
    let count = |op: &str, f: &dyn Fn(Option<u16>) -> bool| calls.iter().filter(|c| c.op == op && f(c.status)).count();
    let grants = calls.iter().filter(|c| c.fresh).count();
    let grants_of = |op: &str| calls.iter().filter(|c| c.fresh && c.op == op).count();
    println!(
        "\nchaos run: {} s, seed {}, {} clients, {}",
        o.duration.as_secs(),
        o.seed,
        o.clients,
        if pg { "PostgreSQL, 3 replicas" } else { "SQLite, 1 origin" }
    );
    println!("| | ok | refused (4xx) | 503 | unknown (no answer) |");
    println!("|---|---:|---:|---:|---:|");
    let ops = [
        "acquire",
        "acquire-in",
        "heartbeat",
        "release",
        "book",
        "acquire-group",
        "heartbeat-group",
        "release-group",
        "open-session",
        "keepalive",
        "close-session",
        "set-status",
        "hl7",
        "force-release",
        "put-type",
        "delete",
        "create",
    ];
    for op in ops {
        println!(
            "| {op} | {} | {} | {} | {} |",
            count(op, &|s| s.is_some_and(|s| (200..300).contains(&s))),
            count(op, &|s| s.is_some_and(|s| (400..500).contains(&s))),
            count(op, &|s| s == Some(503)),
            count(op, &|s| s.is_none()),
        );
    }
    let kinds = format!(
        "{} plain, {} under sessions, {} group members",
        grants_of("acquire"),
        grants_of("acquire-in"),
        grants_of("group-member")
    );
    println!("\ngrants: {grants} ({kinds}); faults: {kills} replica kills (SIGKILL), {crashes} PostgreSQL crashes, {freezes} frozen clients\n");
    println!("| check | result | detail |");
    println!("|---|---|---|");
    for c in checks {
        println!("| {} | {} | {} |", c.name, if c.ok { "pass" } else { "FAIL" }, c.detail);
    }
    let passed = checks.iter().filter(|c| c.ok).count();
    println!("\nchaos: {passed} passed, {} failed", checks.len() - passed);
}

/// What the formation went through in a run.
#[derive(Default)]
struct HaFaults {
    primary_kills: u32,
    /// From the kill to the monitor reporting a new primary.
    failovers_ms: Vec<u64>,
    switchovers: u32,
    standby_kills: u32,
}

/// One fault of the formation (3: kill the primary's node, 4: switchover, 5: kill a standby), returning with all
/// three nodes back. Whether it was a window in which the database could not be written (503s are allowed).
fn ha_fault(f: &crate::ha::Formation, pick: u64, seen: &mut HaFaults, ms: &dyn Fn() -> u64) -> Result<bool, String> {
    let start = ms();
    let window = match pick {
        3 => {
            let old = f.kill_primary()?;
            eprintln!("[{start:>6} ms] fault: SIGKILL the primary (node{old}) and its keeper");
            f.new_primary(old, Duration::from_secs(60))?;
            let took = ms() - start;
            eprintln!(
                "[{:>6} ms]        a standby was promoted after {took} ms; reviving node{old} as a standby",
                ms()
            );
            seen.primary_kills += 1;
            seen.failovers_ms.push(took);
            f.revive()?;
            true
        }
        4 => {
            eprintln!("[{start:>6} ms] fault: planned switchover");
            f.switchover()?;
            seen.switchovers += 1;
            true
        }
        _ => {
            let node = f.kill_standby()?;
            eprintln!("[{start:>6} ms] fault: SIGKILL a standby (node{node}); writes go on with the other");
            sleep(Duration::from_secs(2));
            f.revive()?;
            seen.standby_kills += 1;
            false
        }
    };
    f.settled(Duration::from_secs(120), None)?;
    eprintln!("[{:>6} ms]        formation settled", ms());
    Ok(window)
}
