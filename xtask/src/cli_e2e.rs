//! The `hhs` CLI end to end against `cargo xtask dev`'s own setup: `xtask dev` (origin on the embedded store,
//! the edge in `wrangler dev`, keys written to `dev.env`) started in a scratch directory on free ports, then the
//! CLI — with no key given, so it reads `.hhs/dev.env` as a developer's would — adds a bed, races 50 acquires for
//! it through the edge, holds it around a command, lists it, follows the stream, lists keys and removes the bed.
//! Part of a full `cargo xtask test`; one test in its summary.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::run::{cargo, status, step, target_dir};

pub fn run() -> Result<(), String> {
    step("the hhs CLI against `cargo xtask dev`");
    status(cargo().args(["build", "-p", "hhs-client", "--bin", "hhs"]))?;
    let scratch = std::env::temp_dir().join(format!("hhs-cli-e2e-{}", std::process::id()));
    let result = crate::dev::Background::start(&scratch).and_then(|dev| scenario(&dev.url, &scratch));
    match &result {
        Ok(()) => drop(std::fs::remove_dir_all(&scratch)),
        Err(_) => eprintln!("cli e2e: logs kept in {}", scratch.display()),
    }
    result
}

/// `hhs ARGS` in `dir` (so `.hhs/dev.env` is found), against `url`, with no key of its own.
fn hhs(url: &str, dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(target_dir().join("debug/hhs"));
    c.args(args).current_dir(dir).env("HHS_URL", url).env_remove("HHS_KEY");
    c
}

fn ok(what: &str, out: std::io::Result<Output>) -> Result<String, String> {
    let out = out.map_err(|e| format!("{what}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{what}: {} {}", out.status, String::from_utf8_lossy(&out.stderr)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn scenario(url: &str, dir: &Path) -> Result<(), String> {
    let bed = ok("hhs resources add", hhs(url, dir, &["resources", "add", "bed", "E2E ward 1, bed 1"]).output())?
        .trim()
        .to_owned();

    // The stream, followed from before the race.
    let mut watch =
        hhs(url, dir, &["watch"]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_millis(500));

    let table = ok("hhs race", hhs(url, dir, &["race", "--n", "50", &bed]).output())?;
    if !(table.contains("| 200 granted | 1 |") && table.contains("| 409 lock_held | 49 |")) {
        return Err(format!("hhs race: not one winner and 49 refusals:\n{table}"));
    }
    // The race's winner got token 1 and released; the next grant is token 2.
    let token = ok(
        "hhs lock",
        hhs(url, dir, &["lock", &bed, "--ttl", "10s", "--", "sh", "-c", "echo $HHS_FENCING_TOKEN"]).output(),
    )?;
    if token.trim() != "2" {
        return Err(format!("hhs lock: the command saw token {token:?}, not 2"));
    }
    let locks: Value = serde_json::from_str(&ok("hhs locks ls", hhs(url, dir, &["locks", "ls", "--json"]).output())?)
        .map_err(|e| e.to_string())?;
    let lock = locks["items"]
        .as_array()
        .and_then(|l| l.iter().find(|l| l["resource_id"] == bed.as_str()))
        .cloned()
        .unwrap_or_default();
    if (lock["status"].as_str(), lock["fencing_token"].as_u64()) != (Some("RELEASED"), Some(2)) {
        return Err(format!("hhs locks ls: the bed is not released at token 2: {lock}"));
    }

    // The watcher saw both grants (one line each, `acquired … token N`).
    let lines = BufReader::new(watch.stdout.take().ok_or("watch stdout")?);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || lines.lines().map_while(Result::ok).for_each(|l| drop(tx.send(l))));
    let mut granted = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while granted < 2 {
        let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) else { break };
        granted += usize::from(line.contains(&bed) && line.contains("acquired"));
    }
    let _ = watch.kill();
    let _ = watch.wait();
    if granted < 2 {
        return Err(format!("hhs watch showed {granted} of the 2 grants"));
    }

    let keys = ok("hhs keys ls", hhs(url, dir, &["keys", "ls"]).output())?;
    if !keys.contains("dev-admin") {
        return Err(format!("hhs keys ls does not list the dev admin key:\n{keys}"));
    }
    ok("hhs resources rm", hhs(url, dir, &["resources", "rm", &bed]).output())?;
    println!(
        "cli e2e: resources add, race (1 × 200, 49 × 409), lock (token 2), locks ls, watch, keys ls, resources rm — ok"
    );
    Ok(())
}
