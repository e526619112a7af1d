//! hhs-client: HHS from Rust. [`Client`] makes typed calls for every endpoint over the shared wire contract
//! (`hhs_core::wire::endpoints`: a request and its answer cannot be mismatched), with request ids and retries
//! (jittered backoff on 503 and 429, honouring `Retry-After`; never on 409 or any other refusal). [`Lease`]
//! holds a resource: it heartbeats in the background at a third of the TTL, exposes the fencing token, and tells
//! its owner the moment the hold may be lost (`LeaseGuard::lost`) — a paused or partitioned client must know
//! it may no longer act. [`SessionGuard`] does the same for a session: one keepalive for every hold taken under
//! it, and [`GroupGuard`] for a group: several resources, all or none, one heartbeat for all. The `hhs` binary (`src/bin/hhs.rs`) is the CLI built on it.
//!
//! For wasm32 (a browser, a Worker) the library builds with [`Client`] alone — typed calls and retries over
//! fetch; the lease guard needs background tasks and a clock, and is native only.

mod client;
mod error;
#[cfg(not(target_arch = "wasm32"))]
mod group;
#[cfg(not(target_arch = "wasm32"))]
mod lease;
mod platform;
#[cfg(not(target_arch = "wasm32"))]
mod renewal;
#[cfg(not(target_arch = "wasm32"))]
mod session;

pub use client::{Client, Retry};
pub use error::ClientError;
#[cfg(not(target_arch = "wasm32"))]
pub use group::GroupGuard;
#[cfg(not(target_arch = "wasm32"))]
pub use lease::{Lease, LeaseGuard};
#[cfg(not(target_arch = "wasm32"))]
pub use renewal::Lost;
#[cfg(not(target_arch = "wasm32"))]
pub use session::SessionGuard;
