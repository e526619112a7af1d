//! A hold that keeps itself alive: [`Lease::acquire`] returns a [`LeaseGuard`] whose background task heartbeats
//! at a third of the TTL, with the fencing token, and reports the moment the hold may be lost through a watch
//! channel ([`LeaseGuard::lost`]; the rule is [`crate::renewal`]'s). `release().await` releases; dropping the
//! guard releases on a best-effort basis.

use std::time::Duration;

use hhs_core::wire::endpoints::{Acquire, Book, Heartbeat, Release};
use hhs_core::wire::{AcquireRequest, BookRequest, Booked, HolderRequest, LockView};
use hhs_core::{ErrorCode, LockStatus};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::client::{Client, Retry};
use crate::error::ClientError;
use crate::renewal::{Lost, Renewal};

/// Acquiring a guarded hold.
pub struct Lease;

impl Lease {
    /// Acquires `resource_id` for `owner` with `ttl`, once; a held resource is `ClientError::Api` 409.
    pub async fn acquire(
        client: &Client,
        resource_id: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<LeaseGuard, ClientError> {
        Lease::acquire_in_queue(client, resource_id, owner, ttl, 0).await
    }

    /// As [`Lease::acquire`], but while the resource is held, in lock-delay or queued for, waits in the
    /// resource's queue (`wait_seconds`): the server hands it over to waiters in arrival order, so a waiting
    /// client is never overtaken by one that merely asks again. A request waits at most
    /// [`MAX_WAIT_SECONDS`](hhs_core::queue::MAX_WAIT_SECONDS); a longer `wait` joins again at the back
    /// for what is left, until `wait` has passed. Then the last refusal (409) is returned.
    pub async fn acquire_waiting(
        client: &Client,
        resource_id: &str,
        owner: &str,
        ttl: Duration,
        wait: Duration,
    ) -> Result<LeaseGuard, ClientError> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let round = (left.as_secs_f64().ceil() as u32).min(hhs_core::queue::MAX_WAIT_SECONDS);
            match Lease::acquire_in_queue(client, resource_id, owner, ttl, round).await {
                Err(ClientError::Api { error, .. })
                    if matches!(error.code, ErrorCode::LockHeld | ErrorCode::LockDelay)
                        && Instant::now() < deadline =>
                {
                    // Answered before its wait was over (a lock-delay longer than the wait, say): not a spin.
                    tokio::time::sleep(
                        Duration::from_millis(100).min(deadline.saturating_duration_since(Instant::now())),
                    )
                    .await;
                }
                other => return other,
            }
        }
    }

    async fn acquire_in_queue(
        client: &Client,
        resource_id: &str,
        owner: &str,
        ttl: Duration,
        wait_seconds: u32,
    ) -> Result<LeaseGuard, ClientError> {
        let mut sent = Instant::now();
        let wait_seconds = (wait_seconds > 0).then_some(wait_seconds);
        let req = AcquireRequest {
            resource_id: resource_id.to_owned(),
            owner_id: owner.to_owned(),
            ttl_seconds: Some(ttl.as_secs_f64().ceil()),
            session_id: None,
            wait_seconds,
        };
        let view = client.call::<Acquire>(None, None, &req).await?;
        own_hold(&view, owner)?;
        if sent.elapsed() > ttl / 3 || view.awaits_pickup() {
            // Granted at some moment of a long answer (a wait in the queue): its TTL may have begun long after
            // `sent` or just before the answer, and a hold handed over from the queue lasts only its pickup
            // window until renewed. Only a renewal sent now bounds when the hold can lapse.
            sent = Instant::now();
            let beat = HolderRequest {
                resource_id: view.resource_id.0.to_string(),
                owner_id: owner.to_owned(),
                fencing_token: view.fencing_token.map(|t| t as i64),
            };
            client.call::<Heartbeat>(None, None, &beat).await?;
        }
        Ok(LeaseGuard::start(client.clone(), view, owner, sent))
    }
}

/// An acquire's answer is taken only if it is this owner's live hold with a fencing token: a guard built on
/// anyone else's (a server that answered a waiter with the bed's next holder, say) would renew and fence with a
/// token that is not ours.
fn own_hold(view: &LockView, owner: &str) -> Result<(), ClientError> {
    if view.owner_id.as_deref() == Some(owner) && view.status == LockStatus::Held && view.fencing_token.is_some() {
        return Ok(());
    }
    Err(ClientError::Decode(format!(
        "the acquire was answered with a hold that is not this owner's live hold ({:?})",
        view.status
    )))
}

/// A held resource, renewed in the background until released, dropped or lost.
pub struct LeaseGuard {
    client: Client,
    resource_id: String,
    owner: String,
    token: u64,
    view: LockView,
    renewal: Renewal,
}

impl LeaseGuard {
    fn start(client: Client, view: LockView, owner: &str, sent: Instant) -> LeaseGuard {
        let token = view.fencing_token.unwrap_or(0);
        let ttl = Duration::from_secs(u64::from(view.ttl_seconds.unwrap_or(1)));
        let mut once = client.clone();
        once.retry = Retry { attempts: 1, ..Retry::default() };
        let req = HolderRequest {
            resource_id: view.resource_id.0.to_string(),
            owner_id: owner.to_owned(),
            fencing_token: Some(token as i64),
        };
        let beat = move || {
            let (client, req) = (once.clone(), req.clone());
            async move { client.call::<Heartbeat>(None, None, &req).await.map(drop) }
        };
        let renewal = Renewal::start(beat, ttl, sent);
        LeaseGuard {
            client,
            resource_id: view.resource_id.0.to_string(),
            owner: owner.to_owned(),
            token,
            view,
            renewal,
        }
    }

    /// The grant's fencing token: send it with every write the hold protects.
    pub fn fencing_token(&self) -> u64 {
        self.token
    }

    /// The hold as granted.
    pub fn view(&self) -> &LockView {
        &self.view
    }

    /// `None` while the hold is good; `Some` from the moment it may be lost. `changed().await` wakes then.
    pub fn lost(&self) -> watch::Receiver<Option<Lost>> {
        self.renewal.lost()
    }

    /// Resolves when the hold may be lost (never, while it is renewed).
    pub async fn until_lost(&self) -> Lost {
        self.renewal.until_lost().await
    }

    fn holder(&self) -> HolderRequest {
        HolderRequest {
            resource_id: self.resource_id.clone(),
            owner_id: self.owner.clone(),
            fencing_token: Some(self.token as i64),
        }
    }

    /// Books the hold until `until` (`POST /api/locks/book`; no later than its type's booking maximum): the same
    /// grant and fencing token, held until then without heartbeats, so the guard stops renewing. A booking is
    /// meant to outlive this process: from then on dropping the guard leaves it be, and [`LeaseGuard::release`]
    /// cancels it. A refused booking (`validation_failed` past the maximum, or the hold already lost) changes
    /// nothing: the guard goes on renewing.
    pub async fn book(&mut self, until: chrono::DateTime<chrono::Utc>) -> Result<LockView, ClientError> {
        let req = BookRequest {
            resource_id: Some(self.resource_id.clone()),
            group_id: None,
            owner_id: self.owner.clone(),
            until: until.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            fencing_token: Some(self.token as i64),
        };
        match self.client.call::<Book>(None, None, &req).await? {
            Booked::Lock(view) => {
                self.renewal.stop();
                self.view = (*view).clone();
                Ok(*view)
            }
            Booked::Group(_) => Err(ClientError::Decode("a booking by resource id was answered with a group".into())),
        }
    }

    /// Stops renewing and releases the hold.
    pub async fn release(mut self) -> Result<LockView, ClientError> {
        self.renewal.stop();
        self.client.call::<Release>(None, None, &self.holder()).await
    }
}

impl Drop for LeaseGuard {
    /// Best effort: a release is sent if a runtime is there to send it; otherwise the hold expires by its TTL.
    fn drop(&mut self) {
        let (client, req) = (self.client.clone(), self.holder());
        self.renewal.end_on_drop(move || async move {
            let _ = client.call::<Release>(None, None, &req).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hhs_core::ResourceId;

    fn view(owner: &str, status: LockStatus, token: Option<u64>) -> LockView {
        let json = serde_json::json!({
            "id": null, "resource_id": ResourceId(uuid::Uuid::nil()), "owner_id": owner, "principal": "clinic-north",
            "status": status, "ttl_seconds": 30, "fencing_token": token, "created_at": null, "last_heartbeat": null,
            "expires_at": null, "ended_at": null, "lock_delay_until": null,
        });
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn only_this_owners_live_hold_is_taken() {
        assert!(own_hold(&view("ws-1", LockStatus::Held, Some(3)), "ws-1").is_ok());
        // Another holder's token (the bed granted again after the hand-over ended), an ended hold, no token.
        assert!(matches!(own_hold(&view("ws-2", LockStatus::Held, Some(4)), "ws-1"), Err(ClientError::Decode(_))));
        assert!(own_hold(&view("ws-1", LockStatus::Released, Some(3)), "ws-1").is_err());
        assert!(own_hold(&view("ws-1", LockStatus::Held, None), "ws-1").is_err());
    }
}
