//! hhs-client's tests, one binary, against a real origin (in-process, on the embedded store; the client speaks
//! HTTP to it like any other): `guard.rs` (the self-renewing hold, losing it, dropping it, riding out 503s) and
//! `cli.rs` (`hhs lock`).
mod cli;
mod guard;
mod support;
