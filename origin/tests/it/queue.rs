//! The wait queue on both stores (`wait_seconds`, `hhs_core::queue`): twenty waiters across two replicas are
//! granted in arrival order, one at a time, each with the next token; a waiter whose request went away is
//! skipped; a wait that ends says so with its place; a lock-delay's end hands over; bad waits are refused. A
//! waiter is answered only with the hold it was handed, and a hand-over its request never takes (its replica
//! died) frees the bed within seconds; so does one answered to a client that is gone (a connection that died
//! unnoticed), at its pickup deadline.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use hhs_core::lease::AcquireCmd;
use hhs_core::{HoldId, Millis, OwnerId, Principal, ResourceId, Ttl, TtlBounds, WaiterId};
use hhs_origin::store::rows::{arguments, Arg};
use hhs_origin::store::{Actor, WaitStatus, Waited};

use crate::support::{Backend, Reply, TestApp, TestDb};

both_stores!(
    twenty_waiters_across_two_replicas_are_granted_in_arrival_order,
    a_waiter_that_went_away_is_skipped,
    a_wait_that_ends_is_refused_with_its_place_and_recorded,
    the_end_of_a_lock_delay_hands_over_to_the_first_waiter,
    bad_waits_are_refused,
    a_waiter_whose_hold_ended_is_not_answered_with_the_next_holders,
    a_hand_over_its_waiter_never_takes_frees_the_bed_within_seconds,
    a_hand_over_answered_to_no_one_lapses_at_its_pickup_deadline,
);

/// A waiter queued straight in the store, as the client key's principal (`clinic-north`): a request whose
/// replica then dies — nothing polls for it, nothing ends it.
async fn silent_waiter(app: &TestApp, resource: &str, owner: &str) -> WaiterId {
    let id = WaiterId(uuid::Uuid::now_v7());
    let cmd = AcquireCmd {
        principal: Principal::parse("clinic-north").unwrap(),
        owner: OwnerId::parse(owner).unwrap(),
        ttl: Ttl::from_seconds(30, &TtlBounds::HARD).unwrap(),
        new_hold_id: HoldId(uuid::Uuid::now_v7()),
    };
    let rid = ResourceId(resource.parse().unwrap());
    let queued = app.store.acquire_or_wait(rid, cmd, Some((id, Millis(30_000))), &Actor::system("test")).await.unwrap();
    assert!(matches!(queued, Waited::Queued { .. }), "the resource is held: the request queues");
    id
}

/// Runs one statement on the test's database, `$1`... bound to `args`.
async fn exec_sql(db: &TestDb, statement: &str, args: Vec<Arg>) {
    use hhs_origin::store::dialect::Dialect;
    match db.backend {
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(db.pg_url().unwrap()).await.unwrap();
            sqlx::query_with(statement, arguments::<sqlx::Postgres>(args).unwrap()).execute(&pool).await.unwrap();
            pool.close().await;
        }
        Backend::Sqlite => {
            let pool =
                sqlx::SqlitePool::connect(&format!("sqlite://{}", db.sqlite_path().unwrap().display())).await.unwrap();
            sqlx::query_with(&sqlx::Sqlite::sql(statement), arguments::<sqlx::Sqlite>(args).unwrap())
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
    }
}

fn acquire_body(resource: &str, owner: &str, wait: u32) -> Value {
    json!({"resource_id": resource, "owner_id": owner, "ttl_seconds": 30, "wait_seconds": wait})
}

/// An acquire that may wait, as the client key's principal, on its own connection.
async fn waiting_acquire(url: String, key: String, resource: String, owner: String, wait: u32) -> (Reply, Instant) {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    let resp = http
        .post(format!("{url}/api/locks/acquire"))
        .bearer_auth(key)
        .json(&acquire_body(&resource, &owner, wait))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.json().await.unwrap_or(Value::Null);
    (Reply { status, body, headers }, Instant::now())
}

async fn queue_length(app: &TestApp, resource: &str) -> u64 {
    app.get(&format!("/api/locks/{resource}")).await.body["queue_length"].as_u64().unwrap_or(0)
}

/// The resource's events of one kind, oldest first.
async fn events_of(app: &TestApp, resource: &str, kind: &str) -> Vec<Value> {
    let all = app.get(&format!("/api/events?resource_id={resource}&limit=1000")).await.body;
    all["items"].as_array().unwrap().iter().filter(|e| e["kind"] == kind).cloned().collect()
}

async fn until_queued(app: &TestApp, resource: &str, n: u64) {
    let start = Instant::now();
    while queue_length(app, resource).await != n {
        assert!(start.elapsed() < Duration::from_secs(10), "the queue never reached {n}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn twenty_waiters_across_two_replicas_are_granted_in_arrival_order(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let (a, other) = (TestApp::spawn(&db).await, TestApp::spawn(&db).await);
    let bed = a.create_resource("bed", "Queue bed").await;
    let first = a
        .post_as(
            &a.keys.client,
            "/api/locks/acquire",
            json!({"resource_id": bed, "owner_id": "holder", "ttl_seconds": 30}),
        )
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let mut waiting = vec![];
    for i in 0..20u64 {
        // Alternate replicas; each joins only once the one before it is in the queue, so arrival order is known.
        let app = if i % 2 == 0 { &a } else { &other };
        waiting.push(tokio::spawn(waiting_acquire(
            app.url.clone(),
            app.keys.client.clone(),
            bed.clone(),
            format!("waiter-{i:02}"),
            30,
        )));
        until_queued(&a, &bed, i + 1).await;
    }
    let listed = a.get(&format!("/api/locks/{bed}")).await.body;
    assert_eq!(listed["queue_length"], 20, "{listed}");
    // Each waiter, once granted, holds for a moment and releases through the other replica.
    assert_eq!(
        a.post_as(&a.keys.client, "/api/locks/release", json!({"resource_id": bed, "owner_id": "holder"})).await.status,
        StatusCode::OK
    );
    let mut token = first.body["fencing_token"].as_u64().unwrap();
    for (i, w) in waiting.into_iter().enumerate() {
        let (reply, _) = w.await.unwrap();
        assert_eq!(reply.status, StatusCode::OK, "waiter {i}: {}", reply.body);
        assert_eq!(reply.body["owner_id"], format!("waiter-{i:02}"), "granted in arrival order");
        token += 1;
        assert_eq!(reply.body["fencing_token"], token, "the next token, one grant at a time");
        tokio::time::sleep(Duration::from_millis(30)).await;
        let releaser = if i % 2 == 0 { &other } else { &a };
        let r = releaser
            .post_as(
                &releaser.keys.client,
                "/api/locks/release",
                json!({"resource_id": bed, "owner_id": format!("waiter-{i:02}")}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    assert_eq!(queue_length(&a, &bed).await, 0);
    // The log: acquired and released alternate (never two holds at once), the grants by the queue.
    let kinds: Vec<String> =
        a.event_kinds(&bed).await.into_iter().filter(|k| k == "acquired" || k == "released").collect();
    assert_eq!(kinds.len(), 42);
    assert!(kinds.chunks(2).all(|p| p == ["acquired", "released"]), "{kinds:?}");
    assert_eq!(events_of(&a, &bed, "queued").await.len(), 20, "each join is in the audit trail");
    a.stop().await;
    other.stop().await;
}

async fn a_waiter_that_went_away_is_skipped(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let bed = app.create_resource("bed", "Skip bed").await;
    assert_eq!(
        app.post_as(
            &app.keys.client,
            "/api/locks/acquire",
            json!({"resource_id": bed, "owner_id": "holder", "ttl_seconds": 30})
        )
        .await
        .status,
        StatusCode::OK
    );
    let gone = tokio::spawn(waiting_acquire(app.url.clone(), app.keys.client.clone(), bed.clone(), "gone".into(), 30));
    until_queued(&app, &bed, 1).await;
    let stays =
        tokio::spawn(waiting_acquire(app.url.clone(), app.keys.client.clone(), bed.clone(), "stays".into(), 30));
    until_queued(&app, &bed, 2).await;
    // The first waiter's client goes away (its connection closes): it leaves the queue.
    gone.abort();
    until_queued(&app, &bed, 1).await;
    let released =
        app.post_as(&app.keys.client, "/api/locks/release", json!({"resource_id": bed, "owner_id": "holder"})).await;
    assert_eq!(released.status, StatusCode::OK);
    let (reply, _) = stays.await.unwrap();
    assert_eq!((reply.status, reply.body["owner_id"].as_str()), (StatusCode::OK, Some("stays")), "{}", reply.body);
    let ended = &events_of(&app, &bed, "wait_ended").await[0];
    assert_eq!(
        (ended["owner_id"].as_str(), ended["detail"]["ended"].as_str()),
        (Some("gone"), Some("gone")),
        "{ended}"
    );
    app.stop().await;
}

async fn a_wait_that_ends_is_refused_with_its_place_and_recorded(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let bed = app.create_resource("bed", "Busy bed").await;
    assert_eq!(
        app.post_as(
            &app.keys.client,
            "/api/locks/acquire",
            json!({"resource_id": bed, "owner_id": "holder", "ttl_seconds": 60})
        )
        .await
        .status,
        StatusCode::OK
    );
    let started = Instant::now();
    let (reply, _) = waiting_acquire(app.url.clone(), app.keys.client.clone(), bed.clone(), "patient".into(), 1).await;
    assert!(started.elapsed() >= Duration::from_millis(900), "it waited its second");
    assert_eq!(
        (reply.status, reply.body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("lock_held")),
        "{}",
        reply.body
    );
    assert_eq!(reply.body["error"]["queue_position"], 1);
    assert_eq!(reply.body["error"]["holder"], "holder");
    assert_eq!(queue_length(&app, &bed).await, 0, "it left the queue");
    let ended = &events_of(&app, &bed, "wait_ended").await[0];
    assert_eq!(ended["detail"]["ended"], "timed_out", "{ended}");
    // While others queue, a newcomer without a wait is refused even if the resource is free at that moment:
    // here it is simply held.
    let plain = app
        .post_as(
            &app.keys.client,
            "/api/locks/acquire",
            json!({"resource_id": bed, "owner_id": "newcomer", "ttl_seconds": 5}),
        )
        .await;
    assert_eq!(plain.code(), "lock_held");
    app.stop().await;
}

async fn the_end_of_a_lock_delay_hands_over_to_the_first_waiter(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    // or-room: a 2 s lock-delay in the tests. Its holder vanishes; the waiter gets it once the delay is over.
    let room = app.create_resource("or-room", "Queue OR").await;
    assert_eq!(
        app.post_as(
            &app.keys.client,
            "/api/locks/acquire",
            json!({"resource_id": room, "owner_id": "vanished", "ttl_seconds": 1})
        )
        .await
        .status,
        StatusCode::OK
    );
    let (reply, _) = waiting_acquire(app.url.clone(), app.keys.client.clone(), room.clone(), "next".into(), 10).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["owner_id"], "next");
    let expired = events_of(&app, &room, "expired").await.pop().expect("the lapse was recorded");
    let delay_until: chrono::DateTime<chrono::Utc> =
        expired["detail"]["lock_delay_until"].as_str().unwrap().parse().unwrap();
    let acquired: chrono::DateTime<chrono::Utc> = reply.body["created_at"].as_str().unwrap().parse().unwrap();
    assert!(acquired >= delay_until, "granted at {acquired}, before the lock-delay's end {delay_until}");
    app.stop().await;
}

async fn bad_waits_are_refused(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let bed = app.create_resource("bed", "Wait rules").await;
    let send =
        |body: Value| app.send(app.request_as(Method::POST, "/api/locks/acquire", Some(&app.keys.client)).json(&body));
    let long = send(acquire_body(&bed, "a", 31)).await;
    assert_eq!((long.status, long.code()), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"));
    let s = app.post_as(&app.keys.client, "/api/sessions", json!({"owner_id": "a", "ttl_seconds": 30})).await;
    let with_session =
        send(json!({"resource_id": bed, "owner_id": "a", "session_id": s.body["id"], "wait_seconds": 5})).await;
    assert_eq!((with_session.status, with_session.code()), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"));
    // A free resource with a wait: granted at once, no queue.
    let free = send(acquire_body(&bed, "a", 30)).await;
    assert_eq!((free.status, free.body["queue_length"].as_u64()), (StatusCode::OK, None), "{}", free.body);
    app.stop().await;
}

/// The bed is handed to a waiter whose request has not taken it yet; that hold ends (released) and the bed goes to
/// someone else. The waiter's poll — and its end at the deadline — must not answer with the other holder's hold.
async fn a_waiter_whose_hold_ended_is_not_answered_with_the_next_holders(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn_with(&db, None).await;
    let bed = app.create_resource("bed", "Handed bed").await;
    assert_eq!(app.acquire(&bed, "holder", 30).await.status, StatusCode::OK);
    let waiter = silent_waiter(&app, &bed, "waiter").await;
    assert_eq!(app.release(&bed, "holder").await.status, StatusCode::OK);
    let handed = events_of(&app, &bed, "acquired").await.pop().unwrap();
    assert_eq!(handed["owner_id"], "waiter", "handed over to the waiter: {handed}");
    // Its hold ends before its request is answered, and the bed is granted again.
    let ended =
        app.post_as(&app.keys.client, "/api/locks/release", json!({"resource_id": bed, "owner_id": "waiter"})).await;
    assert_eq!(ended.status, StatusCode::OK, "{}", ended.body);
    let other = app.acquire(&bed, "other", 30).await;
    assert_eq!(other.status, StatusCode::OK, "{}", other.body);
    let polled = app.store.poll_wait(waiter).await.unwrap();
    let ended = app.store.end_wait(waiter, false, &Actor::system("test")).await.unwrap();
    for (what, answer) in [("its poll", polled), ("its end", ended)] {
        match answer {
            WaitStatus::Ended { .. } => {}
            WaitStatus::Granted(applied) => {
                let hold = applied.outcome.lease.hold.unwrap();
                panic!(
                    "{what} answered the waiter with {}'s hold, token {} (the other holder's is {})",
                    hold.owner.as_str(),
                    hold.token.0,
                    other.body["fencing_token"]
                );
            }
            WaitStatus::Waiting { position } => panic!("{what}: still waiting at {position}"),
        }
    }
    app.stop().await;
}

/// The bed is handed to a waiter whose replica died (nothing will ever poll for it or end it). Within a few
/// seconds — not the hold's 30 s TTL — the hand-over is given back, with no lock-delay (or-room has 2 s: nobody
/// used the hold), and the next waiter gets the bed; the log says why.
async fn a_hand_over_its_waiter_never_takes_frees_the_bed_within_seconds(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let room = app.create_resource("or-room", "Dead replica OR").await;
    assert_eq!(app.acquire(&room, "holder", 30).await.status, StatusCode::OK);
    let dead = silent_waiter(&app, &room, "dead-replica").await;
    let next = tokio::spawn(waiting_acquire(app.url.clone(), app.keys.client.clone(), room.clone(), "next".into(), 15));
    until_queued(&app, &room, 2).await;
    // It proved it was there until a moment ago (so the hand-over goes to it), then its replica died.
    exec_sql(
        &db,
        "UPDATE waiters SET alive_until_ms = alive_until_ms + 10000 WHERE id = $1",
        vec![Arg::Uuid(Some(dead.0))],
    )
    .await;
    let released = Instant::now();
    assert_eq!(app.release(&room, "holder").await.status, StatusCode::OK);
    let handed = events_of(&app, &room, "acquired").await;
    assert_eq!(handed.last().unwrap()["owner_id"], "dead-replica", "handed over to the first waiter");
    let (reply, answered) = next.await.unwrap();
    assert_eq!(reply.status, StatusCode::OK, "the next waiter never got the bed: {}", reply.body);
    assert_eq!(reply.body["owner_id"], "next");
    let took = answered.duration_since(released);
    assert!(took < Duration::from_secs(6), "the abandoned hand-over kept the bed for {took:?}");
    let ended = events_of(&app, &room, "wait_ended").await;
    let why = ended.iter().find(|e| e["owner_id"] == "dead-replica").expect("the abandoned hand-over is in the log");
    assert_eq!(why["detail"]["ended"], "not_delivered", "{why}");
    let given_back = events_of(&app, &room, "released")
        .await
        .into_iter()
        .find(|e| e["owner_id"] == "dead-replica")
        .expect("its hold was released");
    let (back_at, granted): (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) = (
        given_back["at"].as_str().unwrap().parse().unwrap(),
        reply.body["created_at"].as_str().unwrap().parse().unwrap(),
    );
    assert!(
        granted - back_at < chrono::Duration::milliseconds(1_500),
        "a lock-delay after a hold nobody used: given back {back_at}, granted {granted}"
    );
    // Its request, were it to come back after all, is told its wait ended.
    assert!(matches!(app.store.poll_wait(dead).await.unwrap(), WaitStatus::Ended { .. }));
    app.stop().await;
}

/// A waiting acquire of a long hold (`ttl` seconds), as the client key's principal, on its own connection.
async fn long_waiting_acquire(url: String, key: String, resource: String, owner: String, ttl: u32) -> Reply {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    let body = json!({"resource_id": resource, "owner_id": owner, "ttl_seconds": ttl, "wait_seconds": 30});
    let resp = http.post(format!("{url}/api/locks/acquire")).bearer_auth(key).json(&body).send().await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    Reply { status, headers, body: resp.json().await.unwrap_or(Value::Null) }
}

fn instant(v: &Value) -> chrono::DateTime<chrono::Utc> {
    v.as_str().unwrap().parse().unwrap()
}

/// The origin writes a hand-over's answer and counts it delivered, but the client is gone (its connection died
/// unnoticed: here, a client that never renews). The hold lapses at its pickup deadline (a third of its 33 s TTL
/// and 10 s: 21 s), not after its TTL — longer than the next waiter's 30 s wait — and the next waiter gets the bed
/// once the lock-delay after it ends.
async fn a_hand_over_answered_to_no_one_lapses_at_its_pickup_deadline(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let room = app.create_resource("or-room", "Gone client OR").await;
    assert_eq!(app.acquire(&room, "holder", 30).await.status, StatusCode::OK);
    let (url, key) = (app.url.clone(), app.keys.client.clone());
    let gone = tokio::spawn(long_waiting_acquire(url.clone(), key.clone(), room.clone(), "gone".into(), 33));
    until_queued(&app, &room, 1).await;
    assert_eq!(app.release(&room, "holder").await.status, StatusCode::OK);
    let handed = gone.await.unwrap();
    assert_eq!(handed.status, StatusCode::OK, "{}", handed.body);
    assert_eq!(handed.body["ttl_seconds"], 33);
    let window = instant(&handed.body["expires_at"]) - instant(&handed.body["created_at"]);
    assert_eq!(window.num_milliseconds(), 21_000, "answered with its pickup deadline");
    let view: hhs_core::wire::LockView = serde_json::from_value(handed.body.clone()).unwrap();
    assert!(view.awaits_pickup(), "the answer says it must be renewed at once");
    // Nobody renews it. The next waiter is served once it lapses and the OR's 2 s lock-delay ends.
    let next = long_waiting_acquire(url, key, room.clone(), "next".into(), 30).await;
    assert_eq!(next.status, StatusCode::OK, "the bed stayed with a client that is gone: {}", next.body);
    assert_eq!(next.body["owner_id"], "next");
    let lapsed = events_of(&app, &room, "expired").await;
    assert!(lapsed.iter().any(|e| e["owner_id"] == "gone"), "the unrenewed hand-over lapsed: {lapsed:?}");
    let after = instant(&next.body["created_at"]) - instant(&handed.body["created_at"]);
    assert!(after.num_milliseconds() >= 21_000, "granted again {after} after the hand-over");
    app.stop().await;
}
