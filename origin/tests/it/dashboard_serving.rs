//! The origin serves the dashboard build at `/dashboard/` (one-process mode), and says plainly when there is none.

use crate::support::{Backend, TestApp, TestDb};
use reqwest::StatusCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_built_dashboard_is_served_at_dashboard_without_a_key() {
    let Some(db) = TestDb::new(Backend::Sqlite).await else { return };
    let dist = tempfile::tempdir().unwrap();
    std::fs::write(dist.path().join("index.html"), "<!doctype html><title>HHS</title>").unwrap();
    std::fs::write(dist.path().join("hhs_ui.js"), "export default 1;").unwrap();
    let app = TestApp::spawn_custom(&db, 0, |s| s.dashboard_dir = Some(dist.path().to_path_buf())).await;
    let plain = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();

    let page = plain.get(format!("{}/dashboard/", app.url)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert_eq!(page.headers()["cache-control"], "no-cache");
    assert!(page.text().await.unwrap().contains("<title>HHS</title>"));
    let js = plain.get(format!("{}/dashboard/hhs_ui.js", app.url)).send().await.unwrap();
    assert_eq!(js.status(), StatusCode::OK);
    assert!(js.headers()["content-type"].to_str().unwrap().contains("javascript"));
    let r = plain.get(format!("{}/dashboard", app.url)).send().await.unwrap();
    assert!(r.status().is_redirection(), "{}", r.status());
    assert_eq!(r.headers()["location"], "/dashboard/");
    // The API next to it still wants a key.
    assert_eq!(plain.get(format!("{}/api/locks", app.url)).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_build_dashboard_is_a_json_not_found() {
    let Some(db) = TestDb::new(Backend::Sqlite).await else { return };
    let app = TestApp::spawn(&db).await;
    let r = app.get("/dashboard/").await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "not_found"));
    app.stop().await;
}
