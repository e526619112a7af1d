//! `cargo xtask test`: every test, with the services they need.

use crate::postgres::Cluster;
use crate::run::{cargo, free_port, status, step, target_dir};
use crate::{edge, wasm};

pub fn run(extra: &[String]) -> Result<(), String> {
    wasm::build_core_no_std()?;
    edge::build(false)?;

    // A given DATABASE_URL is used as is (it must allow CREATE DATABASE: every test makes its own).
    let (cluster, url) = match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => {
            step("using DATABASE_URL for the PostgreSQL tests");
            (None, url)
        }
        _ => {
            let c = Cluster::start()?;
            let url = c.url();
            (Some(c), url)
        }
    };

    // The edge tests start and stop their own origin on `origin_port`; the Worker is told to forward there.
    let origin_port = free_port()?;
    let log = target_dir().join("wrangler-test.log");
    let wrangler = edge::start_wrangler(
        free_port()?,
        Some("test"),
        &[("ORIGIN_URL", format!("http://127.0.0.1:{origin_port}"))],
        &log,
        true,
    )?;

    step("cargo test");
    let result = status(
        cargo()
            .arg("test")
            .arg("--no-fail-fast")
            .args(extra)
            .env("HHS_TEST_PG_URL", url)
            .env("HHS_TEST_EDGE_URL", &wrangler.url)
            .env("HHS_TEST_EDGE_ORIGIN_PORT", origin_port.to_string()),
    );
    drop(wrangler);
    drop(cluster);
    result
}
