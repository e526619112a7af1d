//! Forwarding a validated request to the origin, and the origin's answer back unchanged — streamed, so the
//! dashboard's event stream passes through without buffering.

use std::time::Duration;

use futures::future::{select, Either};
use hhs_core::{ApiError, ErrorCode};
use worker::{AbortController, Delay, Fetch, Headers, Request, RequestInit, Response, Result};

use crate::config::Config;
use crate::reply;

/// Headers the origin needs from the client; everything else stays at the edge.
const PASSED: [&str; 4] = ["authorization", "content-type", "accept", "last-event-id"];

/// `held_open_ms`: how long the origin may keep this request open on purpose (an acquire's wait), added to
/// `ORIGIN_TIMEOUT_MS`.
pub async fn send(
    config: &Config,
    req: &Request,
    body: Vec<u8>,
    request_id: &str,
    held_open_ms: u64,
) -> Result<Response> {
    let url = req.url()?;
    let target = match url.query() {
        Some(q) => format!("{}{}?{q}", config.origin_url, url.path()),
        None => format!("{}{}", config.origin_url, url.path()),
    };
    let headers = Headers::new();
    for name in PASSED {
        if let Some(v) = req.headers().get(name)? {
            headers.set(name, &v)?;
        }
    }
    headers.set("x-request-id", request_id)?;
    let colo = req.cf().map(|cf| cf.colo()).unwrap_or_else(|| "local".into());
    headers.set("x-hhs-edge-location", &colo)?;
    if let Some(ip) = req.headers().get("cf-connecting-ip")? {
        headers.set("x-forwarded-for", &ip)?;
    }

    let mut init = RequestInit::new();
    init.with_method(req.method()).with_headers(headers);
    if !body.is_empty() {
        init.with_body(Some(js_sys::Uint8Array::from(body.as_slice()).into()));
    }
    let outgoing = Request::new_with_init(&target, &init)?;

    let controller = AbortController::default();
    let signal = controller.signal();
    let fetch = Box::pin(async move { Fetch::Request(outgoing).send_with_signal(&signal).await });
    let timeout_ms = config.origin_timeout_ms + held_open_ms;
    let timeout = Box::pin(Delay::from(Duration::from_millis(timeout_ms)));
    match select(fetch, timeout).await {
        Either::Left((Ok(resp), _)) => Ok(resp),
        Either::Left((Err(e), _)) => {
            worker::console_error!("origin unreachable: {e}");
            reply::error(
                ApiError::new(ErrorCode::OriginUnavailable, "the origin could not be reached; retry shortly"),
                Some(request_id),
            )
        }
        Either::Right((_, _)) => {
            controller.abort();
            let mut resp = reply::error(
                ApiError::new(
                    ErrorCode::OriginUnavailable,
                    format!("the origin did not answer within {timeout_ms} ms"),
                ),
                Some(request_id),
            )?;
            resp = resp.with_status(504);
            Ok(resp)
        }
    }
}
