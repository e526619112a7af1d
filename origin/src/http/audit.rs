//! `GET /api/audit/export?since=&until=` (admin): every event in the window, oldest first, as NDJSON, streamed
//! page by page so an export of months of history never sits in memory.

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::header::CONTENT_TYPE;

use super::auth::Caller;
use super::error::AppError;
use super::extract::QueryParams;
use super::AppState;
use crate::store::{DynStore, EventFilter};
use hhs_core::wire::ExportQuery;

const PAGE: u32 = 1000;

pub(super) async fn export(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<ExportQuery>,
) -> Result<Response, AppError> {
    let filter = q.validate()?;
    tracing::info!(principal = %caller.principal, "audit export started");
    let pages = futures::stream::unfold(Some((state.store.clone(), filter)), next_page);
    Ok(([(CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(pages)).into_response())
}

/// One page of NDJSON, then the cursor for the next; `None` once a short page has been sent. A database error
/// ends the stream early (the client sees a truncated body, and the log says why).
pub(super) async fn next_page(
    cursor: Option<(DynStore, EventFilter)>,
) -> Option<(Result<String, std::io::Error>, Option<(DynStore, EventFilter)>)> {
    let (store, mut filter) = cursor?;
    match store.events(&filter).await {
        Ok(events) => {
            let mut out = String::new();
            for e in &events {
                out.push_str(&serde_json::to_string(&e.event).unwrap_or_default());
                out.push('\n');
            }
            let more = events.len() == PAGE as usize;
            filter.after_id = events.last().map(|e| e.pos.id);
            Some((Ok(out), more.then_some((store, filter))))
        }
        Err(e) => {
            tracing::error!(error = %e, "audit export aborted");
            Some((Err(std::io::Error::other("audit export aborted")), None))
        }
    }
}
