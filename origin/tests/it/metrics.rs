//! `/metrics` after known traffic: the numbers are the traffic's.

use std::time::Duration;

use crate::support::{Backend, TestApp, TestDb};
use reqwest::StatusCode;

both_stores!(metrics_count_known_traffic,);

/// The value of the sample `name` (with its labels as written, e.g. `{outcome="granted"}`), if present.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')).and_then(|v| v.trim().parse().ok()))
}

async fn metrics_count_known_traffic(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let (bed1, bed2, bed3) = (
        app.create_resource("bed", "Metrics 1").await,
        app.create_resource("bed", "Metrics 2").await,
        app.create_resource("bed", "Metrics 3").await,
    );
    // Three grants, one refusal, one repeat by the holder; two heartbeats; one release; one hold left to lapse.
    assert_eq!(app.acquire(&bed1, "ws-1", 30).await.status, StatusCode::OK);
    assert_eq!(app.acquire(&bed2, "ws-1", 1).await.status, StatusCode::OK);
    assert_eq!(app.acquire(&bed1, "ws-2", 30).await.status, StatusCode::CONFLICT);
    assert_eq!(app.acquire(&bed1, "ws-1", 30).await.status, StatusCode::OK);
    assert_eq!(app.heartbeat(&bed1, "ws-1").await.status, StatusCode::OK);
    assert_eq!(app.heartbeat(&bed1, "ws-1").await.status, StatusCode::OK);
    assert_eq!(app.acquire(&bed3, "ws-3", 30).await.status, StatusCode::OK);
    assert_eq!(app.release(&bed3, "ws-3").await.status, StatusCode::OK);
    // ws-4 waits in bed3's queue behind ws-5 and is granted at the release.
    assert_eq!(app.acquire(&bed3, "ws-5", 30).await.status, StatusCode::OK);
    let waiting = {
        let (client, url, key, bed) = (app.client.clone(), app.url.clone(), app.keys.client.clone(), bed3.clone());
        tokio::spawn(async move {
            let body =
                serde_json::json!({"resource_id": bed, "owner_id": "ws-4", "ttl_seconds": 30, "wait_seconds": 10});
            client.post(format!("{url}/api/locks/acquire")).bearer_auth(key).json(&body).send().await.unwrap().status()
        })
    };
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(app.release(&bed3, "ws-5").await.status, StatusCode::OK);
    assert_eq!(waiting.await.unwrap(), StatusCode::OK);
    // bed2's 1 s hold lapses; the reaper (every 200 ms here) records it, and the pump reads it from the log.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = app.client.get(format!("{}/metrics", app.url)).send().await.unwrap().text().await.unwrap();
        if sample(&text, "hhs_holds_expired_total").unwrap_or(0.0) >= 1.0
            && sample(&text, r#"hhs_hold_duration_seconds_count{ended="released"}"#) == Some(2.0)
        {
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "no expiry or release in the metrics:\n{text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(sample(&text, r#"hhs_acquire_duration_seconds_count{outcome="granted"}"#), Some(4.0), "{text}");
    // The queued one: decided at once as `queued`, its wait apart (at least the 600 ms before the release).
    assert_eq!(sample(&text, r#"hhs_acquire_duration_seconds_count{outcome="queued"}"#), Some(1.0));
    assert_eq!(sample(&text, r#"hhs_queue_wait_duration_seconds_count{outcome="granted"}"#), Some(1.0));
    assert!(
        sample(&text, r#"hhs_queue_wait_duration_seconds_sum{outcome="granted"}"#).is_some_and(|s| s >= 0.5),
        "{text}"
    );
    assert_eq!(sample(&text, r#"hhs_acquire_duration_seconds_count{outcome="renewed"}"#), Some(1.0));
    assert_eq!(sample(&text, r#"hhs_acquire_duration_seconds_count{outcome="lock_held"}"#), Some(1.0));
    assert_eq!(sample(&text, "hhs_heartbeats_total"), Some(2.0));
    assert_eq!(sample(&text, "hhs_holds_expired_total"), Some(1.0));
    assert_eq!(sample(&text, r#"hhs_hold_duration_seconds_count{ended="released"}"#), Some(2.0));
    assert_eq!(sample(&text, r#"hhs_hold_duration_seconds_count{ended="expired"}"#), Some(1.0));
    // bed1's and bed3's (ws-4's) are the live holds left.
    assert_eq!(sample(&text, r#"hhs_holds_current{type="bed"}"#), Some(2.0));
    assert_eq!(sample(&text, "hhs_reaper_lag_seconds"), Some(0.0));
    assert_eq!(sample(&text, "hhs_stream_subscribers"), Some(0.0));
    // Seven acquires through the route, all timed under its template.
    let acquires: f64 = text
        .lines()
        .filter(|l| {
            l.starts_with("hhs_http_request_duration_seconds_count{") && l.contains(r#"route="/api/locks/acquire""#)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(acquires, 7.0, "{text}");
    assert!(text.contains(r#"route="/api/locks/acquire",method="POST",status="409""#), "{text}");
    assert!(sample(&text, r#"hhs_db_pool_connections{kind="in_use"}"#).is_some());
    assert!(text.trim_end().ends_with("# EOF"));
    app.stop().await;
}
