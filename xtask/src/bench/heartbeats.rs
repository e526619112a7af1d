//! `cargo xtask bench heartbeats [SECONDS]`: what keeping 1,000 holds alive costs, two ways, on PostgreSQL (its
//! durable defaults, a throwaway cluster) and on the embedded SQLite store, side by side: one session renewing
//! all 1,000 with each keepalive (one statement per keepalive), against a heartbeat per hold (8 workers over the
//! 1,000 holds). Prints keepalives/s and holds renewed/s for each.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::bench::cycle::{on_each_store, Started};
use crate::run::step;

const HOLDS: usize = 1_000;
const WORKERS: usize = 8;

pub fn run(seconds: u64) -> Result<(), String> {
    let rows = on_each_store("heartbeats", |o: &Started, store| measure(&o.base, &o.admin, &o.client, seconds, store))?;
    println!("\n| store | keepalives/s (one session, {HOLDS} holds) | holds renewed/s by keepalives | heartbeats/s ({WORKERS} workers) = holds renewed/s by heartbeats |");
    println!("|---|---|---|---|");
    for (store, (keepalives, heartbeats)) in rows {
        println!("| {store} | {keepalives:.1} | {:.0} | {heartbeats:.0} |", keepalives * HOLDS as f64);
    }
    Ok(())
}

fn call(agent: &ureq::Agent, method: &str, url: &str, key: &str, body: Option<Value>) -> Result<Value, String> {
    let req = agent.request(method, url).set("Authorization", &format!("Bearer {key}"));
    let resp = match body {
        Some(b) => req.send_json(b),
        None => req.call(),
    };
    match resp {
        Ok(r) => r.into_json().map_err(|e| e.to_string()),
        Err(ureq::Error::Status(code, r)) => {
            Err(format!("{method} {url}: {code} {}", r.into_string().unwrap_or_default()))
        }
        Err(e) => Err(format!("{method} {url}: {e}")),
    }
}

/// (keepalives/s, heartbeats/s).
fn measure(base: &str, admin: &str, client: &str, seconds: u64, store: &str) -> Result<(f64, f64), String> {
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build();
    step(&format!("{store}: {HOLDS} resources, a session holding all of them, and {HOLDS} holds of their own"));
    let mut ids = vec![];
    for i in 0..2 * HOLDS {
        let r = call(
            &agent,
            "POST",
            &format!("{base}/api/resources"),
            admin,
            Some(json!({"type": "bed", "identifier": format!("Bench {i}")})),
        )?;
        ids.push(r["id"].as_str().unwrap_or_default().to_owned());
    }
    let (in_session, alone) = ids.split_at(HOLDS);
    let session = call(
        &agent,
        "POST",
        &format!("{base}/api/sessions"),
        client,
        Some(json!({"owner_id": "ward", "ttl_seconds": 300})),
    )?;
    let sid = session["id"].as_str().unwrap_or_default().to_owned();
    for id in in_session {
        call(
            &agent,
            "POST",
            &format!("{base}/api/locks/acquire"),
            client,
            Some(json!({"resource_id": id, "owner_id": "ward", "session_id": sid})),
        )?;
    }
    for (i, id) in alone.iter().enumerate() {
        call(
            &agent,
            "POST",
            &format!("{base}/api/locks/acquire"),
            client,
            Some(json!({"resource_id": id, "owner_id": format!("w{}", i % WORKERS), "ttl_seconds": 300})),
        )?;
    }

    step(&format!("{store}: keepalives for {seconds} s, one after another"));
    let started = Instant::now();
    let mut keepalives = 0u64;
    while started.elapsed() < Duration::from_secs(seconds) {
        let kept = call(&agent, "POST", &format!("{base}/api/sessions/{sid}/keepalive"), client, None)?;
        if kept["holds"].as_u64() != Some(HOLDS as u64) {
            return Err(format!("a keepalive renewed {} holds, not {HOLDS}", kept["holds"]));
        }
        keepalives += 1;
    }
    let keepalive_rate = keepalives as f64 / started.elapsed().as_secs_f64();

    step(&format!("{store}: heartbeats for {seconds} s, {WORKERS} workers over {HOLDS} holds"));
    let (stop, count) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    let alone = Arc::new(alone.to_vec());
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (stop, count, alone, base, client) =
                (stop.clone(), count.clone(), alone.clone(), base.to_owned(), client.to_owned());
            thread::spawn(move || -> Result<(), String> {
                let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build();
                let mut i = w;
                while !stop.load(Ordering::Relaxed) {
                    let body = json!({"resource_id": alone[i % HOLDS], "owner_id": format!("w{}", i % WORKERS)});
                    call(&agent, "POST", &format!("{base}/api/locks/heartbeat"), &client, Some(body))?;
                    count.fetch_add(1, Ordering::Relaxed);
                    i += WORKERS;
                }
                Ok(())
            })
        })
        .collect();
    let started = Instant::now();
    thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().map_err(|_| "a heartbeat worker panicked".to_owned())??;
    }
    let heartbeat_rate = count.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    Ok((keepalive_rate, heartbeat_rate))
}
