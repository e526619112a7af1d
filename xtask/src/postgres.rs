//! A throwaway PostgreSQL cluster for tests and benchmarks: initdb + pg_ctl on a free loopback port, trust auth,
//! removed again on drop. PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::run::{free_port, output, status, step};

pub struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    pub port: u16,
    as_postgres: bool,
    /// The server options it was started with (kept for restarts).
    opts: String,
}

/// The newest installed server's bin directory (`HHS_PG_BIN` overrides).
pub fn find_bin() -> Result<PathBuf, String> {
    if let Ok(dir) = std::env::var("HHS_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| {
            "PostgreSQL server not found in /usr/lib/postgresql (apt-get install postgresql, or set DATABASE_URL)"
                .to_string()
        })?
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().map(|(_, b)| b).ok_or_else(|| "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin".into())
}

pub fn is_root() -> bool {
    output(Command::new("id").arg("-u")).map(|s| s.trim() == "0").unwrap_or(false)
}

impl Cluster {
    /// A cluster for tests: fsync and synchronous commit off (fast; nothing here outlives the run).
    pub fn start() -> Result<Cluster, String> {
        Self::start_with(false)
    }

    /// With `durable`, PostgreSQL's own defaults (fsync, synchronous_commit on): what benchmarks and the fault
    /// harness need — a crash (immediate stop) must not lose an acknowledged commit.
    pub fn start_with(durable: bool) -> Result<Cluster, String> {
        let bin = find_bin()?;
        let as_postgres = is_root();
        let dir = std::env::temp_dir().join(format!("hhs-pg-{}-{}", std::process::id(), free_port()?));
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        if as_postgres {
            status(Command::new("chown").arg("postgres:").arg(&dir))?;
        }
        let port = free_port()?;
        step(&format!("starting a throwaway PostgreSQL ({}) on 127.0.0.1:{port}", bin.display()));
        let speed = if durable { "" } else { " -c fsync=off -c synchronous_commit=off -c full_page_writes=off" };
        let opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=400 -c shared_buffers=128MB{speed}",
            path(&dir)
        );
        let cluster = Cluster { dir, bin, port, as_postgres, opts };
        let data = cluster.dir.join("data");
        cluster.pg("initdb", &["-D", path(&data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"])?;
        cluster.start_server()?;
        Ok(cluster)
    }

    fn start_server(&self) -> Result<(), String> {
        let (data, log) = (self.dir.join("data"), self.dir.join("server.log"));
        self.pg("pg_ctl", &["-D", path(&data), "-l", path(&log), "-o", &self.opts, "-w", "-t", "60", "start"])
    }

    /// Stops the server in immediate mode — no checkpoint, no clean shutdown: a crash, as far as PostgreSQL can
    /// tell (it runs crash recovery at the next start).
    pub fn crash(&self) -> Result<(), String> {
        let data = self.dir.join("data");
        self.pg("pg_ctl", &["-D", path(&data), "-m", "immediate", "-w", "stop"])
    }

    /// Starts the server again after [`Cluster::crash`].
    pub fn restart(&self) -> Result<(), String> {
        self.start_server()
    }

    fn pg(&self, tool: &str, args: &[&str]) -> Result<(), String> {
        let exe = self.bin.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        // Run from a directory the postgres user can read, and keep initdb's chatter short.
        cmd.args(args).current_dir(&self.dir).stdout(std::process::Stdio::null());
        status(&mut cmd)
    }

    /// An admin URL (database `postgres`, user `postgres`, no password: trust on loopback).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn bin(&self) -> &Path {
        &self.bin
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap_or(".")
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ = self.pg("pg_ctl", &["-D", path(&data), "-m", "immediate", "-w", "stop"]);
        let _ = std::fs::remove_dir_all(&self.dir);
        eprintln!("==> stopped and removed the throwaway PostgreSQL");
    }
}
