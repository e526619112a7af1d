//! `GET /api/events/stream`: changes and heartbeats arrive live, a reconnect with Last-Event-ID loses nothing (or
//! is told to resync), and on PostgreSQL a change made through one origin replica reaches the stream of another
//! (LISTEN/NOTIFY). An event whose transaction commits after one with a higher id still reaches a live stream,
//! a cursor read and a resumed stream, each once.

use std::time::Duration;

use reqwest::StatusCode;
use sqlx::{Connection, Executor, PgConnection};

use crate::support::{Backend, Sse, TestApp, TestDb};

both_stores!(
    changes_arrive_live_and_a_reconnect_replays_what_was_missed,
    heartbeats_arrive_as_transient_renewals_with_the_new_expiry,
    a_client_too_far_behind_is_told_to_resync,
    the_lock_list_says_when_it_was_read_and_from_which_event_to_stream,
    a_stream_ends_when_its_key_is_revoked,
);

async fn changes_arrive_live_and_a_reconnect_replays_what_was_missed(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let id = app.create_resource("bed", "B1").await;
    let mut live =
        Sse::open(app.request_as(reqwest::Method::GET, "/api/events/stream", Some(&app.keys.viewer)), None).await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    app.acquire(&id, "ws-1", 60).await;
    let acquired = live.until("acquired", &id, Duration::from_secs(2)).await.expect("the acquire arrives within 2 s");
    assert_eq!(acquired["owner_id"], "ws-1");
    assert_eq!(acquired["fencing_token"], 1);
    // The event carries its resource's lock as the origin read it after the event: what a dashboard shows.
    let lock = &acquired["lock"];
    assert_eq!(
        (lock["status"].as_str(), lock["fencing_token"].as_i64(), lock["owner_id"].as_str()),
        (Some("HELD"), Some(1), Some("ws-1"))
    );
    assert_eq!((lock["type"].as_str(), lock["identifier"].as_str()), (Some("bed"), Some("B1")));
    assert!(lock["expires_at"].is_string());
    let seen = acquired["id"].as_i64().unwrap();
    drop(live);

    // Missed while disconnected: a release and a new grant.
    app.release(&id, "ws-1").await;
    app.acquire(&id, "ws-2", 60).await;
    let mut resumed =
        Sse::open(app.request_as(reqwest::Method::GET, "/api/events/stream", Some(&app.keys.viewer)), Some(seen)).await;
    let released = resumed.until("released", &id, Duration::from_secs(2)).await.expect("replayed release");
    assert_eq!(released["owner_id"], "ws-1");
    let again = resumed.until("acquired", &id, Duration::from_secs(2)).await.expect("replayed acquire");
    assert_eq!(again["fencing_token"], 2);
    // Replayed events carry the lock as it is now (never older than the event): the replayed release already
    // shows the newer grant, which a dashboard keeps.
    assert_eq!(
        (released["lock"]["fencing_token"].as_i64(), released["lock"]["owner_id"].as_str()),
        (Some(2), Some("ws-2"))
    );

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
    let mut stream =
        Sse::open(reader.request_as(reqwest::Method::GET, "/api/events/stream", Some(&reader.keys.viewer)), None).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    writer.acquire(&id, "ws-1", 60).await;
    let got = stream.until("acquired", &id, Duration::from_secs(3)).await;
    assert!(got.is_some(), "the other replica's stream did not see the acquire");
    // Renewals travel as NOTIFY payloads: the other replica's dashboards see heartbeats too.
    let beat = writer.heartbeat(&id, "ws-1").await;
    let renewal = stream
        .until("heartbeat", &id, Duration::from_secs(3))
        .await
        .expect("the other replica's stream did not see the heartbeat");
    assert_eq!(renewal["expires_at"], beat.body["expires_at"]);
    reader.stop().await;
    writer.stop().await;
}

async fn heartbeats_arrive_as_transient_renewals_with_the_new_expiry(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn_custom(&db, 0, |s| s.event_poll = Duration::from_secs(60)).await;
    let id = app.create_resource("bed", "B1").await;
    app.acquire(&id, "ws-1", 60).await;
    let mut live =
        Sse::open(app.request_as(reqwest::Method::GET, "/api/events/stream", Some(&app.keys.viewer)), None).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let beat = app.heartbeat(&id, "ws-1").await;
    assert_eq!(beat.status, StatusCode::OK);
    let renewal = live.until("heartbeat", &id, Duration::from_secs(2)).await.expect("the heartbeat arrives within 2 s");
    assert_eq!(renewal["expires_at"], beat.body["expires_at"], "the renewal carries the new expiry");
    assert_eq!(renewal["last_heartbeat"], beat.body["last_heartbeat"]);
    assert_eq!((renewal["owner_id"].as_str(), renewal["fencing_token"].as_u64()), (Some("ws-1"), Some(1)));
    // Not an event of the log: a replay from the start has the acquire and no heartbeat.
    drop(live);
    let mut replay =
        Sse::open(app.request_as(reqwest::Method::GET, "/api/events/stream", Some(&app.keys.viewer)), Some(0)).await;
    let mut kinds = vec![];
    while let Some((kind, _)) = replay.next(Duration::from_millis(500)).await {
        kinds.push(kind);
    }
    assert_eq!(kinds, ["key_created", "key_created", "key_created", "resource_created", "acquired"]);
    app.stop().await;
}

async fn a_client_too_far_behind_is_told_to_resync(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let id = app.create_resource("bed", "B1").await;
    // 1,001 events after the first: more than one replay page.
    for i in 0..500 {
        app.acquire(&id, &format!("ws-{i}"), 60).await;
        app.release(&id, &format!("ws-{i}")).await;
    }
    app.acquire(&id, "ws-last", 60).await;
    let mut resumed =
        Sse::open(app.request_as(reqwest::Method::GET, "/api/events/stream", Some(&app.keys.viewer)), Some(1)).await;
    let mut replayed = 0;
    let last = loop {
        // Generous: under the whole suite's load on two cores a replay page has taken over 5 s to arrive (CI).
        let (kind, _) = resumed.next(Duration::from_secs(30)).await.expect("replay, then resync");
        if kind == "resync" {
            break kind;
        }
        replayed += 1;
    };
    assert_eq!((replayed, last.as_str()), (1_000, "resync"));
    app.stop().await;
}

async fn the_lock_list_says_when_it_was_read_and_from_which_event_to_stream(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let id = app.create_resource("or-room", "OR 1").await;
    app.acquire(&id, "ws-1", 60).await;
    let newest =
        app.get(&format!("/api/events?resource_id={id}")).await.body["items"].as_array().unwrap().last().unwrap()["id"]
            .as_i64()
            .unwrap();
    let before = chrono::Utc::now();
    let list = app.get("/api/locks").await;
    let after = chrono::Utc::now();
    assert_eq!(list.body["last_event_id"].as_i64(), Some(newest));
    let server: chrono::DateTime<chrono::Utc> = list.body["server_time"].as_str().unwrap().parse().unwrap();
    // Same machine, same clock: the database's time lies within the request's span.
    assert!(
        server >= before - chrono::Duration::milliseconds(50) && server <= after + chrono::Duration::milliseconds(50),
        "{server}"
    );

    // An involuntary end says in its event when the lock-delay ends (or-room: 2 s in the test policy).
    let forced = app
        .post_as(&app.keys.admin, "/api/locks/force-release", serde_json::json!({"resource_id": id, "reason": "drill"}))
        .await;
    let events = app.get(&format!("/api/events?resource_id={id}")).await.body;
    let ended = events["items"].as_array().unwrap().last().unwrap();
    assert_eq!(ended["kind"], "force_released");
    assert_eq!(ended["detail"]["lock_delay_until"], forced.body["lock_delay_until"]);
    app.stop().await;
}

async fn a_stream_ends_when_its_key_is_revoked(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    // Streams re-check their key every 500 ms in the tests; the key cache lives 2 s.
    let app = TestApp::spawn(&db).await;
    let created = app.post("/api/keys", serde_json::json!({"principal": "wall-screen", "role": "viewer"})).await;
    let key = created.body["key"].as_str().unwrap().to_owned();
    let mut watched = Sse::open(app.request_as(reqwest::Method::GET, "/api/events/stream", Some(&key)), None).await;
    let mut other =
        Sse::open(app.request_as(reqwest::Method::GET, "/api/events/stream", Some(&app.keys.viewer)), None).await;
    assert!(!watched.closed_within(Duration::from_millis(1_500)).await, "a valid key's stream stays open");
    let id = created.body["id"].as_str().unwrap();
    assert_eq!(app.send(app.client.delete(format!("{}/api/keys/{id}", app.url))).await.status, StatusCode::OK);
    assert!(watched.closed_within(Duration::from_secs(5)).await, "the revoked key's stream ends");
    assert!(!other.closed_within(Duration::from_millis(500)).await, "other keys' streams go on");
    let again = app.send(app.request_as(reqwest::Method::GET, "/api/events/stream", Some(&key))).await;
    assert_eq!(again.code(), "unauthenticated", "and it cannot reconnect");
    app.stop().await;
}

/// A replica reads the log on its poll timer whatever the rate of renewals reaching it: each renewal wakes its
/// pump, and a timer made anew on every pass would never fire while they flow.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_postgres_another_replicas_change_arrives_within_a_second_while_heartbeats_flow() {
    let Some(db) = TestDb::new(Backend::Postgres).await else { return };
    // Neither runs a reaper or refreshes its model meanwhile: their own commits would wake their pumps.
    let quiet = |s: &mut hhs_origin::server::Settings| {
        s.event_poll = Duration::from_millis(500);
        s.reaper = None;
        s.model_refresh = Duration::from_secs(3_600);
    };
    let writer = TestApp::spawn_custom(&db, 0, quiet).await;
    let reader = TestApp::spawn_custom(&db, 0, quiet).await;
    let bed = writer.create_resource("bed", "Quiet 1").await;
    let mut stream =
        Sse::open(reader.request_as(reqwest::Method::GET, "/api/events/stream", Some(&reader.keys.viewer)), None).await;
    // Renewals as fast as four clients can send them, each a NOTIFY that reaches the reader's pump.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut beats = vec![];
    for n in 0..4 {
        let id = writer.create_resource("bed", &format!("Beats {n}")).await;
        assert_eq!(writer.acquire(&id, "ws-1", 60).await.status, StatusCode::OK);
        let (url, client, stop) = (writer.url.clone(), writer.client.clone(), stop.clone());
        beats.push(tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let body = serde_json::json!({"resource_id": id, "owner_id": "ws-1"});
                let _ = client.post(format!("{url}/api/locks/heartbeat")).json(&body).send().await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    writer.acquire(&bed, "ws-2", 60).await;
    let got = stream.until("acquired", &bed, Duration::from_millis(1_500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for b in beats {
        let _ = b.await;
    }
    assert!(
        got.is_some(),
        "the other replica's acquire did not reach this replica's stream within 1.5 s while renewals flowed"
    );
    reader.stop().await;
    writer.stop().await;
}

/// A first page read by resource (no `after`) stops at the commit horizon like every other read of the log: a
/// reader that continues after the last event it was given never skips an event whose transaction committed late.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_first_page_by_resource_stops_at_the_commit_horizon() {
    let Some(db) = TestDb::holding_the_horizon().await else { return };
    let app = TestApp::spawn_with(&db, None).await;
    let bed = app.create_resource("bed", "Horizon 1").await;
    // A transaction takes an event id for the bed and stays open; meanwhile a grant commits with a higher id.
    let mut slow = PgConnection::connect(db.pg_url().unwrap()).await.unwrap();
    slow.execute("BEGIN").await.unwrap();
    let late_id: i64 = sqlx::query_scalar(
        "INSERT INTO events (at_ms, kind, resource_id, detail) VALUES (0, 'late_marker', $1::uuid, '{}') RETURNING id",
    )
    .bind(&bed)
    .fetch_one(&mut slow)
    .await
    .unwrap();
    assert_eq!(app.acquire(&bed, "ws-1", 30).await.status, StatusCode::OK);
    let ids = |page: &serde_json::Value| -> Vec<i64> {
        page["items"].as_array().unwrap().iter().map(|e| e["id"].as_i64().unwrap()).collect()
    };
    // Read while the late transaction is open (`get` would wait for the horizon to pass it).
    let first = ids(&app.send(app.client.get(format!("{}/api/events?resource_id={bed}&limit=2", app.url))).await.body);
    slow.execute("COMMIT").await.unwrap();
    // Follow on from the last event given, as a dashboard's analytics or any cursor does.
    let mut seen = first.clone();
    loop {
        let after = *seen.last().expect("the first page holds at least the resource's creation");
        let next = ids(&app.get(&format!("/api/events?resource_id={bed}&after={after}&limit=2")).await.body);
        if next.is_empty() {
            break;
        }
        seen.extend(next);
    }
    assert!(seen.contains(&late_id), "the late committer was skipped: first page {first:?}, everything read {seen:?}");
    app.stop().await;
}

/// An event whose transaction commits after one with a higher id still reaches a live stream, a cursor read and
/// a resumed stream — each exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_late_committing_event_reaches_the_stream_and_every_cursor() {
    let Some(db) = TestDb::holding_the_horizon().await else { return };
    let app = TestApp::spawn(&db).await;
    let bed = app.create_resource("bed", "Late 1").await;
    let before = app.get("/api/locks").await.body["last_event_id"].as_i64().unwrap();
    let mut live = Sse::open(
        app.request_as(reqwest::Method::GET, &format!("/api/events/stream?after={before}"), Some(&app.keys.viewer)),
        None,
    )
    .await;

    // A transaction takes an event id and stays open, as a slow reaper batch or any concurrent writer may.
    let mut slow = PgConnection::connect(db.pg_url().unwrap()).await.unwrap();
    slow.execute("BEGIN").await.unwrap();
    let late_id: i64 =
        sqlx::query_scalar("INSERT INTO events (at_ms, kind, detail) VALUES (0, 'late_marker', '{}') RETURNING id")
            .fetch_one(&mut slow)
            .await
            .unwrap();
    // Meanwhile a grant commits with a higher id.
    let granted = app.acquire(&bed, "ws-1", 30).await;
    assert_eq!(granted.status, StatusCode::OK, "{}", granted.body);
    tokio::time::sleep(Duration::from_millis(600)).await;
    slow.execute("COMMIT").await.unwrap();

    // (Other tests' transactions in the same cluster may hold the horizon back a moment, so `before` may be a little
    // older than the resource's creation: events before the two are allowed, nothing is allowed twice.)
    let mut got: Vec<(String, i64)> = vec![];
    let acquired_id = loop {
        let (kind, data) =
            live.next(Duration::from_secs(5)).await.unwrap_or_else(|| panic!("the stream stopped at {got:?}"));
        got.push((kind.clone(), data["id"].as_i64().unwrap()));
        if kind == "acquired" {
            break data["id"].as_i64().unwrap();
        }
    };
    assert!(live.next(Duration::from_millis(800)).await.is_none(), "nothing after: {got:?}");
    let ids: Vec<i64> = got.iter().map(|(_, id)| *id).collect();
    let late_at = ids
        .iter()
        .position(|i| *i == late_id)
        .unwrap_or_else(|| panic!("the late committer never reached the stream: {got:?}"));
    assert!(late_id < acquired_id && late_at < ids.len() - 1, "commit order (by transaction), not id order: {got:?}");
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "nothing twice: {got:?}");

    // A cursor read from before both returns what the stream did, in the same order; one resumed after the late
    // committer returns the grant and nothing else.
    let page = app.get(&format!("/api/events?after={before}")).await.body;
    let paged: Vec<i64> = page["items"].as_array().unwrap().iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert_eq!(paged, ids, "cursor order is commit order");
    let mut resumed =
        Sse::open(app.request_as(reqwest::Method::GET, "/api/events/stream", Some(&app.keys.viewer)), Some(late_id))
            .await;
    let (_, next) = resumed.next(Duration::from_secs(3)).await.expect("the grant");
    assert_eq!(next["id"].as_i64(), Some(acquired_id));
    assert!(resumed.next(Duration::from_millis(500)).await.is_none());
}
