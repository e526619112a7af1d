//! Resources over their life: deleted and re-created, or renamed onto a name another used, a resource's
//! fencing tokens keep rising above every token its name ever had; a delete records a lapse nobody recorded
//! and waits out a lock-delay; only a (type, identifier) collision is reported as an existing resource.

use std::time::Duration;

use hhs_core::Role;
use reqwest::StatusCode;
use serde_json::json;

use crate::support::{fencing_token, fresh, Backend, TestApp, TestDb};

both_stores!(
    deleting_and_recreating_a_resource_keeps_its_names_tokens_rising,
    renaming_onto_a_used_name_continues_above_its_tokens,
    delete_records_an_unrecorded_lapse_first,
    delete_is_refused_during_lock_delay,
);

async fn acquire_and_release(app: &TestApp, id: &str) -> i64 {
    let r = app.acquire(id, "ws-1", 30).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(app.release(id, "ws-1").await.status, StatusCode::OK);
    fencing_token(&r)
}

async fn deleting_and_recreating_a_resource_keeps_its_names_tokens_rising(backend: Backend) {
    let Some((_db, app)) = fresh(backend).await else { return };
    let first = app.create_resource("bed", "Ward 3, bed 12").await;
    assert_eq!(acquire_and_release(&app, &first).await, 1);
    assert_eq!(acquire_and_release(&app, &first).await, 2);
    assert_eq!(app.send(app.client.delete(format!("{}/api/resources/{first}", app.url))).await.status, StatusCode::OK);
    let again = app.create_resource("bed", "Ward 3, bed 12").await;
    assert_eq!(acquire_and_release(&app, &again).await, 3, "the old holder's token 2 must be below the new one's");
    // Another name starts at 1 as before.
    let other = app.create_resource("bed", "Ward 3, bed 13").await;
    assert_eq!(acquire_and_release(&app, &other).await, 1);
}

async fn renaming_onto_a_used_name_continues_above_its_tokens(backend: Backend) {
    let Some((_db, app)) = fresh(backend).await else { return };
    let a = app.create_resource("bed", "A").await;
    for _ in 0..3 {
        acquire_and_release(&app, &a).await;
    }
    let r = app
        .send(app.client.patch(format!("{}/api/resources/{a}", app.url)).json(&json!({"identifier": "A-old"})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let b = app.create_resource("bed", "B").await;
    let r =
        app.send(app.client.patch(format!("{}/api/resources/{b}", app.url)).json(&json!({"identifier": "A"}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(acquire_and_release(&app, &b).await, 4, "a resource renamed onto \"A\" continues above A's tokens");
    assert_eq!(acquire_and_release(&app, &a).await, 4, "the renamed resource keeps its own sequence");
}

async fn delete_records_an_unrecorded_lapse_first(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else { return };
    let app = TestApp::spawn_with(&db, None).await; // no reaper: the lapse stays unrecorded
    let bed = app.create_resource("bed", "Lapsed 1").await;
    assert_eq!(app.acquire(&bed, "ws-1", 1).await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let r = app.send(app.client.delete(format!("{}/api/resources/{bed}", app.url))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(app.event_kinds(&bed).await, ["resource_created", "acquired", "expired", "resource_deleted"]);
}

async fn delete_is_refused_during_lock_delay(backend: Backend) {
    let Some((_db, app)) = fresh(backend).await else { return };
    let room = app.create_resource("or-room", "OR 7").await; // 2 s lock-delay in the test policy
    assert_eq!(app.acquire(&room, "ws-1", 1).await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let r = app.send(app.client.delete(format!("{}/api/resources/{room}", app.url))).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "lock_delay"), "{}", r.body);
    assert!(r.body["error"]["retry_at"].is_string());
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let r = app.send(app.client.delete(format!("{}/api/resources/{room}", app.url))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let kinds = app.event_kinds(&room).await;
    assert_eq!(kinds.iter().filter(|k| *k == "expired").count(), 1, "{kinds:?}");
    assert_eq!(kinds.last().map(String::as_str), Some("resource_deleted"));
}

/// Only the (type, identifier) collision is `resource_exists`; another unique violation — a key id drawn twice —
/// is not reported as a resource that exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_a_resource_name_collision_is_reported_as_an_existing_resource() {
    use hhs_origin::store::{Actor, KeyRecord, StoreError};
    for backend in [Backend::Postgres, Backend::Sqlite] {
        let Some(db) = TestDb::new(backend).await else { continue };
        let store = db.store().await;
        let key = KeyRecord {
            id: "0123456789ab".into(),
            principal: "hq".into(),
            role: Role::Admin,
            secret_sha256: vec![0; 32],
            created_at_ms: 0,
            revoked_at_ms: None,
        };
        store.create_key(&key, &Actor::system("test")).await.expect("first key");
        let again = store.create_key(&key, &Actor::system("test")).await;
        assert!(matches!(again, Err(StoreError::Db(_))), "{backend:?}: {again:?}");
        let (ty, ident) =
            (hhs_core::ResourceType::parse("bed").unwrap(), hhs_core::Identifier::parse("Twice").unwrap());
        let new_id = || hhs_core::ResourceId(uuid::Uuid::now_v7());
        store
            .create_resource(
                new_id(),
                &ty,
                &ident,
                &hhs_core::Policy::default().for_type("bed"),
                &Actor::system("test"),
            )
            .await
            .expect("first resource");
        let twice = store
            .create_resource(
                new_id(),
                &ty,
                &ident,
                &hhs_core::Policy::default().for_type("bed"),
                &Actor::system("test"),
            )
            .await;
        assert!(matches!(twice, Err(StoreError::Exists)), "{backend:?}: {twice:?}");
    }
}
