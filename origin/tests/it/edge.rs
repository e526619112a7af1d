//! The edge Worker, for real: `wrangler dev` running the built Worker (started by `cargo xtask test`, told to
//! forward to HHS_TEST_EDGE_ORIGIN_PORT) in front of an origin these tests start and stop on that port. The
//! tests take turns (one origin port), each with a fresh SQLite origin.

use std::time::{Duration, Instant};

use crate::support::edge::{edge, origin, Edge, TURN};
use crate::support::{Reply, TestApp};
use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// A request to the edge with `key` (None: no Authorization). Takes the app only to read like `to_origin`.
fn to_edge(_app: &TestApp, edge: &Edge, method: Method, path: &str, key: Option<&str>) -> reqwest::RequestBuilder {
    let req = reqwest::Client::new().request(method, format!("{}{path}", edge.url)).timeout(Duration::from_secs(30));
    match key {
        Some(k) => req.header("authorization", format!("Bearer {k}")),
        None => req,
    }
}

fn to_origin(app: &TestApp, method: Method, path: &str, key: Option<&str>) -> reqwest::RequestBuilder {
    app.request_as(method, path, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invalid_requests_are_answered_at_the_edge_exactly_as_the_origin_would() {
    let Some(edge) = edge() else { return };
    let _turn = TURN.lock().await;
    let (_db, app) = origin(&edge).await;
    let id = app.create_resource("bed", "B1").await;
    let admin = app.keys.admin.clone();
    let client = app.keys.client.clone();
    let big = format!(r#"{{"resource_id":"{id}","owner_id":"a","ttl_seconds":30,"pad":"{}"}}"#, "x".repeat(70 * 1024));

    // (what, method, path, key, content type, body, expected status, expected code)
    type Case<'a> = (&'a str, Method, String, Option<&'a str>, Option<&'a str>, String, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "wrong method",
            Method::PUT,
            "/api/locks/acquire".into(),
            Some(&client),
            None,
            String::new(),
            405,
            "method_not_allowed",
        ),
        // workers-rs reads methods it does not know as GET; the edge must not.
        (
            "unknown method",
            Method::from_bytes(b"QUERY").unwrap(),
            "/api/locks".into(),
            Some(&client),
            None,
            String::new(),
            405,
            "method_not_allowed",
        ),
        (
            "array body",
            Method::PUT,
            "/api/types/bed".into(),
            Some(&admin),
            Some("application/json"),
            "[null, null]".into(),
            422,
            "validation_failed",
        ),
        // The clinical holds' bodies and paths, from the same table.
        (
            "group of one",
            Method::POST,
            "/api/locks/acquire-group".into(),
            Some(&client),
            Some("application/json"),
            format!(r#"{{"resources":[{{"resource_id":"{id}"}}],"owner_id":"a","ttl_seconds":30}}"#),
            422,
            "validation_failed",
        ),
        (
            "session TTL of 0",
            Method::POST,
            "/api/sessions".into(),
            Some(&client),
            Some("application/json"),
            r#"{"owner_id":"a","ttl_seconds":0}"#.into(),
            422,
            "invalid_ttl",
        ),
        (
            "bad session id in path",
            Method::POST,
            "/api/sessions/not-a-uuid/keepalive".into(),
            Some(&client),
            None,
            String::new(),
            422,
            "invalid_session_id",
        ),
        (
            "booking without an end",
            Method::POST,
            "/api/locks/book".into(),
            Some(&client),
            Some("application/json"),
            format!(r#"{{"resource_id":"{id}","owner_id":"a"}}"#),
            422,
            "validation_failed",
        ),
        (
            "booking a resource and a group at once",
            Method::POST,
            "/api/locks/book".into(),
            Some(&client),
            Some("application/json"),
            format!(r#"{{"resource_id":"{id}","group_id":"{id}","owner_id":"a","until":"2030-01-01T00:00:00Z"}}"#),
            422,
            "validation_failed",
        ),
        (
            "TTL and session both",
            Method::POST,
            "/api/locks/acquire".into(),
            Some(&client),
            Some("application/json"),
            format!(r#"{{"resource_id":"{id}","owner_id":"a","ttl_seconds":30,"session_id":"{id}"}}"#),
            422,
            "validation_failed",
        ),
        // Query strings, by each list's own rule.
        (
            "unknown query parameter",
            Method::GET,
            "/api/locks?colour=red".into(),
            Some(&client),
            None,
            String::new(),
            422,
            "validation_failed",
        ),
        (
            "query value of the wrong type",
            Method::GET,
            "/api/events?after=yesterday".into(),
            Some(&client),
            None,
            String::new(),
            422,
            "validation_failed",
        ),
        (
            "page past the largest",
            Method::GET,
            "/api/events?limit=5000".into(),
            Some(&client),
            None,
            String::new(),
            422,
            "validation_failed",
        ),
        (
            "bad cursor in query",
            Method::GET,
            "/api/resources?after=bed-12".into(),
            Some(&client),
            None,
            String::new(),
            422,
            "invalid_resource_id",
        ),
        (
            "bad status filter",
            Method::GET,
            "/api/locks?status=PARKED".into(),
            Some(&client),
            None,
            String::new(),
            422,
            "validation_failed",
        ),
        (
            "bad time in query",
            Method::GET,
            "/api/audit/export?since=yesterday".into(),
            Some(&admin),
            None,
            String::new(),
            422,
            "validation_failed",
        ),
        (
            "score out of range",
            Method::GET,
            "/api/ml/anomalies?min_score=2".into(),
            Some(&client),
            None,
            String::new(),
            422,
            "validation_failed",
        ),
        ("unknown route", Method::GET, "/api/lockz".into(), Some(&client), None, String::new(), 404, "not_found"),
        ("no key", Method::GET, "/api/locks".into(), None, None, String::new(), 401, "unauthenticated"),
        (
            "garbled key",
            Method::GET,
            "/api/locks".into(),
            Some("hhs_not_a_key"),
            None,
            String::new(),
            401,
            "unauthenticated",
        ),
        (
            "bad JSON",
            Method::POST,
            "/api/locks/acquire".into(),
            Some(&client),
            Some("application/json"),
            "{oops".into(),
            400,
            "invalid_json",
        ),
        (
            "wrong type",
            Method::POST,
            "/api/locks/acquire".into(),
            Some(&client),
            Some("application/json"),
            format!(r#"{{"resource_id":"{id}","owner_id":"a","ttl_seconds":"30"}}"#),
            422,
            "validation_failed",
        ),
        (
            "unknown field",
            Method::POST,
            "/api/locks/heartbeat".into(),
            Some(&client),
            Some("application/json"),
            format!(r#"{{"resource_id":"{id}","owner_id":"a","colour":"red"}}"#),
            422,
            "validation_failed",
        ),
        (
            "bad UUID in body",
            Method::POST,
            "/api/locks/acquire".into(),
            Some(&client),
            Some("application/json"),
            r#"{"resource_id":"bed-12","owner_id":"a","ttl_seconds":30}"#.into(),
            422,
            "invalid_resource_id",
        ),
        (
            "bad UUID in path",
            Method::GET,
            "/api/locks/bed-12".into(),
            Some(&client),
            None,
            String::new(),
            422,
            "invalid_resource_id",
        ),
        (
            "path not UTF-8",
            Method::GET,
            "/api/resources/%00%ff".into(),
            Some(&client),
            None,
            String::new(),
            422,
            "invalid_resource_id",
        ),
        (
            "TTL past the hard limit",
            Method::POST,
            "/api/locks/acquire".into(),
            Some(&client),
            Some("application/json"),
            format!(r#"{{"resource_id":"{id}","owner_id":"a","ttl_seconds":999999}}"#),
            422,
            "invalid_ttl",
        ),
        (
            "bad type name in path",
            Method::GET,
            "/api/types/BED!".into(),
            Some(&client),
            None,
            String::new(),
            422,
            "invalid_resource_type",
        ),
        (
            "type TTL past the hard limit",
            Method::PUT,
            "/api/types/bed".into(),
            Some(&admin),
            Some("application/json"),
            r#"{"max_ttl_seconds":999999}"#.into(),
            422,
            "validation_failed",
        ),
        (
            "bad owner",
            Method::POST,
            "/api/locks/release".into(),
            Some(&client),
            Some("application/json"),
            format!(r#"{{"resource_id":"{id}","owner_id":"a b"}}"#),
            422,
            "invalid_owner_id",
        ),
        (
            "bad resource type",
            Method::POST,
            "/api/resources".into(),
            Some(&admin),
            Some("application/json"),
            r#"{"type":"BED!","identifier":"x"}"#.into(),
            422,
            "invalid_resource_type",
        ),
        (
            "oversized body",
            Method::POST,
            "/api/locks/acquire".into(),
            Some(&client),
            Some("application/json"),
            big,
            413,
            "payload_too_large",
        ),
        (
            "wrong content type",
            Method::POST,
            "/api/locks/acquire".into(),
            Some(&client),
            Some("text/plain"),
            format!(r#"{{"resource_id":"{id}","owner_id":"a","ttl_seconds":30}}"#),
            415,
            "unsupported_media_type",
        ),
    ];

    let seen_before = app.api_requests_seen().await;
    let mut at_edge = vec![];
    for (what, method, path, key, ct, body, status, code) in &cases {
        let mut req = to_edge(&app, &edge, method.clone(), path, *key);
        if let Some(ct) = ct {
            req = req.header("content-type", *ct);
        }
        let r = app.send(req.body(body.clone())).await;
        assert_eq!((r.status.as_u16(), r.code()), (*status, *code), "{what} at the edge: {}", r.body);
        assert!(r.body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}");
        if *code == "unauthenticated" {
            assert!(r.headers.get("www-authenticate").is_some(), "{what}: WWW-Authenticate");
        }
        if *status == 405 {
            let allow = r.headers.get("allow").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            let path = path.as_str();
            assert_eq!(allow, hhs_core::wire::endpoints::allowed_methods(path).join(", "), "{what}: Allow");
        }
        at_edge.push(r);
    }
    assert_eq!(app.api_requests_seen().await, seen_before, "an invalid request reached the origin");

    // The origin, asked the same, answers the same (status and code).
    for ((what, method, path, key, ct, body, _, _), edge_reply) in cases.iter().zip(&at_edge) {
        let mut req = to_origin(&app, method.clone(), path, *key);
        if let Some(ct) = ct {
            req = req.header("content-type", *ct);
        }
        let r = app.send(req.body(body.clone())).await;
        assert_eq!((r.status, r.code()), (edge_reply.status, edge_reply.code()), "{what}: origin and edge disagree");
    }
    app.stop().await;
}

/// The edge holds no policy: a TTL within the hard limits but outside a type's own bounds passes it, and the
/// origin refuses it from the type's row — the same answer as asked directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_ttl_outside_a_types_bounds_is_refused_by_the_origin_through_the_edge() {
    let Some(edge) = edge() else { return };
    let _turn = TURN.lock().await;
    let (_db, app) = origin(&edge).await;
    let id = app.create_resource("ventilator", "V1").await;
    let set = to_edge(&app, &edge, Method::PUT, "/api/types/ventilator", Some(&app.keys.admin))
        .json(&json!({"min_ttl_seconds": 20, "default_ttl_seconds": 60, "max_ttl_seconds": 120}));
    assert_eq!(app.send(set).await.status, StatusCode::OK);
    let body = json!({"resource_id": id, "owner_id": "a", "ttl_seconds": 600});
    let through =
        app.send(to_edge(&app, &edge, Method::POST, "/api/locks/acquire", Some(&app.keys.client)).json(&body)).await;
    assert_eq!(through.code(), "invalid_ttl", "{}", through.body);
    assert!(through.body["error"]["message"].as_str().unwrap().contains("between 20 and 120"), "{}", through.body);
    let direct =
        app.send(to_origin(&app, Method::POST, "/api/locks/acquire", Some(&app.keys.client)).json(&body)).await;
    assert_eq!(
        (direct.status, direct.body["error"]["message"].clone()),
        (through.status, through.body["error"]["message"].clone())
    );
    let ok = app
        .send(
            to_edge(&app, &edge, Method::POST, "/api/locks/acquire", Some(&app.keys.client))
                .json(&json!({"resource_id": id, "owner_id": "a", "ttl_seconds": 60})),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    app.stop().await;
}

/// The test Worker gives the origin 3 s (`ORIGIN_TIMEOUT_MS`); an acquire waiting 8 s in the queue is answered
/// after 4 s, when the holder lets go — the edge waited the wait more, and the grant came through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wait_in_the_queue_outlasts_the_edges_origin_timeout() {
    let Some(edge) = edge() else { return };
    let _turn = TURN.lock().await;
    let (_db, app) = origin(&edge).await;
    let id = app.create_resource("bed", "Queue through the edge").await;
    let held = app
        .post_as(
            &app.keys.client,
            "/api/locks/acquire",
            json!({"resource_id": id, "owner_id": "first", "ttl_seconds": 60}),
        )
        .await;
    assert_eq!(held.status, StatusCode::OK);
    let waiting = {
        let req = to_edge(&app, &edge, Method::POST, "/api/locks/acquire", Some(&app.keys.client))
            .json(&json!({"resource_id": id, "owner_id": "second", "ttl_seconds": 60, "wait_seconds": 8}));
        tokio::spawn(async move { req.send().await.unwrap() })
    };
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        app.get(&format!("/api/locks/{id}")).await.body["queue_length"],
        1,
        "still waiting, past the edge's 3 s"
    );
    assert_eq!(
        app.post_as(&app.keys.client, "/api/locks/release", json!({"resource_id": id, "owner_id": "first"}))
            .await
            .status,
        StatusCode::OK
    );
    let resp = waiting.await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!((body["owner_id"].as_str(), body["fencing_token"].as_u64()), (Some("second"), Some(2)), "{body}");
    // An HL7 message sent as JSON is refused at the edge as the origin would.
    let wrong = to_edge(&app, &edge, Method::POST, "/api/hl7/v2", Some(&app.keys.admin)).json(&json!({"msh": 1}));
    assert_eq!(app.send(wrong).await.code(), "unsupported_media_type");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn full_flow_through_the_edge_with_fencing_tokens_and_origin_errors() {
    let Some(edge) = edge() else { return };
    let _turn = TURN.lock().await;
    let (_db, app) = origin(&edge).await;
    let south = crate::support::mint(&app.store, "clinic-south", hhs_core::Role::Client).await;
    let post = |key: &str, path: &str, body: Value| {
        let req = to_edge(&app, &edge, Method::POST, path, Some(key)).json(&body);
        app.send(req)
    };

    let created = post(&app.keys.admin, "/api/resources", json!({"type": "or-room", "identifier": "OR 1"})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    // The event stream, through the edge: events arrive while the response is still open (not buffered).
    let mut stream = crate::support::Sse::open(
        to_edge(&app, &edge, Method::GET, "/api/events/stream", Some(&app.keys.viewer)),
        None,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let acquired =
        post(&app.keys.client, "/api/locks/acquire", json!({"resource_id": id, "owner_id": "ws-1", "ttl_seconds": 30}))
            .await;
    assert_eq!(acquired.status, StatusCode::OK, "{}", acquired.body);
    assert_eq!(acquired.body["fencing_token"], 1);
    let streamed =
        stream.until("acquired", &id, Duration::from_secs(3)).await.expect("the acquire streamed through the edge");
    assert_eq!(streamed["fencing_token"], 1);
    drop(stream);
    let beat = post(
        &app.keys.client,
        "/api/locks/heartbeat",
        json!({"resource_id": id, "owner_id": "ws-1", "fencing_token": 1}),
    )
    .await;
    assert_eq!(beat.status, StatusCode::OK);
    // Errors decided by the origin come back unchanged.
    let held =
        post(&south, "/api/locks/acquire", json!({"resource_id": id, "owner_id": "ws-9", "ttl_seconds": 30})).await;
    assert_eq!((held.status, held.code()), (StatusCode::CONFLICT, "lock_held"));
    assert_eq!(held.body["error"]["holder"], "ws-1");
    let theirs = post(&south, "/api/locks/release", json!({"resource_id": id, "owner_id": "ws-1"})).await;
    assert_eq!((theirs.status, theirs.code()), (StatusCode::FORBIDDEN, "not_your_hold"));
    let stale = post(
        &app.keys.client,
        "/api/locks/release",
        json!({"resource_id": id, "owner_id": "ws-1", "fencing_token": 9}),
    )
    .await;
    assert_eq!(stale.code(), "stale_token");
    let released = post(
        &app.keys.client,
        "/api/locks/release",
        json!({"resource_id": id, "owner_id": "ws-1", "fencing_token": 1}),
    )
    .await;
    assert_eq!(released.body["status"], "RELEASED");
    let again = app
        .send(
            to_edge(&app, &edge, Method::POST, "/api/locks/acquire", Some(&south))
                .header("x-request-id", "ward-7-acquire")
                .json(&json!({"resource_id": id, "owner_id": "ws-9", "ttl_seconds": 30})),
        )
        .await;
    assert_eq!(again.body["fencing_token"], 2);

    // Query strings and request ids pass through.
    let r = app
        .send(
            to_edge(&app, &edge, Method::GET, "/api/locks?status=HELD&type=or-room", Some(&app.keys.viewer))
                .header("x-request-id", "ward-7-abc"),
        )
        .await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(r.headers["x-request-id"], "ward-7-abc");
    let events = app.get(&format!("/api/events?resource_id={id}")).await;
    // The client's request id travelled through the edge into the audit trail.
    let acquired =
        events.body["items"].as_array().unwrap().iter().rev().find(|e| e["kind"] == "acquired").cloned().unwrap();
    assert_eq!(acquired["request_id"], "ward-7-acquire");
    assert_eq!(acquired["principal"], "clinic-south");

    // A streamed (chunked) answer passes through whole: the NDJSON audit export, via the edge and direct.
    let via_edge = app.send(to_edge(&app, &edge, Method::GET, "/api/audit/export", Some(&app.keys.admin))).await;
    let direct = app.get("/api/audit/export").await;
    assert_eq!(via_edge.status, StatusCode::OK);
    assert_eq!(via_edge.headers["content-type"], "application/x-ndjson");
    let lines = |r: &Reply| r.body.as_str().map(|t| t.lines().count()).unwrap_or(0);
    assert!(lines(&via_edge) >= 8, "{}", via_edge.body);
    // The direct export ran after the edge one, so it may hold the edge request's own events too, never fewer.
    assert!(lines(&direct) >= lines(&via_edge));

    // The edge's health says the origin answers; the dashboard placeholder is served as an asset.
    let health = app.send(to_edge(&app, &edge, Method::GET, "/healthz", None)).await;
    assert_eq!((health.status, health.body["origin"].clone()), (StatusCode::OK, json!("ok")));
    let page = reqwest::get(format!("{}/", edge.url)).await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("HHS"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_parallel_acquires_through_the_edge_have_one_winner() {
    let Some(edge) = edge() else { return };
    let _turn = TURN.lock().await;
    let (_db, app) = origin(&edge).await;
    let id = app.create_resource("or-room", "OR 2").await;
    let replies: Vec<Reply> = join_all((0..50).map(|i| {
        let req = to_edge(&app, &edge, Method::POST, "/api/locks/acquire", Some(&app.keys.client))
            .json(&json!({"resource_id": id, "owner_id": format!("ws-{i}"), "ttl_seconds": 60}));
        app.send(req)
    }))
    .await;
    let ok = replies.iter().filter(|r| r.status == StatusCode::OK).count();
    let held = replies.iter().filter(|r| r.status == StatusCode::CONFLICT && r.code() == "lock_held").count();
    assert_eq!((ok, held), (1, 49), "{:?}", replies.iter().map(|r| r.status).collect::<Vec<_>>());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_over_the_key_limit_gets_429_and_the_origin_sees_at_most_the_limit() {
    let Some(edge) = edge() else { return };
    let _turn = TURN.lock().await;
    let (_db, app) = origin(&edge).await;
    // wrangler.toml [env.test]: 100 requests a minute per key. A fresh key has a fresh bucket.
    let key = crate::support::mint(&app.store, "clinic-flood", hhs_core::Role::Viewer).await;
    // A key gets its own bucket once the origin has accepted it (until then it counts against its IP's).
    assert_eq!(app.send(to_edge(&app, &edge, Method::GET, "/api/whoami", Some(&key))).await.status, StatusCode::OK);
    within_one_rate_window().await;
    let before = app.api_requests_seen().await;
    let replies: Vec<Reply> =
        join_all((0..150).map(|_| app.send(to_edge(&app, &edge, Method::GET, "/api/locks", Some(&key))))).await;
    let limited: Vec<&Reply> = replies.iter().filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS).collect();
    assert!(limited.len() >= 50, "{} of 150 were limited", limited.len());
    for r in &limited {
        assert_eq!(r.code(), "rate_limited");
        let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!(retry > 0);
    }
    let passed = app.api_requests_seen().await - before;
    assert!(passed <= 100, "the origin saw {passed} requests, over the limit of 100");
    assert_eq!(passed as usize, 150 - limited.len());
    // Another key is not affected.
    let other = app.send(to_edge(&app, &edge, Method::GET, "/api/locks", Some(&app.keys.viewer))).await;
    assert_eq!(other.status, StatusCode::OK);
    app.stop().await;
}

/// Waits, if needed, so that a flood of up to ~15 s falls inside one rate-limit window: `wrangler dev`'s
/// emulated binding counts in fixed windows aligned to the minute (it clears its counters when
/// `floor(now / 60 s)` changes), so a flood across a boundary could pass twice the limit.
async fn within_one_rate_window() {
    let into_minute = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() % 60_000;
    if into_minute > 42_000 {
        tokio::time::sleep(Duration::from_millis((60_000 - into_minute) as u64 + 500)).await;
    }
}

/// A request to the edge from another loopback address (its own client IP, so its own IP bucket) with `key`.
fn from_ip(edge: &Edge, ip: [u8; 4], path: &str, key: &str) -> reqwest::RequestBuilder {
    let client = reqwest::Client::builder().local_address(std::net::IpAddr::from(ip)).build().unwrap();
    client
        .get(format!("{}{path}", edge.url))
        .timeout(Duration::from_secs(30))
        .header("authorization", format!("bearer {key}"))
}

/// A flood of made-up well-formed keys (a fresh one per request) is limited by the IP's bucket, as a flood
/// without keys is; a real clinic key behind the same address keeps its own quota.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_random_keys_is_limited_like_no_key_and_a_real_key_behind_the_same_ip_keeps_its_quota() {
    let Some(edge) = edge() else { return };
    let _turn = TURN.lock().await;
    let (_db, app) = origin(&edge).await;
    let ip = [127, 0, 0, 23];
    let clinic = crate::support::mint(&app.store, "clinic-nat", hhs_core::Role::Viewer).await;
    assert_eq!(app.send(from_ip(&edge, ip, "/api/whoami", &clinic)).await.status, StatusCode::OK);
    within_one_rate_window().await;
    let before = app.api_requests_seen().await;
    let random_key =
        |i: u32| format!("hhs_{:012x}_{:064x}", 0x5eed_0000_u64 + u64::from(i), u128::from(i) * 0x9e37_79b9_7f4a_7c15);
    let mut replies = vec![];
    for chunk in (0..1_000u32).collect::<Vec<_>>().chunks(50) {
        replies
            .extend(join_all(chunk.iter().map(|i| app.send(from_ip(&edge, ip, "/api/locks", &random_key(*i))))).await);
    }
    let limited = replies.iter().filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS).count();
    let passed = app.api_requests_seen().await - before;
    // wrangler.toml [env.test]: 400 a minute per IP.
    assert!(passed <= 400, "the origin saw {passed} requests with random keys; the IP limit is 400");
    assert!(limited >= 600, "{limited} of 1,000 were limited");
    assert!(replies
        .iter()
        .filter(|r| r.status != StatusCode::TOO_MANY_REQUESTS)
        .all(|r| r.status == StatusCode::UNAUTHORIZED));
    // The clinic behind the same address still gets through on its own key's bucket.
    let r = app.send(from_ip(&edge, ip, "/api/locks", &clinic)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn origin_down_or_silent_gives_origin_unavailable_never_a_hang() {
    let Some(edge) = edge() else { return };
    let _turn = TURN.lock().await;
    let (_db, app) = origin(&edge).await;
    let key = app.keys.viewer.clone();
    app.stop().await;

    // Nobody listening: 502 at once.
    let client = reqwest::Client::new();
    let started = Instant::now();
    let r = client.get(format!("{}/api/locks", edge.url)).bearer_auth(&key).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "origin_unavailable");
    assert!(started.elapsed() < Duration::from_secs(10));
    let health = client.get(format!("{}/healthz", edge.url)).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(health.json::<Value>().await.unwrap()["origin"], "unavailable");

    // Listening but never answering: 504 after ORIGIN_TIMEOUT_MS (3 s in [env.test]).
    let silent = tokio::net::TcpListener::bind(("127.0.0.1", edge.origin_port)).await.unwrap();
    let hold_open = tokio::spawn(async move {
        let mut open = vec![];
        while let Ok((sock, _)) = silent.accept().await {
            open.push(sock);
        }
    });
    let started = Instant::now();
    let r = client.get(format!("{}/api/locks", edge.url)).bearer_auth(&key).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "origin_unavailable");
    assert!(started.elapsed() >= Duration::from_millis(2_900) && started.elapsed() < Duration::from_secs(15));
    hold_open.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_openapi_description_is_served_through_the_edge_without_a_key() {
    let Some(edge) = edge() else { return };
    let _turn = TURN.lock().await;
    let (_db, app) = origin(&edge).await;
    let through = app.send(to_edge(&app, &edge, Method::GET, "/api/openapi.json", None)).await;
    let direct = app.send(to_origin(&app, Method::GET, "/api/openapi.json", None)).await;
    assert_eq!(through.status, StatusCode::OK, "{}", through.body);
    assert_eq!(through.body, direct.body);
    let wrong = app.send(to_edge(&app, &edge, Method::POST, "/api/openapi.json", None)).await;
    assert_eq!((wrong.status, wrong.code()), (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"));
}
