//! Contention: many clients race for the same resources at once; exactly one wins each.

use std::collections::HashMap;

use crate::support::{Backend, TestApp, TestDb};
use futures::future::join_all;
use reqwest::StatusCode;

both_stores!(
    fifty_parallel_acquires_of_one_resource_have_one_winner,
    five_hundred_acquires_over_ten_resources_have_ten_winners
);

async fn fifty_parallel_acquires_of_one_resource_have_one_winner(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    // Never acquired before: the very first acquire must not race into a duplicate key either.
    let id = app.create_resource("or-room", "OR 1").await;
    let replies = join_all((0..50).map(|i| {
        let (app, id) = (&app, id.clone());
        async move { app.acquire(&id, &format!("clinic-{i}"), 60).await }
    }))
    .await;

    let mut by_status: HashMap<StatusCode, usize> = HashMap::new();
    for r in &replies {
        *by_status.entry(r.status).or_default() += 1;
        if r.status == StatusCode::CONFLICT {
            assert_eq!(r.code(), "lock_held");
        }
    }
    assert_eq!(by_status.get(&StatusCode::OK), Some(&1), "{by_status:?}");
    assert_eq!(by_status.get(&StatusCode::CONFLICT), Some(&49), "{by_status:?}");

    let winner = replies.iter().find(|r| r.status == StatusCode::OK).unwrap();
    assert_eq!(winner.body["fencing_token"], 1);
    let held = app.get(&format!("/api/locks/{id}")).await;
    assert_eq!(held.body["owner_id"], winner.body["owner_id"]);
    assert_eq!(app.event_kinds(&id).await, ["resource_created", "acquired"]);
    app.stop().await;
}

async fn five_hundred_acquires_over_ten_resources_have_ten_winners(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let mut ids = vec![];
    for i in 0..10 {
        ids.push(app.create_resource("bed", &format!("Bed {i}")).await);
    }
    let replies = join_all((0..500).map(|i| {
        let (app, id) = (&app, ids[i % 10].clone());
        async move { (id.clone(), app.acquire(&id, &format!("ws-{i}"), 60).await) }
    }))
    .await;

    let mut winners: HashMap<String, Vec<String>> = HashMap::new();
    for (id, r) in &replies {
        match r.status {
            StatusCode::OK => {
                winners.entry(id.clone()).or_default().push(r.body["owner_id"].as_str().unwrap().to_owned())
            }
            StatusCode::CONFLICT => assert_eq!(r.code(), "lock_held"),
            other => panic!("unexpected {other}: {}", r.body),
        }
    }
    assert_eq!(winners.len(), 10, "every resource has a winner");
    for (id, owners) in &winners {
        assert_eq!(owners.len(), 1, "resource {id} granted to {owners:?}");
        let held = app.get(&format!("/api/locks/{id}")).await;
        assert_eq!(held.body["owner_id"].as_str(), Some(owners[0].as_str()));
        assert_eq!(held.body["fencing_token"], 1);
    }
    app.stop().await;
}
