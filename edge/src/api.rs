//! `/api/*`: everything the edge can decide alone, in the order a client would want to hear it —
//! route (404/405), rate limit (429), key format (401), body (415/413/400/422), query (422) — then forward. The OpenAPI
//! description (`/api/openapi.json`) is open: rate-limited, then forwarded.

use hhs_core::auth::{bearer_token, parse_bearer};
use hhs_core::wire::endpoints::{self, Match};
use hhs_core::wire::queries::QueryParser;
use hhs_core::{ApiError, ErrorCode};
use worker::{Env, Request, Response, Result};

use crate::config::Config;
use crate::forward;
use crate::limit::{self, Verdict};
use crate::reply;

/// Query strings read as the origin reads them (axum's `Query` is `serde_urlencoded` too).
struct UrlEncoded;

impl QueryParser for UrlEncoded {
    fn parse<T: serde::de::DeserializeOwned>(&self, query: &str) -> std::result::Result<T, ApiError> {
        serde_urlencoded::from_str(query)
            .map_err(|e| ApiError::new(ErrorCode::ValidationFailed, format!("invalid query parameters: {e}")))
    }
}

/// The client's `X-Request-Id` if it is short and plain (as the origin accepts it), else a fresh one.
fn request_id(req: &Request) -> String {
    let given = req.headers().get("x-request-id").ok().flatten().filter(|v| {
        !v.is_empty()
            && v.len() <= 128
            && v.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':'))
    });
    given.unwrap_or_else(|| {
        // Request ids need to be unique, not unguessable: Math.random is enough.
        let r = || format!("{:08x}", (js_sys::Math::random() * f64::from(u32::MAX)) as u32);
        let (a, b, c, d) = (r(), r(), r(), r());
        format!("{a}-{}-4{}-a{}-{}{}", &b[..4], &b[5..8], &c[1..4], &c[4..], d)
    })
}

pub async fn handle(mut req: Request, env: &Env, config: &Config) -> Result<Response> {
    let id = request_id(&req);
    // The method as sent: workers-rs reads a method it does not know (QUERY, PROPFIND…) as GET, which would
    // pass a GET route's checks and be forwarded as a GET (`cargo xtask fuzz-api` sends such methods).
    let method = req.inner().method();
    let path = req.path();
    if path == endpoints::OPENAPI_PATH {
        return describe(req, env, config, &id, &method).await;
    }
    let (route, param) = match endpoints::find(&method, &path) {
        Match::Found(route, param) => (route, param.map(|(kind, value)| (kind, value.to_owned()))),
        Match::MethodNotAllowed => return method_not_allowed(&endpoints::allowed_methods(&path), &id),
        Match::NotFound => return reply::error(ApiError::new(ErrorCode::NotFound, "no such route"), Some(&id)),
    };

    let authorization = req.headers().get("authorization")?;
    let key_hash = authorization.as_deref().and_then(bearer_token).and_then(limit::key_hash);
    if let Verdict::Limited = limit::check(&req, env, key_hash.as_deref()).await {
        return rate_limited(config, &id);
    }
    if let Err(e) = parse_bearer(authorization.as_deref()) {
        return reply::error(e, Some(&id));
    }

    let content_type = req.headers().get("content-type")?;
    let declared_len: Option<usize> = req.headers().get("content-length")?.and_then(|v| v.parse().ok());
    let body = if !route.body {
        Vec::new()
    } else if declared_len.is_some_and(|n| n > hhs_core::wire::MAX_BODY_BYTES) {
        // Refuse before reading what we would refuse anyway.
        return reply::error(
            ApiError::new(ErrorCode::PayloadTooLarge, "request bodies are limited to 65536 bytes"),
            Some(&id),
        );
    } else {
        req.bytes().await?
    };
    let param = param.as_ref().map(|(kind, value)| (*kind, value.as_str()));
    if let Err(e) = endpoints::check(route, param, content_type.as_deref(), &body, &config.ttl_bounds) {
        return reply::error(e, Some(&id));
    }
    if let Err(e) = endpoints::check_query(route.api, req.url()?.query().unwrap_or_default(), &UrlEncoded) {
        return reply::error(e, Some(&id));
    }
    // An acquire that waits in the queue is answered up to its wait later: the timeout grows by it.
    let held_open = endpoints::held_open(route, &body);
    let resp = forward::send(config, &req, body, &id, held_open.0 as u64).await?;
    // The origin accepted the key (it authenticates first: any answer below 500 but 401 means the key is real);
    // from now on it has its own bucket here. A 5xx proves nothing (the origin or its database was away).
    if let Some(hash) = key_hash.filter(|_| resp.status_code() < 500 && resp.status_code() != 401) {
        limit::accepted(hash);
    }
    Ok(resp)
}

/// `GET /api/openapi.json`: open like `/healthz` (no key), rate-limited like everything else, from the origin.
async fn describe(req: Request, env: &Env, config: &Config, id: &str, method: &str) -> Result<Response> {
    if method != "GET" {
        return method_not_allowed(&["GET"], id);
    }
    if let Verdict::Limited = limit::check(&req, env, None).await {
        return rate_limited(config, id);
    }
    forward::send(config, &req, Vec::new(), id, 0).await
}

fn rate_limited(config: &Config, id: &str) -> Result<Response> {
    let mut resp = reply::error(
        ApiError::new(ErrorCode::RateLimited, "too many requests; retry after the Retry-After seconds"),
        Some(id),
    )?;
    resp.headers_mut().set("retry-after", &config.rate_limit_period_s.to_string())?;
    Ok(resp)
}

/// 405 with the `Allow` header RFC 9110 asks for (as the origin's router sends).
fn method_not_allowed(allowed: &[&str], id: &str) -> Result<Response> {
    let mut resp =
        reply::error(ApiError::new(ErrorCode::MethodNotAllowed, "this route does not accept that method"), Some(id))?;
    resp.headers_mut().set("allow", &allowed.join(", "))?;
    Ok(resp)
}
