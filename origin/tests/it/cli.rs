//! The command line, as an operator or a script runs it: `keys create` prints only the key on stdout, into the
//! database `serve` uses and no new one, and `serve --insecure-no-auth` refuses a non-loopback address.

use std::process::Command;

fn origin(db: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hhs-origin"));
    c.env_remove("DATABASE_URL").env("HHS_SQLITE_PATH", db).env("RUST_LOG", "warn");
    c
}

#[test]
fn keys_create_prints_only_the_key_and_list_and_revoke_work() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hhs.db");
    assert!(origin(&db).arg("migrate").status().unwrap().success());
    let out = origin(&db).args(["keys", "create", "--principal", "clinic-north", "--role", "client"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let key = stdout.trim();
    assert_eq!(stdout.lines().count(), 1, "stdout is the key alone: {stdout:?}");
    let parts = hhs_core::auth::parse_key(key).expect("a well-formed key");
    assert!(String::from_utf8_lossy(&out.stderr).contains(parts.key_id), "stderr names the key id");

    let list = origin(&db).args(["keys", "list"]).output().unwrap();
    let listed = String::from_utf8(list.stdout).unwrap();
    assert!(listed.contains(parts.key_id) && listed.contains("clinic-north") && listed.contains("client"));
    assert!(!listed.contains(parts.secret), "the list never shows a secret");

    let revoke = origin(&db).args(["keys", "revoke", parts.key_id]).output().unwrap();
    assert!(revoke.status.success());
    let listed = String::from_utf8(origin(&db).args(["keys", "list"]).output().unwrap().stdout).unwrap();
    let row = listed.lines().find(|l| l.contains(parts.key_id)).unwrap();
    assert!(!row.trim_end().ends_with('-'), "revoked time shown: {row}");

    let bad = origin(&db).args(["keys", "create", "--principal", "x", "--role", "root"]).output().unwrap();
    assert!(!bad.status.success());
    assert!(bad.stdout.is_empty());
    let unknown = origin(&db).args(["keys", "revoke", "000000000000"]).output().unwrap();
    assert!(!unknown.status.success());
}

#[test]
fn keys_take_database_flags_after_their_subcommand_and_refuse_a_database_that_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("served.db");
    let bare = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_hhs-origin"));
        c.env_remove("DATABASE_URL").env_remove("HHS_SQLITE_PATH").env("RUST_LOG", "warn").current_dir(dir.path());
        c
    };
    assert!(bare().args(["migrate", "--sqlite-path"]).arg(&db).status().unwrap().success());
    let made = bare()
        .args(["keys", "create", "--principal", "adt-feed", "--role", "integration", "--sqlite-path"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(made.status.success(), "the flag after `create`: {}", String::from_utf8_lossy(&made.stderr));

    // No flag: the default `hhs.db` in the working folder does not exist, so nothing is minted into a new one.
    let stray = bare().args(["keys", "create", "--principal", "adt-feed", "--role", "integration"]).output().unwrap();
    assert!(!stray.status.success() && stray.stdout.is_empty(), "no key printed for a database nobody serves");
    let said = String::from_utf8_lossy(&stray.stderr);
    assert!(said.contains("no database at hhs.db") && said.contains("--sqlite-path"), "{said}");
    assert!(!dir.path().join("hhs.db").exists(), "no new database file made");

    let help = String::from_utf8(bare().args(["keys", "revoke", "--help"]).output().unwrap().stdout).unwrap();
    let within = format!("within {} seconds", hhs_origin::http::auth::CACHE_TTL.as_secs());
    assert!(help.contains(&within), "revoke's help says how soon, as the key cache does: {help}");
    let create = String::from_utf8(bare().args(["keys", "create", "--help"]).output().unwrap().stdout).unwrap();
    assert!(["viewer", "client", "integration", "admin"].iter().all(|r| create.contains(r)), "{create}");
}

#[test]
fn insecure_no_auth_refuses_a_non_loopback_bind() {
    let dir = tempfile::tempdir().unwrap();
    let out = origin(&dir.path().join("hhs.db"))
        .args(["serve", "--insecure-no-auth", "--bind", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
}

/// `serve --log-format json`: one JSON object per line, request lines carry the request id, SIGTERM shuts down
/// gracefully (exit 0).
#[test]
fn json_logs_carry_request_ids_and_sigterm_stops_gracefully() {
    use std::io::{BufRead, BufReader, Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let mut child = origin(&dir.path().join("hhs.db"))
        .env("RUST_LOG", "info")
        .args(["--log-format", "json", "serve", "--bind", "127.0.0.1:0"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut url = None;
    let mut seen = vec![];
    for line in lines.by_ref() {
        let line = line.unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        seen.push(v.clone());
        if v["message"] == "hhs-origin listening" {
            url = v["url"].as_str().map(str::to_owned);
            break;
        }
    }
    let addr = url.expect("listening line").trim_start_matches("http://").to_owned();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: json-log-test-1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"));
    let found = lines
        .by_ref()
        .map_while(Result::ok)
        .take(20)
        .any(|l| l.contains("json-log-test-1") && serde_json::from_str::<serde_json::Value>(&l).is_ok());
    assert!(found, "a JSON request line with the request id");
    std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "graceful shutdown exits 0: {status}");
}
