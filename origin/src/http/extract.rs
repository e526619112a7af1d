//! Extractors that fail with our JSON errors instead of axum's plain-text rejections.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use http::header::CONTENT_TYPE;
use http::request::Parts;
use http::StatusCode;
use hhs_core::api::{is_json_content_type, parse_body, MAX_BODY_BYTES};
use hhs_core::ErrorCode;
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
            return Err(AppError::new(ErrorCode::UnsupportedMediaType, "send the body as Content-Type: application/json"));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                AppError::new(ErrorCode::PayloadTooLarge, format!("request bodies are limited to {MAX_BODY_BYTES} bytes"))
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
        Query::<T>::try_from_uri(&parts.uri)
            .map(|Query(v)| QueryParams(v))
            .map_err(|e| AppError::new(ErrorCode::ValidationFailed, format!("invalid query parameters: {}", e.body_text())))
    }
}
