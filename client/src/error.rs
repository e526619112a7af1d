//! The client's one error type: the API's own refusal (with its stable code), or no usable answer.

use hhs_core::{ApiError, ErrorCode};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// HHS answered with an error: its HTTP status and the API's body (`code` is stable, match on it).
    #[error("HHS refused ({status}): {error}")]
    Api { status: u16, error: ApiError },
    /// No answer (connection refused, reset, timed out) after the retries.
    #[error("no answer from HHS: {0}")]
    Transport(String),
    /// An answer that is not what the endpoint declares.
    #[error("unexpected answer from HHS: {0}")]
    Decode(String),
}

impl ClientError {
    /// The API's error code, if HHS answered with one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Api { error, .. } => Some(error.code),
            _ => None,
        }
    }
}
