//! Rate limits through the Workers rate-limiting bindings (`[[ratelimits]]` in wrangler.toml): one bucket per
//! API key the origin has accepted, and one per client for everything else: per IPv4 address, per IPv6 /64
//! (`hhs_core::rate::client_bucket`: a host given a /64 cannot earn a fresh bucket per address).
//!
//! Why not a bucket per well-formed key: the edge cannot tell a real key from a made-up one (keys are verified
//! by the origin), so a client that sends a fresh random `hhs_<id>_<secret>` with every request would get a
//! fresh bucket every time and never be limited. A key earns its own bucket only once the origin has accepted
//! it (any answer but 401): this isolate remembers it for [`VERIFIED_FOR_MS`]. Until then — a made-up key, a
//! revoked one, a real one seen for the first time here — the request counts against its IP's bucket, like a
//! request without a key. A clinic behind one NAT keeps its own key's quota after its first request; a flood of
//! random keys is limited like a flood without keys.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};

use hhs_core::auth::parse_key;
use hhs_core::rate::client_bucket;
use sha2::{Digest, Sha256};
use worker::{Env, Request};

pub enum Verdict {
    Allowed,
    Limited,
}

/// How long an accepted key keeps its own bucket without being seen accepted again.
const VERIFIED_FOR_MS: f64 = 5.0 * 60_000.0;
/// Accepted keys remembered per isolate (oldest forgotten first): a forgotten key only falls back to its IP's
/// bucket until its next accepted request.
const VERIFIED_CAPACITY: usize = 10_000;

/// Keys (by hash) the origin accepted, with when; per isolate, so approximate like the limiter itself.
#[derive(Default)]
struct Verified {
    until: HashMap<String, f64>,
    order: VecDeque<String>,
}

thread_local! {
    static VERIFIED: RefCell<Verified> = RefCell::new(Verified::default());
}

fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// A key's bucket name: a hash of the whole key, not the visible key id, so nobody can drain a clinic's bucket
/// by sending its key id with a made-up secret.
pub fn key_hash(key: &str) -> Option<String> {
    parse_key(key).map(|_| hex::encode(&Sha256::digest(key.as_bytes())[..16]))
}

fn is_verified(hash: &str) -> bool {
    VERIFIED.with(|v| v.borrow().until.get(hash).is_some_and(|until| *until > now_ms()))
}

/// Remembers that the origin accepted the key with this hash.
pub fn accepted(hash: String) {
    VERIFIED.with(|v| {
        let mut v = v.borrow_mut();
        if v.until.insert(hash.clone(), now_ms() + VERIFIED_FOR_MS).is_none() {
            v.order.push_back(hash);
        }
        while v.until.len() > VERIFIED_CAPACITY {
            let Some(oldest) = v.order.pop_front() else { break };
            v.until.remove(&oldest);
        }
    });
}

/// The bucket of a request: its verified key's, else its client's (IPv4 address or IPv6 /64).
fn bucket(req: &Request, key_hash: Option<&str>) -> (&'static str, String) {
    match key_hash.filter(|h| is_verified(h)) {
        Some(h) => ("KEY_LIMITER", format!("key:{h}")),
        None => {
            let ip = req.headers().get("cf-connecting-ip").ok().flatten().unwrap_or_default();
            ("IP_LIMITER", format!("ip:{}", client_bucket(&ip)))
        }
    }
}

/// Asks the binding; a missing binding or a failing limiter lets the request through (the origin still
/// authenticates everything) rather than taking the API down.
pub async fn check(req: &Request, env: &Env, key_hash: Option<&str>) -> Verdict {
    let (binding, bucket) = bucket(req, key_hash);
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
