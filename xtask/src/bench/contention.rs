//! `cargo xtask bench contention [ROUNDS]`: the contention test's burst as a benchmark — 50 clients acquire one
//! resource at the same instant (a barrier), one wins and 49 get `409 lock_held`; the winner releases and the
//! next round starts. A release-build origin on PostgreSQL with its durable defaults; prints p50/p99/max of
//! every acquire's latency at the client, over ROUNDS rounds (default 40) after 5 of warm-up.

use std::process::Command;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::bench::cycle::{origin_bin, start_origin, Started};
use crate::chaos::http::{self, Answer};
use crate::postgres::Cluster;
use crate::run::step;

const CLIENTS: usize = 50;
const WARM_UP: usize = 5;

pub fn run(rounds: usize) -> Result<(), String> {
    let bin = origin_bin()?;
    let cluster = Cluster::start_with(true)?;
    let origin = |args: &[&str]| {
        let mut c = Command::new(&bin);
        c.args(args).env("DATABASE_URL", cluster.url()).env("RUST_LOG", "warn");
        c
    };
    let Started { mut server, base, admin, client } = start_origin(origin)?;
    let agent = http::agent(Duration::from_secs(10));
    let id = match http::call(
        &agent,
        "POST",
        &format!("{base}/api/resources"),
        &admin,
        Some(&json!({"type": "or-room", "identifier": "Contended OR"})),
    ) {
        Answer::Status(201, body) => body["id"].as_str().unwrap_or_default().to_owned(),
        other => return Err(format!("could not create the resource: {other:?}")),
    };
    step(&format!(
        "bench contention: {CLIENTS} clients acquire one resource at once, {rounds} rounds after {WARM_UP} of warm-up"
    ));
    let (start, done) = (Arc::new(Barrier::new(CLIENTS + 1)), Arc::new(Barrier::new(CLIENTS + 1)));
    let total = rounds + WARM_UP;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (start, done, base, key, id) = (start.clone(), done.clone(), base.clone(), client.clone(), id.clone());
            thread::spawn(move || {
                let agent = http::agent(Duration::from_secs(10));
                let mut out = vec![];
                for round in 0..total {
                    start.wait();
                    let body = json!({"resource_id": id, "owner_id": format!("c{c}"), "ttl_seconds": 30});
                    let t = Instant::now();
                    let got = http::call(&agent, "POST", &format!("{base}/api/locks/acquire"), &key, Some(&body));
                    let micros = t.elapsed().as_micros() as u64;
                    let won = matches!(got, Answer::Status(200, _));
                    if round >= WARM_UP {
                        out.push((micros, won, matches!(got, Answer::Status(200 | 409, _))));
                    }
                    done.wait();
                    // The winner lets go once every acquire of the round is answered (before the next burst).
                    if won {
                        let release = json!({"resource_id": id, "owner_id": format!("c{c}")});
                        http::call(&agent, "POST", &format!("{base}/api/locks/release"), &key, Some(&release));
                    }
                }
                out
            })
        })
        .collect();
    for _ in 0..total {
        start.wait();
        done.wait();
    }
    let mut all = vec![];
    for c in clients {
        all.extend(c.join().map_err(|_| "a client panicked")?);
    }
    let _ = server.kill();
    let _ = server.wait();
    drop(cluster);
    let (wins, answered) = (all.iter().filter(|a| a.1).count(), all.iter().filter(|a| a.2).count());
    let mut lat: Vec<u64> = all.iter().map(|a| a.0).collect();
    lat.sort_unstable();
    let pick =
        |p: f64| lat.get(((lat.len().max(1) - 1) as f64 * p).round() as usize).copied().unwrap_or(0) as f64 / 1000.0;
    println!("\n| {CLIENTS}-way contention, {rounds} rounds | acquires | granted | acquire p50 | p99 | max |");
    println!("|---|---:|---:|---:|---:|---:|");
    println!(
        "| origin on durable PostgreSQL | {} | {wins} | {:.1} ms | {:.1} ms | {:.1} ms |",
        lat.len(),
        pick(0.5),
        pick(0.99),
        pick(1.0)
    );
    if answered != all.len() || wins != rounds {
        return Err(format!(
            "{} acquires not answered 200/409, {wins} grants in {rounds} rounds",
            all.len() - answered
        ));
    }
    Ok(())
}
