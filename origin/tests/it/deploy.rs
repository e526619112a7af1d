//! What deployments lean on: `hhs-origin healthcheck` (the image's HEALTHCHECK), the database URL read from a
//! file (systemd's LoadCredential), and deploy/hhs-origin.service as systemd reads it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

use crate::support::{Backend, TestDb};

fn origin(db: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hhs-origin"));
    c.env_remove("DATABASE_URL")
        .env_remove("DATABASE_URL_FILE")
        .env_remove("HHS_BIND")
        .env("HHS_SQLITE_PATH", db)
        .env("RUST_LOG", "warn");
    c
}

/// A `serve` process, killed on drop (a failed assertion must not leave it running).
struct Serving(Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `serve` on a free loopback port; returns it and its address once it listens.
fn serve(db: &std::path::Path) -> (Serving, String) {
    let mut child = origin(db)
        .env("RUST_LOG", "info")
        .args(["--log-format", "json", "serve", "--bind", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = lines
        .by_ref()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(&l).ok())
        .find(|v| v["message"] == "hhs-origin listening")
        .and_then(|v| v["url"].as_str().map(str::to_owned))
        .expect("listening line");
    // Its log keeps being read, as a terminal or journald would: a closed stderr stops the origin.
    std::thread::spawn(move || lines.for_each(drop));
    (Serving(child), url.trim_start_matches("http://").to_owned())
}

fn healthcheck(db: &std::path::Path, args: &[&str]) -> Output {
    origin(db).arg("healthcheck").args(args).output().unwrap()
}

#[test]
fn healthcheck_exits_0_on_a_healthy_origin_and_1_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hhs.db");
    let (serving, addr) = serve(&db);

    let ok = healthcheck(&db, &["--url", &format!("http://{addr}/healthz")]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    // Without --url it asks /healthz where --bind (HHS_BIND, as in the image) says serve listens.
    let port = addr.rsplit_once(':').unwrap().1;
    let by_bind = origin(&db).env("HHS_BIND", format!("0.0.0.0:{port}")).arg("healthcheck").output().unwrap();
    assert!(by_bind.status.success(), "{}", String::from_utf8_lossy(&by_bind.stderr));

    let not_found = healthcheck(&db, &["--url", &format!("http://{addr}/no-such-page")]);
    assert_eq!(not_found.status.code(), Some(1), "a 404 is not healthy");
    assert!(String::from_utf8_lossy(&not_found.stderr).contains("404"));

    drop(serving);
    let gone = healthcheck(&db, &["--url", &format!("http://{addr}/healthz"), "--timeout", "2"]);
    assert_eq!(gone.status.code(), Some(1), "nothing listening is not healthy");
    assert!(String::from_utf8_lossy(&gone.stderr).contains("cannot connect"));
}

/// DATABASE_URL_FILE: the URL is read from the file (its trailing newline ignored) and used; a missing or empty
/// file, or both variables at once, stop the command before it opens anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_url_is_read_from_database_url_file() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = dir.path().join("hhs.db");
    let file = dir.path().join("database-url");

    let missing = origin(&sqlite).args(["keys", "list"]).env("DATABASE_URL_FILE", &file).output().unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("database-url"), "names the file");
    std::fs::write(&file, "\n").unwrap();
    let empty = origin(&sqlite).args(["keys", "list"]).env("DATABASE_URL_FILE", &file).output().unwrap();
    assert!(!empty.status.success());
    assert!(String::from_utf8_lossy(&empty.stderr).contains("is empty"));
    std::fs::write(&file, "postgres://nobody@127.0.0.1:1/none\n").unwrap();
    let both = origin(&sqlite)
        .args(["keys", "list"])
        .env("DATABASE_URL_FILE", &file)
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&both.stderr).contains("not both"));
    assert!(!sqlite.exists(), "no command above fell back to SQLite");

    let Some(pg) = TestDb::new(Backend::Postgres).await else { return };
    std::fs::write(&file, format!("{}\n", pg.pg_url().unwrap())).unwrap();
    let created = origin(&sqlite)
        .args(["keys", "create", "--principal", "from-file", "--role", "viewer"])
        .env("DATABASE_URL_FILE", &file)
        .output()
        .unwrap();
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let keys = pg.store().await.keys().await.unwrap();
    assert!(keys.iter().any(|k| k.principal == "from-file"), "the key went to the database the file names");
    assert!(!sqlite.exists(), "and not to SQLite");
}

/// deploy/hhs-origin.service as systemd parses it: no unknown key, no value it would ignore. Where systemd-analyze
/// is not installed the test says so and passes.
#[test]
fn the_systemd_unit_verifies_cleanly() {
    let Ok(version) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("skipped: systemd-analyze is not installed (apt-get install systemd)");
        return;
    };
    assert!(version.status.success());
    let unit = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/hhs-origin.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    // verify also checks that ExecStart's binary exists: point it at the one this test built.
    assert!(text.contains("ExecStart=/usr/local/bin/hhs-origin "));
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("hhs-origin.service");
    std::fs::write(&copy, text.replace("/usr/local/bin/hhs-origin", env!("CARGO_BIN_EXE_hhs-origin"))).unwrap();
    let out = Command::new("systemd-analyze").arg("verify").arg(&copy).env("SYSTEMD_LOG_COLOR", "0").output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // It exits 0 even for keys it ignores; every complaint names the file.
    let complaints: Vec<&str> = said.lines().filter(|l| l.contains("hhs-origin.service")).collect();
    assert!(out.status.success() && complaints.is_empty(), "systemd-analyze verify: {said}");
}
