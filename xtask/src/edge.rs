//! Building the edge Worker and running `wrangler dev`.
//!
//! worker-build would download wasm-bindgen and esbuild at run time, which fails offline, so its steps are
//! done here: cargo builds the wasm, the wasm-bindgen CLI of exactly Cargo.lock's version post-processes it,
//! `edge/js/entry.js` is the entry module, and wrangler bundles the lot.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::run::{forget_cargo_run_env, root, status, step};
use crate::wasm;

/// `npm ci` in edge/ when wrangler is not installed yet.
pub fn ensure_wrangler() -> Result<PathBuf, String> {
    let bin = root().join("edge/node_modules/.bin/wrangler");
    if !bin.exists() {
        step("npm ci (edge/: wrangler, pinned in package-lock.json)");
        status(Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(root().join("edge")))?;
    }
    Ok(bin)
}

/// Builds edge/build (wasm, JS glue, entry module). `release`: optimised, and shrunk with wasm-opt.
pub fn build(release: bool) -> Result<PathBuf, String> {
    let tc = wasm::toolchain()?;
    step(&format!("building the edge Worker ({})", if release { "release" } else { "debug" }));
    let mut c = wasm::cargo_wasm(&tc, "build");
    c.args(["-p", "hhs-edge"]).env("WASM_BINDGEN_USE_JS_SYS", "1");
    if release {
        c.arg("--release");
    }
    status(&mut c)?;
    let wasm_file = wasm::artifact(&tc, if release { "release" } else { "debug" }, "hhs_edge.wasm");
    let out = root().join("edge/build");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).map_err(|e| format!("create edge/build: {e}"))?;
    status(
        Command::new(wasm::bindgen_cli()?)
            .arg(&wasm_file)
            .arg("--out-dir")
            .arg(&out)
            .args(["--target", "module", "--out-name", "index", "--no-typescript"])
            .args(["--experimental-reset-state-function", "--force-enable-abort-handler"]),
    )?;
    if release {
        wasm::opt(&out.join("index_bg.wasm"))?;
    }
    std::fs::copy(root().join("edge/js/entry.js"), out.join("entry.js")).map_err(|e| format!("copy entry.js: {e}"))?;
    Ok(out)
}

/// `wrangler deploy --dry-run` of the production example (deploy/wrangler.production.toml) on edge/build and
/// ui/dist as they are: wrangler bundles the Worker as a deployment would and writes it to
/// target/wrangler-dry-run, so a broken bundle or configuration fails here, not at deploy time. Nothing is
/// uploaded and no account is needed; with metrics off it runs offline (checked in a network namespace of its own).
pub fn dry_run() -> Result<(), String> {
    let bin = ensure_wrangler()?;
    let out = crate::run::target_dir().join("wrangler-dry-run");
    step("wrangler deploy --dry-run --config deploy/wrangler.production.toml");
    let mut cmd = Command::new(bin);
    cmd.current_dir(root())
        .args(["deploy", "--dry-run", "--config", "deploy/wrangler.production.toml", "--outdir"])
        .arg(&out)
        .envs(offline_env())
        .stdin(Stdio::null());
    forget_cargo_run_env(&mut cmd);
    let out = cmd.output().map_err(|e| format!("could not start wrangler: {e}"))?;
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprint!("{said}");
    if !out.status.success() {
        return Err(format!("wrangler deploy --dry-run failed ({})", out.status));
    }
    // wrangler only warns about a key it does not know (a misspelt setting would be ignored in production).
    if said.contains("WARNING") {
        return Err("wrangler deploy --dry-run warned about deploy/wrangler.production.toml (above)".into());
    }
    Ok(())
}

/// What keeps wrangler off the network when it need not be on it: no metrics, no update check, no fetch of
/// Cloudflare's request metadata.
fn offline_env() -> [(&'static str, &'static str); 4] {
    [
        ("WRANGLER_SEND_METRICS", "false"),
        ("WRANGLER_HIDE_BANNER", "true"),
        ("CLOUDFLARE_CF_FETCH_ENABLED", "false"),
        ("NO_COLOR", "1"),
    ]
}

/// A running `wrangler dev`; stopped (with its workerd children) on drop.
pub struct Wrangler {
    child: Child,
    pub url: String,
    detached: bool,
}

/// Starts `wrangler dev` on 127.0.0.1:`port` and waits until it answers. `env`: a wrangler.toml environment;
/// `vars`: `--var` overrides.
/// `detached`: in its own process group, so drop can stop it and everything it started (tests); otherwise it
/// shares the terminal's group and Ctrl-C reaches it (dev).
pub fn start_wrangler(
    port: u16,
    env: Option<&str>,
    vars: &[(&str, String)],
    log: &Path,
    detached: bool,
) -> Result<Wrangler, String> {
    let env: Vec<&str> = env.map(|e| vec!["--env", e]).unwrap_or_default();
    start_wrangler_with(port, &env, vars, log, detached)
}

/// `wrangler dev` of the bare pass-through Worker (`edge/bench/`), the floor `bench edge` compares with.
pub fn start_passthrough(port: u16, origin_url: String, log: &Path) -> Result<Wrangler, String> {
    let config = root().join("edge/bench/wrangler.toml");
    start_wrangler_with(
        port,
        &["--config", config.to_str().unwrap_or_default()],
        &[("ORIGIN_URL", origin_url)],
        log,
        true,
    )
}

fn start_wrangler_with(
    port: u16,
    extra: &[&str],
    vars: &[(&str, String)],
    log: &Path,
    detached: bool,
) -> Result<Wrangler, String> {
    let bin = ensure_wrangler()?;
    // Fresh local state every time: rate-limit counters and caches from a previous run must not leak in.
    let _ = std::fs::remove_dir_all(root().join(".wrangler/state"));
    let mut cmd = Command::new(bin);
    cmd.current_dir(root())
        .args([
            "dev",
            "--ip",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--show-interactive-dev-session=false",
            "--log-level",
            "warn",
        ])
        .env("WRANGLER_SEND_METRICS", "false")
        .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    forget_cargo_run_env(&mut cmd);
    cmd.args(extra);
    for (k, v) in vars {
        cmd.arg("--var").arg(format!("{k}:{v}"));
    }
    let file = std::fs::File::create(log).map_err(|e| format!("create {}: {e}", log.display()))?;
    let err = file.try_clone().map_err(|e| e.to_string())?;
    cmd.stdout(file).stderr(err);
    #[cfg(unix)]
    if detached {
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    }
    step(&format!("starting wrangler dev on http://127.0.0.1:{port} (log: {})", log.display()));
    let child = cmd.spawn().map_err(|e| format!("could not start wrangler: {e}"))?;
    let w = Wrangler { child, url: format!("http://127.0.0.1:{port}"), detached };
    let mut w = w;
    let start = Instant::now();
    while !answers(port) {
        if let Ok(Some(st)) = w.child.try_wait() {
            let tail = std::fs::read_to_string(log).unwrap_or_default();
            return Err(format!("wrangler dev exited ({st}) before answering:\n{tail}"));
        }
        if start.elapsed() > Duration::from_secs(120) {
            let tail = std::fs::read_to_string(log).unwrap_or_default();
            return Err(format!("wrangler dev did not answer within 120 s:\n{tail}"));
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    Ok(w)
}

/// Whether an HTTP server answers `GET /healthz` on the port (any status).
fn answers(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if s.write_all(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 12];
    matches!(s.read(&mut buf), Ok(n) if n >= 5 && buf.starts_with(b"HTTP/"))
}

impl Drop for Wrangler {
    fn drop(&mut self) {
        // The whole process group: wrangler's node process and the workerd it started.
        let pid = self.child.id();
        if !self.detached {
            let _ = self.child.kill();
            let _ = self.child.wait();
            return;
        }
        let _ = Command::new("kill").args(["-TERM", "--", &format!("-{pid}")]).status();
        std::thread::sleep(Duration::from_millis(500));
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{pid}")]).stderr(Stdio::null()).status();
        // Should the group kill have failed, at least never wait forever on wrangler itself.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
