//! `cargo xtask dev`: HHS on this machine with nothing configured — the origin on the embedded SQLite store
//! taking HL7 over MLLP on loopback too, the edge Worker in `wrangler dev` in front of it, and a key of every role
//! made once and kept in `.hhs/dev.env` with the addresses (git-ignored; `HHS_DEV_DIR` moves `.hhs`, `HHS_BIND`,
//! `HHS_EDGE_PORT` and `HHS_MLLP_PORT` the ports).

use std::path::Path;
use std::process::Command;

use crate::run::{cargo, forget_cargo_run_env, output, root, status, step, target_dir, Group};
use crate::{edge, ui};

/// The dev keys: `dev.env`'s variable, the key's principal and its role.
const ROLES: [(&str, &str, &str); 4] = [
    ("HHS_ADMIN_KEY", "dev-admin", "admin"),
    ("HHS_CLIENT_KEY", "dev-clinic", "client"),
    ("HHS_VIEWER_KEY", "dev-viewer", "viewer"),
    ("HHS_INTEGRATION_KEY", "dev-feed", "integration"),
];

/// What `dev` runs: the origin, the Worker and the dashboard.
fn build() -> Result<(), String> {
    step("building hhs-origin");
    status(cargo().args(["build", "-p", "hhs-origin"]))?;
    edge::build(false)?;
    ui::build(false).map(drop)
}

pub fn run(extra: &[String]) -> Result<(), String> {
    build()?;

    // `HHS_DEV_DIR`: somewhere else than `.hhs` (the CLI's end-to-end test and the quickstart run a dev setup of
    // their own there).
    let state = std::env::var_os("HHS_DEV_DIR").map(std::path::PathBuf::from).unwrap_or_else(|| root().join(".hhs"));
    std::fs::create_dir_all(&state).map_err(|e| format!("create {}: {e}", state.display()))?;
    let bind = std::env::var("HHS_BIND").unwrap_or_else(|_| "127.0.0.1:8000".into());
    let edge_port: u16 = std::env::var("HHS_EDGE_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(8787);
    let mllp_port: u16 = std::env::var("HHS_MLLP_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(2575);
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

    status(origin().arg("migrate"))?;
    let env_file = state.join("dev.env");
    let keys = ensure_keys(&env_file, &origin)?;

    // Plain MLLP is taken on loopback only (docs/clinical.md: who may send over MLLP); `--mllp` among the
    // arguments moves it.
    let mut mllp = format!("127.0.0.1:{mllp_port}");
    let mut serve = origin();
    serve.arg("serve").arg("--bind").arg(&bind);
    if extra.iter().any(|a| a == "--mllp" || a.starts_with("--mllp=")) {
        mllp = "as given".into();
    } else {
        serve.args(["--mllp", &mllp]);
    }
    // Killed if this returns early (a wrangler that does not start, say), so no origin is left on the ports. In
    // the terminal's process group, so Ctrl-C reaches it as it reaches `dev`.
    let mut child = Origin(serve.args(extra).spawn().map_err(|e| format!("could not start hhs-origin: {e}"))?);
    let wrangler = edge::start_wrangler(
        edge_port,
        None,
        &[("ORIGIN_URL", format!("http://{bind}"))],
        &state.join("wrangler.log"),
        false,
    )?;
    let mut env: Vec<(String, String)> = keys;
    env.push(("HHS_URL".into(), wrangler.url.clone()));
    env.push(("HHS_ORIGIN_URL".into(), format!("http://{bind}")));
    env.push(("HHS_MLLP_PORT".into(), mllp_port.to_string()));
    write_env(&env_file, &env)?;

    eprintln!();
    eprintln!("  HHS edge     {}   <- clinics and the dashboard use this", wrangler.url);
    eprintln!("  dashboard    {}/            <- open this; sign in with a key below", wrangler.url);
    eprintln!("  origin       http://{bind}   (its own copy of the dashboard: http://{bind}/dashboard/)");
    eprintln!("  HL7 (MLLP)   {mllp}    (plain TCP, loopback only; over HTTP: POST /api/hl7/v2)");
    match std::env::var_os("DATABASE_URL") {
        Some(_) => eprintln!("  store        PostgreSQL (DATABASE_URL)"),
        None => eprintln!("  store        embedded SQLite at {}", db.display()),
    }
    eprintln!("  keys         in {} with the addresses (source it for the README's examples)", env_file.display());
    for ((var, value), (_, principal, role)) in env.iter().zip(ROLES) {
        eprintln!("               {var}={value}   ({role}, principal {principal})");
    }
    eprintln!(
        "  try          source .hhs/dev.env && curl -H \"Authorization: Bearer $HHS_VIEWER_KEY\" $HHS_URL/api/locks"
    );
    eprintln!("  stop         Ctrl-C");
    eprintln!();
    let st = child.0.wait().map_err(|e| e.to_string())?;
    drop(wrangler);
    if st.success() {
        Ok(())
    } else {
        Err(format!("hhs-origin exited with {st}"))
    }
}

/// The origin `dev` started, killed when `dev` returns before it has ended.
struct Origin(std::process::Child);

impl Drop for Origin {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The dev keys, in `ROLES`' order: each one `env_file` names that the database knows unrevoked, a new one for
/// each role that has none.
fn ensure_keys(env_file: &Path, origin: &dyn Fn() -> Command) -> Result<Vec<(String, String)>, String> {
    let listed = output(origin().args(["keys", "list"]))?;
    let known: Vec<(String, String)> = std::fs::read_to_string(env_file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let usable = |key: &str| {
        let id = key.split('_').nth(1).unwrap_or("");
        !id.is_empty() && listed.lines().any(|row| row.starts_with(id) && row.trim_end().ends_with('-'))
    };
    let mut keys = vec![];
    for (var, principal, role) in ROLES {
        let kept = known.iter().find(|(k, v)| k == var && usable(v)).map(|(_, v)| v.clone());
        let key = match kept {
            Some(key) => key,
            None => {
                step(&format!("creating a development key: {role} ({principal})"));
                output(origin().args(["keys", "create", "--principal", principal, "--role", role]))?.trim().to_owned()
            }
        };
        keys.push((var.to_owned(), key));
    }
    Ok(keys)
}

/// `dev.env`: `NAME=value` lines, readable by its owner only (it holds an admin key), replaced whole (written
/// beside it, then renamed), so a reader never sees it half written.
fn write_env(env_file: &Path, vars: &[(String, String)]) -> Result<(), String> {
    let body: String = vars.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    let err = |e: std::io::Error| format!("write {}: {e}", env_file.display());
    let fresh = env_file.with_extension("env.new");
    let _ = std::fs::remove_file(&fresh);
    private_file(&fresh).and_then(|mut f| std::io::Write::write_all(&mut f, body.as_bytes())).map_err(err)?;
    std::fs::rename(&fresh, env_file).map_err(err)
}

/// A new file only its owner may read.
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::os::unix::fs::OpenOptionsExt::mode(std::fs::OpenOptions::new().write(true).create_new(true), 0o600).open(path)
}

/// `xtask dev` in the background for a test: its `.hhs` in `scratch`, on free ports, in a process group of its own
/// that is stopped, with everything it started, on drop.
pub struct Background {
    _dev: Group,
    /// The edge's address.
    pub url: String,
}

impl Background {
    /// Builds what it runs (here, so a cold build is seen and not timed), starts it and waits until the edge
    /// answers and `dev.env` is written. Its log is `scratch/dev.log`.
    pub fn start(scratch: &Path) -> Result<Background, String> {
        build()?;
        let state = scratch.join(".hhs");
        std::fs::create_dir_all(&state).map_err(|e| e.to_string())?;
        // Its log shows the keys, as `dev` prints them: readable by this user only, as `dev.env` is.
        let _ = std::fs::remove_file(scratch.join("dev.log"));
        let log = private_file(&scratch.join("dev.log")).map_err(|e| e.to_string())?;
        let ports = [crate::run::free_port()?, crate::run::free_port()?, crate::run::free_port()?];
        let mut dev = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
        dev.arg("dev")
            .env("HHS_DEV_DIR", &state)
            .env("HHS_BIND", format!("127.0.0.1:{}", ports[0]))
            .env("HHS_EDGE_PORT", ports[1].to_string())
            .env("HHS_MLLP_PORT", ports[2].to_string())
            .env_remove("DATABASE_URL")
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(log);
        let url = format!("http://127.0.0.1:{}", ports[1]);
        // Made at once, so an early return below stops it.
        let mut dev = Group::spawn(&mut dev).map_err(|e| format!("could not start xtask dev: {e}"))?;
        let started = std::time::Instant::now();
        let agent = ureq::AgentBuilder::new().timeout(std::time::Duration::from_secs(2)).build();
        while !(state.join("dev.env").exists() && agent.get(&format!("{url}/healthz")).call().is_ok()) {
            if let Ok(Some(st)) = dev.0.try_wait() {
                return Err(format!("xtask dev exited with {st} (log: {})", scratch.join("dev.log").display()));
            }
            if started.elapsed() > std::time::Duration::from_secs(300) {
                return Err(format!(
                    "xtask dev did not come up within 300 s (log: {})",
                    scratch.join("dev.log").display()
                ));
            }
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
        Ok(Background { _dev: dev, url })
    }
}
