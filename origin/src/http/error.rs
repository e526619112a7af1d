//! The one error type of the HTTP layer. Every failure becomes `{"error":{"code":…,"message":…}}` with the
//! status `hhs-core` assigns to the code; database text is logged, never sent.

use axum::response::{IntoResponse, Response};
use axum::Json;
use hhs_core::error::ErrorBody;
use hhs_core::{ApiError, ErrorCode};
use http::StatusCode;

use crate::store::StoreError;

#[derive(Debug)]
pub enum AppError {
    Api(ApiError),
    Store(StoreError),
}

impl From<ApiError> for AppError {
    fn from(e: ApiError) -> Self {
        AppError::Api(e)
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        AppError::Store(e)
    }
}

impl AppError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        AppError::Api(ApiError::new(code, message))
    }

    /// The code this error is answered with (for metrics), without logging it.
    pub fn code(&self) -> ErrorCode {
        match self {
            AppError::Api(e) | AppError::Store(StoreError::Invalid(e)) => e.code,
            AppError::Store(StoreError::NotFound) => ErrorCode::ResourceNotFound,
            AppError::Store(StoreError::Exists) => ErrorCode::ResourceExists,
            AppError::Store(StoreError::NoSession) => ErrorCode::SessionNotFound,
            AppError::Store(StoreError::NoGroup) => ErrorCode::GroupNotFound,
            AppError::Store(StoreError::GroupDenied(_)) => ErrorCode::GroupBlocked,
            AppError::Store(StoreError::Denied(d)) => ApiError::from(d.clone()).code,
            AppError::Store(StoreError::Unavailable(_)) => ErrorCode::DatabaseUnavailable,
            AppError::Store(_) => ErrorCode::Internal,
        }
    }

    fn into_api(self) -> ApiError {
        let e = match self {
            AppError::Api(e) => return e,
            AppError::Store(e) => e,
        };
        match e {
            StoreError::NotFound => ApiError::new(ErrorCode::ResourceNotFound, "no resource with this id"),
            StoreError::Exists => {
                ApiError::new(ErrorCode::ResourceExists, "a resource with this type and identifier already exists")
            }
            StoreError::NoSession => ApiError::new(ErrorCode::SessionNotFound, "no session with this id"),
            StoreError::NoGroup => ApiError::new(ErrorCode::GroupNotFound, "no group was granted with this id"),
            StoreError::GroupDenied(refused) => {
                let mut e = ApiError::new(
                    ErrorCode::GroupBlocked,
                    "the group was refused as a whole: nothing is held; see blocked",
                );
                e.blocked = refused
                    .into_iter()
                    .map(|(resource_id, d)| hhs_core::error::BlockedMember {
                        resource_id: resource_id.0,
                        error: d.into(),
                    })
                    .collect();
                e
            }
            StoreError::Denied(d) => d.into(),
            StoreError::Invalid(e) => e,
            StoreError::Unavailable(err) => {
                tracing::error!(error = %err, "database unavailable");
                ApiError::new(ErrorCode::DatabaseUnavailable, "the database is unavailable; retry shortly")
            }
            other => {
                tracing::error!(error = %other, "internal error");
                ApiError::new(
                    ErrorCode::Internal,
                    "internal error; the X-Request-Id of this response finds it in the server logs",
                )
            }
        }
    }
}

/// Renders an API error as a response.
pub fn api_error_response(e: ApiError) -> Response {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    // A database that is down, restarting or locked is worth retrying soon; say when, as a 429 does.
    let retry =
        (e.code == ErrorCode::DatabaseUnavailable).then_some([(http::header::RETRY_AFTER, RETRY_AFTER_SECONDS)]);
    (status, retry, Json(ErrorBody::from(e))).into_response()
}

/// `Retry-After` of a 503 `database_unavailable`: a restart or a failover takes seconds.
const RETRY_AFTER_SECONDS: &str = "1";

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        api_error_response(self.into_api())
    }
}
