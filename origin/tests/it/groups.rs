//! Group holds on both stores: all or nothing, every blocking member named; renewed, booked and released by the
//! group's id — every member or none, a member force-released and taken by another clinic named as lost; no
//! resource in two live groups; and 50 clients racing for random overlapping groups never deadlock and
//! never show a partial group in `GET /api/locks`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{Backend, Reply, TestApp, TestDb};

both_stores!(
    a_group_is_held_all_or_nothing_and_acts_as_one,
    a_group_with_a_member_force_released_is_renewed_and_booked_not_at_all,
    overlapping_groups_race_without_deadlock_or_partial_groups,
);

async fn group(app: &TestApp, key: &str, ids: &[&String], owner: &str) -> Reply {
    let resources: Vec<Value> = ids.iter().map(|id| json!({"resource_id": id})).collect();
    let body = json!({"resources": resources, "owner_id": owner, "ttl_seconds": 30});
    app.send(app.request_as(Method::POST, "/api/locks/acquire-group", Some(key)).json(&body)).await
}

async fn by_group(app: &TestApp, key: &str, op: &str, group_id: &str, owner: &str) -> Reply {
    app.send(
        app.request_as(Method::POST, &format!("/api/locks/{op}-group"), Some(key))
            .json(&json!({"group_id": group_id, "owner_id": owner})),
    )
    .await
}

async fn a_group_is_held_all_or_nothing_and_acts_as_one(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let key = app.keys.client.clone();
    let (or, surgeon, machine) = (
        app.create_resource("or-room", "OR 2").await,
        app.create_resource("surgeon", "Dr Okafor 14:00").await,
        app.create_resource("anaesthesia", "Machine 4").await,
    );
    // The machine is held elsewhere: the group is refused, naming it and why, and nothing is held.
    assert_eq!(
        app.post_as(&key, "/api/locks/acquire", json!({"resource_id": machine, "owner_id": "icu", "ttl_seconds": 60}))
            .await
            .status,
        StatusCode::OK
    );
    let refused = group(&app, &key, &[&or, &surgeon, &machine], "theatre-3").await;
    assert_eq!((refused.status, refused.code()), (StatusCode::CONFLICT, "group_blocked"), "{}", refused.body);
    let blocked = refused.body["error"]["blocked"].as_array().unwrap();
    assert_eq!(blocked.len(), 1, "{}", refused.body);
    assert_eq!(
        (blocked[0]["resource_id"].as_str(), blocked[0]["code"].as_str(), blocked[0]["holder"].as_str()),
        (Some(machine.as_str()), Some("lock_held"), Some("icu"))
    );
    assert!(blocked[0]["expires_at"].is_string());
    for id in [&or, &surgeon] {
        assert_eq!(
            app.get(&format!("/api/locks/{id}")).await.body["status"],
            "FREE",
            "nothing of a refused group is held"
        );
    }
    // Free: all three, one group id, each with its own token.
    assert_eq!(
        app.post_as(&key, "/api/locks/release", json!({"resource_id": machine, "owner_id": "icu"})).await.status,
        StatusCode::OK
    );
    let granted = group(&app, &key, &[&machine, &or, &surgeon], "theatre-3").await;
    assert_eq!(granted.status, StatusCode::OK, "{}", granted.body);
    let gid = granted.body["group_id"].as_str().unwrap().to_owned();
    let holds = granted.body["holds"].as_array().unwrap();
    assert_eq!(holds.len(), 3);
    assert!(holds
        .iter()
        .all(|h| h["group_id"] == gid.as_str() && h["status"] == "HELD" && h["owner_id"] == "theatre-3"));
    // Overlapping group, same owner: refused (no resource in two live groups).
    let other = app.create_resource("or-room", "OR 5").await;
    let overlap = group(&app, &key, &[&or, &other], "theatre-3").await;
    assert_eq!(overlap.code(), "group_blocked");
    assert_eq!(overlap.body["error"]["blocked"][0]["resource_id"], or.as_str());
    // Heartbeat and release by the group's id act on every member; a member can still be released alone.
    let beat = by_group(&app, &key, "heartbeat", &gid, "theatre-3").await;
    assert_eq!((beat.status, beat.body["holds"].as_array().map(Vec::len)), (StatusCode::OK, Some(3)), "{}", beat.body);
    // Booked together (hold → book): every member BOOKED until the same end, same tokens.
    let until = {
        let t: chrono::DateTime<chrono::Utc> =
            beat.body["holds"][0]["last_heartbeat"].as_str().unwrap().parse().unwrap();
        (t + chrono::Duration::minutes(30)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    let book =
        |body: serde_json::Value| app.send(app.request_as(Method::POST, "/api/locks/book", Some(&key)).json(&body));
    // One of resource_id and group_id, and no fencing token with a group (each member has its own).
    let both = book(json!({"group_id": gid, "resource_id": or, "owner_id": "theatre-3", "until": until})).await;
    assert_eq!((both.status, both.code()), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"));
    let fenced = book(json!({"group_id": gid, "owner_id": "theatre-3", "until": until, "fencing_token": 1})).await;
    assert_eq!((fenced.status, fenced.code()), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"));
    assert_eq!(
        book(json!({"group_id": uuid::Uuid::now_v7(), "owner_id": "theatre-3", "until": until})).await.code(),
        "group_not_found"
    );
    // Past the type's booking maximum for one member: none is booked.
    let far = (chrono::Utc::now() + chrono::Duration::days(400)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let refused = book(json!({"group_id": gid, "owner_id": "theatre-3", "until": far})).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::CONFLICT, "group_blocked"), "{}", refused.body);
    for id in [&or, &surgeon, &machine] {
        assert_eq!(app.get(&format!("/api/locks/{id}")).await.body["status"], "HELD", "all or none");
    }
    let booked = book(json!({"group_id": gid, "owner_id": "theatre-3", "until": until})).await;
    assert_eq!(booked.status, StatusCode::OK, "{}", booked.body);
    assert_eq!(booked.body["group_id"], gid.as_str());
    for (h, before) in booked.body["holds"].as_array().unwrap().iter().zip(holds) {
        assert_eq!((h["status"].as_str(), h["expires_at"].as_str()), (Some("BOOKED"), Some(until.as_str())));
        assert_eq!(h["fencing_token"], before["fencing_token"]);
    }
    assert_eq!(
        app.post_as(&key, "/api/locks/release", json!({"resource_id": surgeon, "owner_id": "theatre-3"})).await.status,
        StatusCode::OK
    );
    let released = by_group(&app, &key, "release", &gid, "theatre-3").await;
    assert_eq!(released.body["holds"].as_array().map(Vec::len), Some(2), "{}", released.body);
    for id in [&or, &surgeon, &machine] {
        assert_eq!(app.get(&format!("/api/locks/{id}")).await.body["status"], "RELEASED");
    }
    // Its members ended: a heartbeat by its id refuses, naming each; an id no group had is not found.
    let ended = by_group(&app, &key, "heartbeat", &gid, "theatre-3").await;
    assert_eq!((ended.status, ended.code()), (StatusCode::CONFLICT, "group_blocked"), "{}", ended.body);
    assert_eq!(ended.body["error"]["blocked"].as_array().map(Vec::len), Some(3), "{}", ended.body);
    assert_eq!(
        by_group(&app, &key, "heartbeat", &uuid::Uuid::now_v7().to_string(), "theatre-3").await.code(),
        "group_not_found"
    );
    // Released again: nothing more to release, and nothing refused.
    let again = by_group(&app, &key, "release", &gid, "theatre-3").await;
    assert_eq!(
        (again.status, again.body["holds"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(0)),
        "{}",
        again.body
    );
    // Bad requests: one resource, a duplicate, no TTL nor session.
    let one = group(&app, &key, &[&or], "x").await;
    assert_eq!(one.code(), "validation_failed");
    assert_eq!(group(&app, &key, &[&or, &or], "x").await.code(), "validation_failed");
    let neither = json!({"resources": [{"resource_id": or}, {"resource_id": other}], "owner_id": "x"});
    assert_eq!(
        app.send(app.request_as(Method::POST, "/api/locks/acquire-group", Some(&key)).json(&neither)).await.code(),
        "validation_failed"
    );
    app.stop().await;
}

/// An admin force-releases one member of a three-member group and another clinic takes it. A heartbeat or a booking by the group's id must not renew the two left and answer 200: it refuses the
/// group (`group_blocked`, naming the member and why) and leaves the other two as they were; a release by the
/// group's id releases the two and leaves the other clinic's hold alone.
async fn a_group_with_a_member_force_released_is_renewed_and_booked_not_at_all(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let key = app.keys.client.clone();
    let south = crate::support::mint(&app.store, "clinic-south", hhs_core::Role::Client).await;
    let (bed, surgeon, machine) = (
        app.create_resource("bed", "Recovery 1").await,
        app.create_resource("surgeon", "Dr Adeyemi").await,
        app.create_resource("anaesthesia", "Machine 7").await,
    );
    let granted = group(&app, &key, &[&bed, &surgeon, &machine], "theatre-3").await;
    assert_eq!(granted.status, StatusCode::OK, "{}", granted.body);
    let gid = granted.body["group_id"].as_str().unwrap().to_owned();

    let forced = app
        .post_as(
            &app.keys.admin,
            "/api/locks/force-release",
            json!({"resource_id": machine, "reason": "needed in theatre 1"}),
        )
        .await;
    assert_eq!(forced.status, StatusCode::OK, "{}", forced.body);
    let taken = app
        .post_as(
            &south,
            "/api/locks/acquire",
            json!({"resource_id": machine, "owner_id": "theatre-1", "ttl_seconds": 60}),
        )
        .await;
    assert_eq!(taken.status, StatusCode::OK, "{}", taken.body);
    let mut before = vec![];
    for id in [&bed, &surgeon] {
        before.push(app.get(&format!("/api/locks/{id}")).await.body);
    }
    let theirs = app.get(&format!("/api/locks/{machine}")).await.body;
    tokio::time::sleep(Duration::from_millis(20)).await;

    let expect_blocked = |r: &Reply, what: &str| {
        assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "group_blocked"), "{what}: {}", r.body);
        let blocked = r.body["error"]["blocked"].as_array().unwrap();
        assert_eq!(blocked.len(), 1, "{what}: only the lost member is named: {}", r.body);
        assert_eq!(
            (blocked[0]["resource_id"].as_str(), blocked[0]["code"].as_str()),
            (Some(machine.as_str()), Some("not_holder")),
            "{what}: {}",
            r.body
        );
        // Nothing about the clinic that holds it now.
        assert!(blocked[0]["holder"].is_null(), "{}", r.body);
    };
    let beat = by_group(&app, &key, "heartbeat", &gid, "theatre-3").await;
    expect_blocked(&beat, "heartbeat");
    let until =
        (chrono::Utc::now() + chrono::Duration::minutes(30)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let book = app
        .send(
            app.request_as(Method::POST, "/api/locks/book", Some(&key))
                .json(&json!({"group_id": gid, "owner_id": "theatre-3", "until": until})),
        )
        .await;
    expect_blocked(&book, "book");
    // All or none: the two left neither renewed nor booked; the other clinic's hold untouched.
    for (id, was) in [&bed, &surgeon].into_iter().zip(&before) {
        assert_eq!(
            &app.get(&format!("/api/locks/{id}")).await.body,
            was,
            "member {id} changed by a refused group operation"
        );
    }
    assert_eq!(app.get(&format!("/api/locks/{machine}")).await.body, theirs);

    // A release by the group's id ends the two it still holds; the lost member counts as released.
    let released = by_group(&app, &key, "release", &gid, "theatre-3").await;
    assert_eq!(released.status, StatusCode::OK, "{}", released.body);
    let ids: Vec<&str> =
        released.body["holds"].as_array().unwrap().iter().map(|h| h["resource_id"].as_str().unwrap()).collect();
    let mut want = vec![bed.as_str(), surgeon.as_str()];
    want.sort();
    assert_eq!(ids, want, "{}", released.body);
    for id in [&bed, &surgeon] {
        assert_eq!(app.get(&format!("/api/locks/{id}")).await.body["status"], "RELEASED");
    }
    let still = app.get(&format!("/api/locks/{machine}")).await.body;
    assert_eq!((still["status"].as_str(), still["owner_id"].as_str()), (Some("HELD"), Some("theatre-1")), "{still}");
    app.stop().await;
}

/// The test: 50 clients acquire random overlapping groups (2–4 of 10 resources) for 30 s and release
/// them by the group's id; meanwhile `GET /api/locks` is read again and again.
async fn overlapping_groups_race_without_deadlock_or_partial_groups(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = Arc::new(TestApp::spawn(&db).await);
    let mut ids = vec![];
    for i in 0..10 {
        ids.push(app.create_resource("bed", &format!("Race {i}")).await);
    }
    let ids = Arc::new(ids);
    let sizes: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let deadline = Instant::now() + Duration::from_secs(30);
    let clients: Vec<_> = (0..50u64)
        .map(|c| {
            let (app, ids, sizes) = (app.clone(), ids.clone(), sizes.clone());
            tokio::spawn(async move {
                let (mut seed, mut granted, mut refused) = (c.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1, 0u32, 0u32);
                let mut next = move || {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed
                };
                while Instant::now() < deadline {
                    let n = 2 + (next() % 3) as usize;
                    let mut pick: Vec<&String> = vec![];
                    while pick.len() < n {
                        let id = &ids[(next() % 10) as usize];
                        if !pick.contains(&id) {
                            pick.push(id);
                        }
                    }
                    let owner = format!("client-{c}");
                    let r = group(&app, &app.keys.client, &pick, &owner).await;
                    match (r.status, r.code()) {
                        (StatusCode::OK, _) => {
                            granted += 1;
                            let gid = r.body["group_id"].as_str().unwrap().to_owned();
                            sizes.lock().unwrap().insert(gid.clone(), n);
                            let done = by_group(&app, &app.keys.client, "release", &gid, &owner).await;
                            assert_eq!(done.status, StatusCode::OK, "{}", done.body);
                        }
                        (StatusCode::CONFLICT, "group_blocked") => refused += 1,
                        other => panic!("a group acquire answered {other:?}: {}", r.body),
                    }
                }
                (granted, refused)
            })
        })
        .collect();
    // The watcher: in every read of the lock list, each live group shows all its members or none.
    let (mut reads, mut seen_groups) = (0, 0);
    while Instant::now() < deadline {
        let list = app.get("/api/locks?status=HELD").await.body;
        let mut members: HashMap<String, usize> = HashMap::new();
        for l in list["items"].as_array().unwrap() {
            if let Some(g) = l["group_id"].as_str() {
                *members.entry(g.to_owned()).or_default() += 1;
            }
        }
        let sizes = sizes.lock().unwrap().clone();
        for (g, n) in &members {
            // A group granted after this read's answer was built may not be known yet: check those known.
            if let Some(size) = sizes.get(g) {
                assert_eq!(n, size, "group {g} partly visible: {n} of {size}");
                seen_groups += 1;
            }
        }
        reads += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (mut granted, mut refused) = (0, 0);
    for c in clients {
        let (g, r) = c.await.expect("a client panicked");
        granted += g;
        refused += r;
    }
    assert!(granted > 50 && refused > 0, "granted {granted}, refused {refused}");
    assert!(reads > 20 && seen_groups > 0, "{reads} reads, {seen_groups} groups seen");
}
