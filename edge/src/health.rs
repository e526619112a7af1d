//! `GET /healthz` at the edge: the edge answers, and says whether the origin does.

use std::time::Duration;

use futures::future::{select, Either};
use serde_json::json;
use worker::{Delay, Fetch, Response, Result, Url};

use crate::config::Config;

pub async fn handle(config: &Config) -> Result<Response> {
    let url = Url::parse(&format!("{}/healthz", config.origin_url))?;
    let probe = Box::pin(async move { Fetch::Url(url).send().await });
    let timeout = Box::pin(Delay::from(Duration::from_millis(config.origin_timeout_ms.min(3_000))));
    let (origin, origin_status) = match select(probe, timeout).await {
        Either::Left((Ok(resp), _)) if resp.status_code() == 200 => ("ok", Some(200)),
        Either::Left((Ok(resp), _)) => ("unavailable", Some(resp.status_code())),
        _ => ("unavailable", None),
    };
    let body = json!({
        "status": if origin == "ok" { "ok" } else { "degraded" },
        "edge": "ok",
        "origin": origin,
        "origin_status": origin_status,
        "version": env!("CARGO_PKG_VERSION"),
    });
    Ok(Response::from_json(&body)?.with_status(if origin == "ok" { 200 } else { 503 }))
}
