//! Building the dashboard (`ui/`, hhs-ui) into `ui/dist`: cargo for wasm32, the wasm-bindgen CLI with
//! `--target web`, the static files (index.html, style.css), and in release wasm-opt. No trunk: building it from
//! source takes far too long here, and these three steps are all it would do.

use std::path::PathBuf;
use std::process::Command;

use crate::run::{root, status, step};
use crate::wasm;

/// Builds ui/dist. `release`: the size-optimised `wasm-release` profile and wasm-opt (what production and
/// `cargo xtask bench ui` use); otherwise a quick debug build (tests, dev).
pub fn build(release: bool) -> Result<PathBuf, String> {
    let tc = wasm::toolchain()?;
    let profile = if release { "wasm-release" } else { "dev" };
    step(&format!("building the dashboard ({})", if release { "release" } else { "debug" }));
    let mut c = wasm::cargo_wasm(&tc, "build");
    c.args(["-p", "hhs-ui", "--lib", "--profile", profile]);
    status(&mut c)?;
    let wasm_file = wasm::artifact(&tc, profile, "hhs_ui.wasm");

    let dist = root().join("ui/dist");
    let _ = std::fs::remove_dir_all(&dist);
    std::fs::create_dir_all(&dist).map_err(|e| format!("create ui/dist: {e}"))?;
    status(Command::new(wasm::bindgen_cli()?).arg(&wasm_file).arg("--out-dir").arg(&dist).args([
        "--target",
        "web",
        "--out-name",
        "hhs_ui",
        "--no-typescript",
    ]))?;
    if release {
        wasm::opt(&dist.join("hhs_ui_bg.wasm"))?;
    }
    for file in ["index.html", "style.css"] {
        std::fs::copy(root().join("ui/static").join(file), dist.join(file)).map_err(|e| format!("copy {file}: {e}"))?;
    }
    Ok(dist)
}
