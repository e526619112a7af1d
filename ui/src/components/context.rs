//! What every part of the signed-in dashboard shares: the session, the board's dispatcher, and the two things
//! any component may ask for — run an action on a resource, or open its detail.

use std::rc::Rc;

use hhs_core::api::{AcquireRequest, ForceReleaseRequest, HolderRequest};
use hhs_core::ResourceId;
use yew::{Callback, UseReducerDispatcher};

use crate::session::Session;
use crate::state::Board;

/// An action on one resource.
/// The owner id the dashboard acquires as unless the user types another.
pub const DASHBOARD_OWNER: &str = "dashboard";

#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    Acquire { owner_id: String, ttl_seconds: Option<f64> },
    Heartbeat { owner_id: String, fencing_token: Option<u64> },
    Release { owner_id: String, fencing_token: Option<u64> },
    ForceRelease { reason: String },
}

impl Op {
    /// The API path and JSON body for this action on `id`.
    pub fn request(&self, id: ResourceId) -> (&'static str, serde_json::Value) {
        let resource_id = id.to_string();
        let holder = |owner_id: &str, token: &Option<u64>| HolderRequest {
            resource_id: resource_id.clone(),
            owner_id: owner_id.to_owned(),
            fencing_token: token.and_then(|t| i64::try_from(t).ok()),
        };
        let body = |v: Result<serde_json::Value, serde_json::Error>| v.unwrap_or_default();
        match self {
            Op::Acquire { owner_id, ttl_seconds } => (
                "/api/locks/acquire",
                body(serde_json::to_value(AcquireRequest { resource_id, owner_id: owner_id.clone(), ttl_seconds: *ttl_seconds })),
            ),
            Op::Heartbeat { owner_id, fencing_token } => ("/api/locks/heartbeat", body(serde_json::to_value(holder(owner_id, fencing_token)))),
            Op::Release { owner_id, fencing_token } => ("/api/locks/release", body(serde_json::to_value(holder(owner_id, fencing_token)))),
            Op::ForceRelease { reason } => {
                ("/api/locks/force-release", body(serde_json::to_value(ForceReleaseRequest { resource_id, reason: reason.clone() })))
            }
        }
    }

    /// What to tell the user once it worked.
    pub fn done(&self, identifier: &str) -> String {
        match self {
            Op::Acquire { .. } => format!("{identifier} is now held."),
            Op::Heartbeat { .. } => format!("{identifier}: hold renewed."),
            Op::Release { .. } => format!("{identifier} released."),
            Op::ForceRelease { .. } => format!("{identifier} force-released; the audit trail has the reason."),
        }
    }
}

#[derive(Clone, PartialEq)]
pub struct Ctx {
    pub session: Rc<Session>,
    pub dispatch: UseReducerDispatcher<Board>,
    pub act: Callback<(ResourceId, Op)>,
    /// Open (Some) or close (None) a resource's detail.
    pub select: Callback<Option<ResourceId>>,
}
