//! JSON error answers, byte for byte the origin's shape: `{"error":{"code":…,"message":…}}`.

use hhs_core::error::ErrorBody;
use hhs_core::{ApiError, ErrorCode};
use worker::{Headers, Response, Result};

/// An error response, with `X-Request-Id` when the request has one.
pub fn error(e: ApiError, request_id: Option<&str>) -> Result<Response> {
    let status = e.http_status();
    let code = e.code;
    let headers = Headers::new();
    headers.set("content-type", "application/json")?;
    if let Some(id) = request_id {
        headers.set("x-request-id", id)?;
    }
    if code == ErrorCode::Unauthenticated {
        headers.set("www-authenticate", "Bearer realm=\"hhs\"")?;
    }
    let body = serde_json::to_vec(&ErrorBody::from(e)).unwrap_or_default();
    Ok(Response::from_bytes(body)?.with_status(status).with_headers(headers))
}
