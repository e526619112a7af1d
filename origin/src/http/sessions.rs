//! `/api/sessions`: open, list, show, keep alive and close sessions (`hhs_core::session`). A hold is taken
//! under one by `session_id` in an acquire; one keepalive then renews them all.

use axum::extract::State;
use axum::Json;
use hhs_core::wire::{KeepAliveView, OpenSessionRequest, SessionPage, SessionView};
use hhs_core::{SessionId, Ttl, TtlBounds};
use http::StatusCode;
use uuid::Uuid;

use super::auth::Caller;
use super::error::AppError;
use super::extract::{JsonBody, SessionPath};
use super::AppState;

pub(super) async fn open(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<OpenSessionRequest>,
) -> Result<(StatusCode, Json<SessionView>), AppError> {
    let (owner, ttl) = req.validate(&TtlBounds::HARD)?;
    let (ttl, source) = match ttl {
        Some(ttl) => (ttl, "requested"),
        // No TTL asked for: the TTL model's, from this owner's renewal gaps (else the process's default TTL).
        None => {
            let default = Ttl::from_stored_millis(i64::from(state.policy.default_ttl_seconds) * 1000);
            (
                state
                    .model
                    .read(|m| m.suggest_session(caller.principal.as_str(), owner.as_str(), default, &TtlBounds::HARD))
                    .ttl,
                "suggested",
            )
        }
    };
    let s =
        state.store.open_session(SessionId(Uuid::now_v7()), &caller.principal, &owner, ttl, &caller.actor()).await?;
    tracing::info!(session_id = %s.id, owner_id = %s.owner, ttl_seconds = s.ttl.seconds(), ttl_source = source, "session opened");
    Ok((
        StatusCode::CREATED,
        Json(SessionView { ttl_source: Some(source.into()), ..SessionView::of(&s, 0, s.opened_at) }),
    ))
}

pub(super) async fn list(State(state): State<AppState>) -> Result<Json<SessionPage>, AppError> {
    let (sessions, now) = state.store.sessions(None).await?;
    let items = sessions.iter().map(|(s, holds)| SessionView::of(s, *holds, now)).collect();
    Ok(Json(SessionPage { items, next_after: None }))
}

pub(super) async fn show(
    State(state): State<AppState>,
    SessionPath(id): SessionPath,
) -> Result<Json<SessionView>, AppError> {
    let (sessions, now) = state.store.sessions(Some(id)).await?;
    let (s, holds) = sessions.first().ok_or(crate::store::StoreError::NoSession)?;
    Ok(Json(SessionView::of(s, *holds, now)))
}

/// Renews the session and every live hold under it (one statement, however many), and names each it renewed.
pub(super) async fn keepalive(
    State(state): State<AppState>,
    caller: Caller,
    SessionPath(id): SessionPath,
) -> Result<Json<KeepAliveView>, AppError> {
    let (s, renewed, now) = state.store.keepalive(id, &caller.principal).await?;
    Ok(Json(KeepAliveView { session: SessionView::of(&s, renewed.len() as u64, now), renewed }))
}

/// Closes the session and releases every hold under it.
pub(super) async fn close(
    State(state): State<AppState>,
    caller: Caller,
    SessionPath(id): SessionPath,
) -> Result<Json<SessionView>, AppError> {
    let (s, now) = state.store.close_session(id, &caller.principal, &caller.actor()).await?;
    tracing::info!(session_id = %s.id, "session closed");
    Ok(Json(SessionView::of(&s, 0, now)))
}
