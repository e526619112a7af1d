//! What both guards share: a background task that renews something (a hold's heartbeat, a session's keepalive)
//! at a third of its TTL, and a watch channel that says the moment it may be lost — when HHS refuses a renewal,
//! or when none has been acknowledged for a whole TTL counted from when it was *sent* (the server renewed it no
//! earlier than that): a client cut off from HHS must stop acting before its hold can lapse, not after it hears
//! so.

use std::future::Future;
use std::time::Duration;

use hhs_core::ApiError;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::error::ClientError;

/// Why a guard's hold (or session) may no longer be relied on.
#[derive(Clone, Debug, PartialEq)]
pub enum Lost {
    /// HHS refused a renewal: it is gone (`lock_expired`, `not_holder`, `stale_token`, `session_ended`, …).
    Refused(ApiError),
    /// No renewal was acknowledged within a TTL of the last acknowledged one's sending: it may have lapsed.
    Unconfirmed,
}

/// A running renewal: stopped on [`Renewal::stop`] or drop.
pub(crate) struct Renewal {
    lost: watch::Receiver<Option<Lost>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Renewal {
    /// Renews by `call` every third of `ttl`, the first deadline counted from `sent` (when the grant was asked).
    pub(crate) fn start<F, Fut>(call: F, ttl: Duration, sent: Instant) -> Renewal
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), ClientError>> + Send + 'static,
    {
        let (lost_tx, lost) = watch::channel(None);
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(renew(call, ttl, sent, lost_tx, stopped));
        Renewal { lost, stop: Some(stop), task: Some(task) }
    }

    pub(crate) fn lost(&self) -> watch::Receiver<Option<Lost>> {
        self.lost.clone()
    }

    pub(crate) async fn until_lost(&self) -> Lost {
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

    /// Stops renewing; whether it was still running (false: stopped before).
    pub(crate) fn stop(&mut self) -> bool {
        let running = self.stop.is_some();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
        running
    }
}

impl Renewal {
    /// A guard's drop: if it was still renewing, stops, and sends `end` (its release or close) on the current
    /// runtime, best effort; without a runtime what it guards lapses by its TTL.
    pub(crate) fn end_on_drop<Fut>(&mut self, end: impl FnOnce() -> Fut)
    where
        Fut: Future<Output = ()> + Send + 'static,
    {
        if self.stop() {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(end());
            }
        }
    }
}

impl Drop for Renewal {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The loop: a renewal every third of the TTL; after a failed one, again every tenth. Counted lost at `last
/// acknowledged renewal's sending + TTL` unless one is acknowledged before, and at once when HHS refuses one.
/// Each renewal is tried once (the caller's client is set so): the loop paces its retries against its deadline.
async fn renew<F, Fut>(
    call: F,
    ttl: Duration,
    acquired_sent: Instant,
    lost: watch::Sender<Option<Lost>>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<(), ClientError>>,
{
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
            a = call() => a,
        };
        match answer {
            Ok(()) => {
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
