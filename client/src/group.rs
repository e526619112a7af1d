//! Several resources held together: [`GroupGuard::acquire`] holds them all or none (a refusal is
//! `ClientError::Api` 409 `group_blocked`, naming each blocking member in `error.blocked`), renews them all with
//! one heartbeat by the group's id at a third of the TTL, and reports the moment the group may be lost
//! ([`crate::renewal`]'s rule). `release().await` releases every member; dropping the guard does so on a
//! best-effort basis.

use std::time::Duration;

use hhs_core::wire::endpoints::{AcquireGroup, HeartbeatGroup, ReleaseGroup};
use hhs_core::wire::{AcquireGroupRequest, GroupHolderRequest, GroupMemberRef, GroupView};
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
    pub async fn acquire(client: &Client, resources: &[&str], owner: &str, ttl: Duration) -> Result<GroupGuard, ClientError> {
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
        let beat = move || {
            let (client, req) = (once.clone(), holder.clone());
            async move { client.call::<HeartbeatGroup>(None, None, &req).await.map(drop) }
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
