//! `cargo xtask bench ui` runs this: the time to the first full render of a board of 1,000 resources (40 % held)
//! in headless Chromium, and the long tasks (> 50 ms, what a person feels as jank) while it then ticks live for
//! five seconds, and how many rows re-render on each one-second tick (the page's `?count-renders` counter: rows
//! whose look cannot change with time should not re-render at all). The dashboard build comes from HHS_BENCH_UI_DIST (xtask builds it in release first); the origin
//! serves it at /dashboard/ on the embedded store. A benchmark, not a test: it prints numbers, asserts none.

#[path = "../tests/it/support/mod.rs"]
#[allow(dead_code)] // the tests' harness; the benchmark uses a part of it
#[macro_use]
mod support;

use std::time::Duration;

use serde_json::json;
use support::browser::Browser;
use support::{Backend, TestApp, TestDb};

const RESOURCES: [(&str, usize); 5] = [("bed", 600), ("ventilator", 200), ("or-room", 100), ("mri", 50), ("ct", 50)];

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(run());
}

async fn run() {
    let dist = std::env::var("HHS_BENCH_UI_DIST").expect("HHS_BENCH_UI_DIST: run `cargo xtask bench ui`");
    let runs: usize = std::env::var("HHS_BENCH_RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(5);
    let db = TestDb::new(Backend::Sqlite).await.expect("sqlite");
    let app = TestApp::spawn_custom(&db, 0, |s| s.dashboard_dir = Some(dist.into())).await;

    eprintln!("seeding 1,000 resources, 400 of them held");
    let mut n = 0;
    for (ty, count) in RESOURCES {
        for i in 1..=count {
            let id = app.create_resource(ty, &format!("{ty} {i:04}")).await;
            if n % 5 < 2 {
                let r = app
                    .post_as(
                        &app.keys.client,
                        "/api/locks/acquire",
                        json!({"resource_id": id, "owner_id": format!("ws-{}", n % 37), "ttl_seconds": 3_600}),
                    )
                    .await;
                assert!(r.status.is_success(), "{}", r.body);
            }
            n += 1;
        }
    }

    let browser = Browser::start().await.expect("Chromium and chromedriver (apt-get install chromium chromium-driver)");
    let page = format!("{}/dashboard/?count-renders", app.url);
    browser.goto(&page).await;
    browser.eval(&format!("sessionStorage.setItem('hhs.api_key', '{}'); return true;", app.keys.viewer)).await;
    let mut renders = vec![];
    for run in 0..runs {
        browser.goto(&page).await;
        browser
            .wait_until(
                "return performance.getEntriesByName('hhs-board-rendered').length > 0 && document.querySelectorAll('tbody tr.row').length === 1000;",
                Duration::from_secs(60),
                "the board of 1,000 resources renders",
            )
            .await;
        let ms = browser
            .eval("return performance.getEntriesByName('hhs-board-rendered')[0].startTime;")
            .await
            .as_f64()
            .unwrap_or(f64::NAN);
        eprintln!("run {}: first full render {ms:.0} ms after navigation start", run + 1);
        renders.push(ms);
    }
    // Five seconds of live ticking (a countdown on 400 rows each second): collect the long tasks.
    browser
        .eval("window.__long = []; new PerformanceObserver(l => window.__long.push(...l.getEntries().map(e => e.duration))).observe({type: 'longtask'}); return true;")
        .await;
    // Row renders per tick: the page publishes its counter at each tick, so the difference between two ticks
    // is what one tick cost.
    let mut counts = vec![];
    for _ in 0..6 {
        counts.push(browser.eval("return window.__hhsRowRenders || 0;").await.as_u64().unwrap_or(0));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let per_tick: Vec<u64> = counts.windows(2).map(|w| w[1].saturating_sub(w[0])).collect();
    let long: Vec<f64> = serde_json::from_value(browser.eval("return window.__long;").await).unwrap_or_default();
    let shot = browser.screenshot("bench-1000-resources").await;

    renders.sort_by(f64::total_cmp);
    let median = renders[renders.len() / 2];
    let worst_tick = long.iter().copied().fold(0.0, f64::max);
    println!("\n| dashboard, 1,000 resources (400 held) | value |\n|---|---|");
    println!("| first full render, median of {runs} loads | {median:.0} ms (budget 1,000 ms) |");
    println!("| first full render, slowest load | {:.0} ms |", renders[renders.len() - 1]);
    println!("| long tasks (> 50 ms) in 5 s of live ticking | {} (longest {worst_tick:.0} ms) |", long.len());
    println!(
        "| rows re-rendered per one-second tick (400 held of 1,000) | {} (each tick: {per_tick:?}) |",
        per_tick.iter().max().unwrap_or(&0)
    );
    println!("\nscreenshot: {}", shot.display());
    drop(browser);
    app.stop().await;
}
