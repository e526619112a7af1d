//! The lease guard against a real origin.

use std::time::Duration;

use hhs_client::{Client, ClientError, Lease, Lost};
use hhs_core::ErrorCode;
use serde_json::json;

use crate::support::Origin;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guard_keeps_a_hold_alive_past_several_ttls_and_releases() {
    let origin = Origin::start().await;
    let bed = origin.bed("Guard 1").await;
    let client = Client::new(&origin.url, &origin.client);
    let guard = Lease::acquire(&client, &bed, "ws-1", Duration::from_secs(1)).await.unwrap();
    let token = guard.fencing_token();
    assert!(token >= 1);
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let lock = origin.lock(&bed).await;
    assert_eq!(lock["status"], "HELD", "three and a half TTLs later: {lock}");
    assert_eq!(lock["fencing_token"], token);
    assert!(guard.lost().borrow().is_none());
    // Someone else is refused meanwhile, with the code (409 is an answer, not retried).
    let other = Lease::acquire(&client, &bed, "ws-2", Duration::from_secs(5)).await.err().unwrap();
    assert_eq!(other.code(), Some(ErrorCode::LockHeld));
    let released = guard.release().await.unwrap();
    assert_eq!(released.status, hhs_core::LockStatus::Released);
    assert_eq!(origin.lock(&bed).await["status"], "RELEASED");
    origin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_hold_fires_the_signal_within_one_heartbeat_period() {
    let origin = Origin::start().await;
    let bed = origin.bed("Guard 2").await;
    let client = Client::new(&origin.url, &origin.client);
    let guard = Lease::acquire(&client, &bed, "ws-1", Duration::from_secs(3)).await.unwrap();
    let forced = std::time::Instant::now();
    origin
        .send(
            "POST",
            "/api/locks/force-release",
            &origin.admin,
            Some(json!({"resource_id": bed, "reason": "bed needed for an emergency"})),
        )
        .await;
    let lost = tokio::time::timeout(Duration::from_secs(3), guard.until_lost())
        .await
        .expect("lost within a heartbeat period (1 s) and some");
    assert!(forced.elapsed() <= Duration::from_millis(1_500), "signalled after {:?}", forced.elapsed());
    match lost {
        Lost::Refused(e) => assert_eq!(e.code, ErrorCode::NotHolder, "{e:?}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    origin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_guard_releases() {
    let origin = Origin::start().await;
    let bed = origin.bed("Guard 3").await;
    let client = Client::new(&origin.url, &origin.client);
    let guard = Lease::acquire(&client, &bed, "ws-1", Duration::from_secs(30)).await.unwrap();
    drop(guard);
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while origin.lock(&bed).await["status"] != "RELEASED" {
        assert!(std::time::Instant::now() < deadline, "not released after drop: {}", origin.lock(&bed).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    origin.stop().await;
}

/// A proxy in front of the origin that answers the first `n` requests `503 database_unavailable` (as the origin
/// does during a failover), then forwards.
async fn flaky_proxy(origin: String, n: usize) -> String {
    use axum::body::Bytes;
    use axum::extract::Request;
    use axum::response::{IntoResponse, Response};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let seen = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new().fallback(move |req: Request| {
        let (seen, origin) = (seen.clone(), origin.clone());
        async move {
            if seen.fetch_add(1, Ordering::SeqCst) < n {
                let body = r#"{"error":{"code":"database_unavailable","message":"the database is unavailable; retry shortly"}}"#;
                return (http::StatusCode::SERVICE_UNAVAILABLE, [("retry-after", "0")], body).into_response();
            }
            let (parts, body) = req.into_parts();
            let bytes: Bytes = axum::body::to_bytes(body, 1 << 16).await.unwrap_or_default();
            let mut fwd = reqwest::Client::new().request(parts.method, format!("{origin}{}", parts.uri)).body(bytes);
            for (k, v) in &parts.headers {
                fwd = fwd.header(k, v);
            }
            let r = fwd.send().await.unwrap();
            let status = r.status();
            let body = r.bytes().await.unwrap_or_default();
            Response::builder().status(status).header("content-type", "application/json").body(axum::body::Body::from(body)).unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_503s_is_ridden_out_and_409_is_not_retried() {
    let origin = Origin::start().await;
    let bed = origin.bed("Guard 4").await;
    let client = Client::new(&flaky_proxy(origin.url.clone(), 3).await, &origin.client);
    let guard =
        Lease::acquire(&client, &bed, "ws-1", Duration::from_secs(30)).await.expect("acquired after three 503s");
    assert_eq!(origin.lock(&bed).await["status"], "HELD");
    // A refusal comes back at once, not after the retries' backoff.
    let started = std::time::Instant::now();
    let err = Lease::acquire(&client, &bed, "ws-2", Duration::from_secs(30)).await.err().unwrap();
    assert!(matches!(&err, ClientError::Api { status: 409, .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_millis(500));
    guard.release().await.unwrap();
    origin.stop().await;
}

/// A session guard keeps every hold taken under it alive with its keepalives alone, says so the moment the
/// session is ended under it, and closing releases the holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_guard_keeps_its_holds_alive_and_closing_releases_them() {
    let origin = Origin::start().await;
    let (a, b) = (origin.bed("Session 1").await, origin.bed("Session 2").await);
    let client = Client::new(&origin.url, &origin.client);
    let session = hhs_client::SessionGuard::open(&client, "ward-7", Duration::from_secs(1)).await.unwrap();
    for bed in [&a, &b] {
        let held = session.acquire(bed).await.unwrap();
        assert_eq!(held.session_id, Some(session.view().id));
    }
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    for bed in [&a, &b] {
        assert_eq!(origin.lock(bed).await["status"], "HELD", "three and a half TTLs later, by keepalives alone");
    }
    assert!(session.lost().borrow().is_none());
    let closed = session.close().await.unwrap();
    assert_eq!(closed.status, "CLOSED");
    for bed in [&a, &b] {
        assert_eq!(origin.lock(bed).await["status"], "RELEASED");
    }

    // Ended under the guard (here: closed through the API with the same key): lost within a keepalive period.
    let session = hhs_client::SessionGuard::open(&client, "ward-7", Duration::from_secs(3)).await.unwrap();
    let path = format!("/api/sessions/{}", session.view().id);
    let ended = std::time::Instant::now();
    origin.send("DELETE", &path, &origin.client, None).await;
    let lost = tokio::time::timeout(Duration::from_secs(3), session.until_lost())
        .await
        .expect("lost within a keepalive period and some");
    assert!(ended.elapsed() <= Duration::from_millis(1_500), "signalled after {:?}", ended.elapsed());
    assert!(matches!(lost, Lost::Refused(ref e) if e.code == ErrorCode::SessionEnded), "{lost:?}");
    origin.stop().await;
}

/// A group guard holds all its resources or none, keeps them with one heartbeat each round, and releases them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_group_guard_holds_all_or_none_and_releases_them_together() {
    let origin = Origin::start().await;
    let (a, b, c) = (origin.bed("Group 1").await, origin.bed("Group 2").await, origin.bed("Group 3").await);
    let client = Client::new(&origin.url, &origin.client);
    // c is held elsewhere: refused, naming it; nothing held.
    let other = Lease::acquire(&client, &c, "icu", Duration::from_secs(30)).await.unwrap();
    let refused =
        hhs_client::GroupGuard::acquire(&client, &[&a, &b, &c], "theatre", Duration::from_secs(1)).await.err().unwrap();
    match refused {
        ClientError::Api { error, .. } => {
            assert_eq!(error.code, ErrorCode::GroupBlocked);
            assert_eq!(error.blocked.len(), 1);
            assert_eq!(error.blocked[0].resource_id.to_string(), c);
        }
        e => panic!("{e:?}"),
    }
    assert_eq!(origin.lock(&a).await["status"], "FREE");
    other.release().await.unwrap();
    let group =
        hhs_client::GroupGuard::acquire(&client, &[&a, &b, &c], "theatre", Duration::from_secs(1)).await.unwrap();
    assert_eq!(group.view().holds.len(), 3);
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    for bed in [&a, &b, &c] {
        assert_eq!(origin.lock(bed).await["status"], "HELD", "three and a half TTLs later");
    }
    assert!(group.lost().borrow().is_none());
    let released = group.release().await.unwrap();
    assert_eq!(released.holds.len(), 3);
    for bed in [&a, &b, &c] {
        assert_eq!(origin.lock(bed).await["status"], "RELEASED");
    }
    origin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_waiting_client_is_served_in_turn_before_one_that_asks_again() {
    let origin = Origin::start().await;
    let bed = origin.bed("Guard 6").await;
    let client = Client::new(&origin.url, &origin.client);
    let holder = Lease::acquire(&client, &bed, "ws-1", Duration::from_secs(30)).await.unwrap();
    // ws-2 waits in the server's queue, with a TTL (1 s) far shorter than its wait.
    let waiting = {
        let (client, bed) = (client.clone(), bed.clone());
        tokio::spawn(async move {
            Lease::acquire_waiting(&client, &bed, "ws-2", Duration::from_secs(1), Duration::from_secs(20)).await
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    // ws-3 only asks again: it is told others wait, and never overtakes ws-2.
    let asked = Lease::acquire(&client, &bed, "ws-3", Duration::from_secs(5)).await.err().unwrap();
    assert_eq!(asked.code(), Some(ErrorCode::LockHeld));
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    holder.release().await.unwrap();
    let guard =
        tokio::time::timeout(Duration::from_secs(10), waiting).await.expect("granted once released").unwrap().unwrap();
    assert_eq!(guard.view().owner_id.as_deref(), Some("ws-2"));
    assert_eq!(guard.fencing_token(), 2);
    // Three seconds of waiting did not count against its 1-second TTL: the guard keeps it, renewed.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(guard.lost().borrow().is_none(), "{:?}", guard.lost().borrow());
    let lock = origin.lock(&bed).await;
    assert_eq!((lock["status"].as_str(), lock["owner_id"].as_str()), (Some("HELD"), Some("ws-2")), "{lock}");
    guard.release().await.unwrap();
    origin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hand_over_is_renewed_at_once_onto_its_own_ttl() {
    let origin = Origin::start().await;
    let bed = origin.bed("Guard 6b").await;
    let client = Client::new(&origin.url, &origin.client);
    let holder = Lease::acquire(&client, &bed, "ws-1", Duration::from_secs(30)).await.unwrap();
    // ws-2 waits for a 300 s hold: handed over, it lasts only until its pickup deadline (110 s) unless renewed.
    let waiting = {
        let (client, bed) = (client.clone(), bed.clone());
        tokio::spawn(async move {
            Lease::acquire_waiting(&client, &bed, "ws-2", Duration::from_secs(300), Duration::from_secs(20)).await
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    holder.release().await.unwrap();
    let guard =
        tokio::time::timeout(Duration::from_secs(10), waiting).await.expect("granted once released").unwrap().unwrap();
    assert!(guard.view().awaits_pickup(), "the hand-over's answer: {:?}", guard.view());
    assert!(guard.lost().borrow().is_none(), "{:?}", guard.lost().borrow());
    let lock = origin.lock(&bed).await;
    assert_eq!((lock["status"].as_str(), lock["owner_id"].as_str()), (Some("HELD"), Some("ws-2")), "{lock}");
    let expires: chrono::DateTime<chrono::Utc> = lock["expires_at"].as_str().unwrap().parse().unwrap();
    assert!(expires - chrono::Utc::now() > chrono::Duration::seconds(200), "renewed onto its own 300 s TTL: {lock}");
    guard.release().await.unwrap();
    origin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_that_runs_out_returns_the_refusal() {
    let origin = Origin::start().await;
    let bed = origin.bed("Guard 7").await;
    let client = Client::new(&origin.url, &origin.client);
    let _holder = Lease::acquire(&client, &bed, "ws-1", Duration::from_secs(30)).await.unwrap();
    let started = std::time::Instant::now();
    let refused = Lease::acquire_waiting(&client, &bed, "ws-2", Duration::from_secs(5), Duration::from_millis(1_500))
        .await
        .err()
        .unwrap();
    assert_eq!(refused.code(), Some(ErrorCode::LockHeld));
    assert!((1_400..6_000).contains(&started.elapsed().as_millis()), "gave up after {:?}", started.elapsed());
    origin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booked_hold_needs_no_heartbeats_and_outlives_its_guard() {
    let origin = Origin::start().await;
    let bed = origin.bed("Guard 8").await;
    let client = Client::new(&origin.url, &origin.client);
    let mut guard = Lease::acquire(&client, &bed, "ws-1", Duration::from_secs(1)).await.unwrap();
    // A booking's end must be ahead: refused, and the guard goes on renewing.
    let past = guard.book(chrono::Utc::now() - chrono::Duration::seconds(5)).await.err().unwrap();
    assert_eq!(past.code(), Some(ErrorCode::ValidationFailed), "{past:?}");
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(origin.lock(&bed).await["status"], "HELD", "still renewed after the refusal");
    let booked = guard.book(chrono::Utc::now() + chrono::Duration::seconds(4)).await.unwrap();
    assert_eq!((booked.status, booked.fencing_token), (hhs_core::LockStatus::Booked, Some(guard.fencing_token())));
    // Past its 1-second TTL with no heartbeat, and its guard dropped: still booked.
    drop(guard);
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    assert_eq!(origin.lock(&bed).await["status"], "BOOKED");
    // It ends at its time, completed (no lock-delay: a planned end).
    let deadline = std::time::Instant::now() + Duration::from_secs(6);
    while origin.lock(&bed).await["status"] != "COMPLETED" {
        assert!(std::time::Instant::now() < deadline, "not completed: {}", origin.lock(&bed).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    origin.stop().await;
}

/// A member force-released by an administrator (and taken by another principal) makes the group guard lost: a
/// group that is not whole must not be renewed as one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_group_guard_is_lost_when_a_member_is_force_released() {
    let origin = Origin::start().await;
    let (a, b, c) = (origin.bed("Group 4").await, origin.bed("Group 5").await, origin.bed("Group 6").await);
    let client = Client::new(&origin.url, &origin.client);
    let group =
        hhs_client::GroupGuard::acquire(&client, &[&a, &b, &c], "theatre", Duration::from_secs(2)).await.unwrap();
    let forced = origin
        .send(
            "POST",
            "/api/locks/force-release",
            &origin.admin,
            Some(json!({"resource_id": b, "reason": "needed elsewhere"})),
        )
        .await;
    assert_eq!(forced["status"], "FORCE_RELEASED", "{forced}");
    let taken = origin
        .send(
            "POST",
            "/api/locks/acquire",
            &origin.admin,
            Some(json!({"resource_id": b, "owner_id": "icu", "ttl_seconds": 60})),
        )
        .await;
    assert_eq!(taken["status"], "HELD", "{taken}");
    let lost = tokio::time::timeout(Duration::from_millis(1_500), group.until_lost())
        .await
        .expect("lost within a heartbeat period and some");
    match lost {
        Lost::Refused(e) => {
            assert_eq!(e.code, ErrorCode::GroupBlocked, "{e:?}");
            let named: Vec<String> = e.blocked.iter().map(|m| m.resource_id.to_string()).collect();
            assert_eq!(named, std::slice::from_ref(&b), "{e:?}");
        }
        other => panic!("{other:?}"),
    }
    origin.stop().await;
}

/// A hold of a session force-released under it, while the session lives on, is reported by the session guard
/// (from the keepalive's answer, which names every hold it renewed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_guard_reports_a_hold_it_no_longer_has() {
    let origin = Origin::start().await;
    let (a, b) = (origin.bed("Session 3").await, origin.bed("Session 4").await);
    let client = Client::new(&origin.url, &origin.client);
    let session = hhs_client::SessionGuard::open(&client, "ward-7", Duration::from_secs(1)).await.unwrap();
    let _kept = session.acquire(&a).await.unwrap();
    let gone = session.acquire(&b).await.unwrap();
    let mut lost_holds = session.lost_holds();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(lost_holds.borrow().is_empty(), "{:?}", lost_holds.borrow());
    let forced = origin
        .send(
            "POST",
            "/api/locks/force-release",
            &origin.admin,
            Some(json!({"resource_id": b, "reason": "bed needed"})),
        )
        .await;
    assert_eq!(forced["status"], "FORCE_RELEASED", "{forced}");
    tokio::time::timeout(Duration::from_millis(1_500), lost_holds.wait_for(|l| !l.is_empty()))
        .await
        .expect("reported within a keepalive period and some")
        .unwrap();
    let lost = lost_holds.borrow().clone();
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert_eq!((lost[0].resource_id, Some(lost[0].fencing_token)), (gone.resource_id, gone.fencing_token));
    // The session and its other hold are still good.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(session.lost().borrow().is_none());
    assert_eq!(origin.lock(&a).await["status"], "HELD");
    assert_eq!(session.lost_holds().borrow().len(), 1);
    origin.stop().await;
}
