//! The HHS lease rules, in one place.
//!
//! Everything here is a pure function of its inputs: time comes in as an explicit [`Millis`] (the database's
//! clock, read by the origin), nothing reads a clock, touches a socket or a database. The origin, the edge and the
//! dashboard all compile this crate, so they cannot disagree about what "expired" or "a valid owner id" means.
//!
//! * [`ids`], [`ttl`], [`time`] — validated newtypes: an invalid id or TTL cannot be constructed.
//! * [`lease`] — the state of one resource's lease and the transitions `acquire`, `heartbeat`, `release`,
//!   `expire`, `force_release`, each returning the next state plus the events to append.
//! * [`session`], [`group`], [`booking`] — the clinical holds on top of it: many holds renewed by one
//!   keepalive, several resources all or nothing, a hold turned into a booking that needs no heartbeats.
//! * [`policy`] — TTL bounds, the default TTL and per-type lock-delay.
//! * [`stored`] — a lease as a flat record of plain values, as every store keeps it.
//! * [`ttl_model`] — learned hold behaviour: suggested TTLs and anomaly scores.
//! * [`wire`] — the wire contract: every endpoint, request and response body, event kind and event detail.
//! * [`rate`] — which rate-limit bucket a client address counts against (IPv6 by /64).
//! * [`mllp`] — who may send HL7 over MLLP: the listener's transport and each client certificate's principal.
//! * [`error`] — the stable error codes and their HTTP status.
//! * [`reference`] — the reference model the fault harness judges outcomes by: what a client may believe it
//!   holds, and what an answer must be given what was observed.
//! * [`auth`] — roles and the API key format.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub mod admission;
pub mod auth;
pub mod booking;
pub mod denied;
pub mod error;
pub mod group;
pub mod hl7;
pub mod ids;
pub mod lease;
pub mod mllp;
pub mod policy;
pub mod queue;
pub mod rate;
pub mod reference;
pub mod session;
pub mod status;
pub mod stored;
pub mod time;
pub mod ttl;
pub mod ttl_model;
pub mod wire;

pub use auth::Role;
pub use denied::Denied;
pub use error::{ApiError, ErrorCode};
pub use ids::{
    FencingToken, GroupId, HoldId, Identifier, OwnerId, Principal, ResourceId, ResourceType, SessionId, WaiterId,
};
pub use lease::{EventKind, Hold, HoldState, Lease, LeaseEvent, LockStatus, Outcome};
pub use policy::{Policy, TypeChange, TypePolicy};
pub use time::Millis;
pub use ttl::{Ttl, TtlBounds};
