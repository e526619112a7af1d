//! The running edge: `wrangler dev` started by `cargo xtask test` (HHS_TEST_EDGE_URL), forwarding to one fixed
//! origin port (HHS_TEST_EDGE_ORIGIN_PORT) where each test starts its own origin. Tests take turns on that port.

use std::time::Duration;

use super::{Backend, TestApp, TestDb};

/// Held by a test while its origin owns the edge's origin port.
pub static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub struct Edge {
    pub url: String,
    pub origin_port: u16,
}

/// The edge, or `None` (skip) when not run by `cargo xtask test` — a failure under `CI`.
pub fn edge() -> Option<Edge> {
    match (std::env::var("HHS_TEST_EDGE_URL"), std::env::var("HHS_TEST_EDGE_ORIGIN_PORT")) {
        (Ok(url), Ok(port)) => Some(Edge { url, origin_port: port.parse().expect("port") }),
        _ if std::env::var_os("CI").is_some() => {
            panic!("CI is set but no edge is running: run the tests with `cargo xtask test`")
        }
        _ => {
            eprintln!("skipped: no HHS_TEST_EDGE_URL (run `cargo xtask test`)");
            None
        }
    }
}

/// A fresh SQLite origin on the edge's origin port (reaper every 200 ms).
pub async fn origin(edge: &Edge) -> (TestDb, TestApp) {
    let db = TestDb::new(Backend::Sqlite).await.expect("sqlite");
    let app = TestApp::spawn_at(&db, Some(Duration::from_millis(200)), edge.origin_port).await;
    (db, app)
}
