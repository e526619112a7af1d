//! `cargo xtask dev`: HHS on this machine with nothing configured — the origin on the embedded SQLite store.

use std::process::Command;

use crate::run::{cargo, root, status, step, target_dir};

pub fn run(extra: &[String]) -> Result<(), String> {
    step("building hhs-origin");
    status(cargo().args(["build", "-p", "hhs-origin"]))?;

    let state = root().join(".hhs");
    std::fs::create_dir_all(&state).map_err(|e| format!("create {}: {e}", state.display()))?;
    let bind = std::env::var("HHS_BIND").unwrap_or_else(|_| "127.0.0.1:8000".into());
    let db = state.join("hhs.db");

    let mut origin = Command::new(target_dir().join("debug/hhs-origin"));
    origin.arg("serve").arg("--bind").arg(&bind).args(extra);
    if std::env::var_os("DATABASE_URL").is_none() {
        origin.arg("--sqlite-path").arg(&db);
    }
    let mut child = origin.spawn().map_err(|e| format!("could not start hhs-origin: {e}"))?;
    eprintln!();
    eprintln!("  HHS origin   http://{bind}");
    match std::env::var_os("DATABASE_URL") {
        Some(_) => eprintln!("  store        PostgreSQL (DATABASE_URL)"),
        None => eprintln!("  store        embedded SQLite at {}", db.display()),
    }
    eprintln!("  try          curl http://{bind}/healthz");
    eprintln!("  stop         Ctrl-C");
    eprintln!();
    let st = child.wait().map_err(|e| e.to_string())?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("hhs-origin exited with {st}"))
    }
}
