//! `cargo xtask fuzz-api [--examples N]`: schemathesis, generating requests from the API's own OpenAPI
//! description, against the origin and against the edge (`wrangler dev` in front of it), with a key of each
//! role. It passes when, over every run:
//!
//! * schemathesis finds nothing: no 5xx, every status and body as the description says (`--checks all`, except
//!   `positive_data_acceptance` — a schema cannot say everything the rules check, such as "no control
//!   characters" or a type's own TTL bounds, and such requests get their documented 422 — and `use_after_free`:
//!   `DELETE /api/sessions/{id}` closes a session, whose record stays readable as `CLOSED`, by design), auth never
//!   ignored;
//! * no refused request changed anything: no entry of the event log carries the request id of a response of
//!   400 or above. (`expired` entries excepted: a heartbeat that finds its hold lapsed records the lapse, which
//!   the reaper would have recorded anyway — time changed the state, not the request.)
//! * at least 1,000 requests were sent.
//!
//! schemathesis comes from PyPI, pinned in `xtask/fuzz/requirements.txt`, into a venv this command creates
//! under the target directory. The origin runs on a throwaway embedded database with one resource to find;
//! the event stream is left out (it never ends; the browser and stream tests cover it).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::bench::cycle::serve;
use crate::edge;
use crate::run::{cargo, forget_cargo_run_env, free_port, root, status, step, target_dir};

const ROLES: [&str; 3] = ["viewer", "client", "admin"];
/// The least number of requests a run must send to count.
const MIN_REQUESTS: usize = 1_000;

pub fn run(args: &[String]) -> Result<(), String> {
    // The short run of CI (over 1,000 requests in all); docs/api.md gives a long run's figures.
    let mut examples = 10u32;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--examples" => examples = it.next().and_then(|v| v.parse().ok()).ok_or("--examples needs a number")?,
            other => {
                return Err(format!(
                    "fuzz-api: unknown argument {other:?} (usage: cargo xtask fuzz-api [--examples N])"
                ))
            }
        }
    }
    let st = schemathesis()?;
    step("building hhs-origin and the edge Worker");
    status(cargo().args(["build", "-p", "hhs-origin", "--bin", "hhs-origin"]))?;
    edge::build(false)?;

    let dir = std::env::temp_dir().join(format!("hhs-fuzz-api-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let result = fuzz(&st, &dir, examples);
    if result.is_ok() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        eprintln!("fuzz-api: reports and logs kept in {}", dir.display());
    }
    result
}

/// The venv's `st`, created and filled on first use.
fn schemathesis() -> Result<PathBuf, String> {
    let venv = target_dir().join("schemathesis-venv");
    let st = venv.join("bin/st");
    let requirements = root().join("xtask/fuzz/requirements.txt");
    let stamp = venv.join("installed-requirements.txt");
    let wanted = std::fs::read_to_string(&requirements).map_err(|e| format!("{}: {e}", requirements.display()))?;
    if st.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(st);
    }
    step(&format!("creating a venv with schemathesis ({})", venv.display()));
    status(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    status(
        Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(&requirements),
    )?;
    std::fs::write(&stamp, wanted).map_err(|e| e.to_string())?;
    Ok(st)
}

fn fuzz(st: &Path, dir: &Path, examples: u32) -> Result<(), String> {
    let bin = target_dir().join("debug/hhs-origin");
    let db = dir.join("hhs.db");
    let origin = |args: &[&str]| {
        let mut c = Command::new(&bin);
        forget_cargo_run_env(&mut c);
        c.env_remove("DATABASE_URL").env("HHS_SQLITE_PATH", &db).env("RUST_LOG", "warn").args(args);
        c
    };
    status(&mut origin(&["migrate"]))?;
    let mint = |principal: &str, role: &str| -> Result<String, String> {
        let out = origin(&["keys", "create", "--principal", principal, "--role", role])
            .stderr(Stdio::null())
            .output()
            .map_err(|e| e.to_string())?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    let mut keys = Vec::new();
    for role in ROLES {
        keys.push((role, mint(&format!("fuzz-{role}"), role)?));
    }
    let admin = keys[2].1.clone();
    let (mut server, base) = serve(origin(&[]))?;
    let result = (|| {
        seed(&base, &admin)?;
        let wrangler = edge::start_wrangler(
            free_port()?,
            Some("bench"),
            &[("ORIGIN_URL", base.clone())],
            &dir.join("wrangler.log"),
            true,
        )?;
        let mut failures = Vec::new();
        let mut hars = Vec::new();
        for (tier, url) in [("origin", base.clone()), ("edge", wrangler.url.clone())] {
            for (role, key) in &keys {
                let har = dir.join(format!("{tier}-{role}.har"));
                step(&format!("schemathesis against the {tier} as {role} ({examples} examples an operation)"));
                let ok = Command::new(st)
                    .arg("run")
                    .arg(format!("{url}{}", hhs_core::wire::endpoints::OPENAPI_PATH))
                    .args(["--header", &format!("Authorization: Bearer {key}")])
                    .args(["--exclude-path", "/api/events/stream"])
                    .args(["--checks", "all", "--exclude-checks", "positive_data_acceptance,use_after_free"])
                    .args(["--max-examples", &examples.to_string(), "--request-timeout", "15"])
                    .args(["--report", "har", "--report-har-path"])
                    .arg(&har)
                    .arg("--no-color")
                    .status()
                    .map_err(|e| format!("could not run schemathesis: {e}"))?
                    .success();
                if !ok {
                    failures.push(format!("{tier} as {role}"));
                }
                hars.push(har);
            }
        }
        drop(wrangler);
        let (sent, refused) = read_hars(&hars)?;
        // The stateful phase follows `GET /api/keys` to `DELETE /api/keys/{id}` and may revoke any key it was
        // given, the admin's too: the log is read with a key minted now, which schemathesis never saw.
        let auditor = mint("fuzz-auditor", "admin")?;
        let changed = changes_by(&base, &auditor, &refused)?;
        println!(
            "\nfuzz-api: {sent} requests, {} refused (4xx/5xx), {} refused requests that changed state",
            refused.len(),
            changed.len()
        );
        if !failures.is_empty() {
            return Err(format!("schemathesis found failures: {}", failures.join(", ")));
        }
        if !changed.is_empty() {
            return Err(format!("refused requests changed state: {}", changed.join("; ")));
        }
        if sent < MIN_REQUESTS {
            return Err(format!("only {sent} requests were sent (at least {MIN_REQUESTS} wanted): raise --examples"));
        }
        Ok(())
    })();
    let _ = server.kill();
    let _ = server.wait();
    result
}

/// One resource and one held lease, so generated ids have something real beside them.
fn seed(base: &str, admin: &str) -> Result<(), String> {
    let agent = ureq::agent();
    let auth = format!("Bearer {admin}");
    let created: Value = agent
        .post(&format!("{base}/api/resources"))
        .set("Authorization", &auth)
        .send_json(serde_json::json!({"type": "bed", "identifier": "fuzz: ward 1, bed 1"}))
        .map_err(|e| format!("create the fuzz resource: {e}"))?
        .into_json()
        .map_err(|e| e.to_string())?;
    let id = created["id"].as_str().ok_or("the created resource has no id")?;
    agent
        .post(&format!("{base}/api/locks/acquire"))
        .set("Authorization", &auth)
        .send_json(serde_json::json!({"resource_id": id, "owner_id": "fuzz-seed", "ttl_seconds": 3600}))
        .map_err(|e| format!("hold the fuzz resource: {e}"))?;
    Ok(())
}

/// How many requests the reports hold, and the request ids of those answered 400 or above.
fn read_hars(hars: &[PathBuf]) -> Result<(usize, HashSet<String>), String> {
    let (mut sent, mut refused) = (0, HashSet::new());
    for har in hars {
        let text = std::fs::read_to_string(har).map_err(|e| format!("{}: {e}", har.display()))?;
        let doc: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", har.display()))?;
        let entries = doc["log"]["entries"].as_array().cloned().unwrap_or_default();
        sent += entries.len();
        for entry in entries {
            let response = &entry["response"];
            if response["status"].as_u64().unwrap_or(0) < 400 {
                continue;
            }
            let headers = response["headers"].as_array().cloned().unwrap_or_default();
            let id =
                headers.iter().find(|h| h["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case("x-request-id")));
            if let Some(id) = id.and_then(|h| h["value"].as_str()) {
                refused.insert(id.to_owned());
            }
        }
    }
    Ok((sent, refused))
}

/// The log entries (other than recorded lapses, refusals and waits) made by a refused request.
fn changes_by(base: &str, admin: &str, refused: &HashSet<String>) -> Result<Vec<String>, String> {
    let export = ureq::get(&format!("{base}/api/audit/export"))
        .set("Authorization", &format!("Bearer {admin}"))
        .call()
        .map_err(|e| format!("export the audit log: {e}"))?
        .into_string()
        .map_err(|e| e.to_string())?;
    let mut changed = Vec::new();
    for line in export.lines().filter(|l| !l.trim().is_empty()) {
        let event: Value = serde_json::from_str(line).map_err(|e| format!("audit line: {e}"))?;
        let request = event["request_id"].as_str().unwrap_or_default();
        // A refused acquire that waited first joined and left the queue: recorded (`queued`, `wait_ended`),
        // with no hold granted. Anything else by a refused request is a change it should not have made.
        let recorded_wait = event["kind"] == "queued" || event["kind"] == "wait_ended";
        if event["outcome"] == "ok" && event["kind"] != "expired" && !recorded_wait && refused.contains(request) {
            changed.push(format!("{} by request {request}", event["kind"]));
        }
    }
    Ok(changed)
}
