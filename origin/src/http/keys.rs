//! `/api/keys` (admin): mint, list and revoke API keys. The full key appears once, in the creation answer.
//! `/api/whoami` (any key): who the caller is.

use axum::extract::State;
use axum::Json;
use hhs_core::wire::{CreateKeyRequest, CreatedKey, KeyPage, KeyView, WhoAmIView};
use hhs_core::ErrorCode;
use http::StatusCode;

use super::auth::Caller;
use super::error::AppError;
use super::extract::{JsonBody, KeyPath};
use super::AppState;
use crate::keys;
use crate::store::KeyRecord;

/// `GET /api/whoami` (any valid key): the key's principal and role, so a dashboard can sign in and offer only
/// the actions the role allows.
pub(super) async fn whoami(caller: Caller) -> Result<Json<WhoAmIView>, AppError> {
    Ok(Json(WhoAmIView {
        principal: caller.principal.as_str().to_owned(),
        role: caller.role,
        key_id: caller.key_id.clone(),
    }))
}

pub(super) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<CreateKeyRequest>,
) -> Result<(StatusCode, Json<CreatedKey>), AppError> {
    let (principal, role) = req.validate()?;
    let (key, record) = keys::create(&state.store, &principal, role, &caller.actor()).await?;
    tracing::info!(key_id = %record.id, principal = %principal, role = role.as_str(), "api key created");
    Ok((StatusCode::CREATED, Json(CreatedKey { key, view: record.view() })))
}

/// `GET /api/keys`: every key, in one page (a deployment has tens of keys, not thousands).
pub(super) async fn list(State(state): State<AppState>) -> Result<Json<KeyPage>, AppError> {
    let records = state.store.keys().await?;
    Ok(Json(KeyPage { items: records.iter().map(KeyRecord::view).collect(), next_after: None }))
}

pub(super) async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    KeyPath(id): KeyPath,
) -> Result<Json<KeyView>, AppError> {
    let record = state.store.revoke_key(&id, &caller.actor()).await.map_err(|e| match e {
        crate::store::StoreError::NotFound => AppError::new(ErrorCode::KeyNotFound, "no key with this id"),
        e => e.into(),
    })?;
    state.auth.forget(&id);
    tracing::info!(key_id = %id, "api key revoked");
    Ok(Json(record.view()))
}
