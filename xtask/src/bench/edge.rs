//! `cargo xtask bench edge [N]`: the edge's cost. Release builds of the origin (embedded SQLite) and the Worker
//! (wasm-opt'd), `wrangler dev --env bench` in front; N acquire+release pairs straight to the origin, N through
//! the edge and N through a bare pass-through Worker on the same wrangler (`edge/bench/`, the floor), one after
//! another on keep-alive connections; p50/p99 of each, the edge's cost against the floor's, and the Worker's size.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{gzipped, percentile_ms as percentile};
use crate::edge;
use crate::run::{cargo, forget_cargo_run_env, free_port, output, root, status, step, target_dir};

/// A POST of the JSON text `body` with `key` on `agent` (its one keep-alive connection, reused call after call),
/// as (status, body). The body is text made once, so a pair's time is the round trips', not serialisation's.
fn post(agent: &ureq::Agent, port: u16, path: &str, key: &str, body: &str) -> Result<(u16, String), String> {
    let req = agent
        .post(&format!("http://127.0.0.1:{port}{path}"))
        .set("Authorization", &format!("Bearer {key}"))
        .set("Content-Type", "application/json");
    let resp = match req.send_string(body) {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(format!("POST {path} on {port}: {e}")),
    };
    let status = resp.status();
    Ok((status, resp.into_string().map_err(|e| e.to_string())?))
}

fn time_pairs(port: u16, key: &str, resource: &str, pairs: usize) -> Result<Vec<f64>, String> {
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build();
    let acquire = format!(r#"{{"resource_id":"{resource}","owner_id":"bench","ttl_seconds":30}}"#);
    let release = format!(r#"{{"resource_id":"{resource}","owner_id":"bench"}}"#);
    let mut times = Vec::with_capacity(pairs);
    for i in 0..pairs + 20 {
        let t = Instant::now();
        let (a, body) = post(&agent, port, "/api/locks/acquire", key, &acquire)?;
        let (r, _) = post(&agent, port, "/api/locks/release", key, &release)?;
        if (a, r) != (200, 200) {
            return Err(format!("acquire/release answered {a}/{r}: {body}"));
        }
        // The first 20 warm up connections, caches and JITs.
        if i >= 20 {
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    times.sort_by(f64::total_cmp);
    Ok(times)
}

pub fn run(pairs: usize) -> Result<(), String> {
    step("release builds: hhs-origin and the Worker");
    status(cargo().args(["build", "--release", "-p", "hhs-origin"]))?;
    let build = edge::build(true)?;

    let dir = std::env::temp_dir().join(format!("hhs-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let bin = target_dir().join("release/hhs-origin");
    let db = dir.join("hhs.db");
    let origin_cmd = || {
        let mut c = Command::new(&bin);
        forget_cargo_run_env(&mut c);
        c.env_remove("DATABASE_URL").env("HHS_SQLITE_PATH", &db).env("RUST_LOG", "warn");
        c
    };
    status(origin_cmd().arg("migrate"))?;
    let key =
        output(origin_cmd().args(["keys", "create", "--principal", "bench", "--role", "admin"]))?.trim().to_owned();
    let origin_port = free_port()?;
    let mut origin = origin_cmd()
        .args(["serve", "--bind", &format!("127.0.0.1:{origin_port}"), "--min-ttl", "1"])
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_millis(800));
    let wrangler = edge::start_wrangler(
        free_port()?,
        Some("bench"),
        &[("ORIGIN_URL", format!("http://127.0.0.1:{origin_port}"))],
        &dir.join("wrangler.log"),
        true,
    )?;
    let edge_port: u16 = wrangler.url.rsplit(':').next().and_then(|p| p.parse().ok()).ok_or("edge port")?;

    let result = (|| {
        let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build();
        let (st, body) = post(
            &agent,
            origin_port,
            "/api/resources",
            &key,
            &json!({"type": "bed", "identifier": "bench"}).to_string(),
        )?;
        if st != 201 {
            return Err(format!("create resource: {st} {body}"));
        }
        let created: Value = serde_json::from_str(&body).map_err(|e| format!("create resource: {e}: {body}"))?;
        let resource = created["id"].as_str().ok_or("resource id")?.to_owned();
        step(&format!("{pairs} acquire+release pairs straight to the origin"));
        let direct = time_pairs(origin_port, &key, &resource, pairs)?;
        step(&format!("{pairs} acquire+release pairs through wrangler dev"));
        let through = time_pairs(edge_port, &key, &resource, pairs)?;
        // The floor, on the same wrangler: a Worker that only forwards.
        let floor_port = free_port()?;
        let bare = edge::start_passthrough(
            floor_port,
            format!("http://127.0.0.1:{origin_port}"),
            &dir.join("passthrough.log"),
        )?;
        step(&format!("{pairs} acquire+release pairs through a bare pass-through Worker"));
        let floor = time_pairs(floor_port, &key, &resource, pairs);
        drop(bare);
        Ok((direct, through, floor?))
    })();
    drop(wrangler);
    let _ = origin.kill();
    let _ = origin.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let (direct, through, floor) = result?;

    let wasm = build.join("index_bg.wasm");
    let raw = std::fs::metadata(&wasm).map(|m| m.len()).unwrap_or(0);
    let gz = gzipped(&wasm)?;
    let js = std::fs::metadata(build.join("index.js")).map(|m| m.len()).unwrap_or(0);
    println!("\n| acquire + release (ms) | p50 | p99 |\n|---|---|---|");
    println!("| origin direct | {:.2} | {:.2} |", percentile(&direct, 0.5), percentile(&direct, 0.99));
    println!("| through wrangler dev | {:.2} | {:.2} |", percentile(&through, 0.5), percentile(&through, 0.99));
    println!(
        "| through a bare pass-through Worker (the floor) | {:.2} | {:.2} |",
        percentile(&floor, 0.5),
        percentile(&floor, 0.99)
    );
    let (ours, bare) =
        (percentile(&through, 0.5) - percentile(&direct, 0.5), percentile(&floor, 0.5) - percentile(&direct, 0.5));
    println!(
        "\nthe edge adds {ours:.2} ms p50 to a pair, a bare pass-through {bare:.2} ms: {:.2}x the floor",
        ours / bare
    );
    println!(
        "\nWorker bundle: wasm {:.0} KiB raw, {:.0} KiB gzipped; JS glue {:.0} KiB ({})",
        raw as f64 / 1024.0,
        gz as f64 / 1024.0,
        js as f64 / 1024.0,
        root().join("edge/build").display()
    );
    Ok(())
}
