//! What an endpoint carries, as the OpenAPI description shows it: each body type is [`Described`] (by its JSON
//! Schema, or as no body, a stream or text), and an endpoint's query, request and response together are its
//! [`Bodies`]. The endpoint table names each row's types; the description (`openapi`) says how each is shown.

use alloc::vec::Vec;
use schemars::{json_schema, Schema, SchemaGenerator};
use serde_json::Value;

/// What an endpoint carries, as schemas.
pub struct Bodies {
    /// One `in: query` parameter per field of the endpoint's query type.
    pub query: Vec<Value>,
    /// The request body's media type and schema.
    pub request: Option<(&'static str, Schema)>,
    pub response: (&'static str, Schema),
}

impl Bodies {
    pub(crate) fn of<Q: Described, Req: Described, Resp: Described>(g: &mut SchemaGenerator) -> Bodies {
        let response = Resp::content(g).unwrap_or(("application/json", json_schema!({})));
        Bodies { query: Q::parameters(g), request: Req::content(g), response }
    }
}

/// A type as it appears in the description: a JSON body by its schema, or none, or a stream or text.
pub trait Described {
    fn content(g: &mut SchemaGenerator) -> Option<(&'static str, Schema)>;
    /// As query parameters: one per property of its (object) schema, all optional; none for what is not JSON.
    fn parameters(_: &mut SchemaGenerator) -> Vec<Value> {
        Vec::new()
    }
}
