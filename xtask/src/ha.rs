//! `cargo xtask ha up|down|status|switchover|kill-primary|kill-standby|revive`: a PostgreSQL formation on this
//! machine with pg_auto_failover (a monitor, a primary and two standbys, each a foreground `pg_autoctl run` with
//! its own port and directory, as the `postgres` user, on 127.0.0.1), for the failover tests, `chaos --ha` and
//! `bench failover`. `up` prints the multi-host `DATABASE_URL` as the last line of its standard output.
//!
//! Durability: pg_auto_failover sets `synchronous_standby_names = 'ANY 1 (standby_2, standby_3)'` on the
//! primary (the formation's `number_sync_standbys` is 1) and we keep `synchronous_commit = on`, so a commit is
//! acknowledged only once one standby has it on disk; with no standby left, writes wait (checked by hand: a
//! `CREATE TABLE` on the primary with both standbys down waits) rather than going asynchronous.
//!
//! The monitor's health checks are tightened (see [`MONITOR_SETTINGS`]) so a dead primary is replaced in seconds
//! rather than the defaults' ~30 s; docs/operations.md's "Running HHS in production" says what that trades.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::run::{free_port, output, status, step};

/// Faster failure detection than pg_auto_failover's defaults (5 s checks, 20 s before a node is unhealthy).
const MONITOR_SETTINGS: &[(&str, &str)] = &[
    ("pgautofailover.health_check_period", "1000"),
    ("pgautofailover.health_check_timeout", "1000"),
    ("pgautofailover.health_check_max_retries", "1"),
    ("pgautofailover.health_check_retry_delay", "500"),
    ("pgautofailover.node_considered_unhealthy_timeout", "3000"),
    // How long the monitor waits for an unreachable primary to demote itself before promoting a standby. Safe
    // to shorten with synchronous replication: an old primary that is still running cannot acknowledge a
    // commit once its standbys follow the new one (docs/design/failover.md, "Split brain").
    ("pgautofailover.primary_demote_timeout", "3000"),
];

/// A formation: where it lives and its ports (monitor first). Dropping it does not stop it ([`Owned`] does).
pub struct Formation {
    pub dir: PathBuf,
    pub ports: Vec<u16>,
    bin: PathBuf,
}

/// One data node as the monitor sees it.
#[derive(Clone, Debug)]
pub struct Node {
    pub index: usize,
    pub port: u16,
    pub reported: String,
    pub assigned: String,
}

impl Formation {
    /// The formation in `dir` as recorded by `up` (ports in `dir/ports`).
    pub fn open(dir: &Path) -> Result<Formation, String> {
        let ports = std::fs::read_to_string(dir.join("ports"))
            .map_err(|_| format!("no formation in {} (cargo xtask ha up)", dir.display()))?;
        let ports = ports
            .split_whitespace()
            .map(|p| p.parse().map_err(|_| "bad ports file".to_string()))
            .collect::<Result<_, _>>()?;
        Ok(Formation { dir: dir.to_path_buf(), ports, bin: crate::postgres::find_bin()? })
    }

    /// Creates and starts a monitor and three data nodes in `dir` (which must not hold one), and waits until
    /// one node is primary and two are standbys.
    pub fn up(dir: &Path) -> Result<Formation, String> {
        if dir.join("ports").exists() {
            return Err(format!("{} already holds a formation (cargo xtask ha down first)", dir.display()));
        }
        which("pg_autoctl")
            .ok_or("pg_autoctl not found: apt-get install postgresql-15-auto-failover pg-auto-failover-cli")?;
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let ports: Vec<u16> = (0..4).map(|_| free_port()).collect::<Result<_, _>>()?;
        let f = Formation { dir: dir.to_path_buf(), ports, bin: crate::postgres::find_bin()? };
        if crate::postgres::is_root() {
            status(Command::new("chown").arg("-R").arg("postgres:").arg(dir))?;
        }
        let ports: Vec<String> = f.ports.iter().map(u16::to_string).collect();
        std::fs::write(dir.join("ports"), ports.join(" ")).map_err(|e| e.to_string())?;

        step(&format!("ha: monitor on 127.0.0.1:{}", f.ports[0]));
        f.autoctl(&[
            "create",
            "monitor",
            "--pgdata",
            &f.data(0),
            "--pgport",
            &ports[0],
            "--hostname",
            "127.0.0.1",
            "--listen",
            "127.0.0.1",
            "--auth",
            "trust",
            "--no-ssl",
        ])?;
        f.start(0)?;
        f.wait_sql(0, "pg_auto_failover", Duration::from_secs(60))?;
        for (name, value) in MONITOR_SETTINGS {
            f.psql(0, "pg_auto_failover", &format!("ALTER SYSTEM SET {name} = {value}"))?;
        }
        f.psql(0, "pg_auto_failover", "SELECT pg_reload_conf()")?;
        let monitor = format!("postgres://autoctl_node@127.0.0.1:{}/pg_auto_failover?sslmode=disable", f.ports[0]);
        for (i, port) in ports.iter().enumerate().skip(1) {
            step(&format!("ha: data node {i} on 127.0.0.1:{port}"));
            let name = format!("node{i}");
            f.autoctl(&[
                "create",
                "postgres",
                "--pgdata",
                &f.data(i),
                "--pgport",
                port,
                "--hostname",
                "127.0.0.1",
                "--listen",
                "127.0.0.1",
                "--auth",
                "trust",
                "--no-ssl",
                "--monitor",
                &monitor,
                "--name",
                &name,
                "--dbname",
                "hhs",
            ])?;
            f.start(i)?;
            // One at a time: a standby is cloned from the primary, which must be up first.
            f.wait_until(Duration::from_secs(120), &format!("node {i} to join"), |nodes| {
                nodes.len() == i
                    && nodes.iter().all(|n| {
                        n.reported == n.assigned && matches!(n.reported.as_str(), "single" | "primary" | "secondary")
                    })
            })?;
        }
        Ok(f)
    }

    /// The formation's multi-host URL, as libpq (and `pg_autoctl show uri`) write it.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self.ports[1..].iter().map(|p| format!("127.0.0.1:{p}")).collect();
        format!("postgres://postgres@{}/hhs?target_session_attrs=read-write", hosts.join(","))
    }

    /// Stops every process and removes the directory.
    pub fn down(&self) -> Result<(), String> {
        for i in 0..self.ports.len() {
            self.kill(i);
        }
        std::fs::remove_dir_all(&self.dir).map_err(|e| format!("remove {}: {e}", self.dir.display()))
    }

    /// The data nodes as the monitor reports them.
    pub fn nodes(&self) -> Result<Vec<Node>, String> {
        let rows = self.psql(
            0,
            "pg_auto_failover",
            "SELECT nodeport, reportedstate, goalstate FROM pgautofailover.node ORDER BY nodeid",
        )?;
        Ok(rows
            .lines()
            .filter_map(|l| {
                let mut cols = l.split('|');
                let port: u16 = cols.next()?.parse().ok()?;
                let index = self.ports.iter().position(|p| *p == port)?;
                Some(Node { index, port, reported: cols.next()?.into(), assigned: cols.next()?.into() })
            })
            .collect())
    }

    /// The node that is primary now, by the monitor.
    pub fn primary(&self) -> Result<Node, String> {
        self.nodes()?
            .into_iter()
            .find(|n| n.reported == "primary" || n.reported == "wait_primary" || n.reported == "single")
            .ok_or_else(|| "no primary".into())
    }

    /// A planned failover: the monitor promotes a standby; returns when the formation is settled again.
    pub fn switchover(&self) -> Result<(), String> {
        let before = self.primary()?.index;
        self.autoctl(&["perform", "switchover", "--pgdata", &self.data(0), "--wait", "60"])?;
        self.settled(Duration::from_secs(120), Some(before))
    }

    /// An unplanned failover: SIGKILL the primary node's keeper and its postgres (a machine that died). Returns
    /// the node killed; [`Formation::revive`] brings it back as a standby.
    pub fn kill_primary(&self) -> Result<usize, String> {
        let primary = self.primary()?.index;
        self.kill(primary);
        Ok(primary)
    }

    /// Waits until a node other than `old` is primary (writable).
    pub fn new_primary(&self, old: usize, within: Duration) -> Result<(), String> {
        self.wait_until(within, "a new primary", |nodes| {
            nodes.iter().any(|n| n.index != old && matches!(n.reported.as_str(), "primary" | "wait_primary"))
        })
    }

    /// SIGKILLs one standby node.
    pub fn kill_standby(&self) -> Result<usize, String> {
        let node = self.nodes()?.into_iter().find(|n| n.reported == "secondary").ok_or("no standby to kill")?;
        self.kill(node.index);
        Ok(node.index)
    }

    /// Starts every data node whose keeper is not running (it rejoins as a standby).
    pub fn revive(&self) -> Result<(), String> {
        for i in 1..self.ports.len() {
            if !self.running(i) {
                step(&format!("ha: restarting node {i}"));
                self.start(i)?;
            }
        }
        Ok(())
    }

    /// Waits until one node is primary and the others are standbys in sync with it (and, with `not`, the primary
    /// is another node than that).
    pub fn settled(&self, within: Duration, not: Option<usize>) -> Result<(), String> {
        let want = self.ports.len() - 1;
        self.wait_until(within, "the formation to settle", |nodes| {
            let primaries: Vec<&Node> =
                nodes.iter().filter(|n| n.reported == "primary" && n.assigned == "primary").collect();
            nodes.len() == want
                && primaries.len() == 1
                && not.is_none_or(|old| primaries[0].index != old)
                && nodes.iter().filter(|n| n.reported == "secondary" && n.assigned == "secondary").count() == want - 1
        })
    }

    fn wait_until(&self, within: Duration, what: &str, done: impl Fn(&[Node]) -> bool) -> Result<(), String> {
        let deadline = Instant::now() + within;
        let mut last = vec![];
        while Instant::now() < deadline {
            if let Ok(nodes) = self.nodes() {
                if done(&nodes) {
                    return Ok(());
                }
                last = nodes;
            }
            sleep(Duration::from_millis(250));
        }
        Err(format!("timed out waiting for {what}; nodes: {last:?} (logs in {})", self.dir.display()))
    }

    fn data(&self, i: usize) -> String {
        self.dir.join(if i == 0 { "monitor".to_owned() } else { format!("node{i}") }).to_string_lossy().into_owned()
    }

    /// `pg_autoctl` as the postgres user, with its configuration under the formation's directory.
    fn autoctl_cmd(&self, args: &[&str]) -> Command {
        let path = format!("{}:{}", self.bin.display(), std::env::var("PATH").unwrap_or_default());
        let mut c = if crate::postgres::is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", "env"]);
            c
        } else {
            Command::new("env")
        };
        c.arg(format!("PATH={path}"))
            .arg(format!("XDG_CONFIG_HOME={}", self.dir.join("config").display()))
            .arg(format!("XDG_DATA_HOME={}", self.dir.join("share").display()))
            .arg(format!("XDG_RUNTIME_DIR={}", self.dir.join("run").display()))
            .arg("pg_autoctl")
            .args(args)
            .current_dir(&self.dir);
        c
    }

    fn autoctl(&self, args: &[&str]) -> Result<(), String> {
        let log = self.log("create")?;
        status(self.autoctl_cmd(args).stdout(log.try_clone().map_err(|e| e.to_string())?).stderr(log))
    }

    fn log(&self, name: &str) -> Result<std::fs::File, String> {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{name}.log")))
            .map_err(|e| e.to_string())
    }

    /// Starts `pg_autoctl run` for node `i` in its own process group, detached from this process.
    fn start(&self, i: usize) -> Result<(), String> {
        use std::os::unix::process::CommandExt;
        let log = self.log(&format!("node{i}"))?;
        let child = self
            .autoctl_cmd(&["run", "--pgdata", &self.data(i)])
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("could not start pg_autoctl: {e}"))?;
        std::fs::write(self.dir.join(format!("node{i}.pgid")), child.id().to_string()).map_err(|e| e.to_string())
    }

    fn running(&self, i: usize) -> bool {
        let pgid = std::fs::read_to_string(self.dir.join(format!("node{i}.pgid"))).unwrap_or_default();
        !pgid.trim().is_empty()
            && Command::new("kill")
                .args(["-0", "--", &format!("-{}", pgid.trim())])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
    }

    /// SIGKILL to everything of node `i`, as if its machine died: the postmaster and every process it forked,
    /// then the keeper's process group. PostgreSQL puts each backend in a session of its own (`setsid`), so a backend
    /// outlives a killed postmaster until it notices — and may answer a query meanwhile; hence the postmaster is
    /// stopped first (no new forks), its children killed, then it.
    fn kill(&self, i: usize) {
        let pid = std::fs::read_to_string(Path::new(&self.data(i)).join("postmaster.pid")).unwrap_or_default();
        if let Some(pid) = pid.lines().next().filter(|p| !p.is_empty()) {
            let _ = Command::new("kill").args(["-STOP", pid]).stderr(Stdio::null()).status();
            let _ = Command::new("pkill").args(["-KILL", "-P", pid]).stderr(Stdio::null()).status();
            let _ = Command::new("kill").args(["-KILL", pid]).stderr(Stdio::null()).status();
        }
        if let Ok(pgid) = std::fs::read_to_string(self.dir.join(format!("node{i}.pgid"))) {
            let _ =
                Command::new("kill").args(["-KILL", "--", &format!("-{}", pgid.trim())]).stderr(Stdio::null()).status();
            let _ = std::fs::remove_file(self.dir.join(format!("node{i}.pgid")));
        }
    }

    /// Runs one statement with psql on node `i` and returns its unaligned output.
    pub fn psql(&self, i: usize, db: &str, sql: &str) -> Result<String, String> {
        let port = self.ports[i].to_string();
        let psql = if self.bin.join("psql").is_file() { self.bin.join("psql") } else { PathBuf::from("psql") };
        output(
            Command::new(psql)
                .args(["-X", "-q", "-At", "-h", "127.0.0.1", "-U", "postgres", "-p", &port, "-d", db, "-c", sql])
                .stdin(Stdio::null()),
        )
    }

    fn wait_sql(&self, i: usize, db: &str, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.psql(i, db, "SELECT 1").is_ok() {
                return Ok(());
            }
            sleep(Duration::from_millis(250));
        }
        Err(format!("node {i} did not answer within {within:?}"))
    }
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var("PATH").ok()?.split(':').map(|d| Path::new(d).join(tool)).find(|p| p.is_file())
}

/// Where `cargo xtask ha` keeps its formation (`HHS_HA_DIR` overrides).
fn default_dir() -> PathBuf {
    std::env::var_os("HHS_HA_DIR").map(PathBuf::from).unwrap_or_else(|| std::env::temp_dir().join("hhs-ha"))
}

pub fn run(args: &[String]) -> Result<(), String> {
    let dir = default_dir();
    match args.first().map(String::as_str) {
        Some("up") => {
            let f = Formation::up(&dir)?;
            eprintln!("\nformation up in {}; `cargo xtask ha down` stops it. DATABASE_URL:", dir.display());
            println!("{}", f.url());
            Ok(())
        }
        Some("down") => Formation::open(&dir)?.down().map(|()| eprintln!("formation stopped and removed")),
        Some("status") => {
            let f = Formation::open(&dir)?;
            for n in f.nodes()? {
                println!("node{} 127.0.0.1:{} {} (assigned {})", n.index, n.port, n.reported, n.assigned);
            }
            println!("{}", f.url());
            Ok(())
        }
        Some("switchover") => Formation::open(&dir)?.switchover().map(|()| eprintln!("switchover done")),
        Some("kill-primary") => Formation::open(&dir)?
            .kill_primary()
            .map(|i| eprintln!("killed node{i} (the primary); `cargo xtask ha revive` restarts it")),
        Some("kill-standby") => Formation::open(&dir)?.kill_standby().map(|i| eprintln!("killed node{i} (a standby)")),
        Some("revive") => Formation::open(&dir)?.revive(),
        _ => Err("usage: cargo xtask ha up|down|status|switchover|kill-primary|kill-standby|revive".into()),
    }
}

/// A formation this process started for a run (tests, chaos, bench): stopped and removed when dropped.
pub struct Owned(pub Formation);

impl Drop for Owned {
    fn drop(&mut self) {
        let _ = self.0.down();
        eprintln!("==> stopped and removed the PostgreSQL formation");
    }
}
