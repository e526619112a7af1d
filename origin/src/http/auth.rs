//! Authentication and roles. Every `/api/*` request must carry `Authorization: Bearer <key>`; the middleware
//! turns a valid key into a [`Caller`] in the request's extensions, and each API route checks the role the
//! endpoint table gives it ([`require_role`]).
//!
//! Keys are cached for [`CACHE_TTL`] (2 s, `key_cache.rs`, bounded) so a busy origin does not read `api_keys`
//! per request, and a revoked key stops working within that time on every replica (at once on the one that
//! revoked it).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hhs_core::auth::parse_bearer;
use hhs_core::wire::{AuthFailedDetail, Detail, EventView, LogKind};
use hhs_core::{ApiError, ErrorCode, Principal, Role};
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::request::Parts;
use http::HeaderValue;

use super::error::{api_error_response, AppError};
use super::key_cache::KeyCache;
pub use super::key_cache::CACHE_TTL;
use super::{AppState, REQUEST_ID};
use crate::keys;
use crate::store::{Actor, DynStore, KeyRecord, StoreError};

/// At most one `auth_failed` event per this interval per origin; the rest are counted into the next one.
const FAILURE_EVENT_INTERVAL: Duration = Duration::from_secs(5);

/// The authenticated caller of a request.
#[derive(Clone, Debug)]
pub struct Caller {
    pub principal: Principal,
    pub role: Role,
    pub key_id: Option<String>,
    pub request_id: Option<String>,
}

/// "a client", "an admin": a role as a sentence names it.
fn with_article(role: Role) -> String {
    let name = role.as_str();
    let article = if name.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
    format!("{article} {name}")
}

impl Caller {
    /// 403 `forbidden` unless the caller's role includes `needed`.
    pub fn require(&self, needed: Role) -> Result<(), AppError> {
        if self.role.allows(needed) {
            Ok(())
        } else {
            Err(AppError::new(
                ErrorCode::Forbidden,
                format!("this needs {} key; yours is {}", with_article(needed), with_article(self.role)),
            ))
        }
    }

    /// The caller as the audit trail records it.
    pub fn actor(&self) -> Actor {
        Actor {
            principal: self.principal.as_str().to_owned(),
            key_id: self.key_id.clone(),
            request_id: self.request_id.clone(),
            reason: None,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, AppError> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| AppError::new(ErrorCode::Unauthenticated, "send Authorization: Bearer <api key>"))
    }
}

/// Each API route's layer: 403 `forbidden` unless the caller's role includes the one the endpoint table gives.
pub async fn require_role(State(needed): State<Role>, caller: Caller, req: Request, next: Next) -> Response {
    match caller.require(needed) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

#[derive(Default)]
struct FailureLog {
    last_event: Option<Instant>,
    suppressed: u64,
}

pub struct Authenticator {
    store: DynStore,
    /// `--insecure-no-auth`: every request is an admin called `local-demo`.
    insecure: bool,
    cache: Mutex<KeyCache>,
    failures: Mutex<FailureLog>,
}

/// Why authentication failed; only ever logged by kind, never with what was sent.
enum Failure {
    Rejected { reason: &'static str, key_id: Option<String>, error: ApiError },
    Store(StoreError),
}

impl Authenticator {
    pub fn new(store: DynStore, insecure: bool) -> Authenticator {
        Authenticator { store, insecure, cache: Mutex::default(), failures: Mutex::default() }
    }

    /// Drops a key from this replica's cache (after revoking it here).
    pub fn forget(&self, key_id: &str) {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).forget(key_id);
    }

    /// Entries in the key cache (known keys, unknown ids), for `/metrics`.
    pub fn cached(&self) -> (usize, usize) {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    async fn lookup(&self, key_id: &str) -> Result<Option<KeyRecord>, StoreError> {
        self.lookup_with(key_id, self.store.key(key_id)).await
    }

    /// `lookup` with the store read given (a future not yet started): the cache's ticket is taken before the
    /// read starts, so a revoke (and its `forget`) landing while the read is under way keeps its answer out of
    /// the cache.
    async fn lookup_with(
        &self,
        key_id: &str,
        read: impl std::future::Future<Output = Result<Option<KeyRecord>, StoreError>>,
    ) -> Result<Option<KeyRecord>, StoreError> {
        let ticket = {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(hit) = cache.get(key_id, Instant::now()) {
                return Ok(hit);
            }
            cache.ticket()
        };
        let key = read.await?;
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).fill(ticket, key_id, key.clone(), Instant::now());
        Ok(key)
    }

    /// Whether the key behind `header` is still accepted. A store error counts as yes: a database outage must not
    /// sign every open dashboard out.
    pub async fn still_valid(&self, header: Option<&str>) -> bool {
        !matches!(self.authenticate(header).await, Err(Failure::Rejected { .. }))
    }

    async fn authenticate(&self, header: Option<&str>) -> Result<(Principal, Role, Option<String>), Failure> {
        if self.insecure {
            return Ok((Principal::parse("local-demo").expect("valid principal"), Role::Admin, None));
        }
        let parts = parse_bearer(header).map_err(|error| Failure::Rejected {
            reason: if header.is_none() { "missing" } else { "malformed" },
            key_id: None,
            error,
        })?;
        let reject = |reason| Failure::Rejected {
            reason,
            key_id: Some(parts.key_id.to_owned()),
            error: ApiError::new(ErrorCode::Unauthenticated, "the API key is not valid (unknown, revoked or wrong)"),
        };
        let record = self.lookup(parts.key_id).await.map_err(Failure::Store)?.ok_or_else(|| reject("unknown_key"))?;
        if !keys::verify(&record, &parts) {
            return Err(reject("wrong_secret"));
        }
        if record.revoked_at_ms.is_some() {
            return Err(reject("revoked"));
        }
        let role = record.role;
        let principal = Principal::parse(&record.principal).map_err(|_| reject("invalid_principal"))?;
        Ok((principal, role, Some(record.id)))
    }

    /// Records a failed authentication as an audit event, at most one per interval (with a count of the ones
    /// folded into it), so a flood of bad keys cannot flood the log.
    async fn record_failure(&self, reason: &'static str, key_id: Option<String>, request_id: Option<String>) {
        let suppressed = {
            let mut log = self.failures.lock().unwrap_or_else(|p| p.into_inner());
            if log.last_event.is_some_and(|t| t.elapsed() < FAILURE_EVENT_INTERVAL) {
                log.suppressed += 1;
                return;
            }
            log.last_event = Some(Instant::now());
            std::mem::take(&mut log.suppressed)
        };
        tracing::warn!(reason, key_id = key_id.as_deref().unwrap_or("-"), suppressed, "authentication failed");
        let actor = Actor { principal: "anonymous".into(), key_id: key_id.clone(), request_id, reason: None };
        let detail = Detail::AuthFailed(AuthFailedDetail { reason: reason.into(), suppressed_before: suppressed });
        let event = EventView {
            outcome: "unauthenticated".into(),
            ..EventView::new(LogKind::AuthFailed, hhs_core::Millis::ZERO, &actor, detail)
        };
        if let Err(e) = self.store.append_event(event).await {
            tracing::warn!(error = %e, "could not record a failed authentication");
        }
    }
}

/// The middleware: `/api/*` needs a valid key; everything else passes.
pub async fn require_key(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    if !req.uri().path().starts_with("/api/") || req.uri().path() == hhs_core::wire::endpoints::OPENAPI_PATH {
        return next.run(req).await;
    }
    let request_id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let header = req.headers().get(AUTHORIZATION).map(|v| v.to_str().unwrap_or("\u{0}"));
    match state.auth.authenticate(header).await {
        Ok((principal, role, key_id)) => {
            req.extensions_mut().insert(Caller { principal, role, key_id, request_id });
            next.run(req).await
        }
        Err(Failure::Store(e)) => AppError::Store(e).into_response(),
        Err(Failure::Rejected { reason, key_id, error }) => {
            state.auth.record_failure(reason, key_id, request_id).await;
            let mut resp = api_error_response(error);
            resp.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"hhs\""));
            resp
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use hhs_core::{Principal, Role};
    use tokio::sync::oneshot;

    use super::*;
    use crate::store::SqliteStore;

    fn system() -> Actor {
        Actor { principal: "hhs:test".into(), key_id: None, request_id: None, reason: None }
    }

    /// A lookup whose store read returned the unrevoked record, paused before it fills the cache; the key is
    /// revoked and forgotten meanwhile; then the lookup finishes. The key must be refused from then on.
    #[tokio::test]
    async fn a_lookup_racing_a_revoke_does_not_put_the_key_back() {
        let dir = tempfile::tempdir().unwrap();
        let store: DynStore = Arc::new(SqliteStore::open(&dir.path().join("hhs.db"), 2).await.unwrap());
        store.migrate().await.unwrap();
        let (key, record) =
            keys::create(&store, &Principal::parse("clinic").unwrap(), Role::Client, &system()).await.unwrap();
        let auth = Arc::new(Authenticator::new(store.clone(), false));
        let header = format!("Bearer {key}");
        assert!(auth.authenticate(Some(&header)).await.is_ok());
        // Let the cached entry lapse so the next lookup reads the store.
        tokio::time::sleep(CACHE_TTL).await;

        let (read_done, read_seen) = oneshot::channel();
        let (resume, resumed) = oneshot::channel::<()>();
        let racing = {
            let (auth, store, id) = (auth.clone(), store.clone(), record.id.clone());
            tokio::spawn(async move {
                let read = async {
                    let found = store.key(&id).await;
                    let _ = read_done.send(());
                    let _ = resumed.await;
                    found
                };
                auth.lookup_with(&id, read).await.unwrap()
            })
        };
        read_seen.await.unwrap();
        store.revoke_key(&record.id, &system()).await.unwrap();
        auth.forget(&record.id);
        resume.send(()).unwrap();
        let seen = racing.await.unwrap().unwrap();
        assert!(seen.revoked_at_ms.is_none(), "the racing lookup read before the revoke");

        assert!(
            matches!(auth.authenticate(Some(&header)).await, Err(Failure::Rejected { reason: "revoked", .. })),
            "the revoked key is accepted again: the racing lookup put it back in the cache"
        );
    }
}
