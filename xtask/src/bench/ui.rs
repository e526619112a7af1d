//! `cargo xtask bench ui [LOADS]`: the dashboard's cost to a browser.

use super::gzipped;
use crate::run::{cargo, status, step};
use crate::ui;

/// The dashboard: its release wasm's size, and (origin/benches/dashboard_render.rs) the first full render of
/// 1,000 resources in headless Chromium, median of `loads` page loads.
pub fn run(loads: usize) -> Result<(), String> {
    let dist = ui::build(true)?;
    let wasm = dist.join("hhs_ui_bg.wasm");
    let raw = std::fs::metadata(&wasm).map(|m| m.len()).map_err(|e| format!("{}: {e}", wasm.display()))?;
    let gz = gzipped(&wasm)?;
    let js = std::fs::metadata(dist.join("hhs_ui.js")).map(|m| m.len()).unwrap_or(0);
    step("first render of 1,000 resources in headless Chromium (origin/benches/dashboard_render.rs)");
    // The dev profile: the origin's speed is not what is measured, and it is already built for the tests.
    status(
        cargo()
            .args(["bench", "-p", "hhs-origin", "--bench", "dashboard_render", "--profile", "dev"])
            .env("HHS_BENCH_UI_DIST", &dist)
            .env("HHS_BENCH_RUNS", loads.to_string()),
    )?;
    println!(
        "\ndashboard wasm: {:.0} KiB raw, {:.0} KiB gzipped (budget 250 KB gzipped); JS glue {:.0} KiB ({})",
        raw as f64 / 1024.0,
        gz as f64 / 1024.0,
        js as f64 / 1024.0,
        dist.display()
    );
    Ok(())
}
