//! The dashboard in a real browser: headless Chromium (Debian's, through chromedriver) loading `ui/dist` from
//! the edge (`wrangler dev`, started by `cargo xtask test`) in front of a fresh origin. Each test saves a
//! screenshot under `target/screenshots/` for a person to look at.

use std::time::Duration;

use crate::support::browser::Browser;
use crate::support::edge::{edge, origin, TURN};
use crate::support::TestApp;
use reqwest::StatusCode;
use serde_json::json;

/// Signs in with `key` and waits until the board is live.
pub(crate) async fn sign_in(browser: &Browser, url: &str, key: &str) {
    browser.goto(&format!("{url}/")).await;
    browser.type_into("#api-key", key).await;
    browser.click("form button[type=submit]").await;
    browser
        .wait_until(
            "const s = document.querySelector('#link-status'); return !!s && s.textContent === 'Live';",
            Duration::from_secs(15),
            "the board is live after signing in",
        )
        .await;
}

pub(crate) fn row(id: &str) -> String {
    format!("tr[data-resource-id=\"{id}\"]")
}

pub(crate) fn state_is(id: &str, state: &str) -> String {
    format!(
        "const r = document.querySelector('{}'); return !!r && r.dataset.state === '{state}';",
        row(id).replace('\'', "\\'")
    )
}

async fn lock_status(app: &TestApp, id: &str) -> String {
    app.get(&format!("/api/locks/{id}")).await.body["status"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_viewer_signs_in_and_sees_the_seeded_resources_read_only() {
    let Some(edge) = edge() else { return };
    let _turn = TURN.lock().await;
    let (_db, app) = origin(&edge).await;
    let mut beds = vec![];
    for i in 1..=3 {
        beds.push(app.create_resource("bed", &format!("Ward 3 Bed {i}")).await);
    }
    let or = app.create_resource("or-room", "OR 1").await;
    let mri = app.create_resource("mri", "MRI North").await;
    app.post_as(
        &app.keys.client,
        "/api/locks/acquire",
        json!({"resource_id": beds[1], "owner_id": "ws-7", "ttl_seconds": 600}),
    )
    .await;
    let Some(browser) = Browser::start().await else { return };

    sign_in(&browser, &edge.url, &app.keys.viewer).await;
    for id in beds.iter().chain([&or, &mri]) {
        browser.wait_for(&row(id), Duration::from_secs(5)).await;
    }
    for ty in ["bed", "or-room", "mri"] {
        assert!(browser.find(&format!("section[data-type=\"{ty}\"] h2")).await.is_some(), "a group for {ty}");
    }
    browser.wait_until(&state_is(&beds[1], "held"), Duration::from_secs(2), "the held bed shows as held").await;
    let held = browser.text(&row(&beds[1])).await;
    assert!(held.contains("ws-7 · clinic-north"), "holder shown: {held}");
    assert!(held.contains("held"), "{held}");
    assert_eq!(
        browser.eval(&format!("return document.querySelector('{} td.token').textContent", row(&beds[1]))).await,
        "1"
    );
    let countdown =
        browser.eval(&format!("return document.querySelector('{} td.countdown').textContent", row(&beds[1]))).await;
    assert!(
        countdown.as_str().is_some_and(|c| c.starts_with("9:") || c.starts_with("10:")),
        "a 600 s hold counts down from 10:00: {countdown}"
    );
    assert!(browser.text(&row(&beds[0])).await.contains("free"));
    // Read-only: a viewer gets no action buttons and no resource form.
    assert!(browser.find("td.actions button").await.is_none(), "a viewer sees no actions");
    assert!(browser.find("form.create").await.is_none());
    assert!(browser.text("#main").await.contains("5 of 5 resources shown"));

    // Filters: by state, then search by identifier.
    browser.eval("const s = document.querySelector('#filter-state'); s.value = 'held'; s.dispatchEvent(new Event('change', {bubbles: true})); return true;").await;
    browser
        .wait_until(
            "return document.querySelectorAll('tbody tr.row').length === 1;",
            Duration::from_secs(2),
            "only the held row",
        )
        .await;
    browser.screenshot("dashboard-viewer-filtered").await;
    browser.click("form.filters button[type=button]").await;
    browser.type_into("#filter-search", "north").await;
    browser
        .wait_until(
            "return document.querySelectorAll('tbody tr.row').length === 1;",
            Duration::from_secs(2),
            "only MRI North",
        )
        .await;
    assert!(browser.find(&row(&mri)).await.is_some());
    browser.click("form.filters button[type=button]").await;
    browser
        .wait_until(
            "return document.querySelectorAll('tbody tr.row').length === 5;",
            Duration::from_secs(2),
            "all rows again",
        )
        .await;
    browser.screenshot("dashboard-viewer-board").await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_acquire_through_the_api_turns_held_on_the_board_within_2_s_and_heartbeats_move_the_countdown() {
    let Some(edge) = edge() else { return };
    let _turn = TURN.lock().await;
    let (_db, app) = origin(&edge).await;
    let id = app.create_resource("bed", "Bed 12").await;
    let Some(browser) = Browser::start().await else { return };
    sign_in(&browser, &edge.url, &app.keys.viewer).await;
    browser.wait_until(&state_is(&id, "free"), Duration::from_secs(5), "the bed is free").await;

    let r = app
        .post_as(
            &app.keys.client,
            "/api/locks/acquire",
            json!({"resource_id": id, "owner_id": "ws-1", "ttl_seconds": 30}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    browser
        .wait_until(&state_is(&id, "held"), Duration::from_secs(2), "the acquire shows on the board within 2 s")
        .await;
    assert!(browser.text(&row(&id)).await.contains("ws-1 · clinic-north"));
    browser.screenshot("dashboard-live-acquire").await;

    // A heartbeat is not an event, but the board still hears it: the expiry (the countdown's title) moves.
    let expiry = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    let title_js = format!("return document.querySelector('{} td.countdown').title", row(&id));
    let before = expiry(&browser.eval(&title_js).await);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let beat =
        app.post_as(&app.keys.client, "/api/locks/heartbeat", json!({"resource_id": id, "owner_id": "ws-1"})).await;
    assert_eq!(beat.status, StatusCode::OK);
    browser
        .wait_until(&format!("{title_js} !== '{before}';"), Duration::from_secs(2), "the heartbeat moves the expiry")
        .await;

    // A release through the API frees it on the board.
    app.post_as(&app.keys.client, "/api/locks/release", json!({"resource_id": id, "owner_id": "ws-1"})).await;
    browser.wait_until(&state_is(&id, "free"), Duration::from_secs(2), "the release shows within 2 s").await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lapsed_hold_shows_lock_delay_then_expired_and_still_names_its_holder() {
    let Some(edge) = edge() else { return };
    let _turn = TURN.lock().await;
    let (_db, app) = origin(&edge).await;
    // or-room has a 2 s lock-delay in the test policy; the reaper runs every 200 ms.
    let id = app.create_resource("or-room", "OR 8").await;
    let Some(browser) = Browser::start().await else { return };
    sign_in(&browser, &edge.url, &app.keys.viewer).await;
    browser.wait_until(&state_is(&id, "free"), Duration::from_secs(5), "the room is free").await;
    app.post_as(
        &app.keys.client,
        "/api/locks/acquire",
        json!({"resource_id": id, "owner_id": "theatre-pc", "ttl_seconds": 1}),
    )
    .await;
    browser.wait_until(&state_is(&id, "held"), Duration::from_secs(2), "held").await;
    // The holder stops heartbeating: the reaper records the expiry and the lock-delay starts.
    browser.wait_until(&state_is(&id, "lock-delay"), Duration::from_secs(4), "in lock-delay after the expiry").await;
    let text = browser.text(&row(&id)).await;
    assert!(text.contains("theatre-pc · clinic-north (lapsed)"), "the lapsed holder is named: {text}");
    assert!(text.contains("delay"), "the delay counts down: {text}");
    browser.screenshot("dashboard-lock-delay").await;
    browser.wait_until(&state_is(&id, "expired"), Duration::from_secs(4), "expired once the lock-delay is over").await;
    assert_eq!(lock_status(&app, &id).await, "EXPIRED");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_board_reconnects_after_an_origin_restart_and_catches_up() {
    let Some(edge) = edge() else { return };
    let _turn = TURN.lock().await;
    let (db, app) = origin(&edge).await;
    let id = app.create_resource("bed", "Bed 30").await;
    let viewer = app.keys.viewer.clone();
    let Some(browser) = Browser::start().await else { return };
    sign_in(&browser, &edge.url, &viewer).await;
    browser.wait_until(&state_is(&id, "free"), Duration::from_secs(5), "free").await;

    // The origin goes away: the stream ends, the snapshot is refused (502 at the edge), the board says so.
    app.stop().await;
    browser
        .wait_until(
            "return document.querySelector('#link-status').textContent.startsWith('Reconnecting');",
            Duration::from_secs(5),
            "the status shows the lost connection",
        )
        .await;
    browser.screenshot("dashboard-reconnecting").await;
    // It comes back (same database, same keys) and something changed meanwhile.
    let app = TestApp::spawn_at(&db, Some(Duration::from_millis(200)), edge.origin_port).await;
    app.post_as(
        &app.keys.client,
        "/api/locks/acquire",
        json!({"resource_id": id, "owner_id": "ws-3", "ttl_seconds": 600}),
    )
    .await;
    browser
        .wait_until(
            "return document.querySelector('#link-status').textContent === 'Live';",
            Duration::from_secs(20),
            "live again",
        )
        .await;
    browser.wait_until(&state_is(&id, "held"), Duration::from_secs(2), "the change made while away shows").await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_releases_with_the_button_and_the_api_reports_it_free() {
    let Some(edge) = edge() else { return };
    let _turn = TURN.lock().await;
    let (_db, app) = origin(&edge).await;
    let id = app.create_resource("or-room", "OR 4").await;
    let other = app.create_resource("or-room", "OR 5").await;
    app.post_as(
        &app.keys.client,
        "/api/locks/acquire",
        json!({"resource_id": id, "owner_id": "theatre-pc", "ttl_seconds": 600}),
    )
    .await;
    let Some(browser) = Browser::start().await else { return };
    sign_in(&browser, &edge.url, &app.keys.client).await;
    browser.wait_until(&state_is(&id, "held"), Duration::from_secs(5), "the room shows held").await;

    browser.click("button[aria-label=\"Release OR 4\"]").await;
    browser.wait_until(&state_is(&id, "free"), Duration::from_secs(3), "the board shows it free").await;
    assert_eq!(lock_status(&app, &id).await, "RELEASED", "the API reports it released");
    browser.wait_for("#notice", Duration::from_secs(2)).await;
    assert!(browser.text("#notice").await.contains("OR 4 released"));

    // Acquire from the detail panel: TTL prefilled with the model's suggestion (the policy default here).
    browser.click(&format!("{} th button", row(&other))).await;
    browser.wait_for("#suggestion", Duration::from_secs(5)).await;
    browser
        .wait_until(
            "return document.querySelector('#acquire-ttl').value === '300';",
            Duration::from_secs(3),
            "TTL prefilled",
        )
        .await;
    browser.click("form.acquire button[type=submit]").await;
    browser.wait_until(&state_is(&other, "held"), Duration::from_secs(3), "acquired from the dashboard").await;
    let shown = app.get(&format!("/api/locks/{other}")).await.body;
    assert_eq!(
        (shown["status"].as_str(), shown["owner_id"].as_str(), shown["ttl_seconds"].as_u64()),
        (Some("HELD"), Some("dashboard"), Some(300))
    );
    // The error path: a TTL the policy refuses comes back in words with its code, and the button works again.
    browser.click(&format!("{} th button", row(&id))).await;
    browser.wait_for("form.acquire", Duration::from_secs(3)).await;
    browser.eval("const t = document.querySelector('#acquire-ttl'); t.value = '999999'; t.dispatchEvent(new InputEvent('input', {bubbles: true})); return true;").await;
    browser.click("form.acquire button[type=submit]").await;
    browser
        .wait_until(
            "const n = document.querySelector('#notice.error'); return !!n && n.textContent.includes('(invalid_ttl)');",
            Duration::from_secs(3),
            "the refusal is shown with its code",
        )
        .await;
    assert_eq!(lock_status(&app, &id).await, "RELEASED", "nothing changed");
    assert_eq!(browser.eval("return document.querySelector('form.acquire button[type=submit]').disabled").await, false);
    browser.screenshot("dashboard-client-actions").await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bad_key_shows_the_sign_in_error_and_a_revoked_key_goes_back_to_sign_in() {
    let Some(edge) = edge() else { return };
    let _turn = TURN.lock().await;
    let (_db, app) = origin(&edge).await;
    let Some(browser) = Browser::start().await else { return };
    browser.goto(&format!("{}/", edge.url)).await;
    browser.type_into("#api-key", "hhs_000000000000_not-a-real-secret").await;
    browser.click("form button[type=submit]").await;
    browser
        .wait_until("const e = document.querySelector('#sign-in-error'); return !!e && !e.hidden && e.textContent.includes('unauthenticated');",
            Duration::from_secs(5), "the sign-in error with its code")
        .await;
    assert!(browser.text("#sign-in-error").await.contains("not accepted"));
    browser.screenshot("dashboard-bad-key").await;

    // A key revoked while the board is open: its stream ends, the reconnect is refused, and the board goes back
    // to sign-in with the reason — without anyone reloading the page.
    let created = app.post("/api/keys", json!({"principal": "night-shift", "role": "viewer"})).await;
    let key = created.body["key"].as_str().unwrap().to_owned();
    sign_in(&browser, &edge.url, &key).await;
    let revoked =
        app.send(app.client.delete(format!("{}/api/keys/{}", app.url, created.body["id"].as_str().unwrap()))).await;
    assert_eq!(revoked.status, StatusCode::OK);
    // The origin's key cache lives 2 s; streams re-check every 500 ms in the tests; the reconnect waits 1 s.
    browser
        .wait_until("const e = document.querySelector('#sign-in-error'); return !!e && !e.hidden && e.textContent.includes('revoked');",
            Duration::from_secs(10), "back at sign-in with the reason")
        .await;
    assert_eq!(
        browser.eval("return sessionStorage.getItem('hhs.api_key')").await,
        serde_json::Value::Null,
        "the key is forgotten"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_admin_adds_a_resource_force_releases_with_a_reason_and_reads_the_analytics() {
    let Some(edge) = edge() else { return };
    let _turn = TURN.lock().await;
    let (_db, app) = origin(&edge).await;
    let id = app.create_resource("mri", "MRI 2").await;
    app.post_as(
        &app.keys.client,
        "/api/locks/acquire",
        json!({"resource_id": id, "owner_id": "scanner-desk", "ttl_seconds": 600}),
    )
    .await;
    app.post_as(&app.keys.client, "/api/locks/release", json!({"resource_id": id, "owner_id": "scanner-desk"})).await;
    app.post_as(
        &app.keys.client,
        "/api/locks/acquire",
        json!({"resource_id": id, "owner_id": "scanner-desk", "ttl_seconds": 600}),
    )
    .await;
    let Some(browser) = Browser::start().await else { return };
    sign_in(&browser, &edge.url, &app.keys.admin).await;

    browser.type_into("#new-type", "bed").await;
    browser.type_into("#new-identifier", "Ward 9 Bed 1").await;
    browser.click("form.create button[type=submit]").await;
    browser
        .wait_until(
            "return [...document.querySelectorAll('tbody th')].some(t => t.textContent === 'Ward 9 Bed 1');",
            Duration::from_secs(3),
            "the new bed is on the board",
        )
        .await;
    let listed = app.get("/api/resources?type=bed").await.body;
    assert_eq!(listed["items"][0]["identifier"], "Ward 9 Bed 1");

    browser.click("button[aria-label=\"Force release MRI 2\"]").await;
    browser.type_into("#force-reason", "scanner desk crashed").await;
    browser.click("form.force button[type=submit]").await;
    browser.wait_until(&state_is(&id, "free"), Duration::from_secs(3), "force-released").await;
    assert_eq!(lock_status(&app, &id).await, "FORCE_RELEASED");
    let events = app.get(&format!("/api/events?resource_id={id}")).await.body;
    let last = events["items"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["kind"].as_str(), last["detail"]["reason"].as_str()),
        (Some("force_released"), Some("scanner desk crashed"))
    );
    // The timeline shows both holds and how they ended.
    browser
        .wait_until("const t = document.querySelector('ol.timeline'); return !!t && t.textContent.includes('force-released: scanner desk crashed') && t.textContent.includes('released');",
            Duration::from_secs(3), "the timeline")
        .await;
    browser.screenshot("dashboard-admin-detail").await;

    // A hold far longer than its type's history (milliseconds): the API scores it, and the anomaly table lists
    // it with that score.
    let (chair, spare) =
        (app.create_resource("wheelchair", "WC 7").await, app.create_resource("wheelchair", "WC 8").await);
    for _ in 0..25 {
        assert_eq!(app.acquire(&spare, "porter-1", 30).await.status, reqwest::StatusCode::OK);
        assert_eq!(app.release(&spare, "porter-1").await.status, reqwest::StatusCode::OK);
    }
    tokio::time::sleep(Duration::from_millis(600)).await; // the model reads them
    app.acquire(&chair, "porter-1", 600).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let listed = app.get("/api/ml/anomalies?min_score=0.8").await.body;
    assert!(
        listed["items"].as_array().unwrap().iter().any(|a| a["resource_id"] == chair.as_str()),
        "the API lists it: {listed}"
    );

    browser.click("#tab-analytics").await;
    browser
        .wait_until(
            "const r = [...document.querySelectorAll('table.anomalies tbody tr')].find(r => r.textContent.includes('WC 7 (wheelchair)')); \
             return !!r && parseFloat(r.cells[0].textContent) >= 0.8 && r.textContent.includes('porter-1');",
            Duration::from_secs(5),
            "the anomalous hold in the anomaly table, with its score",
        )
        .await;
    browser
        .wait_until(
            "return document.querySelectorAll('figure.chart').length >= 3;",
            Duration::from_secs(5),
            "the charts",
        )
        .await;
    let text = browser.text("#main").await;
    for label in [
        "Utilisation now, per type",
        "Releases vs expirations, last 24 hours",
        "Hold durations: mri",
        "Highest anomaly scores",
    ] {
        assert!(text.contains(label), "analytics shows {label:?}");
    }
    browser.screenshot("dashboard-analytics").await;

    // The types page: an admin sets a type's lock-delay; the API (so every replica) has it.
    browser.click("#tab-types").await;
    browser.wait_for("tr[data-type=\"mri\"] input", Duration::from_secs(5)).await;
    browser
        .eval("const i = document.querySelectorAll('tr[data-type=\"mri\"] input')[0]; i.value = '45'; return true;")
        .await;
    browser.click("button[aria-label=\"Save mri\"]").await;
    browser
        .wait_until(
            "return document.body.textContent.includes('mri: policy saved');",
            Duration::from_secs(5),
            "the saved notice",
        )
        .await;
    assert_eq!(app.get("/api/types/mri").await.body["lock_delay_seconds"], 45);
    browser.screenshot("dashboard-types").await;
    app.stop().await;
}

/// More resources than one page of `GET /api/locks` (1,000): the board reads every page and shows them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_board_larger_than_one_page_shows_every_resource() {
    let Some(edge) = edge() else { return };
    let _turn = TURN.lock().await;
    let (_db, app) = origin(&edge).await;
    let actor = hhs_origin::store::Actor::system("test");
    let bed = hhs_core::ResourceType::parse("bed").unwrap();
    let mut last = None;
    for i in 0..1_005 {
        let id = hhs_core::ResourceId(uuid::Uuid::now_v7());
        let ident = hhs_core::Identifier::parse(&format!("Paged bed {i:04}")).unwrap();
        app.store
            .create_resource(id, &bed, &ident, &crate::support::test_policy().for_type("bed"), &actor)
            .await
            .expect("create");
        last = Some(id);
    }
    let last = last.unwrap().to_string();
    let r = app
        .post_as(
            &app.keys.client,
            "/api/locks/acquire",
            json!({"resource_id": last, "owner_id": "ws-last", "ttl_seconds": 600}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let Some(browser) = Browser::start().await else { return };
    sign_in(&browser, &edge.url, &app.keys.viewer).await;
    browser.wait_for(&row(&last), Duration::from_secs(15)).await;
    browser
        .wait_until(&state_is(&last, "held"), Duration::from_secs(5), "the last page's held bed shows as held")
        .await;
    assert!(browser.text("#main").await.contains("1005 of 1005 resources shown"));
    app.stop().await;
}

/// Holds taken under a session say so on the board, and the sessions page lists the session with its holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sessions_holds_are_marked_on_the_board_and_the_session_is_listed_with_them() {
    let Some(edge) = edge() else { return };
    let _turn = TURN.lock().await;
    let (_db, app) = origin(&edge).await;
    let beds = [app.create_resource("bed", "Ward 7 Bed 1").await, app.create_resource("bed", "Ward 7 Bed 2").await];
    let session =
        app.post_as(&app.keys.client, "/api/sessions", json!({"owner_id": "ward-7-desk", "ttl_seconds": 600})).await;
    assert_eq!(session.status, StatusCode::CREATED, "{}", session.body);
    let sid = session.body["id"].as_str().unwrap().to_owned();
    for bed in &beds {
        let r = app
            .post_as(
                &app.keys.client,
                "/api/locks/acquire",
                json!({"resource_id": bed, "owner_id": "ward-7-desk", "session_id": sid}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let Some(browser) = Browser::start().await else { return };
    sign_in(&browser, &edge.url, &app.keys.viewer).await;
    for bed in &beds {
        browser
            .wait_until(&state_is(bed, "held"), Duration::from_secs(5), "the session's hold is held on the board")
            .await;
        assert!(
            browser.text(&row(bed)).await.contains("ward-7-desk · clinic-north (session)"),
            "the row says the hold is a session's"
        );
    }
    browser.click("#tab-sessions").await;
    let selector = format!("tr[data-session-id=\"{sid}\"]");
    browser.wait_for(&selector, Duration::from_secs(5)).await;
    let text = browser.text(&selector).await;
    assert!(text.contains("ward-7-desk") && text.contains("OPEN"), "{text}");
    assert_eq!(browser.text(&format!("{selector} td.holds")).await.trim(), "2");
    browser.screenshot("dashboard-sessions").await;
    app.stop().await;
}

/// A group's members and a booking say so on the board: the group's short id on each member's row, a booking's
/// end in its row.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_members_and_bookings_are_marked_on_the_board() {
    let Some(edge) = edge() else { return };
    let _turn = TURN.lock().await;
    let (_db, app) = origin(&edge).await;
    let (or, machine, bed) = (
        app.create_resource("or-room", "OR 7").await,
        app.create_resource("anaesthesia", "Machine 7").await,
        app.create_resource("bed", "Ward 9 Bed 1").await,
    );
    let group = app.post_as(&app.keys.client, "/api/locks/acquire-group", json!({"resources": [{"resource_id": or}, {"resource_id": machine}], "owner_id": "theatre-7", "ttl_seconds": 600})).await;
    assert_eq!(group.status, StatusCode::OK, "{}", group.body);
    let gid = group.body["group_id"].as_str().unwrap().to_owned();
    let held = app
        .post_as(
            &app.keys.client,
            "/api/locks/acquire",
            json!({"resource_id": bed, "owner_id": "ward-9", "ttl_seconds": 60}),
        )
        .await;
    let until: chrono::DateTime<chrono::Utc> = held.body["last_heartbeat"].as_str().unwrap().parse().unwrap();
    let until = (until + chrono::Duration::hours(2)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let booked = app
        .post_as(&app.keys.client, "/api/locks/book", json!({"resource_id": bed, "owner_id": "ward-9", "until": until}))
        .await;
    assert_eq!(booked.body["status"], "BOOKED", "{}", booked.body);
    let Some(browser) = Browser::start().await else { return };
    sign_in(&browser, &edge.url, &app.keys.viewer).await;
    let short = &gid[gid.len() - 6..];
    for id in [&or, &machine] {
        browser
            .wait_until(&state_is(id, "held"), Duration::from_secs(5), "the group member is held on the board")
            .await;
        let text = browser.text(&row(id)).await;
        assert!(text.contains(&format!("(group …{short})")), "{text}");
    }
    browser.wait_until(&state_is(&bed, "held"), Duration::from_secs(5), "the booking is held on the board").await;
    assert!(browser.text(&row(&bed)).await.contains("(booked until"), "the booking's row names its end");
    let beat = browser.text(&format!("{} td.beat", row(&bed))).await;
    assert_eq!(beat.trim(), "not needed", "a booking needs no heartbeats");
    // The group is also one row of its own, with both members and its holder; the plain booking is no group.
    let group_row = format!("section.groups tr[data-group-id=\"{gid}\"]");
    browser.wait_for(&group_row, Duration::from_secs(5)).await;
    let text = browser.text(&group_row).await;
    assert!(
        text.contains("OR 7 (or-room)") && text.contains("Machine 7 (anaesthesia)") && text.contains("theatre-7"),
        "{text}"
    );
    assert_eq!(
        browser.eval("return document.querySelectorAll('section.groups tbody tr').length").await,
        1,
        "one row for the group"
    );
    // Booked together, the row says so; released together, it goes.
    let booked = app
        .post_as(&app.keys.client, "/api/locks/book", json!({"group_id": gid, "owner_id": "theatre-7", "until": until}))
        .await;
    assert_eq!(booked.status, StatusCode::OK, "{}", booked.body);
    browser
        .wait_until(
            &format!(
                "return (document.querySelector('{}')?.textContent || '').includes('booked until')",
                group_row.replace('\'', "\\'")
            ),
            Duration::from_secs(5),
            "the group row shows the booking",
        )
        .await;
    browser.screenshot("dashboard-groups-and-bookings").await;
    let released = app
        .post_as(&app.keys.client, "/api/locks/release-group", json!({"group_id": gid, "owner_id": "theatre-7"}))
        .await;
    assert_eq!(released.status, StatusCode::OK, "{}", released.body);
    browser
        .wait_until(
            "return document.querySelector('section.groups') === null",
            Duration::from_secs(5),
            "no live group, no group section",
        )
        .await;
    app.stop().await;
}

/// A bed's queue and its operational status on the board: "· N waiting" in its holder cell while requests wait,
/// and its HL7 status (letter and word) beside its state, greyed when it cannot be held.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queue_length_and_operational_status_are_on_the_board() {
    let Some(edge) = edge() else { return };
    let _turn = TURN.lock().await;
    let (_db, app) = origin(&edge).await;
    let (busy, cleaning) =
        (app.create_resource("bed", "Ward 5 Bed 1").await, app.create_resource("bed", "Ward 5 Bed 2").await);
    assert_eq!(
        app.post_as(
            &app.keys.client,
            "/api/locks/acquire",
            json!({"resource_id": busy, "owner_id": "ward-5", "ttl_seconds": 60})
        )
        .await
        .status,
        StatusCode::OK
    );
    let mut waiters = vec![];
    for i in 0..2u64 {
        let req = app.request_as(reqwest::Method::POST, "/api/locks/acquire", Some(&app.keys.client)).json(
            &json!({"resource_id": busy, "owner_id": format!("waiting-{i}"), "ttl_seconds": 60, "wait_seconds": 20}),
        );
        waiters.push(tokio::spawn(async move { req.send().await }));
        // In a known order: the next joins once this one is queued.
        while app.get(&format!("/api/locks/{busy}")).await.body["queue_length"].as_u64().unwrap_or(0) < i + 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let set = app
        .send(
            app.request_as(reqwest::Method::PATCH, &format!("/api/resources/{cleaning}"), Some(&app.keys.admin))
                .json(&json!({"status": "H"})),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    let Some(browser) = Browser::start().await else { return };
    sign_in(&browser, &edge.url, &app.keys.viewer).await;
    // The row's text, as a JavaScript expression.
    let cell = |id: &str| format!("(document.querySelector('{}')?.textContent || '')", row(id).replace('\'', "\\'"));
    browser
        .wait_until(
            &format!("return {}.includes('2 waiting')", cell(&busy)),
            Duration::from_secs(10),
            "the queue's length on the held bed",
        )
        .await;
    browser
        .wait_until(
            &format!("return {}.includes('H housekeeping')", cell(&cleaning)),
            Duration::from_secs(10),
            "the status letter and word",
        )
        .await;
    let greyed = format!(
        "return document.querySelector('{}').classList.contains('unavailable')",
        row(&cleaning).replace('\'', "\\'")
    );
    assert_eq!(browser.eval(&greyed).await, true, "a bed that cannot be held is greyed");
    assert!(browser.text(&row(&busy)).await.contains("U unoccupied"));
    browser.screenshot("dashboard-queue-and-status").await;
    // The head of the queue is granted when the holder lets go; the board follows.
    assert_eq!(
        app.post_as(&app.keys.client, "/api/locks/release", json!({"resource_id": busy, "owner_id": "ward-5"}))
            .await
            .status,
        StatusCode::OK
    );
    let granted = format!("return {0}.includes('waiting-0') && {0}.includes('1 waiting')", cell(&busy));
    browser.wait_until(&granted, Duration::from_secs(10), "granted to the first waiter, one still waiting").await;
    for w in waiters {
        w.abort();
    }
    app.stop().await;
}

/// A person waits for a held bed from the dashboard: the row offers "Wait…", the detail's form joins the queue,
/// and the bed is theirs when its holder lets go.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_waits_in_the_queue_from_the_dashboard_and_gets_the_bed() {
    let Some(edge) = edge() else { return };
    let _turn = TURN.lock().await;
    let (_db, app) = origin(&edge).await;
    let bed = app.create_resource("bed", "Ward 6 Bed 1").await;
    // Held by another principal (the admin's), so the signed-in client is not its holder.
    let held = app
        .post_as(
            &app.keys.admin,
            "/api/locks/acquire",
            json!({"resource_id": bed, "owner_id": "ward-6", "ttl_seconds": 60}),
        )
        .await;
    assert_eq!(held.status, StatusCode::OK, "{}", held.body);
    let Some(browser) = Browser::start().await else { return };
    sign_in(&browser, &edge.url, &app.keys.client).await;
    browser.wait_until(&state_is(&bed, "held"), Duration::from_secs(5), "the bed shows held").await;
    browser.click("button[aria-label=\"Wait for Ward 6 Bed 1\"]").await;
    browser.wait_for("#acquire-wait", Duration::from_secs(3)).await;
    assert_eq!(
        browser.eval("return document.querySelector('#acquire-wait').value").await,
        "30",
        "the longest wait by default"
    );
    assert_eq!(browser.text("form.acquire button[type=submit]").await.trim(), "Wait for it");
    browser.click("form.acquire button[type=submit]").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while app.get(&format!("/api/locks/{bed}")).await.body["queue_length"] != 1 {
        assert!(std::time::Instant::now() < deadline, "the dashboard's request never joined the queue");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(browser.text("form.acquire button[type=submit]").await.trim(), "Waiting in the queue…");
    assert_eq!(
        app.post_as(&app.keys.admin, "/api/locks/release", json!({"resource_id": bed, "owner_id": "ward-6"}))
            .await
            .status,
        StatusCode::OK
    );
    browser.wait_until(&state_is(&bed, "held"), Duration::from_secs(5), "held again").await;
    browser
        .wait_until(
            &format!(
                "return (document.querySelector('{}')?.textContent || '').includes('dashboard ·')",
                row(&bed).replace('\'', "\\'")
            ),
            Duration::from_secs(5),
            "held by the dashboard's owner",
        )
        .await;
    let shown = app.get(&format!("/api/locks/{bed}")).await.body;
    assert_eq!(
        (shown["status"].as_str(), shown["owner_id"].as_str(), shown["fencing_token"].as_u64()),
        (Some("HELD"), Some("dashboard"), Some(2))
    );
    browser.wait_for("#notice", Duration::from_secs(2)).await;
    assert!(browser.text("#notice").await.contains("Ward 6 Bed 1 is now held"));
    app.stop().await;
}
