//! A session that keeps itself alive: [`SessionGuard::open`] opens one and keeps it alive in the background at a
//! third of its TTL — one keepalive for every hold taken under it ([`SessionGuard::acquire`]) — and reports the
//! moment the session (and so every hold under it) may be lost ([`crate::renewal`]'s rule). `close().await`
//! closes it and releases its holds; dropping the guard does so on a best-effort basis.

use std::time::Duration;

use hhs_core::wire::endpoints::{Acquire, CloseSession, KeepAlive, NoBody, OpenSession};
use hhs_core::wire::{AcquireRequest, LockView, OpenSessionRequest, SessionView};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::client::{Client, Retry};
use crate::error::ClientError;
use crate::renewal::{Lost, Renewal};

/// An open session, renewed in the background until closed, dropped or lost.
pub struct SessionGuard {
    client: Client,
    view: SessionView,
    renewal: Renewal,
}

impl SessionGuard {
    /// Opens a session for `owner` with `ttl` and starts keeping it alive.
    pub async fn open(client: &Client, owner: &str, ttl: Duration) -> Result<SessionGuard, ClientError> {
        let sent = Instant::now();
        let req = OpenSessionRequest { owner_id: owner.to_owned(), ttl_seconds: Some(ttl.as_secs_f64().ceil()) };
        let view = client.call::<OpenSession>(None, None, &req).await?;
        let mut once = client.clone();
        once.retry = Retry { attempts: 1, ..Retry::default() };
        let id = view.id.to_string();
        let keepalive = move || {
            let (client, id) = (once.clone(), id.clone());
            async move { client.call::<KeepAlive>(Some(&id), None, &NoBody).await.map(drop) }
        };
        let renewal = Renewal::start(keepalive, Duration::from_secs(u64::from(view.ttl_seconds)), sent);
        Ok(SessionGuard { client: client.clone(), view, renewal })
    }

    /// The session as opened.
    pub fn view(&self) -> &SessionView {
        &self.view
    }

    /// Acquires `resource_id` under the session (for its owner): renewed by the session from now on.
    pub async fn acquire(&self, resource_id: &str) -> Result<LockView, ClientError> {
        let req = AcquireRequest {
            resource_id: resource_id.to_owned(),
            owner_id: self.view.owner_id.clone(),
            ttl_seconds: None,
            session_id: Some(self.view.id.to_string()),
            wait_seconds: None,
        };
        self.client.call::<Acquire>(None, None, &req).await
    }

    /// `None` while the session is good; `Some` from the moment it (and every hold under it) may be lost.
    pub fn lost(&self) -> watch::Receiver<Option<Lost>> {
        self.renewal.lost()
    }

    /// Resolves when the session may be lost (never, while it is kept alive).
    pub async fn until_lost(&self) -> Lost {
        self.renewal.until_lost().await
    }

    /// Stops the keepalives, closes the session and releases every hold under it.
    pub async fn close(mut self) -> Result<SessionView, ClientError> {
        self.renewal.stop();
        self.client.call::<CloseSession>(Some(&self.view.id.to_string()), None, &NoBody).await
    }
}

impl Drop for SessionGuard {
    /// Best effort: a close is sent if a runtime is there to send it; otherwise the session lapses by its TTL.
    fn drop(&mut self) {
        let (client, id) = (self.client.clone(), self.view.id.to_string());
        self.renewal.end_on_drop(move || async move {
            let _ = client.call::<CloseSession>(Some(&id), None, &NoBody).await;
        });
    }
}
