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
    let out = hhs(&origin, &["lock", &bed, "--ttl", "5s", "--", "sh", "-c", "echo token=$HHS_FENCING_TOKEN; exit 3"]).output().await.unwrap();
    assert_eq!(out.status.code(), Some(3), "hhs exits with the command's status");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "token=1");
    assert_eq!(origin.lock(&bed).await["status"], "RELEASED");

    // Held by someone else: refused at once, exit 2, the command never runs.
    origin.send("POST", "/api/locks/acquire", &origin.client, Some(json!({"resource_id": bed, "owner_id": "ws-9", "ttl_seconds": 30}))).await;
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
    let child = hhs(&origin, &["lock", &bed, "--ttl", "3s", "--grace", "1s", "--", "sleep", "30"]).stderr(std::process::Stdio::piped()).spawn().unwrap();
    // Once it holds, an administrator takes the bed.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while origin.lock(&bed).await["status"] != "HELD" {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    origin.send("POST", "/api/locks/force-release", &origin.admin, Some(json!({"resource_id": bed, "reason": "emergency"}))).await;
    let out = tokio::time::timeout(Duration::from_secs(5), child.wait_with_output()).await.expect("the command was stopped").unwrap();
    assert_eq!(out.status.code(), Some(128 + 15), "sleep was terminated by SIGTERM");
    assert!(String::from_utf8_lossy(&out.stderr).contains("lost"), "{}", String::from_utf8_lossy(&out.stderr));
    origin.stop().await;
}
