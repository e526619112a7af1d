//! A resource's detail panel as a person at a workstation uses it, in Chromium: the TTL its acquire form offers,
//! and the board beside it at 1,400 px wide.

use std::time::Duration;

use crate::dashboard::{row, sign_in, state_is};
use crate::support::browser::Browser;
use crate::support::edge::{edge, origin, TURN};
use crate::support::TestApp;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The model's suggestion for the client key's owner `owner` on `id`.
async fn suggestion(app: &TestApp, id: &str, owner: &str) -> Value {
    let r = app.post_as(&app.keys.client, "/api/ml/suggest", json!({"resource_id": id, "owner_id": owner})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body
}

/// Waits until the suggestion for `owner` rests on `scope`, and returns it.
async fn suggestion_from(app: &TestApp, id: &str, owner: &str, scope: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let s = suggestion(app, id, owner).await;
        if s["basis"]["scope"] == scope {
            return s;
        }
        assert!(std::time::Instant::now() < deadline, "no {scope}-scoped suggestion for {owner}: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `n` quick acquire → release cycles by the client key's `owner`: a script's holds, well under a second each.
async fn quick_holds(app: &TestApp, id: &str, owner: &str, n: usize) {
    for _ in 0..n {
        let body = json!({"resource_id": id, "owner_id": owner, "ttl_seconds": 30});
        assert_eq!(app.post_as(&app.keys.client, "/api/locks/acquire", body).await.status, StatusCode::OK);
        let body = json!({"resource_id": id, "owner_id": owner});
        assert_eq!(app.post_as(&app.keys.client, "/api/locks/release", body).await.status, StatusCode::OK);
    }
}

/// Opens `id`'s detail and returns the TTL its acquire form offers once the suggestion is in.
async fn offered_ttl(browser: &Browser, id: &str) -> Value {
    browser.click(&format!("{} th button", row(id))).await;
    browser.wait_for("#suggestion", Duration::from_secs(5)).await;
    browser
        .wait_until(
            "return document.querySelector('#acquire-ttl').value !== '';",
            Duration::from_secs(5),
            "a TTL is offered",
        )
        .await;
    browser.eval("return document.querySelector('#acquire-ttl').value").await
}

/// Scripts holding beds for milliseconds teach the type a TTL of a second; a person acquiring from the board is
/// offered the type's default (300 s here) until their own holds teach otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_person_is_offered_the_types_default_ttl_not_what_scripts_taught() {
    let Some(edge) = edge() else { return };
    let _turn = TURN.lock().await;
    let (_db, app) = origin(&edge).await;
    let (scripted, bed) =
        (app.create_resource("bed", "Ward 3 Bed 1").await, app.create_resource("bed", "Ward 3 Bed 2").await);
    quick_holds(&app, &scripted, "bed-script", 12).await;
    let taught = suggestion_from(&app, &bed, "dashboard", "type").await;
    let short = taught["suggested_ttl"].as_u64().unwrap();
    assert!(short < 300, "the scripts taught the type a short TTL: {taught}");

    let Some(browser) = Browser::start().await else { return };
    sign_in(&browser, &edge.url, &app.keys.client).await;
    browser.wait_until(&state_is(&bed, "free"), Duration::from_secs(5), "the bed is free").await;
    let offered = offered_ttl(&browser, &bed).await;
    browser.screenshot("dashboard-person-ttl").await;
    assert_eq!(offered, "300", "the type's default, not the {short} s the scripts' holds taught");
    let said = browser.text("#suggestion").await;
    assert!(said.starts_with(&format!("{short} s")), "the model's suggestion itself is still shown: {said}");
    assert!(said.contains("A person is offered 300 s (5:00)"), "and why the form offers more: {said}");
    browser.click("form.acquire button[type=submit]").await;
    browser.wait_until(&state_is(&bed, "held"), Duration::from_secs(3), "acquired from the dashboard").await;
    assert_eq!(app.get(&format!("/api/locks/{bed}")).await.body["ttl_seconds"], 300);
    browser.click("button[aria-label=\"Release Ward 3 Bed 2\"]").await;
    browser.wait_until(&state_is(&bed, "free"), Duration::from_secs(3), "released").await;

    // The person's own quick holds are theirs to learn from: the form then offers what they taught.
    quick_holds(&app, &scripted, "dashboard", 6).await;
    let own = suggestion_from(&app, &bed, "dashboard", "owner").await;
    browser.click("button.close").await;
    browser
        .wait_until("return document.querySelector('aside.detail') === null;", Duration::from_secs(2), "closed")
        .await;
    let offered = offered_ttl(&browser, &bed).await;
    assert_eq!(offered, own["suggested_ttl"].to_string(), "learned from the person's own holds: {own}");
    app.stop().await;
}

/// Every element matching `css` whose content is wider than its box (cut off, or behind an ellipsis), as
/// "text (content width > box width)"; one per line.
fn clipped(css: &str) -> String {
    format!(
        "return [...document.querySelectorAll('{css}')].filter(e => e.scrollWidth > e.clientWidth + 1)
            .map(e => `${{e.textContent.trim()}} (${{e.scrollWidth}} > ${{e.clientWidth}})`).join('\\n');"
    )
}

/// At 1,400 px with a resource's detail open, the board still shows a long holder name and a booking's end
/// whole, each group fits beside the panel, and so does the Types table.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn at_1400_px_the_detail_panel_leaves_holders_bookings_and_types_whole() {
    let Some(edge) = edge() else { return };
    let _turn = TURN.lock().await;
    let (_db, app) = origin(&edge).await;
    let bed = app.create_resource("bed", "Ward 3 Bed 4").await;
    for i in 5..=7 {
        app.create_resource("bed", &format!("Ward 3 Bed {i}")).await;
    }
    let or = app.create_resource("or-room", "OR 2").await;
    let held = app
        .post_as(
            &app.keys.client,
            "/api/locks/acquire",
            json!({"resource_id": bed, "owner_id": "ward-3:workstation-12", "ttl_seconds": 60}),
        )
        .await;
    assert_eq!(held.status, StatusCode::OK, "{}", held.body);
    let until: chrono::DateTime<chrono::Utc> = held.body["last_heartbeat"].as_str().unwrap().parse().unwrap();
    let until = (until + chrono::Duration::hours(2)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let booked = app
        .post_as(
            &app.keys.client,
            "/api/locks/book",
            json!({"resource_id": bed, "owner_id": "ward-3:workstation-12", "until": until}),
        )
        .await;
    assert_eq!(booked.body["status"], "BOOKED", "{}", booked.body);
    // A booked group too: its own row names the holder and the booking's end.
    let machine = app.create_resource("anaesthesia", "Machine 2").await;
    let owner = "theatre-2:anaesthesia-cart";
    let members = json!([{"resource_id": or}, {"resource_id": machine}]);
    let group = app
        .post_as(
            &app.keys.client,
            "/api/locks/acquire-group",
            json!({"resources": members, "owner_id": owner, "ttl_seconds": 600}),
        )
        .await;
    assert_eq!(group.status, StatusCode::OK, "{}", group.body);
    let gid = group.body["group_id"].as_str().unwrap();
    let booked = app
        .post_as(&app.keys.client, "/api/locks/book", json!({"group_id": gid, "owner_id": owner, "until": until}))
        .await;
    assert_eq!(booked.status, StatusCode::OK, "{}", booked.body);

    let Some(browser) = Browser::start().await else { return };
    browser.set_window_size(1400, 900).await;
    // The admin sees the most: every action, the resource form, the Types table's inputs.
    sign_in(&browser, &edge.url, &app.keys.admin).await;
    browser.wait_until(&state_is(&bed, "held"), Duration::from_secs(5), "the booking shows held").await;
    assert_eq!(browser.eval("return window.innerWidth").await, 1400);
    browser.click(&format!("{} th button", row(&bed))).await;
    browser.wait_for("#suggestion", Duration::from_secs(5)).await;
    browser.screenshot("dashboard-1400-detail").await;

    let holder = browser.text(&format!("{} td.holder", row(&bed))).await;
    assert!(holder.contains("ward-3:workstation-12 · clinic-north (booked until"), "{holder}");
    let group_row = browser.text(&format!("section.groups tr[data-group-id=\"{gid}\"]")).await;
    assert!(group_row.contains("theatre-2:anaesthesia-cart · clinic-north") && group_row.contains("booked until"));
    for css in ["main td", "main th", "section.group", "aside.detail dd", "aside.detail dt"] {
        assert_eq!(browser.eval(&clipped(css)).await, "", "cut off at 1,400 px beside the detail: {css}");
    }
    let beside = "const m = document.querySelector('main#main').getBoundingClientRect();
        const d = document.querySelector('aside.detail').getBoundingClientRect();
        return m.right <= d.left + 1 && d.right <= window.innerWidth + 1;";
    assert_eq!(browser.eval(beside).await, true, "the board and the panel side by side, both on screen");

    browser.click("#tab-types").await;
    browser.wait_for("table.types tbody tr", Duration::from_secs(5)).await;
    browser.screenshot("dashboard-1400-types").await;
    for css in ["table.types th", "table.types td", ".types-page"] {
        assert_eq!(browser.eval(&clipped(css)).await, "", "cut off at 1,400 px beside the detail: {css}");
    }
    let fits = "const t = document.querySelector('table.types').getBoundingClientRect();
        return t.right <= document.querySelector('aside.detail').getBoundingClientRect().left + 1;";
    assert_eq!(browser.eval(fits).await, true, "the Types table ends before the panel");
    app.stop().await;
}
