//! The OpenAPI 3.2 description of the API (`GET /api/openapi.json`), built from the endpoint table and the wire
//! types' JSON Schemas, so it cannot drift from what the tiers serve: one path per row of
//! [`ROUTES`](crate::wire::endpoints::ROUTES), its query, body and success from the row's types, and one response
//! per status its errors can have, the `code` narrowed to exactly those ([`Route::errors`]).
//!
//! Requests and responses share one generator in the deserialize contract: a field the server fills by default
//! is optional in a request, and a response read by a client is described as that client reads it.

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use schemars::generate::{Contract, SchemaSettings};
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde_json::{json, Map, Value};

use crate::error::{ErrorBody, ErrorCode};
use crate::ids::{ResourceId, ResourceType};
use crate::wire::bodies::Described;
use crate::wire::endpoints::{documented, AuditExport, EventStream, NoBody, Route, OPENAPI_PATH, ROUTES};
use crate::wire::{EventView, LockView, LogKind};

/// A body that is text of `media`, described in words.
fn text(media: &'static str, about: &str) -> Option<(&'static str, Schema)> {
    Some((media, json_schema!({"type": "string", "description": about})))
}

impl<T: JsonSchema> Described for T {
    fn content(g: &mut SchemaGenerator) -> Option<(&'static str, Schema)> {
        Some(("application/json", g.subschema_for::<T>()))
    }

    fn parameters(g: &mut SchemaGenerator) -> Vec<Value> {
        let schema = T::json_schema(g);
        let Some(Value::Object(props)) = schema.get("properties") else { return Vec::new() };
        props
            .iter()
            .map(|(name, schema)| json!({"name": name, "in": "query", "required": false, "schema": schema}))
            .collect()
    }
}

impl Described for NoBody {
    fn content(_: &mut SchemaGenerator) -> Option<(&'static str, Schema)> {
        None
    }
}

/// A string of JSON whose value `schema` describes (an SSE event's `data`).
fn json_text(schema: Schema) -> Value {
    json!({"type": "string", "contentMediaType": "application/json", "contentSchema": schema})
}

impl Described for EventStream {
    /// One event of the stream (a sequential media type: the schema is the `itemSchema`), as an SSE client
    /// parses it — `event`, `id` and `data` as text — with what its `data` carries, by `event`.
    fn content(g: &mut SchemaGenerator) -> Option<(&'static str, Schema)> {
        let (kind, event, lock) =
            (g.subschema_for::<LogKind>(), g.subschema_for::<EventView>(), g.subschema_for::<LockView>());
        let item = json_schema!({
            "description": "One server-sent event. An entry of the event log: `event` is its kind, `id` its id, `data` its \
                `EventView` (as `GET /api/events` gives it). A renewal: `event: heartbeat`, `data` the hold's `LockView`, no \
                `id` of its own. `event: resync`: the client is too far behind; reload the board.",
            "oneOf": [
                {
                    "type": "object",
                    "required": ["event", "id", "data"],
                    "properties": {"event": kind, "id": {"type": "string", "pattern": "^[0-9]+$"}, "data": json_text(event)},
                },
                {
                    "type": "object",
                    "required": ["event", "data"],
                    "properties": {"event": {"const": "heartbeat"}, "data": json_text(lock)},
                },
                {
                    "type": "object",
                    "required": ["event", "data"],
                    "properties": {"event": {"const": "resync"}, "data": {"const": "{}"}},
                },
            ],
        });
        Some(("text/event-stream", item))
    }
}

impl Described for crate::wire::endpoints::Er7 {
    fn content(_: &mut SchemaGenerator) -> Option<(&'static str, Schema)> {
        // Described as text/plain, which every HTTP tool sends; `application/hl7-v2` and
        // `x-application/hl7-v2+er7` are taken the same.
        text("text/plain", "one HL7 v2 message in ER7 (segments ended by carriage returns), also as application/hl7-v2")
    }
}

impl Described for crate::wire::endpoints::Er7Ack {
    fn content(_: &mut SchemaGenerator) -> Option<(&'static str, Schema)> {
        text("application/hl7-v2", "the message's ACK in ER7: MSA-1 is AA (applied), AE (not applied: unknown bed, bad status) or AR (rejected)")
    }
}

impl Described for AuditExport {
    /// One line of the export (a sequential media type: the schema is the `itemSchema`).
    fn content(g: &mut SchemaGenerator) -> Option<(&'static str, Schema)> {
        let mut line = g.subschema_for::<EventView>();
        line.insert("description".into(), json!("newline-delimited JSON: one `EventView` a line, oldest first"));
        Some(("application/x-ndjson", line))
    }
}

/// Media types whose body is a sequence of items: their schema describes one item (OpenAPI 3.2's `itemSchema`).
const SEQUENTIAL: [&str; 2] = ["text/event-stream", "application/x-ndjson"];

/// A media type object: `{"schema": …}`, or `{"itemSchema": …}` for a sequence.
fn media_type(media: &str, schema: Schema) -> Value {
    let key = if SEQUENTIAL.contains(&media) { "itemSchema" } else { "schema" };
    json!({key: schema})
}

fn generator() -> SchemaGenerator {
    SchemaSettings::draft2020_12()
        .with(|s| {
            s.definitions_path = "/components/schemas".into();
            s.meta_schema = None;
            s.contract = Contract::Deserialize;
        })
        .into_generator()
}

/// The description, for `version` of the API.
pub fn document(version: &str) -> Value {
    let mut g = generator();
    let mut paths: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for route in ROUTES {
        let op = operation(route, &mut g);
        paths.entry(route.path.to_string()).or_default().insert(route.method.to_ascii_lowercase(), op);
    }
    // Every code (`ErrorCode`'s schema lists them all), though 404 `not_found` and 405 only answer paths and
    // methods outside the table.
    let _ = g.subschema_for::<ErrorBody>();
    let schemas = g.take_definitions(true);
    json!({
        "openapi": "3.2.0",
        "info": {
            "title": "HHS — the Hospital Hold System",
            "version": version,
            "description": "Short, exclusive holds on shared hospital resources. Every error is \
                `{\"error\":{\"code\":…,\"message\":…}}`; its code is stable and always has the same status.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"key": {"type": "http", "scheme": "bearer", "description": "an API key: hhs_<id>_<secret>"}},
        },
        "security": [{"key": []}],
        "x-served-outside-the-table": [OPENAPI_PATH, "/healthz", "/metrics"],
    })
}

fn operation(route: &Route, g: &mut SchemaGenerator) -> Value {
    let bodies = documented(route.api, g);
    let mut parameters = bodies.query;
    if let Some(param) = path_parameter(route.path, g) {
        parameters.insert(0, param);
    }
    let mut responses = Map::new();
    let (media, schema) = bodies.response;
    responses.insert(
        route.status.to_string(),
        json!({"description": "success", "content": {media: media_type(media, schema)}}),
    );
    let mut by_status: BTreeMap<u16, Vec<ErrorCode>> = BTreeMap::new();
    for code in route.errors() {
        for status in code.statuses() {
            by_status.entry(status).or_default().push(code);
        }
    }
    for (status, codes) in by_status {
        responses.insert(status.to_string(), error_response(&codes));
    }
    let mut op = json!({
        "operationId": alloc::format!("{:?}", route.api),
        "x-role": route.role.as_str(),
        "description": alloc::format!("Needs a key of role {} or above.", route.role.as_str()),
        "parameters": parameters,
        "responses": responses,
    });
    if let Some((media, schema)) = bodies.request {
        op["requestBody"] = json!({"required": true, "content": {media: {"schema": schema}}});
    }
    op
}

fn path_parameter(path: &str, g: &mut SchemaGenerator) -> Option<Value> {
    let (name, schema) = if path.contains("{resource_id}") {
        ("resource_id", g.subschema_for::<ResourceId>())
    } else if path.contains("{type_name}") {
        ("type_name", g.subschema_for::<ResourceType>())
    } else if path.contains("{session_id}") {
        ("session_id", g.subschema_for::<crate::ids::SessionId>())
    } else if path.contains("{key_id}") {
        ("key_id", json_schema!({"type": "string", "minLength": 1}))
    } else {
        return None;
    };
    Some(json!({"name": name, "in": "path", "required": true, "schema": schema}))
}

/// An error response whose `code` is one of `codes` (all of one status).
fn error_response(codes: &[ErrorCode]) -> Value {
    let names: Vec<&str> = codes.iter().map(|c| c.as_str()).collect();
    json!({
        "description": names.join(", "),
        "content": {"application/json": {"schema": {
            "allOf": [{"$ref": "#/components/schemas/ErrorBody"}],
            "properties": {"error": {"properties": {"code": {"enum": names}}}},
        }}},
    })
}
