//! `GET /api/events/stream`: changes arrive live, a reconnect with Last-Event-ID loses nothing, and on
//! PostgreSQL a change made through one origin replica reaches the stream of another (LISTEN/NOTIFY).

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use support::{Backend, Sse, TestApp, TestDb};

both_stores!(changes_arrive_live_and_a_reconnect_replays_what_was_missed);

async fn changes_arrive_live_and_a_reconnect_replays_what_was_missed(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let id = app.create_resource("bed", "B1").await;
    let mut live = Sse::open(app.request_as(reqwest::Method::GET, "/api/events/stream", Some(&app.keys.viewer)), None).await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    app.acquire(&id, "ws-1", 60).await;
    let acquired = live.until("acquired", &id, Duration::from_secs(2)).await.expect("the acquire arrives within 2 s");
    assert_eq!(acquired["owner_id"], "ws-1");
    assert_eq!(acquired["fencing_token"], 1);
    let seen = acquired["id"].as_i64().unwrap();
    drop(live);

    // Missed while disconnected: a release and a new grant.
    app.release(&id, "ws-1").await;
    app.acquire(&id, "ws-2", 60).await;
    let mut resumed = Sse::open(app.request_as(reqwest::Method::GET, "/api/events/stream", Some(&app.keys.viewer)), Some(seen)).await;
    let released = resumed.until("released", &id, Duration::from_secs(2)).await.expect("replayed release");
    assert_eq!(released["owner_id"], "ws-1");
    let again = resumed.until("acquired", &id, Duration::from_secs(2)).await.expect("replayed acquire");
    assert_eq!(again["fencing_token"], 2);

    // Without a key: 401, like every /api route.
    let r = app.send(app.request_as(reqwest::Method::GET, "/api/events/stream", None)).await;
    assert_eq!(r.code(), "unauthenticated");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_postgres_a_change_through_one_replica_reaches_another_replicas_stream() {
    let Some(db) = TestDb::new(Backend::Postgres).await else { return };
    // Polling so slow that only LISTEN/NOTIFY can deliver within the bound below.
    let writer = TestApp::spawn_custom(&db, 0, |s| s.event_poll = Duration::from_secs(60)).await;
    let reader = TestApp::spawn_custom(&db, 0, |s| s.event_poll = Duration::from_secs(60)).await;
    let id = writer.create_resource("or-room", "OR 9").await;
    let mut stream = Sse::open(reader.request_as(reqwest::Method::GET, "/api/events/stream", Some(&reader.keys.viewer)), None).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    writer.acquire(&id, "ws-1", 60).await;
    let got = stream.until("acquired", &id, Duration::from_secs(3)).await;
    assert!(got.is_some(), "the other replica's stream did not see the acquire");
    reader.stop().await;
    writer.stop().await;
}
