//! What every part of the signed-in dashboard shares: the session, the board's dispatcher, and the two things
//! any component may ask for — run an action on a resource, or open its detail.

use std::rc::Rc;

use hhs_core::wire::endpoints;
use hhs_core::wire::{AcquireRequest, ForceReleaseRequest, HolderRequest, LockView};
use hhs_core::ResourceId;
use yew::{Callback, UseReducerDispatcher};

use crate::api::{Api, UiError};
use crate::session::Session;
use crate::state::Board;

/// An action on one resource.
/// The owner id the dashboard acquires as unless the user types another.
pub const DASHBOARD_OWNER: &str = "dashboard";

#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// `wait_seconds`: wait that long in the resource's queue if it is held (0–30; `None`: refused at once).
    Acquire {
        owner_id: String,
        ttl_seconds: Option<f64>,
        wait_seconds: Option<u32>,
    },
    Heartbeat {
        owner_id: String,
        fencing_token: Option<u64>,
    },
    Release {
        owner_id: String,
        fencing_token: Option<u64>,
    },
    ForceRelease {
        reason: String,
    },
}

impl Op {
    /// Sends this action on `id` through its endpoint; the lock as the server now has it.
    pub async fn send(&self, api: &Api, id: ResourceId) -> Result<LockView, UiError> {
        let resource_id = id.to_string();
        let holder = |owner_id: &str, token: &Option<u64>| HolderRequest {
            resource_id: resource_id.clone(),
            owner_id: owner_id.to_owned(),
            fencing_token: token.and_then(|t| i64::try_from(t).ok()),
        };
        match self {
            Op::Acquire { owner_id, ttl_seconds, wait_seconds } => {
                let req = AcquireRequest {
                    resource_id: resource_id.clone(),
                    owner_id: owner_id.clone(),
                    ttl_seconds: *ttl_seconds,
                    session_id: None,
                    wait_seconds: *wait_seconds,
                };
                let view = api.call::<endpoints::Acquire>(None, "", &req).await?;
                if !view.awaits_pickup() {
                    return Ok(view);
                }
                // Handed over from the queue: the hold lasts its pickup window until renewed, so renew now and
                // the person keeps it for its TTL.
                api.call::<endpoints::Heartbeat>(None, "", &holder(owner_id, &view.fencing_token)).await
            }
            Op::Heartbeat { owner_id, fencing_token } => {
                api.call::<endpoints::Heartbeat>(None, "", &holder(owner_id, fencing_token)).await
            }
            Op::Release { owner_id, fencing_token } => {
                api.call::<endpoints::Release>(None, "", &holder(owner_id, fencing_token)).await
            }
            Op::ForceRelease { reason } => {
                let req = ForceReleaseRequest { resource_id: resource_id.clone(), reason: reason.clone() };
                api.call::<endpoints::ForceRelease>(None, "", &req).await
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
