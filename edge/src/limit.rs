//! Rate limits through the Workers rate-limiting bindings (`[[ratelimits]]` in wrangler.toml): one bucket per
//! API key, and one per client IP for requests without a well-formed key.

use hhs_core::auth::parse_key;
use sha2::{Digest, Sha256};
use worker::{Env, Request};

pub enum Verdict {
    Allowed,
    Limited,
}

/// The bucket of a request. Keys are bucketed by a hash of the whole key, not the visible key id, so nobody can
/// drain a clinic's bucket by sending its key id with a made-up secret.
fn bucket(req: &Request, key: Option<&str>) -> (&'static str, String) {
    match key.filter(|k| parse_key(k).is_some()) {
        Some(k) => ("KEY_LIMITER", format!("key:{}", &hex::encode(Sha256::digest(k.as_bytes()))[..32])),
        None => {
            let ip = req.headers().get("cf-connecting-ip").ok().flatten().unwrap_or_else(|| "unknown".into());
            ("IP_LIMITER", format!("ip:{ip}"))
        }
    }
}

/// Asks the binding; a missing binding or a failing limiter lets the request through (the origin still
/// authenticates everything) rather than taking the API down.
pub async fn check(req: &Request, env: &Env, key: Option<&str>) -> Verdict {
    let (binding, bucket) = bucket(req, key);
    let Ok(limiter) = env.rate_limiter(binding) else {
        worker::console_warn!("rate limiter binding {binding} is missing; not limiting");
        return Verdict::Allowed;
    };
    match limiter.limit(bucket).await {
        Ok(outcome) if !outcome.success => Verdict::Limited,
        Ok(_) => Verdict::Allowed,
        Err(e) => {
            worker::console_warn!("rate limiter {binding} failed: {e}; not limiting");
            Verdict::Allowed
        }
    }
}
