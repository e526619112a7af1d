//! `/api/keys` (admin): mint, list and revoke API keys. The full key appears once, in the creation answer.
//! `/api/whoami` (any key): who the caller is.

use axum::extract::State;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use http::StatusCode;
use hhs_core::api::{CreateKeyRequest, CreatedKey, KeyView, WhoAmI};
use hhs_core::{ErrorCode, Role};

use super::auth::Caller;
use super::error::AppError;
use super::extract::{JsonBody, KeyPath};
use super::AppState;
use crate::keys;
use crate::store::KeyRecord;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/keys", post(create).get(list))
        .route("/api/keys/{id}", delete(revoke))
        .route("/api/whoami", get(whoami))
}

/// `GET /api/whoami` (any valid key): the key's principal and role, so a dashboard can sign in and offer only
/// the actions the role allows.
async fn whoami(caller: Caller) -> Result<Json<WhoAmI>, AppError> {
    caller.require(Role::Viewer)?;
    Ok(Json(WhoAmI { principal: caller.principal.as_str().to_owned(), role: caller.role, key_id: caller.key_id.clone() }))
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<CreateKeyRequest>,
) -> Result<(StatusCode, Json<CreatedKey>), AppError> {
    caller.require(Role::Admin)?;
    let (principal, role) = req.validate()?;
    let (key, record) = keys::create(&state.store, &principal, role, &caller.actor()).await?;
    tracing::info!(key_id = %record.id, principal = %principal, role = role.as_str(), "api key created");
    Ok((StatusCode::CREATED, Json(CreatedKey { key, view: record.view() })))
}

async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<KeyView>>, AppError> {
    caller.require(Role::Admin)?;
    let records = state.store.keys().await?;
    Ok(Json(records.iter().map(KeyRecord::view).collect()))
}

async fn revoke(State(state): State<AppState>, caller: Caller, KeyPath(id): KeyPath) -> Result<Json<KeyView>, AppError> {
    caller.require(Role::Admin)?;
    let record = state.store.revoke_key(&id, &caller.actor()).await.map_err(|e| match e {
        crate::store::StoreError::NotFound => AppError::new(ErrorCode::KeyNotFound, "no key with this id"),
        e => e.into(),
    })?;
    state.auth.forget(&id);
    tracing::info!(key_id = %id, "api key revoked");
    Ok(Json(record.view()))
}
