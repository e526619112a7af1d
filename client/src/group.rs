//! Several resources held together: [`GroupGuard::acquire`] holds them all or none (a refusal is
//! `ClientError::Api` 409 `group_blocked`, naming each blocking member in `error.blocked`), renews them all with
//! one heartbeat by the group's id at a third of the TTL, and reports the moment the group may be lost
//! ([`crate::renewal`]'s rule). The group is lost as a whole when any member is: HHS refuses the heartbeat
//! (`group_blocked`, naming each member it no longer holds, e.g. one an administrator force-released), and an
//! answer that does not renew every member with its own token counts as that same refusal.
//! `release().await` releases every member; dropping the guard does so on a best-effort basis.

use std::time::Duration;

use hhs_core::error::BlockedMember;
use hhs_core::wire::endpoints::{AcquireGroup, HeartbeatGroup, ReleaseGroup};
use hhs_core::wire::{AcquireGroupRequest, GroupHolderRequest, GroupMemberRef, GroupView, LockView};
use hhs_core::{ApiError, ErrorCode};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::client::{Client, Retry};
use crate::error::ClientError;
use crate::renewal::{Lost, Renewal};

/// A held group, renewed in the background until released, dropped or lost.
pub struct GroupGuard {
    client: Client,
    view: GroupView,
    owner: String,
    renewal: Renewal,
}

impl GroupGuard {
    /// Holds every one of `resources` (2–32) for `owner` with `ttl`, or none.
    pub async fn acquire(
        client: &Client,
        resources: &[&str],
        owner: &str,
        ttl: Duration,
    ) -> Result<GroupGuard, ClientError> {
        let sent = Instant::now();
        let req = AcquireGroupRequest {
            resources: resources.iter().map(|r| GroupMemberRef { resource_id: (*r).to_owned() }).collect(),
            owner_id: owner.to_owned(),
            ttl_seconds: Some(ttl.as_secs_f64().ceil()),
            session_id: None,
        };
        let view = client.call::<AcquireGroup>(None, None, &req).await?;
        let mut once = client.clone();
        once.retry = Retry { attempts: 1, ..Retry::default() };
        let holder = GroupHolderRequest { group_id: view.group_id.to_string(), owner_id: owner.to_owned() };
        let members: Vec<LockView> = view.holds.clone();
        let beat = move || {
            let (client, req, members) = (once.clone(), holder.clone(), members.clone());
            async move {
                let answer = client.call::<HeartbeatGroup>(None, None, &req).await?;
                unrenewed(&members, &answer)
                    .map_or(Ok(()), |error| Err(ClientError::Api { status: error.http_status(), error }))
            }
        };
        let ttl = Duration::from_secs(u64::from(view.holds.first().and_then(|h| h.ttl_seconds).unwrap_or(1)));
        let renewal = Renewal::start(beat, ttl, sent);
        Ok(GroupGuard { client: client.clone(), view, owner: owner.to_owned(), renewal })
    }

    /// The group as granted: its id, and each member's hold with its own fencing token.
    pub fn view(&self) -> &GroupView {
        &self.view
    }

    /// `None` while every member is good; `Some` from the moment the group may be lost.
    pub fn lost(&self) -> watch::Receiver<Option<Lost>> {
        self.renewal.lost()
    }

    /// Resolves when the group may be lost (never, while it is renewed).
    pub async fn until_lost(&self) -> Lost {
        self.renewal.until_lost().await
    }

    fn holder(&self) -> GroupHolderRequest {
        GroupHolderRequest { group_id: self.view.group_id.to_string(), owner_id: self.owner.clone() }
    }

    /// Stops renewing and releases every member.
    pub async fn release(mut self) -> Result<GroupView, ClientError> {
        self.renewal.stop();
        self.client.call::<ReleaseGroup>(None, None, &self.holder()).await
    }
}

impl Drop for GroupGuard {
    /// Best effort: a release is sent if a runtime is there to send it; otherwise the members expire by their TTL.
    fn drop(&mut self) {
        let (client, req) = (self.client.clone(), self.holder());
        self.renewal.end_on_drop(move || async move {
            let _ = client.call::<ReleaseGroup>(None, None, &req).await;
        });
    }
}

/// The refusal an answer to the group's heartbeat amounts to if it does not renew every member of `granted` with
/// its own token (HHS refuses such a heartbeat itself; this guards against any answer that would not).
fn unrenewed(granted: &[LockView], answer: &GroupView) -> Option<ApiError> {
    let blocked: Vec<BlockedMember> = granted
        .iter()
        .filter(|g| {
            !answer.holds.iter().any(|h| {
                h.resource_id == g.resource_id
                    && h.fencing_token == g.fencing_token
                    && h.group_id == Some(answer.group_id)
            })
        })
        .map(|g| BlockedMember {
            resource_id: g.resource_id.0,
            error: ApiError::new(ErrorCode::NotHolder, "the group's heartbeat did not renew this member"),
        })
        .collect();
    (!blocked.is_empty()).then(|| {
        let mut e =
            ApiError::new(ErrorCode::GroupBlocked, "the group's heartbeat did not renew every member; see blocked");
        e.blocked = blocked;
        e
    })
}
