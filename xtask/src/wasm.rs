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
    output(Command::new("rustup").args(["target", "list", "--installed"])).is_ok_and(|s| s.lines().any(|l| l.trim() == TARGET))
}

fn debian_ready() -> bool {
    Path::new("/usr/bin/rustc").exists() && Path::new("/usr/lib/rustlib/src/rust").exists() && which("wasm-ld-19")
}

fn which(tool: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {tool} >/dev/null")]).status().is_ok_and(|s| s.success())
}

pub fn toolchain() -> Result<Toolchain, String> {
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
