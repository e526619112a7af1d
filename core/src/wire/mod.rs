//! The wire contract: everything that crosses between the tiers, apart from the lease rules (which know nothing
//! of HTTP). The origin's routers, the edge's validation, the dashboard's client and the coming client library
//! all use these types and the one endpoint table.
//!
//! * [`endpoints`] — every endpoint once: method, path, request body, response body, the role it needs; and the
//!   edge's whole request check.
//! * [`requests`] — request bodies and their validation; [`queries`] — list endpoints' query parameters and the
//!   filters they validate into (what a store reads with).
//! * [`views`] — response bodies; [`locks`] — those that show a lease (a lock, a page of them, a group's).
//! * [`events`] — the event log: every kind, each kind's detail as a type, an entry as the API returns it.
//! * `openapi` (feature `openapi`, the origin) — the OpenAPI description, from the table and the types;
//!   `bodies` — what it asks of each body type.

#[cfg(feature = "openapi")]
pub mod bodies;
pub mod endpoints;
pub mod events;
pub mod locks;
#[cfg(feature = "openapi")]
pub mod openapi;
pub mod queries;
pub mod requests;
pub mod views;

pub use events::*;
pub use locks::*;
pub use queries::*;
pub use requests::*;
pub use views::*;
