//! `GET /api/openapi.json`: open, and exactly the endpoint table — each route once, its success status, and
//! one response per error status with exactly the route's codes. (`cargo xtask fuzz-api` checks the
//! description against what the origin and the edge actually answer.)

use std::collections::{BTreeMap, BTreeSet};

use hhs_core::wire::endpoints::ROUTES;
use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{Backend, TestApp, TestDb};

/// The codes a response of the description allows.
fn codes_of(response: &Value) -> BTreeSet<String> {
    let schema = &response["content"]["application/json"]["schema"];
    let codes = schema["properties"]["error"]["properties"]["code"]["enum"].as_array().cloned().unwrap_or_default();
    codes.iter().filter_map(|c| c.as_str().map(str::to_owned)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_description_is_open_and_lists_exactly_the_route_table_with_every_error_code() {
    let Some(db) = TestDb::new(Backend::Sqlite).await else { return };
    let app = TestApp::spawn(&db).await;
    // No key: it describes the API, nothing it holds.
    let resp = app.client.get(format!("{}/api/openapi.json", app.url)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");

    let paths = doc["paths"].as_object().unwrap();
    let described: BTreeSet<(String, String)> = paths
        .iter()
        .flat_map(|(path, ops)| ops.as_object().unwrap().keys().map(move |m| (m.to_uppercase(), path.clone())))
        .collect();
    let table: BTreeSet<(String, String)> = ROUTES.iter().map(|r| (r.method.to_owned(), r.path.to_owned())).collect();
    assert_eq!(described, table, "the description and the endpoint table differ");

    let mut used = BTreeSet::new();
    for route in ROUTES {
        let op = &doc["paths"][route.path][route.method.to_lowercase()];
        let responses = op["responses"].as_object().unwrap();
        assert!(responses.contains_key(&route.status.to_string()), "{} {}: no {} response", route.method, route.path, route.status);
        // Each error status lists exactly the route's codes of that status.
        let mut expected: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for code in route.errors() {
            for status in code.statuses() {
                expected.entry(status.to_string()).or_default().insert(code.as_str().to_owned());
            }
        }
        let given: BTreeMap<String, BTreeSet<String>> =
            responses.iter().filter(|(status, _)| status.as_str() >= "400").map(|(s, r)| (s.clone(), codes_of(r))).collect();
        assert_eq!(given, expected, "{} {}", route.method, route.path);
        used.extend(given.into_values().flatten());
        // The role it needs, and a body exactly where the table has one.
        assert_eq!(op["x-role"], route.role.as_str());
        assert_eq!(op.get("requestBody").is_some(), route.body, "{} {}", route.method, route.path);
        if route.path.contains('{') {
            assert_eq!(op["parameters"][0]["in"], "path", "{} {}", route.method, route.path);
        }
    }
    // Every code there is (the `ErrorCode` schema is derived from the enum) is some route's, but those that
    // answer paths and methods outside the table.
    let all: BTreeSet<String> =
        doc["components"]["schemas"]["ErrorCode"]["enum"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
    let unused: BTreeSet<&str> = all.iter().filter(|c| !used.contains(*c)).map(String::as_str).collect();
    assert_eq!(unused, BTreeSet::from(["not_found", "method_not_allowed"]));
    assert_eq!(all.len(), 36, "a new error code: check that the table gives it to its routes");
    // Query parameters from the table's query types, e.g. the lock list's filters.
    let names: BTreeSet<&str> = doc["paths"]["/api/locks"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, BTreeSet::from(["status", "owner_id", "type", "after", "limit"]));
}
