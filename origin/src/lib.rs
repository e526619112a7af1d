//! hhs-origin: the lease service. See ARCHITECTURE.md for the map.

pub mod config;
pub mod grant;
pub mod hl7;
pub mod http;
pub mod keys;
pub mod model;
pub mod pool;
pub mod primary;
pub mod reaper;
pub mod server;
pub mod store;
pub mod stream;
pub mod telemetry;
