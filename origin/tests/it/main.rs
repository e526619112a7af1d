//! The origin's integration tests, one binary (a change links once), a module per area (zero2prod's layout).
//! Each test gets its own database and origin (`support`); PostgreSQL tests run against the cluster that
//! `cargo xtask test` starts.
#[macro_use]
mod support;
mod bookings;
mod cli;
mod conformance;
mod contention;
mod dashboard;
mod dashboard_detail;
mod dashboard_serving;
mod deploy;
mod edge;
mod failover;
mod fast_grant;
mod fast_paths;
mod groups;
mod hl7;
mod lock_wait;
mod metrics;
mod ml;
mod openapi;
mod queue;
mod reaper;
mod resources;
mod security;
mod sessions;
mod stream;
mod types;
