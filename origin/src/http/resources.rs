//! `/api/resources`: the things that can be held.

use axum::extract::State;
use axum::Json;
use hhs_core::wire::{CreateResourceRequest, ResourcePage, ResourceQuery, ResourceView, UpdateResourceRequest};
use hhs_core::{ApiError, ErrorCode, ResourceId};
use http::StatusCode;
use uuid::Uuid;

use super::auth::Caller;
use super::error::AppError;
use super::extract::{JsonBody, QueryParams, ResourcePath};
use super::AppState;
use crate::store::{Resource, StoreError};

pub fn view(r: &Resource) -> ResourceView {
    ResourceView {
        id: r.id,
        resource_type: r.resource_type.as_str().to_owned(),
        identifier: r.identifier.as_str().to_owned(),
        created_at: r.created_at.to_utc(),
        status: r.status,
    }
}

pub(super) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<CreateResourceRequest>,
) -> Result<(StatusCode, Json<ResourceView>), AppError> {
    let (ty, ident) = req.validate()?;
    // UUIDv7: time-ordered, so listing by id lists by creation and the id doubles as the page cursor.
    let seed = state.policy.for_type(ty.as_str());
    let resource = state.store.create_resource(ResourceId(Uuid::now_v7()), &ty, &ident, &seed, &caller.actor()).await?;
    tracing::info!(resource_id = %resource.id, resource_type = resource.resource_type.as_str(), "resource created");
    Ok((StatusCode::CREATED, Json(view(&resource))))
}

pub(super) async fn list(
    State(state): State<AppState>,
    QueryParams(q): QueryParams<ResourceQuery>,
) -> Result<Json<ResourcePage>, AppError> {
    let filter = q.validate()?;
    let limit = filter.limit;
    let items: Vec<ResourceView> = state.store.resources(&filter).await?.iter().map(view).collect();
    let next_after = if items.len() == limit as usize { items.last().map(|r| r.id) } else { None };
    Ok(Json(ResourcePage { items, next_after }))
}

pub(super) async fn show(
    State(state): State<AppState>,
    ResourcePath(id): ResourcePath,
) -> Result<Json<ResourceView>, AppError> {
    Ok(Json(view(&state.store.lease(id).await?.0)))
}

/// Renames a resource (admin; its type keys policy and never changes) and/or sets its operational status
/// (admin or integration). A status change never ends a live hold: the hold is shown next to it.
pub(super) async fn update(
    State(state): State<AppState>,
    caller: Caller,
    ResourcePath(id): ResourcePath,
    JsonBody(req): JsonBody<UpdateResourceRequest>,
) -> Result<Json<ResourceView>, AppError> {
    let (ident, status) = req.validate()?;
    if ident.is_some() && !caller.role.allows(hhs_core::Role::Admin) {
        return Err(ApiError::new(ErrorCode::Forbidden, "renaming a resource needs an admin key").into());
    }
    let mut resource = None;
    if let Some(ident) = ident {
        resource = Some(state.store.update_resource(id, &ident, &caller.actor()).await?);
    }
    if let Some(status) = status {
        resource = Some(state.store.set_status(id, status, &caller.actor()).await?);
        tracing::info!(resource_id = %id, status = status.code(), "resource status set");
    }
    resource.map(|r| Json(view(&r))).ok_or_else(|| StoreError::NotFound.into())
}

/// Deletes a resource that nobody holds (409 `lock_held` otherwise) and that is not in lock-delay (409
/// `lock_delay`: the lapsed holder may still be acting). Its events stay in the log, and its name's tokens keep
/// rising if it is created again.
pub(super) async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    ResourcePath(id): ResourcePath,
) -> Result<Json<ResourceView>, AppError> {
    let removed = state.store.delete_resource(id, &caller.actor()).await?;
    tracing::info!(resource_id = %id, "resource deleted");
    Ok(Json(view(&removed)))
}
