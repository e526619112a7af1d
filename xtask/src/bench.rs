//! `cargo xtask bench edge [N]`: the edge's cost. Release builds of the origin (embedded SQLite) and the Worker
//! (wasm-opt'd), `wrangler dev --env bench` in front; N acquire+release pairs straight to the origin, N through
//! the edge and N through a bare pass-through Worker on the same wrangler (`edge/bench/`, the floor), one after
//! another on keep-alive connections; p50/p99 of each, the edge's cost against the floor's, and the Worker's size.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::run::{cargo, forget_cargo_run_env, free_port, output, root, status, step, target_dir};
use crate::{edge, ui};

pub fn run(args: &[String]) -> Result<(), String> {
    match args.first().map(String::as_str) {
        Some("edge") => edge_bench(args.get(1).and_then(|n| n.parse().ok()).unwrap_or(300)),
        Some("ui") => ui_bench(args.get(1).and_then(|n| n.parse().ok()).unwrap_or(5)),
        Some("cycle") => {
            let seconds = args.iter().skip(1).find_map(|a| a.parse().ok()).unwrap_or(15);
            crate::bench_cycle::run(seconds, args.iter().any(|a| a == "--sqlite"))
        }
        Some("keys") => crate::bench_keys::run(args.get(1).and_then(|n| n.parse().ok()).unwrap_or(50_000)),
        Some("failover") => crate::bench_failover::run(args.get(1).and_then(|n| n.parse().ok()).unwrap_or(5)),
        Some("contention") => crate::bench_contention::run(args.get(1).and_then(|n| n.parse().ok()).unwrap_or(40)),
        Some("heartbeats") => crate::bench_heartbeats::run(args.get(1).and_then(|n| n.parse().ok()).unwrap_or(10)),
        Some("handover") => crate::bench_handover::run(args.get(1).and_then(|n| n.parse().ok()).unwrap_or(200)),
        _ => Err("usage: cargo xtask bench edge [PAIRS] | ui [LOADS] | cycle [SECONDS] [--sqlite] | keys [UNKNOWN] | failover [KILLS] | contention [ROUNDS] | heartbeats [SECONDS] | handover [ROUNDS]".into()),
    }
}

/// A minimal HTTP/1.1 client on one keep-alive connection: enough to time requests without a dependency.
struct Conn {
    reader: BufReader<TcpStream>,
    host: String,
}

impl Conn {
    fn open(port: u16) -> Result<Conn, String> {
        let s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect {port}: {e}"))?;
        s.set_nodelay(true).ok();
        s.set_read_timeout(Some(Duration::from_secs(30))).ok();
        Ok(Conn { reader: BufReader::new(s), host: format!("127.0.0.1:{port}") })
    }

    /// Sends a request, returns (status, body).
    fn call(&mut self, method: &str, path: &str, key: &str, body: &str) -> Result<(u16, String), String> {
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.host,
            body.len()
        );
        self.reader.get_mut().write_all(req.as_bytes()).map_err(|e| e.to_string())?;
        let mut line = String::new();
        self.reader.read_line(&mut line).map_err(|e| e.to_string())?;
        let status =
            line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or(format!("bad status line {line:?}"))?;
        let (mut len, mut chunked) = (0usize, false);
        loop {
            line.clear();
            self.reader.read_line(&mut line).map_err(|e| e.to_string())?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let lower = l.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
            chunked |= lower.starts_with("transfer-encoding:") && lower.contains("chunked");
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                self.reader.read_line(&mut line).map_err(|e| e.to_string())?;
                let n = usize::from_str_radix(line.trim(), 16).map_err(|e| e.to_string())?;
                let mut chunk = vec![0; n + 2];
                self.reader.read_exact(&mut chunk).map_err(|e| e.to_string())?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        } else {
            body.resize(len, 0);
            self.reader.read_exact(&mut body).map_err(|e| e.to_string())?;
        }
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted.get(((sorted.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0.0)
}

fn time_pairs(port: u16, key: &str, resource: &str, pairs: usize) -> Result<Vec<f64>, String> {
    let mut conn = Conn::open(port)?;
    let acquire = format!(r#"{{"resource_id":"{resource}","owner_id":"bench","ttl_seconds":30}}"#);
    let release = format!(r#"{{"resource_id":"{resource}","owner_id":"bench"}}"#);
    let mut times = Vec::with_capacity(pairs);
    for i in 0..pairs + 20 {
        let t = Instant::now();
        let (a, body) = conn.call("POST", "/api/locks/acquire", key, &acquire)?;
        let (r, _) = conn.call("POST", "/api/locks/release", key, &release)?;
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

fn edge_bench(pairs: usize) -> Result<(), String> {
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
        let (st, body) =
            Conn::open(origin_port)?.call("POST", "/api/resources", &key, r#"{"type":"bed","identifier":"bench"}"#)?;
        if st != 201 {
            return Err(format!("create resource: {st} {body}"));
        }
        let resource =
            body.split("\"id\":\"").nth(1).and_then(|r| r.split('"').next()).ok_or("resource id")?.to_owned();
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

/// A file's size after `gzip -9` (what a browser or Worker download costs).
fn gzipped(file: &std::path::Path) -> Result<u64, String> {
    Ok(output(Command::new("sh").arg("-c").arg(format!("gzip -9 -c '{}' | wc -c", file.display())))?
        .trim()
        .parse::<u64>()
        .unwrap_or(0))
}

/// The dashboard: its release wasm's size, and (origin/benches/dashboard_render.rs) the first full render of
/// 1,000 resources in headless Chromium, median of `loads` page loads.
fn ui_bench(loads: usize) -> Result<(), String> {
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
