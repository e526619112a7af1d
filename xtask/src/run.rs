//! Running commands with progress output, and finding the workspace.

use std::path::PathBuf;
use std::process::Command;

/// The workspace root (xtask lives one level below it). `cargo run` says where xtask's manifest is at run time;
/// the compile-time path is only the fallback: clones of the repository share one target directory (CI's), and
/// an `xtask` binary built in another clone would otherwise test that clone's files.
pub fn root() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// Cargo's target directory (`CARGO_TARGET_DIR` if set, as CI sets it).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                root().join(dir)
            }
        }
        _ => root().join("target"),
    }
}

/// Prints a step header, so long runs show where they are.
pub fn step(msg: &str) {
    eprintln!("\n==> {msg}");
}

/// Runs `cmd` to completion; an error names the command and its exit status.
pub fn status(cmd: &mut Command) -> Result<(), String> {
    let shown = format!("{cmd:?}");
    let st = cmd.status().map_err(|e| format!("could not start {shown}: {e}"))?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed ({st})"))
    }
}

/// Runs `cmd` and returns its stdout; stderr passes through.
pub fn output(cmd: &mut Command) -> Result<String, String> {
    let shown = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| format!("could not start {shown}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("{shown} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// `cargo`, as the one running xtask.
pub fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    forget_cargo_run_env(&mut c);
    c
}

/// `cargo run` gives xtask `CARGO_PKG_NAME=xtask` and friends. Build scripts that declare
/// `rerun-if-env-changed` on those (ring does) would see them change between `cargo build` and
/// `cargo xtask …` and rebuild every time, so nested commands don't inherit them.
pub fn forget_cargo_run_env(c: &mut Command) {
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_MANIFEST_")
            || matches!(name, "CARGO_CRATE_NAME" | "CARGO_BIN_NAME" | "CARGO_PRIMARY_PACKAGE")
        {
            c.env_remove(name);
        }
    }
}

/// A free TCP port on 127.0.0.1 (free now; bind it soon).
pub fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// A free port that stays free for a whole run: one below the kernel's ephemeral range, so no `:0` bind and
/// no outgoing connection of anything else in the run can be given it in the meantime (as `free_port`'s
/// can). For a port that a later process binds again and again, like the edge tests' origin.
pub fn reserved_port() -> Result<u16, String> {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let low: u16 = range.split_whitespace().next().and_then(|p| p.parse().ok()).unwrap_or(32_768);
    let (from, to) = (10_000u16, low.max(10_001));
    // Start somewhere different each run (two runs at once should not race for one port).
    let start = from + (std::process::id() % u32::from(to - from)) as u16;
    (start..to)
        .chain(from..start)
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .ok_or_else(|| format!("no free port between {from} and {to}"))
}

/// `cmd` started in a process group of its own, stopped with everything it started when dropped (TERM, then
/// KILL half a second later): no early return leaves a server or a backgrounded command running.
pub struct Group(pub std::process::Child);

impl Group {
    pub fn spawn(cmd: &mut Command) -> std::io::Result<Group> {
        std::os::unix::process::CommandExt::process_group(cmd, 0);
        cmd.spawn().map(Group)
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.0.try_wait() {
            // Its own process has ended; what it left running in the group is stopped all the same.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", self.0.id())])
                .stderr(std::process::Stdio::null())
                .status();
            return;
        }
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        std::thread::sleep(std::time::Duration::from_millis(500));
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.0.wait();
    }
}
