//! `POST /api/hl7/v2` (integration or admin): one HL7 v2 message in ER7, answered with its `ACK` — always 200,
//! as HL7 over HTTP is: whether it was applied is the ACK's `MSA-1` (`AA`, `AE`, `AR`). The rules and the
//! recording are `crate::hl7`'s, shared with the MLLP listener.

use axum::extract::State;
use axum::response::IntoResponse;
use hhs_core::{ApiError, ErrorCode};
use http::header::CONTENT_TYPE;

use super::auth::Caller;
use super::error::AppError;
use super::AppState;

pub(super) async fn receive(
    State(state): State<AppState>,
    caller: Caller,
    headers: http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, AppError> {
    // The edge's check, made here too, so both answer alike.
    let media = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
    if !media.is_some_and(hhs_core::wire::endpoints::is_er7_content_type) {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "send the message as Content-Type: application/hl7-v2",
        )
        .into());
    }
    // Not UTF-8 is as unreadable as any other malformed message: answered `AR` by the rules.
    let text = String::from_utf8_lossy(&body);
    let answer = crate::hl7::ingest(&state.store, &state.hl7, &text, &caller.actor()).await?;
    Ok(([(CONTENT_TYPE, "application/hl7-v2")], answer))
}
