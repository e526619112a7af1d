//! `cargo xtask pgbench`: measures the two ways to make an acquire transactional on PostgreSQL, on a throwaway
//! cluster, with the same mix of contended resources:
//!
//! * `for_update` — `SELECT … FOR UPDATE` on the lease row, read the clock, decide (hhs-core), `UPDATE`, event;
//!   what HHS ships;
//! * `upsert` — one `INSERT … ON CONFLICT DO UPDATE … WHERE <free or expired> RETURNING` plus the event, which
//!   restates the rule in SQL.

use std::process::Command;

use crate::postgres::Cluster;
use crate::run::{output, root, status, step};

pub fn run(args: &[String]) -> Result<(), String> {
    let seconds: u32 = args.first().and_then(|s| s.parse().ok()).unwrap_or(10);
    let cluster = Cluster::start()?;
    let dir = root().join("xtask/pgbench");
    let psql = cluster.bin().join("psql");
    let url = cluster.url();
    step("creating the benchmark schema");
    status(Command::new(&psql).args(["-q", "-v", "ON_ERROR_STOP=1", &url, "-f"]).arg(dir.join("schema.sql")))?;

    let mut rows = vec![];
    for script in ["for_update", "upsert"] {
        step(&format!("pgbench {script}: 8 clients, {seconds} s"));
        let out = output(
            Command::new(cluster.bin().join("pgbench"))
                .args(["-n", "-c", "8", "-j", "2", "-T", &seconds.to_string(), "-f"])
                .arg(dir.join(format!("{script}.sql")))
                .arg(&url),
        )?;
        let grab = |key: &str| {
            out.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(if key == "tps" { 2 } else { 3 }))
                .unwrap_or("?")
                .to_owned()
        };
        rows.push((script, grab("tps"), grab("latency average")));
    }
    println!("\n| strategy | acquires/s | mean latency (ms) |\n|---|---|---|");
    for (s, tps, lat) in rows {
        println!("| {s} | {tps} | {lat} |");
    }
    Ok(())
}
