//! Stable error codes: the `code` of every `{"error":{"code":…,"message":…}}` body, on every tier.
//!
//! Clients switch on these strings, so they never change once shipped; add new ones instead.

use alloc::string::String;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    // Request shape (400/404/405/413/415/422).
    InvalidJson,
    UnsupportedMediaType,
    PayloadTooLarge,
    NotFound,
    MethodNotAllowed,
    ValidationFailed,
    InvalidResourceId,
    InvalidOwnerId,
    InvalidTtl,
    InvalidResourceType,
    InvalidIdentifier,
    InvalidFencingToken,
    InvalidSessionId,
    // Resources.
    ResourceNotFound,
    ResourceExists,
    KeyNotFound,
    TypeNotFound,
    SessionNotFound,
    GroupNotFound,
    // Lease rules (409).
    LockHeld,
    LockDelay,
    NotHolder,
    LockExpired,
    StaleToken,
    LockNotHeld,
    // The hold is renewed by its session: keep the session alive instead of heartbeating the hold. (A plain
    // comment: a doc comment on one variant would turn the schema's plain `enum` of codes into a `oneOf`.)
    RenewedBySession,
    // The hold is booked until its end: it needs no renewals and ends then, whatever they would promise.
    HoldBooked,
    SessionEnded,
    GroupBlocked,
    ResourceUnavailable,
    // Access (the security issue fills these in; the codes are reserved now so no tier invents its own).
    Unauthenticated,
    Forbidden,
    NotYourHold,
    RateLimited,
    // Infrastructure.
    DatabaseUnavailable,
    OriginUnavailable,
    Internal,
}

impl ErrorCode {
    /// The HTTP status every tier answers with for this code.
    pub const fn http_status(self) -> u16 {
        use ErrorCode::*;
        match self {
            InvalidJson => 400,
            Unauthenticated => 401,
            Forbidden | NotYourHold => 403,
            NotFound | ResourceNotFound | KeyNotFound | TypeNotFound | SessionNotFound | GroupNotFound => 404,
            MethodNotAllowed => 405,
            ResourceExists | LockHeld | LockDelay | NotHolder | LockExpired | StaleToken | LockNotHeld
            | RenewedBySession | HoldBooked | SessionEnded | GroupBlocked | ResourceUnavailable => 409,
            PayloadTooLarge => 413,
            UnsupportedMediaType => 415,
            ValidationFailed | InvalidResourceId | InvalidOwnerId | InvalidTtl | InvalidResourceType
            | InvalidIdentifier | InvalidFencingToken | InvalidSessionId => 422,
            RateLimited => 429,
            Internal => 500,
            OriginUnavailable => 502,
            DatabaseUnavailable => 503,
        }
    }

    /// Every status this code is answered with: [`http_status`](Self::http_status), and for `origin_unavailable`
    /// also 504, the edge's answer when the origin did not answer in time (502: it could not be reached).
    pub fn statuses(self) -> alloc::vec::Vec<u16> {
        match self {
            ErrorCode::OriginUnavailable => alloc::vec![502, 504],
            _ => alloc::vec![self.http_status()],
        }
    }

    /// The snake_case code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            InvalidJson => "invalid_json",
            UnsupportedMediaType => "unsupported_media_type",
            PayloadTooLarge => "payload_too_large",
            NotFound => "not_found",
            MethodNotAllowed => "method_not_allowed",
            ValidationFailed => "validation_failed",
            InvalidResourceId => "invalid_resource_id",
            InvalidOwnerId => "invalid_owner_id",
            InvalidTtl => "invalid_ttl",
            InvalidResourceType => "invalid_resource_type",
            InvalidIdentifier => "invalid_identifier",
            InvalidFencingToken => "invalid_fencing_token",
            InvalidSessionId => "invalid_session_id",
            ResourceNotFound => "resource_not_found",
            ResourceExists => "resource_exists",
            KeyNotFound => "key_not_found",
            TypeNotFound => "type_not_found",
            SessionNotFound => "session_not_found",
            GroupNotFound => "group_not_found",
            LockHeld => "lock_held",
            LockDelay => "lock_delay",
            NotHolder => "not_holder",
            LockExpired => "lock_expired",
            StaleToken => "stale_token",
            LockNotHeld => "lock_not_held",
            RenewedBySession => "renewed_by_session",
            HoldBooked => "hold_booked",
            SessionEnded => "session_ended",
            GroupBlocked => "group_blocked",
            ResourceUnavailable => "resource_unavailable",
            Unauthenticated => "unauthenticated",
            Forbidden => "forbidden",
            NotYourHold => "not_your_hold",
            RateLimited => "rate_limited",
            DatabaseUnavailable => "database_unavailable",
            OriginUnavailable => "origin_unavailable",
            Internal => "internal",
        }
    }
}

/// One API error: the body `{"error": ApiError}`.
///
/// `holder`, `expires_at` and `retry_at` are filled only where they help the caller decide what to do next
/// (`lock_held`, `lock_delay`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::time::OptionalRfc3339Millis")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::time::OptionalRfc3339Millis")]
    pub retry_at: Option<DateTime<Utc>>,
    /// `group_blocked`: each member that blocked the group, and why.
    #[serde(default, skip_serializing_if = "alloc::vec::Vec::is_empty")]
    pub blocked: alloc::vec::Vec<BlockedMember>,
    /// `lock_held` after waiting (`wait_seconds`): the request's place in the queue when its wait ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_position: Option<u32>,
}

/// One member of a refused group: the resource, and its own refusal (`lock_held` with `holder` and
/// `expires_at`, `lock_delay` with `retry_at`, …).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct BlockedMember {
    /// The member's resource id. A bare UUID, as the body has it: the ids' own validation reports with
    /// [`ApiError`], so the error body names no id type.
    pub resource_id: uuid::Uuid,
    #[serde(flatten)]
    pub error: ApiError,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            holder: None,
            expires_at: None,
            retry_at: None,
            blocked: alloc::vec::Vec::new(),
            queue_position: None,
        }
    }

    pub fn http_status(&self) -> u16 {
        self.code.http_status()
    }
}

impl core::fmt::Display for ApiError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} ({})", self.message, self.code.as_str())
    }
}

/// So a value that fails validation where it is read (a stored row) is an ordinary error there.
impl core::error::Error for ApiError {}

/// The envelope every error response uses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct ErrorBody {
    pub error: ApiError,
}

impl From<ApiError> for ErrorBody {
    fn from(error: ApiError) -> Self {
        ErrorBody { error }
    }
}
