//! `cargo xtask test`: every test, with the services they need.

use crate::postgres::Cluster;
use crate::run::{cargo, status, step};
use crate::wasm;

pub fn run(extra: &[String]) -> Result<(), String> {
    wasm::build_core_no_std()?;

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

    step("cargo test --workspace");
    let result = status(cargo().args(["test", "--workspace", "--no-fail-fast"]).args(extra).env("HHS_TEST_PG_URL", url));
    drop(cluster);
    result
}
