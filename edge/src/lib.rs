//! hhs-edge: the Cloudflare Worker in front of the origin. Thin on purpose: every rule it applies comes from
//! `hhs-core` (the route table, body validation, the key format), so an invalid request is refused here with
//! exactly the answer the origin would give, without the round trip.
//!
//! `GET /healthz` → [`health`]; `/api/*` → route check, rate limit, key format, body check ([`api`]), then
//! [`forward`] to `ORIGIN_URL`; anything else is a static dashboard asset (served by wrangler's `[assets]`
//! before the Worker runs).

mod api;
mod config;
mod forward;
mod health;
mod limit;
mod reply;

use worker::{event, Context, Env, Request, Response, Result};

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let config = config::Config::from_env(&env);
    let path = req.path();
    if path == "/healthz" {
        return health::handle(&config).await;
    }
    if path == "/api" || path.starts_with("/api/") {
        return api::handle(req, &env, &config).await;
    }
    // Paths that are not assets and not API: the dashboard's own 404 page is the assets binding's business.
    match env.assets("ASSETS") {
        Ok(assets) => assets.fetch_request(req).await,
        Err(_) => reply::error(hhs_core::ApiError::new(hhs_core::ErrorCode::NotFound, "no such route"), None),
    }
}
