//! `cargo xtask test`: every test, with the services they need.

use crate::postgres::Cluster;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::run::{cargo, free_port, reserved_port, step, target_dir};
use crate::{chaos, cli_e2e, edge, fuzz_api, image, quickstart, tidy, ui, wasm};

/// How long each fault-harness run of `cargo xtask test` lasts (docs/performance.md has a ten-minute run's figures).
const CHAOS_SECONDS: u64 = 60;

pub fn run(extra: &[String]) -> Result<(), String> {
    tidy::run()?;
    // The benchmarks are not built by `cargo test`; checking them here keeps them from rotting unseen.
    step("cargo check --benches");
    crate::run::status(cargo().args(["check", "-p", "hhs-origin", "--benches"]))?;
    wasm::build_core_no_std()?;
    wasm::build_client()?;
    edge::build(false)?;
    // The Worker serves ui/dist as its static assets; the browser tests load it from there.
    ui::build(false)?;

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

    // The edge tests start and stop their own origin on `origin_port`; the Worker is told to forward there. Below
    // the ephemeral range, so no other test's listener or connection takes it between two edge tests.
    let origin_port = reserved_port()?;
    let log = target_dir().join("wrangler-test.log");
    let wrangler = edge::start_wrangler(
        free_port()?,
        Some("test"),
        &[("ORIGIN_URL", format!("http://127.0.0.1:{origin_port}"))],
        &log,
        true,
    )?;

    step("cargo test");
    let mut cmd = cargo();
    cmd.arg("test")
        .arg("--no-fail-fast")
        .args(extra)
        .env("HHS_TEST_PG_URL", url)
        .env("HHS_TEST_EDGE_URL", &wrangler.url)
        .env("HHS_TEST_EDGE_ORIGIN_PORT", origin_port.to_string());
    let result = run_counting(&mut cmd);
    drop(wrangler);
    drop(cluster);
    let (mut passed, mut failed, mut ignored) = result?;
    // The fault harness, short: on PostgreSQL (three replicas, crashes), on SQLite (one origin) and on the formation
    // (primary killed, switchover, standby killed); then `fuzz-api`'s short run. Only in a full run (arguments
    // narrow `cargo test` to a part). Each of the harness's checks counts as a test.
    if extra.is_empty() {
        // The formation (pg_auto_failover: a primary and two synchronous standbys): the conformance suite through
        // its multi-host URL, whose first host need not be the primary.
        let dir = std::env::temp_dir().join(format!("hhs-test-ha-{}", std::process::id()));
        let formation = crate::ha::Owned(crate::ha::Formation::up(&dir)?);
        step("cargo test: the conformance suite against the formation's multi-host URL");
        let mut cmd = cargo();
        cmd.args([
            "test",
            "--no-fail-fast",
            "-p",
            "hhs-origin",
            "--test",
            "it",
            "--",
            "conformance::postgres",
            "failover::",
        ])
        .env("HHS_TEST_PG_URL", formation.0.url());
        let (p, f, i) = run_counting(&mut cmd)?;
        drop(formation);
        (passed, failed, ignored) = (passed + p, failed + f, ignored + i);
        for store in [&[][..], &["--sqlite".to_owned()][..], &["--ha".to_owned()][..]] {
            let mut args = vec!["--duration".to_owned(), CHAOS_SECONDS.to_string()];
            args.extend_from_slice(store);
            let checks = chaos::run_checks(&chaos::Options::parse(&args)?)?;
            passed += checks.iter().filter(|c| c.ok).count() as u64;
            failed += checks.iter().filter(|c| !c.ok).count() as u64;
        }
        // schemathesis from the OpenAPI description, through the origin and the edge, each role; the `hhs` CLI
        // against `cargo xtask dev`; the pages' walkthrough against another; the Worker bundled as `wrangler deploy`
        // would (edge/build and ui/dist are built above); the origin's image, from the debug binary `cargo test`
        // built: one test each.
        let image = match image::test() {
            Ok(false) => {
                ignored += 1;
                Ok(())
            }
            outcome => outcome.map(drop),
        };
        for (name, outcome) in [
            ("fuzz-api", fuzz_api::run(&[])),
            ("cli e2e", cli_e2e::run()),
            ("quickstart", quickstart::run()),
            ("wrangler deploy --dry-run", edge::dry_run()),
            ("image", image),
        ] {
            match outcome {
                Ok(()) => passed += 1,
                Err(e) => {
                    eprintln!("{name}: {e}");
                    failed += 1;
                }
            }
        }
    }
    // One closing line for the whole run (cargo's own last line is a doc-test binary's, often "0 passed").
    println!("\nsummary: {passed} passed, {failed} failed, {ignored} skipped");
    if failed > 0 {
        return Err(format!("{failed} tests failed"));
    }
    Ok(())
}

/// Runs `cargo test`, passing its output through, and adds up its `test result:` lines.
fn run_counting(cmd: &mut Command) -> Result<(u64, u64, u64), String> {
    let mut child = cmd.stdout(Stdio::piped()).spawn().map_err(|e| format!("could not start cargo test: {e}"))?;
    let (mut passed, mut failed, mut ignored) = (0, 0, 0);
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            println!("{line}");
            if let Some(rest) = line.strip_prefix("test result: ") {
                let count = |word: &str| {
                    rest.split(';')
                        .find_map(|part| part.trim().strip_suffix(word))
                        .and_then(|n| n.trim().rsplit(' ').next()?.parse::<u64>().ok())
                        .unwrap_or(0)
                };
                passed += count(" passed");
                failed += count(" failed");
                ignored += count(" ignored");
            }
        }
    }
    let st = child.wait().map_err(|e| e.to_string())?;
    if !st.success() && failed == 0 {
        return Err(format!("cargo test failed ({st})"));
    }
    Ok((passed, failed, ignored))
}
