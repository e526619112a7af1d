//! Extractors that fail with our JSON errors instead of axum's plain-text rejections.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use hhs_core::wire::{is_json_content_type, parse_body, MAX_BODY_BYTES};
use hhs_core::{ErrorCode, ResourceId};
use http::header::CONTENT_TYPE;
use http::request::Parts;
use http::StatusCode;
use serde::de::DeserializeOwned;

use super::error::AppError;

/// A JSON request body: 415 without `Content-Type: application/json`, 413 over 64 KiB, 400 when it is not JSON,
/// 422 when it has the wrong shape (unknown fields included).
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        let content_type = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        if !is_json_content_type(content_type) {
            return Err(AppError::new(
                ErrorCode::UnsupportedMediaType,
                "send the body as Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                AppError::new(
                    ErrorCode::PayloadTooLarge,
                    format!("request bodies are limited to {MAX_BODY_BYTES} bytes"),
                )
            } else {
                AppError::new(ErrorCode::InvalidJson, "the request body could not be read")
            }
        })?;
        Ok(JsonBody(parse_body(&bytes)?))
    }
}

/// Query parameters; a malformed query string is a 422 `validation_failed`.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, AppError> {
        Query::<T>::try_from_uri(&parts.uri).map(|Query(v)| QueryParams(v)).map_err(|e| {
            AppError::new(ErrorCode::ValidationFailed, format!("invalid query parameters: {}", e.body_text()))
        })
    }
}

/// The `{resource_id}` of a path. A segment that does not decode to UTF-8 (`/api/resources/%00%ff`) is judged as
/// sent, by the same rule the edge applies to it — 422 `invalid_resource_id` in our JSON shape, never axum's
/// plain-text rejection.
pub struct ResourcePath(pub ResourceId);

impl<S: Send + Sync> FromRequestParts<S> for ResourcePath {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let raw = match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(decoded)) => decoded,
            Err(_) => parts.uri.path().rsplit('/').next().unwrap_or_default().to_owned(),
        };
        Ok(ResourcePath(ResourceId::parse(&raw)?))
    }
}

/// The `{type_name}` of a path, by the resource type rule (422 `invalid_resource_type`, as at the edge).
pub struct TypePath(pub hhs_core::ResourceType);

impl<S: Send + Sync> FromRequestParts<S> for TypePath {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let raw = Path::<String>::from_request_parts(parts, state).await.map(|Path(p)| p).unwrap_or_default();
        Ok(TypePath(hhs_core::ResourceType::parse(&raw)?))
    }
}

/// The `{key_id}` of a path; one that does not decode names no key (404 `key_not_found`).
pub struct KeyPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for KeyPath {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(id)| KeyPath(id))
            .map_err(|_| AppError::new(ErrorCode::KeyNotFound, "no key with this id"))
    }
}

/// The `{session_id}` of a path (422 `invalid_session_id`, as at the edge).
pub struct SessionPath(pub hhs_core::SessionId);

impl<S: Send + Sync> FromRequestParts<S> for SessionPath {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let raw = Path::<String>::from_request_parts(parts, state).await.map(|Path(p)| p).unwrap_or_default();
        Ok(SessionPath(hhs_core::SessionId::parse(&raw)?))
    }
}
