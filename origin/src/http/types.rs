//! `/api/types`: resource types and their policy, the one copy every replica, the reaper and the dashboard
//! decide with. Changing one is an admin's act, recorded with the old and new values.

use axum::extract::State;
use axum::Json;
use hhs_core::wire::{TypePage, TypeView};
use hhs_core::{ErrorCode, TypeChange};

use super::auth::Caller;
use super::error::AppError;
use super::extract::{JsonBody, TypePath};
use super::AppState;

pub(super) async fn list(State(state): State<AppState>) -> Result<Json<TypePage>, AppError> {
    let items = state.store.types().await?.iter().map(|t| t.view()).collect();
    Ok(Json(TypePage { items, next_after: None }))
}

pub(super) async fn show(State(state): State<AppState>, TypePath(name): TypePath) -> Result<Json<TypeView>, AppError> {
    let types = state.store.types().await?;
    let row = types
        .iter()
        .find(|t| t.name == name)
        .ok_or_else(|| AppError::new(ErrorCode::TypeNotFound, "no resource type with this name"))?;
    Ok(Json(row.view()))
}

/// Sets a type's policy (a new type starts from this process's defaults); every replica and the reaper decide
/// with it from their next transaction on.
pub(super) async fn put(
    State(state): State<AppState>,
    caller: Caller,
    TypePath(name): TypePath,
    JsonBody(change): JsonBody<TypeChange>,
) -> Result<Json<TypeView>, AppError> {
    change.check()?;
    let seed = state.policy.for_type(name.as_str());
    let row = state.store.put_type(&name, &change, &seed, &caller.actor()).await?;
    tracing::info!(resource_type = name.as_str(), principal = %caller.principal, "resource type policy set");
    Ok(Json(row.view()))
}
