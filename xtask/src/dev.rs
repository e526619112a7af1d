//! `cargo xtask dev`: HHS on this machine with nothing configured — the origin on the embedded SQLite store,
//! the edge Worker in `wrangler dev` in front of it, and an admin, a client and a viewer key made once and kept
//! in `.hhs/dev.env` (git-ignored; `HHS_DEV_DIR` moves `.hhs`, `HHS_BIND` and `HHS_EDGE_PORT` the ports).

use std::path::Path;
use std::process::Command;

use crate::run::{cargo, forget_cargo_run_env, output, root, status, step, target_dir};
use crate::{edge, ui};

const ROLES: [(&str, &str, &str); 3] = [
    ("HHS_ADMIN_KEY", "dev-admin", "admin"),
    ("HHS_CLIENT_KEY", "dev-clinic", "client"),
    ("HHS_VIEWER_KEY", "dev-viewer", "viewer"),
];

pub fn run(extra: &[String]) -> Result<(), String> {
    step("building hhs-origin");
    status(cargo().args(["build", "-p", "hhs-origin"]))?;
    edge::build(false)?;
    ui::build(false)?;

    // `HHS_DEV_DIR`: somewhere else than `.hhs` (the CLI's end-to-end test runs a dev setup of its own there).
    let state = std::env::var_os("HHS_DEV_DIR").map(std::path::PathBuf::from).unwrap_or_else(|| root().join(".hhs"));
    std::fs::create_dir_all(&state).map_err(|e| format!("create {}: {e}", state.display()))?;
    let bind = std::env::var("HHS_BIND").unwrap_or_else(|_| "127.0.0.1:8000".into());
    let edge_port: u16 = std::env::var("HHS_EDGE_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(8787);
    let db = state.join("hhs.db");
    let origin = || {
        let mut c = Command::new(target_dir().join("debug/hhs-origin"));
        forget_cargo_run_env(&mut c);
        c.env("HHS_DASHBOARD_DIR", root().join("ui/dist"));
        if std::env::var_os("DATABASE_URL").is_none() {
            c.env("HHS_SQLITE_PATH", &db);
        }
        c
    };

    let env_file = state.join("dev.env");
    let keys = ensure_keys(&env_file, &origin)?;

    let mut child = origin()
        .arg("serve")
        .arg("--bind")
        .arg(&bind)
        .args(extra)
        .spawn()
        .map_err(|e| format!("could not start hhs-origin: {e}"))?;
    let wrangler = edge::start_wrangler(
        edge_port,
        None,
        &[("ORIGIN_URL", format!("http://{bind}"))],
        &state.join("wrangler.log"),
        false,
    )?;
    eprintln!();
    eprintln!("  HHS edge     {}   <- clinics and the dashboard use this", wrangler.url);
    eprintln!("  dashboard    {}/            <- open this; sign in with a key below", wrangler.url);
    eprintln!("  origin       http://{bind}   (its own copy of the dashboard: http://{bind}/dashboard/)");
    match std::env::var_os("DATABASE_URL") {
        Some(_) => eprintln!("  store        PostgreSQL (DATABASE_URL)"),
        None => eprintln!("  store        embedded SQLite at {}", db.display()),
    }
    eprintln!("  keys         {} (source it for the README's curl examples)", env_file.display());
    for (var, value) in &keys {
        eprintln!("               {var}={value}");
    }
    eprintln!(
        "  try          source .hhs/dev.env && curl -H \"Authorization: Bearer $HHS_VIEWER_KEY\" {}/api/locks",
        wrangler.url
    );
    eprintln!("  stop         Ctrl-C");
    eprintln!();
    let st = child.wait().map_err(|e| e.to_string())?;
    drop(wrangler);
    if st.success() {
        Ok(())
    } else {
        Err(format!("hhs-origin exited with {st}"))
    }
}

/// The dev keys: the ones in `env_file` if the database still knows them unrevoked, else three new ones.
fn ensure_keys(env_file: &Path, origin: &dyn Fn() -> Command) -> Result<Vec<(String, String)>, String> {
    let listed = output(origin().args(["keys", "list"]))?;
    if let Ok(text) = std::fs::read_to_string(env_file) {
        let keys: Vec<(String, String)> = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let usable = |key: &str| {
            let id = key.split('_').nth(1).unwrap_or("");
            listed.lines().any(|row| row.starts_with(id) && row.trim_end().ends_with('-'))
        };
        if keys.len() == ROLES.len() && keys.iter().all(|(_, v)| usable(v)) {
            return Ok(keys);
        }
    }
    step("creating development keys (admin, client, viewer)");
    let mut keys = vec![];
    for (var, principal, role) in ROLES {
        let key = output(origin().args(["keys", "create", "--principal", principal, "--role", role]))?;
        keys.push((var.to_owned(), key.trim().to_owned()));
    }
    let body: String = keys.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    std::fs::write(env_file, body).map_err(|e| format!("write {}: {e}", env_file.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(env_file, std::fs::Permissions::from_mode(0o600));
    }
    Ok(keys)
}
