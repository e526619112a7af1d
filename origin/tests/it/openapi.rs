//! `GET /api/openapi.json`: open, and exactly the endpoint table — each route once, its success status, and
//! one response per error status with exactly the route's codes. (`cargo xtask fuzz-api` checks the
//! description against what the origin and the edge actually answer.)

use std::collections::{BTreeMap, BTreeSet};

use hhs_core::wire::endpoints::{Api, ROUTES};
use hhs_core::{Identifier, OwnerId, Principal, ResourceType, TtlBounds};
use proptest::prelude::*;
use regex_automata::meta::Regex;
use reqwest::StatusCode;
use serde_json::{json, Value};

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
    assert_eq!(doc["openapi"], "3.2.0");

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
        assert!(
            responses.contains_key(&route.status.to_string()),
            "{} {}: no {} response",
            route.method,
            route.path,
            route.status
        );
        // Each error status lists exactly the route's codes of that status.
        let mut expected: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for code in route.errors() {
            for status in code.statuses() {
                expected.entry(status.to_string()).or_default().insert(code.as_str().to_owned());
            }
        }
        let given: BTreeMap<String, BTreeSet<String>> = responses
            .iter()
            .filter(|(status, _)| status.as_str() >= "400")
            .map(|(s, r)| (s.clone(), codes_of(r)))
            .collect();
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
    let all: BTreeSet<String> = doc["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    let unused: BTreeSet<&str> = all.iter().filter(|c| !used.contains(*c)).map(String::as_str).collect();
    assert_eq!(unused, BTreeSet::from(["not_found", "method_not_allowed"]));
    assert_eq!(all.len(), 37, "a new error code: check that the table gives it to its routes");
    // Query parameters from the table's query types, e.g. the lock list's filters.
    let names: BTreeSet<&str> = doc["paths"]["/api/locks"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, BTreeSet::from(["status", "owner_id", "type", "after", "limit"]));
}

/// The `uuid` format (RFC 9562's hyphenated form), which request generators assert.
const UUID: &str = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";

/// A JSON Schema 2020-12 validator for the keywords the description uses, so a test can ask whether the
/// description allows a body. Formats are annotations (as 2020-12 has them by default) but `uuid`, which
/// request generators assert.
struct Validator<'a> {
    doc: &'a Value,
}

impl Validator<'_> {
    fn target(&self, reference: &Value) -> &Value {
        let pointer =
            reference.as_str().and_then(|r| r.strip_prefix('#')).unwrap_or_else(|| panic!("$ref {reference}"));
        self.doc.pointer(pointer).unwrap_or_else(|| panic!("no {pointer}"))
    }

    fn valid(&self, schema: &Value, v: &Value) -> bool {
        let Some(s) = schema.as_object() else { return schema.as_bool().unwrap_or(true) };
        if s.get("$ref").is_some_and(|r| !self.valid(self.target(r), v)) {
            return false;
        }
        let is_type = |t: &str| match t {
            "null" => v.is_null(),
            "boolean" => v.is_boolean(),
            "string" => v.is_string(),
            "object" => v.is_object(),
            "array" => v.is_array(),
            "number" => v.is_number(),
            "integer" => v.as_f64().is_some_and(|f| f.fract() == 0.0),
            other => panic!("type {other}"),
        };
        let all = |key: &str| {
            s.get(key).and_then(Value::as_array).map(|a| a.iter().map(|x| self.valid(x, v)).collect::<Vec<_>>())
        };
        let checks = [
            s.get("type").is_none_or(|t| match t {
                Value::String(t) => is_type(t),
                Value::Array(ts) => ts.iter().any(|t| is_type(t.as_str().unwrap())),
                _ => panic!("type {t}"),
            }),
            s.get("enum").is_none_or(|e| e.as_array().unwrap().contains(v)),
            s.get("const").is_none_or(|c| c == v),
            s.get("not").is_none_or(|n| !self.valid(n, v)),
            all("allOf").is_none_or(|r| r.iter().all(|x| *x)),
            all("anyOf").is_none_or(|r| r.iter().any(|x| *x)),
            all("oneOf").is_none_or(|r| r.iter().filter(|x| **x).count() == 1),
        ];
        if checks.iter().any(|ok| !ok) {
            return false;
        }
        match v {
            Value::Number(n) => {
                let n = n.as_f64().unwrap();
                s.get("minimum").is_none_or(|m| n >= m.as_f64().unwrap())
                    && s.get("maximum").is_none_or(|m| n <= m.as_f64().unwrap())
            }
            Value::String(text) => {
                let len = text.chars().count() as u64;
                s.get("minLength").is_none_or(|m| len >= m.as_u64().unwrap())
                    && s.get("maxLength").is_none_or(|m| len <= m.as_u64().unwrap())
                    && s.get("pattern").is_none_or(|p| Regex::new(p.as_str().unwrap()).unwrap().is_match(text))
                    && (s.get("format") != Some(&json!("uuid")) || Regex::new(UUID).unwrap().is_match(text))
                    && s.get("contentSchema")
                        .is_none_or(|c| serde_json::from_str(text).is_ok_and(|data: Value| self.valid(c, &data)))
            }
            Value::Array(items) => {
                let unique = items.iter().enumerate().all(|(i, a)| items[..i].iter().all(|b| a != b));
                s.get("minItems").is_none_or(|m| items.len() as u64 >= m.as_u64().unwrap())
                    && s.get("maxItems").is_none_or(|m| items.len() as u64 <= m.as_u64().unwrap())
                    && (s.get("uniqueItems") != Some(&Value::Bool(true)) || unique)
                    && s.get("items").is_none_or(|i| items.iter().all(|x| self.valid(i, x)))
            }
            Value::Object(fields) => {
                let props = s.get("properties").and_then(Value::as_object);
                let required = s.get("required").and_then(Value::as_array).cloned().unwrap_or_default();
                required.iter().all(|r| fields.contains_key(r.as_str().unwrap()))
                    && fields.iter().all(|(k, x)| match props.and_then(|p| p.get(k)) {
                        Some(p) => self.valid(p, x),
                        None => s.get("additionalProperties").is_none_or(|a| self.valid(a, x)),
                    })
            }
            _ => true,
        }
    }
}

fn document() -> &'static Value {
    static DOC: std::sync::LazyLock<Value> = std::sync::LazyLock::new(|| hhs_core::wire::openapi::document("test"));
    &DOC
}

fn request_schema(doc: &Value, method: &str, path: &str) -> Value {
    doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"].clone()
}

/// Whether the route's validation (the edge's and the origin's first check) accepts `body`.
fn accepted(api: Api, body: &Value) -> bool {
    let route = ROUTES.iter().find(|r| r.api == api).unwrap();
    (route.check)(body.to_string().as_bytes(), &TtlBounds::HARD).is_ok()
}

/// Every combination of the given field values (`None`: the field left out).
fn bodies(fields: &[(&str, Vec<Option<Value>>)]) -> Vec<Value> {
    let mut out = vec![json!({})];
    for (name, values) in fields {
        out = out
            .into_iter()
            .flat_map(|body| {
                values.iter().map(move |v| {
                    let mut b = body.clone();
                    if let Some(v) = v {
                        b[*name] = v.clone();
                    }
                    b
                })
            })
            .collect();
    }
    out
}

/// For each body: the description allows it exactly when validation accepts it.
fn schema_says_what_validation_accepts(api: Api, method: &str, path: &str, fields: &[(&str, Vec<Option<Value>>)]) {
    let doc = document();
    let v = Validator { doc };
    let schema = request_schema(doc, method, path);
    let mut disagree = Vec::new();
    let all = bodies(fields);
    for body in &all {
        let (described, valid) = (v.valid(&schema, body), accepted(api, body));
        if described != valid {
            disagree.push(format!("{body} (schema: {described}, validation: {valid})"));
        }
    }
    assert!(
        disagree.is_empty(),
        "{method} {path}: {} of {} bodies:\n{}",
        disagree.len(),
        all.len(),
        disagree.join("\n")
    );
}

const R1: &str = "0190a0c4-7a52-7000-8000-000000000001";
const R2: &str = "0190a0c4-7a52-7000-8000-000000000002";

#[test]
fn the_acquire_schema_says_what_validation_accepts() {
    schema_says_what_validation_accepts(
        Api::Acquire,
        "post",
        "/api/locks/acquire",
        &[
            ("resource_id", vec![None, Some(json!(R1)), Some(json!("bed-1"))]),
            ("owner_id", vec![Some(json!("ward-3:ws.1@north")), Some(json!("ward 3"))]),
            (
                "ttl_seconds",
                vec![
                    None,
                    Some(Value::Null),
                    Some(json!(1)),
                    Some(json!(30.0)),
                    Some(json!(0)),
                    Some(json!(30.5)),
                    Some(json!(604_801)),
                ],
            ),
            ("session_id", vec![None, Some(Value::Null), Some(json!(R2)), Some(json!("s-1"))]),
            (
                "wait_seconds",
                vec![None, Some(Value::Null), Some(json!(0)), Some(json!(30)), Some(json!(31)), Some(json!(-1))],
            ),
        ],
    );
}

#[test]
fn the_group_schema_says_what_validation_accepts() {
    let member = |id: &str| json!({"resource_id": id});
    let many: Vec<Value> = (0..33).map(|i| member(&format!("0190a0c4-7a52-7000-8000-{i:012}"))).collect();
    schema_says_what_validation_accepts(
        Api::AcquireGroup,
        "post",
        "/api/locks/acquire-group",
        &[
            (
                "resources",
                vec![
                    None,
                    Some(json!([member(R1), member(R2)])),
                    Some(json!([member(R1)])),
                    Some(json!([member(R1), member(R1)])),
                    Some(json!(many[..32])),
                    Some(json!(many)),
                ],
            ),
            ("owner_id", vec![Some(json!("theatre-3")), Some(json!(""))]),
            ("ttl_seconds", vec![None, Some(Value::Null), Some(json!(600)), Some(json!(0))]),
            ("session_id", vec![None, Some(Value::Null), Some(json!(R2)), Some(json!("nope"))]),
        ],
    );
}

#[test]
fn the_book_schema_says_what_validation_accepts() {
    schema_says_what_validation_accepts(
        Api::Book,
        "post",
        "/api/locks/book",
        &[
            ("resource_id", vec![None, Some(Value::Null), Some(json!(R1))]),
            ("group_id", vec![None, Some(Value::Null), Some(json!(R2))]),
            ("owner_id", vec![Some(json!("theatre-3"))]),
            ("until", vec![Some(json!("2030-01-31T18:00:00Z")), None]),
            ("fencing_token", vec![None, Some(Value::Null), Some(json!(0)), Some(json!(7)), Some(json!(-1))]),
        ],
    );
}

/// A text id: its schema's name, its parse function (whether it accepts) and its length limit.
type TextId = (&'static str, fn(&str) -> bool, usize);

/// Each of the text ids.
fn text_ids() -> [TextId; 4] {
    [
        ("OwnerId", |s| OwnerId::parse(s).is_ok(), OwnerId::MAX_LEN),
        ("Principal", |s| Principal::parse(s).is_ok(), Principal::MAX_LEN),
        ("ResourceType", |s| ResourceType::parse(s).is_ok(), ResourceType::MAX_LEN),
        ("Identifier", |s| Identifier::parse(s).is_ok(), Identifier::MAX_LEN),
    ]
}

#[test]
fn each_ids_schema_has_its_validators_length_limits() {
    let doc = document();
    for (name, parse, max) in text_ids() {
        let schema = &doc["components"]["schemas"][name];
        assert_eq!(schema["maxLength"], json!(max), "{name}: {schema}");
        assert_eq!(schema["minLength"], json!(1), "{name}: {schema}");
        assert!(schema["pattern"].is_string(), "{name}: {schema}");
        // The boundary: the longest accepted, one more refused, by both.
        let v = Validator { doc };
        let (longest, too_long) = ("a".repeat(max), "a".repeat(max + 1));
        assert!(parse(&longest) && v.valid(schema, &json!(longest)), "{name}");
        assert!(!parse(&too_long) && !v.valid(schema, &json!(too_long)), "{name}");
    }
}

/// Characters near every edge the parse functions draw: the plain-name charset, spaces of every kind, controls.
fn tricky_text() -> impl Strategy<Value = String> {
    let tricky = prop_oneof![
        4 => proptest::char::range('a', 'z'),
        1 => proptest::char::range('A', 'Z'),
        1 => proptest::char::range('0', '9'),
        2 => proptest::sample::select(vec!['.', '_', ':', '@', '-', ' ', '\t', '\n', '\r', '\u{0}', '\u{7f}', '\u{85}', '\u{a0}', '\u{2028}', '\u{3000}', '\u{feff}', 'é', '床', '🛏']),
        1 => any::<char>(),
    ];
    prop_oneof![
        proptest::collection::vec(tricky, 0..8).prop_map(|c| c.into_iter().collect()),
        proptest::collection::vec(proptest::char::range('a', 'z'), 60..270).prop_map(|c| c.into_iter().collect()),
    ]
}

/// Strings of the id's schema pattern (proptest's generator takes no anchors; the patterns are anchored at both ends).
fn from_pattern(which: usize) -> BoxedStrategy<String> {
    let doc = document();
    let pattern = doc["components"]["schemas"][text_ids()[which].0]["pattern"].as_str().unwrap().to_owned();
    let unanchored = pattern.strip_prefix('^').and_then(|p| p.strip_suffix('$')).unwrap();
    proptest::string::string_regex(unanchored).unwrap().boxed()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Strings generated from each id's pattern (as a fuzzer generates them) are accepted by its parse function.
    #[test]
    fn strings_made_from_a_pattern_are_accepted((which, text) in (0usize..4).prop_flat_map(|w| (Just(w), from_pattern(w)))) {
        let (name, parse, max) = text_ids()[which];
        prop_assume!(text.chars().count() <= max);
        prop_assert!(parse(&text), "{}: {:?} matches its pattern but is refused", name, text);
    }

    /// And the other way: whatever the text, the schema allows it exactly when the parse function accepts it.
    #[test]
    fn an_ids_schema_allows_exactly_what_its_parse_accepts(which in 0usize..4, text in tricky_text()) {
        let doc = document();
        let (name, parse, _) = text_ids()[which];
        let v = Validator { doc };
        prop_assert_eq!(v.valid(&doc["components"]["schemas"][name], &json!(text)), parse(&text), "{}: {:?}", name, text);
    }
}

/// The event stream's description says what each event carries: `itemSchema` (OpenAPI 3.2, for sequential
/// media types), one branch per kind of event, its `data` the JSON of an `EventView` (an entry of the log), a
/// `LockView` (a renewal) or `{}` (resync). The audit export likewise describes each of its lines.
#[test]
fn the_event_stream_describes_each_event() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.2.0");
    let media = &doc["paths"]["/api/events/stream"]["get"]["responses"]["200"]["content"]["text/event-stream"];
    assert!(media.get("schema").is_none(), "a stream is not one string: {media}");
    let item = &media["itemSchema"];
    let branches = item["oneOf"].as_array().unwrap_or_else(|| panic!("one branch per kind of event: {item}"));
    let data_of = |event: &str| {
        branches
            .iter()
            .find(|b| {
                b["properties"]["event"]["const"] == event
                    || (event == "log" && b["properties"]["event"].get("$ref").is_some())
            })
            .map(|b| b["properties"]["data"].clone())
            .unwrap_or_else(|| panic!("no branch for {event}: {item}"))
    };
    let log = data_of("log");
    assert_eq!(log["contentMediaType"], "application/json");
    assert_eq!(log["contentSchema"]["$ref"], "#/components/schemas/EventView");
    assert_eq!(data_of("heartbeat")["contentSchema"]["$ref"], "#/components/schemas/LockView");
    assert_eq!(data_of("resync")["const"], "{}");

    // The real events, as an SSE client parses them, fit the description (their data by its schema).
    let v = Validator { doc };
    let event = hhs_core::wire::EventView::new(
        hhs_core::wire::LogKind::ResourceCreated,
        hhs_core::Millis(1_700_000_000_000),
        &hhs_core::wire::Actor { principal: "north".into(), key_id: None, request_id: None, reason: None },
        hhs_core::wire::Detail::Other(json!({"note": "a detail"})),
    );
    let parsed = json!({"event": "resource_created", "id": "42", "data": serde_json::to_string(&event).unwrap()});
    assert!(v.valid(item, &parsed), "{parsed}");
    assert!(v.valid(&log["contentSchema"], &serde_json::to_value(&event).unwrap()));
    assert!(v.valid(item, &json!({"event": "resync", "data": "{}"})));
    assert!(!v.valid(item, &json!({"event": "resync", "data": "[]"})));
    assert!(!v.valid(item, &json!({"event": "heartbeat"})), "data is required");

    let export = &doc["paths"]["/api/audit/export"]["get"]["responses"]["200"]["content"]["application/x-ndjson"];
    assert_eq!(export["itemSchema"]["$ref"], "#/components/schemas/EventView", "{export}");
}

/// The events a real stream sends, parsed as an SSE client parses them (`id` carries over to the events after
/// it), until `wait` passes without one.
async fn parsed_events(resp: reqwest::Response, wait: std::time::Duration) -> Vec<Value> {
    use futures::StreamExt;
    let mut body = resp.bytes_stream();
    let (mut buf, mut out, mut last_id) = (String::new(), Vec::new(), None::<String>);
    while let Ok(Some(Ok(chunk))) = tokio::time::timeout(wait, body.next()).await {
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let (mut event, mut data) = (None, Vec::new());
            for line in block.lines() {
                let (field, value) =
                    line.split_once(':').map_or((line, ""), |(f, v)| (f, v.strip_prefix(' ').unwrap_or(v)));
                match field {
                    "event" => event = Some(value.to_owned()),
                    "data" => data.push(value.to_owned()),
                    "id" => last_id = Some(value.to_owned()),
                    _ => {} // comments (keep-alives)
                }
            }
            if !data.is_empty() {
                let mut e = json!({"event": event.unwrap_or_else(|| "message".into()), "data": data.join("\n")});
                if let Some(id) = &last_id {
                    e["id"] = json!(id);
                }
                out.push(e);
            }
        }
    }
    out
}

both_stores!(what_a_stream_really_sends_fits_its_description);

/// Each event of a real stream — log entries replayed and live, a renewal — is one the description allows, its
/// data checked against its `contentSchema` (as schemathesis checks a stream).
async fn what_a_stream_really_sends_fits_its_description(b: Backend) {
    let Some(db) = TestDb::new(b).await else { return };
    let app = TestApp::spawn(&db).await;
    let id = app.create_resource("bed", "B1").await;
    assert_eq!(app.acquire(&id, "ws-1", 60).await.status, StatusCode::OK);
    let stream =
        app.request_as(reqwest::Method::GET, "/api/events/stream", Some(&app.keys.viewer)).header("last-event-id", "0");
    let resp = stream.send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let reading = tokio::spawn(parsed_events(resp, std::time::Duration::from_millis(1_500)));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(app.heartbeat(&id, "ws-1").await.status, StatusCode::OK);
    assert_eq!(app.release(&id, "ws-1").await.status, StatusCode::OK);
    let events = reading.await.unwrap();
    let kinds: BTreeSet<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    for kind in ["resource_created", "acquired", "heartbeat", "released"] {
        assert!(kinds.contains(kind), "no {kind} event in {kinds:?}");
    }
    let doc = document();
    let item =
        &doc["paths"]["/api/events/stream"]["get"]["responses"]["200"]["content"]["text/event-stream"]["itemSchema"];
    assert!(item.is_object(), "the stream's events are described: {item}");
    let v = Validator { doc };
    for e in &events {
        assert!(v.valid(item, e), "{b:?}: the description does not allow {e}");
    }
    // And the description is not a blank cheque: a log entry's data must be an `EventView`.
    let logged = events.iter().find(|e| e["event"] == "acquired").unwrap();
    assert!(!v.valid(item, &json!({"event": "acquired", "id": logged["id"], "data": "{}"})));
    assert!(!v.valid(item, &json!({"event": "acquired", "data": logged["data"]})), "a log entry has its id");
    app.stop().await;
}
