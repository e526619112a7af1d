//! `GET /metrics` in the OpenMetrics text format (`prometheus-client`), open like /healthz: it holds counts and
//! durations, no names of patients or owners. What each measures and what to alert on is in docs/operations.md ("Monitoring").
//!
//! Per replica: request latency by route and status, acquire latency by outcome, heartbeats. From the event log,
//! which every replica's pump reads whole, so each replica reports the cluster's (take one, or the max, not the
//! sum): hold durations by how the hold ended, expiries. Read at scrape: live holds by type and the reaper's lag
//! (the held leases, decided by hhs-core's expiry rule), stream subscribers, the database pool.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hhs_core::wire::{EventView, LogKind};
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::AppState;
use crate::store::LockFilter;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndedLabels {
    ended: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabels {
    r#type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

/// 1 ms to ~16 s.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// 10 ms to ~41 s: a queue wait is at most `MAX_WAIT_SECONDS` (30 s).
fn wait_length() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 13))
}

/// 1 s to ~9 days.
fn hold_length() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 20))
}

pub struct Metrics {
    requests: AtomicU64,
    api_requests: AtomicU64,
    request_seconds: Family<RouteLabels, Histogram, fn() -> Histogram>,
    acquire_seconds: Family<OutcomeLabels, Histogram, fn() -> Histogram>,
    wait_seconds: Family<OutcomeLabels, Histogram, fn() -> Histogram>,
    heartbeats: Counter,
    hold_seconds: Family<EndedLabels, Histogram, fn() -> Histogram>,
    expired: Counter,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            requests: AtomicU64::new(0),
            api_requests: AtomicU64::new(0),
            request_seconds: Family::new_with_constructor(latency),
            acquire_seconds: Family::new_with_constructor(latency),
            wait_seconds: Family::new_with_constructor(wait_length),
            heartbeats: Counter::default(),
            hold_seconds: Family::new_with_constructor(hold_length),
            expired: Counter::default(),
        }
    }
}

impl Metrics {
    /// An acquire answered after `started`: `outcome` is `granted`, `renewed` (the holder's repeat) or the
    /// refusal's error code. One that joined the queue at `queued` counts as `queued` here, decided then, and
    /// its wait (until granted, or the refusal's code) in `hhs_queue_wait_duration_seconds`: a busy resource's queue
    /// says nothing about how fast HHS decides.
    pub fn acquired(&self, started: Instant, queued: Option<Instant>, outcome: &str) {
        let observe = |f: &Family<OutcomeLabels, Histogram, fn() -> Histogram>, outcome: &str, secs: f64| {
            f.get_or_create(&OutcomeLabels { outcome: outcome.to_owned() }).observe(secs);
        };
        match queued {
            None => observe(&self.acquire_seconds, outcome, started.elapsed().as_secs_f64()),
            Some(at) => {
                observe(&self.acquire_seconds, "queued", at.saturating_duration_since(started).as_secs_f64());
                observe(&self.wait_seconds, outcome, at.elapsed().as_secs_f64());
            }
        }
    }

    pub fn heartbeat(&self) {
        self.heartbeats.inc();
    }

    /// An entry of the log, as the event pump reads it: holds that ended, and expiries.
    pub fn logged(&self, event: &EventView) {
        if event.kind.ends_hold() {
            if let Some(held) = event.detail.hold().and_then(|d| d.held_ms) {
                self.hold_seconds
                    .get_or_create(&EndedLabels { ended: event.kind.as_str().to_owned() })
                    .observe(held as f64 / 1000.0);
            }
        }
        if event.kind == LogKind::Expired {
            self.expired.inc();
        }
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(render))
}

/// Counts and times every request except scrapes of /metrics itself; API routes by their template.
pub async fn count(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if path == "/metrics" {
        return next.run(req).await;
    }
    state.metrics.requests.fetch_add(1, Ordering::Relaxed);
    let api = path.starts_with("/api/");
    if api {
        state.metrics.api_requests.fetch_add(1, Ordering::Relaxed);
    }
    let route = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned());
    let method = req.method().to_string();
    let started = Instant::now();
    let response = next.run(req).await;
    // Only the table's routes by name (and one bucket for the rest), so a client cannot make up label values.
    let route = match (api, route) {
        (true, Some(r)) => r,
        (true, None) => "unmatched".to_owned(),
        (false, _) => "other".to_owned(),
    };
    let labels = RouteLabels { route, method, status: response.status().as_u16() };
    state.metrics.request_seconds.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
    response
}

async fn render(State(state): State<AppState>) -> Response {
    let m = &state.metrics;
    let mut r = Registry::default();
    let counter = |v: u64| {
        let c: Counter = Counter::default();
        c.inc_by(v);
        c
    };
    r.register(
        "hhs_http_requests",
        "HTTP requests received (excluding /metrics)",
        counter(m.requests.load(Ordering::Relaxed)),
    );
    r.register("hhs_http_api_requests", "HTTP requests to /api/*", counter(m.api_requests.load(Ordering::Relaxed)));
    r.register(
        "hhs_http_request_duration_seconds",
        "Request latency by route template, method and status",
        m.request_seconds.clone(),
    );
    r.register(
        "hhs_acquire_duration_seconds",
        "Acquire latency by outcome (granted, renewed, queued, or the refusal's code)",
        m.acquire_seconds.clone(),
    );
    r.register(
        "hhs_queue_wait_duration_seconds",
        "Time acquires spent in a resource's queue, by outcome (granted, or the refusal's code)",
        m.wait_seconds.clone(),
    );
    r.register("hhs_heartbeats", "Heartbeats accepted by this replica", m.heartbeats.clone());
    r.register(
        "hhs_hold_duration_seconds",
        "Length of holds that ended, by how (from the log: the whole cluster's)",
        m.hold_seconds.clone(),
    );
    r.register("hhs_holds_expired", "Holds recorded as expired (from the log: the whole cluster's)", m.expired.clone());
    r.register(
        "hhs_reaper_rows_skipped",
        "Stored rows this replica's reaper could not read and skipped (each logged by id)",
        counter(state.store.rows_skipped()),
    );

    let keys: Family<KindLabels, Gauge> = Family::default();
    let (known, unknown) = state.auth.cached();
    keys.get_or_create(&KindLabels { kind: "known".into() }).set(known as i64);
    keys.get_or_create(&KindLabels { kind: "unknown".into() }).set(unknown as i64);
    r.register("hhs_key_cache_entries", "API key cache entries, by kind (bounded: see key_cache.rs)", keys);

    let subscribers: Gauge = Gauge::default();
    subscribers.set(state.hub.subscribers() as i64);
    r.register("hhs_stream_subscribers", "Open event streams on this replica", subscribers);

    if let Some((size, idle)) = state.store.pool_use() {
        let pool: Family<KindLabels, Gauge> = Family::default();
        pool.get_or_create(&KindLabels { kind: "in_use".into() }).set(i64::from(size) - idle as i64);
        pool.get_or_create(&KindLabels { kind: "idle".into() }).set(idle as i64);
        r.register("hhs_db_pool_connections", "Database pool connections, in use and idle", pool);
    }

    // The held leases, decided with hhs-core's rule: live holds by type, and how long the oldest lapsed one has
    // waited for the reaper. Skipped (not an error) while the database is away.
    let held = LockFilter { held_only: true, ..LockFilter::default() };
    if let Ok(Ok((leases, now))) =
        tokio::time::timeout(std::time::Duration::from_secs(2), state.store.leases(&held)).await
    {
        let live: Family<TypeLabels, Gauge> = Family::default();
        let mut oldest_lapse = None;
        for (resource, lease) in &leases {
            match lease.hold.as_ref() {
                Some(h) if h.is_live(now) => {
                    live.get_or_create(&TypeLabels { r#type: resource.resource_type.as_str().to_owned() }).inc();
                }
                Some(h) if h.is_expired(now) => {
                    oldest_lapse =
                        Some(oldest_lapse.map_or(h.expires_at(), |o: hhs_core::Millis| o.min(h.expires_at())));
                }
                _ => {}
            }
        }
        r.register("hhs_holds_current", "Live holds by resource type", live);
        let lag: Gauge<f64, std::sync::atomic::AtomicU64> = Gauge::default();
        lag.set(oldest_lapse.map_or(0.0, |at| now.since(at).0 as f64 / 1000.0));
        r.register(
            "hhs_reaper_lag_seconds",
            "How long the oldest lapsed hold has waited to be recorded as expired (0: none)",
            lag,
        );
    }

    let mut body = String::new();
    if encode(&mut body, &r).is_err() {
        return (http::StatusCode::INTERNAL_SERVER_ERROR, "could not encode the metrics").into_response();
    }
    ([(http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body).into_response()
}
