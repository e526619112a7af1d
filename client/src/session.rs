//! A session that keeps itself alive: [`SessionGuard::open`] opens one and keeps it alive in the background at a
//! third of its TTL — one keepalive for every hold taken under it ([`SessionGuard::acquire`]) — and reports the
//! moment the session (and so every hold under it) may be lost ([`crate::renewal`]'s rule). A hold can also end
//! alone while the session lives on (released, force-released by an administrator, booked): each keepalive's
//! answer names the holds it renewed, and [`SessionGuard::lost_holds`] reports every hold taken through the
//! guard that a keepalive sent after its grant no longer renewed. `close().await` closes it and releases its
//! holds; dropping the guard does so on a best-effort basis.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hhs_core::wire::endpoints::{Acquire, CloseSession, KeepAlive, NoBody, OpenSession};
use hhs_core::wire::{AcquireRequest, LockView, OpenSessionRequest, SessionHold, SessionView};
use hhs_core::ResourceId;
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
    holds: Arc<Holds>,
}

/// The holds taken through the guard, and those a keepalive no longer renewed.
struct Holds {
    /// Each hold still believed held: its token, and when its grant was answered (a keepalive sent before
    /// that may not have seen it).
    held: Mutex<BTreeMap<ResourceId, (u64, Instant)>>,
    lost: watch::Sender<Vec<SessionHold>>,
}

impl Default for Holds {
    fn default() -> Holds {
        Holds { held: Mutex::default(), lost: watch::channel(Vec::new()).0 }
    }
}

impl Holds {
    /// A keepalive sent at `sent` renewed exactly `renewed`: every hold granted before `sent` and not among them
    /// is lost.
    fn renewed(&self, sent: Instant, renewed: &[SessionHold]) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let gone: Vec<SessionHold> = held
            .iter()
            .filter(|(r, (token, granted))| {
                *granted < sent && !renewed.contains(&SessionHold { resource_id: **r, fencing_token: *token })
            })
            .map(|(r, (token, _))| SessionHold { resource_id: *r, fencing_token: *token })
            .collect();
        if gone.is_empty() {
            return;
        }
        for g in &gone {
            held.remove(&g.resource_id);
        }
        self.lost.send_modify(|lost| lost.extend(gone));
    }
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
        let holds = Arc::new(Holds::default());
        let keepalive = {
            let holds = holds.clone();
            move || {
                let (client, id, holds) = (once.clone(), id.clone(), holds.clone());
                async move {
                    let sent = Instant::now();
                    let kept = client.call::<KeepAlive>(Some(&id), None, &NoBody).await?;
                    holds.renewed(sent, &kept.renewed);
                    Ok(())
                }
            }
        };
        let renewal = Renewal::start(keepalive, Duration::from_secs(u64::from(view.ttl_seconds)), sent);
        Ok(SessionGuard { client: client.clone(), view, renewal, holds })
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
        let lock = self.client.call::<Acquire>(None, None, &req).await?;
        if let Some(token) = lock.fencing_token {
            self.holds.held.lock().unwrap_or_else(|e| e.into_inner()).insert(lock.resource_id, (token, Instant::now()));
        }
        Ok(lock)
    }

    /// Every hold taken through [`SessionGuard::acquire`] that a keepalive no longer renewed (released,
    /// force-released, booked, lapsed), by resource and token, in the order noticed; empty while all are kept.
    /// Its holder must stop acting under that token. The session itself may still be good ([`SessionGuard::lost`]).
    pub fn lost_holds(&self) -> watch::Receiver<Vec<SessionHold>> {
        self.holds.lost.subscribe()
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
