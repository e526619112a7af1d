//! hhs-origin: the lease service. See ARCHITECTURE.md for the map.

pub mod config;
pub mod healthcheck;
pub mod hl7;
pub mod http;
pub mod keys;
pub mod pool;
pub mod primary;
pub mod reaper;
pub mod server;
pub mod service_role;
pub mod store;
pub mod stream;
pub mod telemetry;
pub mod ttl_model;
