//! The Worker's settings, from `[vars]` in wrangler.toml (or `--var` / the dashboard in production).

use hhs_core::TtlBounds;
use worker::Env;

pub struct Config {
    /// Where valid requests go, without a trailing slash.
    pub origin_url: String,
    /// How long to wait for the origin before answering 504.
    pub origin_timeout_ms: u64,
    /// The hard TTL limits (1 s to 7 days): the edge holds no policy. A TTL within them but outside a resource
    /// type's own bounds is the origin's to refuse, from the type's row.
    pub ttl_bounds: TtlBounds,
    /// The rate limiters' window, for `Retry-After` (the binding's `period`).
    pub rate_limit_period_s: u32,
}

fn var(env: &Env, name: &str) -> Option<String> {
    env.var(name).ok().map(|v| v.to_string()).filter(|v| !v.is_empty())
}

fn num<T: std::str::FromStr>(env: &Env, name: &str, default: T) -> T {
    var(env, name).and_then(|v| v.parse().ok()).unwrap_or(default)
}

impl Config {
    pub fn from_env(env: &Env) -> Config {
        Config {
            origin_url: var(env, "ORIGIN_URL")
                .unwrap_or_else(|| "http://127.0.0.1:8000".into())
                .trim_end_matches('/')
                .to_owned(),
            origin_timeout_ms: num(env, "ORIGIN_TIMEOUT_MS", 10_000),
            ttl_bounds: TtlBounds::HARD,
            rate_limit_period_s: num(env, "RATE_LIMIT_PERIOD_SECONDS", 60),
        }
    }
}
