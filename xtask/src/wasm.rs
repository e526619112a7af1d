//! Getting a wasm32-unknown-unknown toolchain, offline if need be.
//!
//! 1. rustup's target, if installed — or if `rustup target add` can fetch it within two minutes;
//! 2. otherwise Debian's toolchain (`rustc-web cargo-web rust-web-src lld-19`), building std from source with
//!    `-Zbuild-std` into its own target directory.

use std::path::Path;
use std::process::Command;

use crate::run::{cargo, output, root, status, step, target_dir};

const TARGET: &str = "wasm32-unknown-unknown";

pub enum Toolchain {
    Rustup,
    Debian,
}

fn rustup_has_target() -> bool {
    output(Command::new("rustup").args(["target", "list", "--installed"]))
        .is_ok_and(|s| s.lines().any(|l| l.trim() == TARGET))
}

fn debian_ready() -> bool {
    Path::new("/usr/bin/rustc").exists() && Path::new("/usr/lib/rustlib/src/rust").exists() && which("wasm-ld-19")
}

fn which(tool: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {tool} >/dev/null")]).status().is_ok_and(|s| s.success())
}

pub fn toolchain() -> Result<Toolchain, String> {
    // HHS_WASM_TOOLCHAIN=debian: use the fallback even where rustup has the target (to check that it still works).
    if std::env::var("HHS_WASM_TOOLCHAIN").is_ok_and(|v| v == "debian") {
        return if debian_ready() {
            eprintln!("using Debian's wasm32 toolchain (-Zbuild-std), as HHS_WASM_TOOLCHAIN asks");
            Ok(Toolchain::Debian)
        } else {
            Err("HHS_WASM_TOOLCHAIN=debian but Debian's toolchain is not installed (apt-get install -y rustc-web cargo-web rust-web-src lld-19)".into())
        };
    }
    if rustup_has_target() {
        return Ok(Toolchain::Rustup);
    }
    if which("rustup") {
        step("rustup target add wasm32-unknown-unknown (up to 120 s; it may not reach its server offline)");
        let _ = Command::new("timeout").args(["120", "rustup", "target", "add", TARGET]).status();
        if rustup_has_target() {
            return Ok(Toolchain::Rustup);
        }
    }
    if debian_ready() {
        eprintln!("using Debian's wasm32 toolchain (-Zbuild-std)");
        return Ok(Toolchain::Debian);
    }
    Err("no wasm32 toolchain: rustup could not add the target and Debian's is not installed \
         (apt-get install -y rustc-web cargo-web rust-web-src lld-19)"
        .into())
}

/// A `cargo` command that builds for wasm32 with the chosen toolchain; add the subcommand's arguments after.
pub fn cargo_wasm(tc: &Toolchain, subcommand: &str) -> Command {
    match tc {
        Toolchain::Rustup => {
            let mut c = cargo();
            c.args([subcommand, "--target", TARGET]);
            c
        }
        Toolchain::Debian => {
            let mut c = Command::new("/usr/bin/cargo");
            c.current_dir(root())
                .env("RUSTC", "/usr/bin/rustc")
                .env("RUSTDOC", "/usr/bin/rustdoc")
                .env("RUSTC_BOOTSTRAP", "1")
                .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER", "wasm-ld-19")
                .env("CARGO_TARGET_DIR", target_dir().join("wasm-debian"))
                .args([subcommand, "-Zbuild-std=std,panic_abort", "--target", TARGET]);
            c
        }
    }
}

/// Proves hhs-core stays `no_std`: builds it for wasm32 with its default (`std`) feature off.
pub fn build_core_no_std() -> Result<(), String> {
    let tc = toolchain()?;
    step("building hhs-core for wasm32-unknown-unknown without std");
    status(cargo_wasm(&tc, "build").args(["-p", "hhs-core", "--no-default-features"]))
}

/// hhs-client's library for wasm32: typed calls and retries over fetch (the lease guard and the CLI are
/// native only), so a browser or a Worker can use it.
pub fn build_client() -> Result<(), String> {
    let tc = toolchain()?;
    step("building hhs-client (the library) for wasm32-unknown-unknown");
    status(cargo_wasm(&tc, "build").args(["-p", "hhs-client", "--lib"]))
}

/// Where cargo put a wasm artifact (`file`, e.g. `hhs_edge.wasm`) for `profile`.
pub fn artifact(tc: &Toolchain, profile: &str, file: &str) -> std::path::PathBuf {
    let dir = match tc {
        Toolchain::Rustup => target_dir(),
        Toolchain::Debian => target_dir().join("wasm-debian"),
    };
    // Cargo names the `dev` profile's directory `debug`.
    let profile = if profile == "dev" { "debug" } else { profile };
    dir.join(format!("{TARGET}/{profile}/{file}"))
}

/// The wasm-bindgen version in Cargo.lock (the CLI must match it exactly).
fn locked_wasm_bindgen() -> Result<String, String> {
    let lock = std::fs::read_to_string(root().join("Cargo.lock")).map_err(|e| format!("read Cargo.lock: {e}"))?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == "name = \"wasm-bindgen\"" {
            if let Some(v) = lines.next().and_then(|l| l.strip_prefix("version = \"")) {
                return Ok(v.trim_end_matches('"').to_owned());
            }
        }
    }
    Err("wasm-bindgen is not in Cargo.lock".into())
}

/// `wasm-bindgen` CLI of the locked version, installed with cargo if missing or different.
pub fn bindgen_cli() -> Result<String, String> {
    let want = locked_wasm_bindgen()?;
    let have = output(Command::new("wasm-bindgen").arg("--version")).unwrap_or_default();
    if have.split_whitespace().nth(1) != Some(want.as_str()) {
        step(&format!("installing wasm-bindgen-cli {want} (once; a few minutes)"));
        let mut c = cargo();
        // --force: cargo's own record may claim it is installed when the binary is gone or another version.
        c.args(["install", "--force", "wasm-bindgen-cli", "--version", &format!("={want}")]);
        status(&mut c)?;
    }
    Ok("wasm-bindgen".into())
}

/// wasm-opt from npm's binaryen (Debian's is too old for this wasm), installed into edge/node_modules on demand.
pub fn opt(file: &Path) -> Result<(), String> {
    let bin = root().join("edge/node_modules/.bin/wasm-opt");
    if !bin.exists() {
        step("npm install binaryen (wasm-opt)");
        status(
            Command::new("npm")
                .args(["install", "--no-save", "--no-audit", "--no-fund", "binaryen@132"])
                .current_dir(root().join("edge")),
        )?;
    }
    step("wasm-opt -Oz");
    // The features the input already uses (wasm-bindgen's abort handler needs exception handling and reference
    // types); not --all-features, whose newer encodings workerd's V8 rejects.
    status(
        Command::new(bin)
            .arg("-Oz")
            .args(["--enable-exception-handling", "--enable-reference-types", "--enable-bulk-memory"])
            .args([
                "--enable-nontrapping-float-to-int",
                "--enable-sign-ext",
                "--enable-mutable-globals",
                "--enable-multivalue",
            ])
            .arg(file)
            .arg("-o")
            .arg(file),
    )
}
