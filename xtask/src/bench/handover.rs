//! `cargo xtask bench handover [ROUNDS]`: how long the wait queue takes to hand a resource over — from the
//! holder's release call to the first waiter's 200 — on PostgreSQL (durable defaults, a throwaway cluster) and
//! on the embedded SQLite store, through a release origin. Each round: a holder acquires, a waiter joins the
//! queue (`wait_seconds`), the holder releases; the time from just before the release is sent to the waiter's
//! answer is the hand-over (it includes the release's own round trip). Prints p50 and p99.

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::bench::cycle::{on_each_store, percentile, Started};
use crate::run::step;

pub fn run(rounds: usize) -> Result<(), String> {
    let rows = on_each_store("handover", |o: &Started, store| measure(&o.base, &o.admin, &o.client, rounds, store))?;
    println!("\n| store | hand-over p50 (ms) | p99 (ms) | rounds |");
    println!("|---|---|---|---|");
    for (store, mut micros) in rows {
        micros.sort_unstable();
        println!(
            "| {store} | {:.2} | {:.2} | {} |",
            percentile(&micros, 0.50),
            percentile(&micros, 0.99),
            micros.len()
        );
    }
    Ok(())
}

fn call(agent: &ureq::Agent, url: &str, key: &str, body: Value) -> Result<Value, String> {
    match agent.post(url).set("Authorization", &format!("Bearer {key}")).send_json(body) {
        Ok(r) => r.into_json().map_err(|e| e.to_string()),
        Err(ureq::Error::Status(code, r)) => Err(format!("POST {url}: {code} {}", r.into_string().unwrap_or_default())),
        Err(e) => Err(format!("POST {url}: {e}")),
    }
}

/// Each round's hand-over, in microseconds.
fn measure(base: &str, admin: &str, client: &str, rounds: usize, store: &str) -> Result<Vec<u64>, String> {
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build();
    let made =
        call(&agent, &format!("{base}/api/resources"), admin, json!({"type": "bed", "identifier": "Hand-over bed"}))?;
    let bed = made["id"].as_str().unwrap_or_default().to_owned();
    let acquire = format!("{base}/api/locks/acquire");
    let lock = format!("{base}/api/locks/{bed}");
    step(&format!("{store}: {rounds} hand-overs, one at a time"));
    let mut micros = Vec::with_capacity(rounds);
    for round in 0..rounds {
        call(&agent, &acquire, client, json!({"resource_id": bed, "owner_id": "holder", "ttl_seconds": 60}))?;
        let (tx, rx) = mpsc::channel();
        let (url, key, bed2) = (acquire.clone(), client.to_owned(), bed.clone());
        let waiter = thread::spawn(move || {
            let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build();
            let answer = call(
                &agent,
                &url,
                &key,
                json!({"resource_id": bed2, "owner_id": "waiter", "ttl_seconds": 60, "wait_seconds": 20}),
            );
            let _ = tx.send((Instant::now(), answer));
        });
        // Release only once the waiter is in the queue.
        let queued = Instant::now();
        loop {
            let seen =
                agent.get(&lock).set("Authorization", &format!("Bearer {admin}")).call().map_err(|e| e.to_string())?;
            let view: Value = seen.into_json().map_err(|e| e.to_string())?;
            if view["queue_length"].as_u64() == Some(1) {
                break;
            }
            if queued.elapsed() > Duration::from_secs(10) {
                return Err(format!("round {round}: the waiter never joined the queue"));
            }
            thread::sleep(Duration::from_millis(2));
        }
        let released = Instant::now();
        call(&agent, &format!("{base}/api/locks/release"), client, json!({"resource_id": bed, "owner_id": "holder"}))?;
        let (answered, granted) =
            rx.recv_timeout(Duration::from_secs(30)).map_err(|_| format!("round {round}: no answer"))?;
        let granted = granted?;
        if granted["owner_id"] != "waiter" {
            return Err(format!("round {round}: the queue granted {granted}"));
        }
        micros.push(answered.duration_since(released).as_micros() as u64);
        let _ = waiter.join();
        call(&agent, &format!("{base}/api/locks/release"), client, json!({"resource_id": bed, "owner_id": "waiter"}))?;
    }
    Ok(micros)
}
