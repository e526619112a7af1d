//! `hhs lock` against a real origin: the command runs with the fencing token, the hold is released when it
//! exits and `hhs` exits with its status; a held resource fails at once; a lost hold stops the command.

use std::time::Duration;

use serde_json::json;

use crate::support::Origin;

fn hhs(origin: &Origin, args: &[&str]) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_hhs"));
    c.args(args).env("HHS_URL", &origin.url).env("HHS_KEY", &origin.client);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hhs_lock_runs_the_command_with_the_token_and_releases() {
    let origin = Origin::start().await;
    let bed = origin.bed("CLI 1").await;
    let out = hhs(&origin, &["lock", &bed, "--ttl", "5s", "--", "sh", "-c", "echo token=$HHS_FENCING_TOKEN; exit 3"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "hhs exits with the command's status");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "token=1");
    assert_eq!(origin.lock(&bed).await["status"], "RELEASED");

    // Held by someone else: refused at once, exit 2, the command never runs.
    origin
        .send(
            "POST",
            "/api/locks/acquire",
            &origin.client,
            Some(json!({"resource_id": bed, "owner_id": "ws-9", "ttl_seconds": 30})),
        )
        .await;
    let out = hhs(&origin, &["lock", &bed, "--", "sh", "-c", "echo ran"]).output().await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("lock_held"), "{}", String::from_utf8_lossy(&out.stderr));
    origin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_hold_stops_the_command() {
    let origin = Origin::start().await;
    let bed = origin.bed("CLI 2").await;
    let child = hhs(&origin, &["lock", &bed, "--ttl", "3s", "--grace", "1s", "--", "sleep", "30"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once it holds, an administrator takes the bed.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while origin.lock(&bed).await["status"] != "HELD" {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    origin
        .send(
            "POST",
            "/api/locks/force-release",
            &origin.admin,
            Some(json!({"resource_id": bed, "reason": "emergency"})),
        )
        .await;
    let out = tokio::time::timeout(Duration::from_secs(5), child.wait_with_output())
        .await
        .expect("the command was stopped")
        .unwrap();
    assert_eq!(out.status.code(), Some(128 + 15), "sleep was terminated by SIGTERM");
    assert!(String::from_utf8_lossy(&out.stderr).contains("lost"), "{}", String::from_utf8_lossy(&out.stderr));
    origin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hhs_lists_adds_and_races() {
    let origin = Origin::start().await;
    let admin = |args: &[&str]| {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_hhs"));
        c.args(args).env("HHS_URL", &origin.url).env("HHS_KEY", &origin.admin);
        c
    };
    let out = admin(&["resources", "add", "bed", "CLI Ward 3"]).output().await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let listed = admin(&["resources", "ls", "--json"]).output().await.unwrap();
    let resources: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    // The API's page, every item in it: a script reads `.items` from `hhs --json` as from curl.
    assert_eq!(resources["next_after"], serde_json::Value::Null, "{resources}");
    let items = resources["items"].as_array().unwrap_or_else(|| panic!("a page, not a bare list: {resources}"));
    assert!(items.iter().any(|r| r["id"] == id.as_str() && r["identifier"] == "CLI Ward 3"));

    // The seed's race: 50 parallel acquires, exactly one winner.
    let raced = hhs(&origin, &["race", "--n", "50", &id]).output().await.unwrap();
    let table = String::from_utf8_lossy(&raced.stdout);
    assert!(table.contains("| 200 granted | 1 |") && table.contains("| 409 lock_held | 49 |"), "{table}");
    let locks = admin(&["locks", "ls", "--json"]).output().await.unwrap();
    let locks: serde_json::Value = serde_json::from_slice(&locks.stdout).unwrap();
    let lock = locks["items"].as_array().unwrap().iter().find(|l| l["resource_id"] == id.as_str()).unwrap().clone();
    assert_eq!(lock["status"], "RELEASED", "the race's winner released: {lock}");
    assert_eq!(lock["fencing_token"], 1);
    // A bed goes to housekeeping and back (an admin may set statuses); the list shows it; a bad code is the API's 422.
    let cleaning = admin(&["resources", "status", &id, "H"]).output().await.unwrap();
    assert!(cleaning.status.success(), "{}", String::from_utf8_lossy(&cleaning.stderr));
    assert_eq!(String::from_utf8_lossy(&cleaning.stdout).trim(), "CLI Ward 3 is housekeeping (H)");
    let table = admin(&["resources", "ls"]).output().await.unwrap();
    assert!(
        String::from_utf8_lossy(&table.stdout).lines().any(|l| l.contains(&id) && l.contains("H housekeeping")),
        "{}",
        String::from_utf8_lossy(&table.stdout)
    );
    let held = hhs(&origin, &["lock", &id, "--", "true"]).output().await.unwrap();
    assert!(
        String::from_utf8_lossy(&held.stderr).contains("resource_unavailable"),
        "{}",
        String::from_utf8_lossy(&held.stderr)
    );
    let bad = admin(&["resources", "status", &id, "Z"]).output().await.unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("validation_failed"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    assert!(admin(&["resources", "status", &id, "U"]).output().await.unwrap().status.success());
    // A client key may not remove resources: the API's code comes through.
    let refused = hhs(&origin, &["resources", "rm", &id]).output().await.unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("forbidden"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    origin.stop().await;
}
