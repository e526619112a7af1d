//! A hold that keeps itself alive: [`Lease::acquire`] returns a [`LeaseGuard`] whose background task heartbeats
//! at a third of the TTL, with the fencing token, and reports the moment the hold may be lost through a watch
//! channel ([`LeaseGuard::lost`]): when HHS refuses a heartbeat (expired, force-released, another's hold), or
//! when no heartbeat has been acknowledged for a whole TTL counted from when it was *sent* (the server renewed
//! it no earlier than that) — a client cut off from HHS must stop acting before its hold can lapse, not after it
//! hears so. `release().await` releases; dropping the guard releases on a best-effort basis.

use std::time::Duration;

use hhs_core::wire::endpoints::{Acquire, Heartbeat, Release};
use hhs_core::wire::{AcquireRequest, HolderRequest, LockView};
use hhs_core::{ApiError, ErrorCode};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::client::{Client, Retry};
use crate::error::ClientError;

/// Why a guard's hold may no longer be relied on.
#[derive(Clone, Debug, PartialEq)]
pub enum Lost {
    /// HHS refused a heartbeat: the hold is gone (`lock_expired`, `not_holder`, `stale_token`, …).
    Refused(ApiError),
    /// No heartbeat was acknowledged within a TTL of the last acknowledged one's sending: the hold may have lapsed.
    Unconfirmed,
}

/// Acquiring a guarded hold.
pub struct Lease;

impl Lease {
    /// Acquires `resource_id` for `owner` with `ttl`, once; a held resource is `ClientError::Api` 409.
    pub async fn acquire(client: &Client, resource_id: &str, owner: &str, ttl: Duration) -> Result<LeaseGuard, ClientError> {
        let sent = Instant::now();
        let req = AcquireRequest { resource_id: resource_id.to_owned(), owner_id: owner.to_owned(), ttl_seconds: Some(ttl.as_secs_f64().ceil()) };
        let view = client.call::<Acquire>(None, None, &req).await?;
        Ok(LeaseGuard::start(client.clone(), view, owner, sent))
    }

    /// As [`Lease::acquire`], but while the resource is held or in lock-delay, tries again (at the refusal's
    /// `retry_at` or `expires_at` if sooner than a second, else every second) until `wait` has passed.
    pub async fn acquire_waiting(client: &Client, resource_id: &str, owner: &str, ttl: Duration, wait: Duration) -> Result<LeaseGuard, ClientError> {
        let deadline = Instant::now() + wait;
        loop {
            match Lease::acquire(client, resource_id, owner, ttl).await {
                Err(ClientError::Api { error, .. }) if matches!(error.code, ErrorCode::LockHeld | ErrorCode::LockDelay) && Instant::now() < deadline => {
                    let hint = error.retry_at.or(error.expires_at).map(|t| (t - chrono_now()).to_std().unwrap_or_default());
                    let pause = hint.unwrap_or(Duration::from_secs(1)).clamp(Duration::from_millis(100), Duration::from_secs(1));
                    tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
                }
                other => return other,
            }
        }
    }
}

fn chrono_now() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from(std::time::SystemTime::now())
}

/// A held resource, renewed in the background until released, dropped or lost.
pub struct LeaseGuard {
    client: Client,
    resource_id: String,
    owner: String,
    token: u64,
    view: LockView,
    lost: watch::Receiver<Option<Lost>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl LeaseGuard {
    fn start(client: Client, view: LockView, owner: &str, sent: Instant) -> LeaseGuard {
        let (lost_tx, lost) = watch::channel(None);
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let token = view.fencing_token.unwrap_or(0);
        let ttl = Duration::from_secs(u64::from(view.ttl_seconds.unwrap_or(1)));
        // The heartbeats' own calls are tried once each: the guard paces its retries against its deadline.
        let mut once = client.clone();
        once.retry = Retry { attempts: 1, ..Retry::default() };
        let req = HolderRequest { resource_id: view.resource_id.0.to_string(), owner_id: owner.to_owned(), fencing_token: Some(token as i64) };
        let task = tokio::spawn(renew(once, req, ttl, sent, lost_tx, stopped));
        LeaseGuard { client, resource_id: view.resource_id.0.to_string(), owner: owner.to_owned(), token, view, lost, stop: Some(stop), task: Some(task) }
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
        self.lost.clone()
    }

    /// Resolves when the hold may be lost (never, while it is renewed).
    pub async fn until_lost(&self) -> Lost {
        let mut rx = self.lost.clone();
        loop {
            if let Some(l) = rx.borrow_and_update().clone() {
                return l;
            }
            if rx.changed().await.is_err() {
                return Lost::Unconfirmed;
            }
        }
    }

    fn stop_renewing(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    /// Stops renewing and releases the hold.
    pub async fn release(mut self) -> Result<LockView, ClientError> {
        self.stop_renewing();
        let req = HolderRequest { resource_id: self.resource_id.clone(), owner_id: self.owner.clone(), fencing_token: Some(self.token as i64) };
        self.client.call::<Release>(None, None, &req).await
    }
}

impl Drop for LeaseGuard {
    /// Best effort: a release is sent if a runtime is there to send it; otherwise the hold expires by its TTL.
    fn drop(&mut self) {
        if self.stop.is_none() {
            return; // released
        }
        self.stop_renewing();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let (client, req) = (self.client.clone(), HolderRequest { resource_id: self.resource_id.clone(), owner_id: self.owner.clone(), fencing_token: Some(self.token as i64) });
            rt.spawn(async move {
                let _ = client.call::<Release>(None, None, &req).await;
            });
        }
    }
}

/// The renewal loop: a heartbeat every third of the TTL; after a failed one, again every tenth. The hold is
/// counted lost at `last acknowledged heartbeat's sending + TTL` unless one is acknowledged before, and at once
/// when HHS refuses one.
async fn renew(client: Client, req: HolderRequest, ttl: Duration, acquired_sent: Instant, lost: watch::Sender<Option<Lost>>, mut stop: tokio::sync::oneshot::Receiver<()>) {
    let mut deadline = acquired_sent + ttl;
    let mut next = Instant::now() + ttl / 3;
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep_until(deadline) => {
                let _ = lost.send(Some(Lost::Unconfirmed));
                return;
            }
            _ = tokio::time::sleep_until(next) => {}
        }
        let sent = Instant::now();
        let answer = tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep_until(deadline) => {
                let _ = lost.send(Some(Lost::Unconfirmed));
                return;
            }
            a = client.call::<Heartbeat>(None, None, &req) => a,
        };
        match answer {
            Ok(_) => {
                deadline = sent + ttl;
                next = sent + ttl / 3;
            }
            Err(ClientError::Api { status, error }) if status != 503 && status != 429 && status < 500 => {
                let _ = lost.send(Some(Lost::Refused(error)));
                return;
            }
            Err(_) => next = Instant::now() + ttl / 10,
        }
    }
}
