//! Typed calls: `Client::call::<E>` for any endpoint `E` of the table, with its request body type and its
//! response type. Retries only what may be retried: 503 (the database or the origin is away: a failover, a
//! restart) and 429 (rate-limited), after `Retry-After` or a jittered backoff, and transport errors (no answer).
//! A 409 or any other refusal is returned at once: it is an answer, not a fault.

use std::time::Duration;

use hhs_core::error::ErrorBody;
use hhs_core::wire::endpoints::{Endpoint, RequestBody};
use hhs_core::{ApiError, ErrorCode};
use serde::de::DeserializeOwned;

use crate::error::ClientError;

/// How often and how long to retry a call that got 503, 429 or no answer.
#[derive(Clone, Copy, Debug)]
pub struct Retry {
    pub attempts: u32,
    /// The first backoff; it doubles per attempt up to `max_delay`, with ±50% jitter.
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for Retry {
    fn default() -> Retry {
        Retry { attempts: 8, base_delay: Duration::from_millis(200), max_delay: Duration::from_secs(5) }
    }
}

/// How long a call may take (native builds), plus however long the server may hold it open on purpose.
#[cfg(not(target_arch = "wasm32"))]
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// An HHS endpoint (the edge or an origin) and an API key.
#[derive(Clone, Debug)]
pub struct Client {
    base: String,
    key: String,
    http: reqwest::Client,
    pub retry: Retry,
}

impl Client {
    /// `base`: e.g. `https://hhs.example.org` (no trailing `/api`); `key`: `hhs_<id>_<secret>`.
    pub fn new(base: &str, key: &str) -> Client {
        #[cfg(not(target_arch = "wasm32"))]
        let http = reqwest::Client::builder().timeout(CALL_TIMEOUT).build().unwrap_or_default();
        // In a browser the fetch API has no client-wide timeout; the page's own lifetime bounds a call.
        #[cfg(target_arch = "wasm32")]
        let http = reqwest::Client::new();
        Client { base: base.trim_end_matches('/').to_owned(), key: key.to_owned(), http, retry: Retry::default() }
    }

    /// Calls endpoint `E`: `param` fills the path's `{…}` placeholder, `query` is appended as is.
    pub async fn call<E>(
        &self,
        param: Option<&str>,
        query: Option<&str>,
        body: &E::Request,
    ) -> Result<E::Response, ClientError>
    where
        E: Endpoint,
        E::Response: DeserializeOwned,
    {
        let mut path = E::PATH.to_owned();
        if let (Some(start), Some(p)) = (path.find('{'), param) {
            let end = path[start..].find('}').map_or(path.len(), |e| start + e + 1);
            path.replace_range(start..end, p);
        }
        let url = match query {
            Some(q) => format!("{}{path}?{q}", self.base),
            None => format!("{}{path}", self.base),
        };
        let method =
            reqwest::Method::from_bytes(E::METHOD.as_bytes()).map_err(|e| ClientError::Decode(e.to_string()))?;
        let body = if <E::Request as RequestBody>::PRESENT {
            Some(serde_json::to_vec(body).map_err(|e| ClientError::Decode(e.to_string()))?)
        } else {
            None
        };
        // An acquire that waits in the queue is answered up to its wait later (the edge's rule, `held_open`).
        #[cfg(not(target_arch = "wasm32"))]
        let timeout = {
            use hhs_core::wire::endpoints::{held_open, ROUTES};
            let route = ROUTES.iter().find(|r| r.api == E::API);
            let held_open = route.map_or(0, |r| held_open(r, body.as_deref().unwrap_or_default()).0);
            CALL_TIMEOUT + Duration::from_millis(u64::try_from(held_open).unwrap_or(0))
        };
        // One request id for every attempt: the server's logs tie the retries together.
        let request_id = crate::platform::request_id();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req =
                self.http.request(method.clone(), &url).bearer_auth(&self.key).header("x-request-id", &request_id);
            #[cfg(not(target_arch = "wasm32"))]
            {
                req = req.timeout(timeout);
            }
            if let Some(b) = &body {
                req = req.header("content-type", "application/json").body(b.clone());
            }
            let wait = match req.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let retry_after = resp
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let bytes = resp.bytes().await.map_err(|e| ClientError::Transport(e.to_string()))?;
                    if (200..300).contains(&status) {
                        return serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()));
                    }
                    let error = api_error(status, &bytes);
                    if !(status == 503 || status == 429) || attempt >= self.retry.attempts {
                        return Err(ClientError::Api { status, error });
                    }
                    retry_after.unwrap_or_else(|| self.backoff(attempt))
                }
                Err(e) if attempt >= self.retry.attempts => return Err(ClientError::Transport(e.to_string())),
                Err(_) => self.backoff(attempt),
            };
            crate::platform::sleep(wait).await;
        }
    }

    /// A raw GET with the key, for what is not one JSON answer (the event stream, the audit export).
    pub async fn get_raw(&self, path_and_query: &str) -> Result<reqwest::Response, ClientError> {
        let resp = self
            .http
            .get(format!("{}{path_and_query}", self.base))
            .bearer_auth(&self.key)
            .send()
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap_or_default();
        Err(ClientError::Api { status, error: api_error(status, &bytes) })
    }

    /// The delay before attempt `attempt + 1`: exponential, capped, jittered (so clients a failover turned away
    /// together do not come back together).
    fn backoff(&self, attempt: u32) -> Duration {
        let exp =
            self.retry.base_delay.saturating_mul(1 << attempt.min(16).saturating_sub(1)).min(self.retry.max_delay);
        exp.mul_f64(0.5 + crate::platform::unit_random())
    }
}

/// The API's error of an answer with `status` and body `bytes`; a body that is not one (a proxy's page) becomes
/// `database_unavailable` for a 503, else `internal`, with the body's start as the message.
fn api_error(status: u16, bytes: &[u8]) -> ApiError {
    serde_json::from_slice::<ErrorBody>(bytes).map(|b| b.error).unwrap_or_else(|_| {
        let code = if status == 503 { ErrorCode::DatabaseUnavailable } else { ErrorCode::Internal };
        ApiError::new(code, String::from_utf8_lossy(bytes).chars().take(200).collect::<String>())
    })
}
