//! Calls to the HHS API. The base is the page's own origin (the edge, or the origin's `/dashboard/`), so paths
//! are absolute (`/api/…`). Every failure becomes a [`UiError`] with the API's stable code and its words.

use std::fmt;

use gloo::net::http::{Request, RequestBuilder, Response};
use hhs_core::api::{LockList, LockView, WhoAmI};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// An API error as the dashboard shows it: the server's message and code (or what went wrong on the way).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UiError {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl UiError {
    pub fn network(e: impl fmt::Display) -> UiError {
        UiError { status: 0, code: "network_error".into(), message: format!("could not reach HHS: {e}") }
    }

    /// The key was not accepted (missing, unknown, revoked): the dashboard must sign in again.
    pub fn is_unauthenticated(&self) -> bool {
        self.status == 401
    }
}

impl fmt::Display for UiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

/// The API, called with one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Api {
    key: String,
}

impl Api {
    pub fn new(key: impl Into<String>) -> Api {
        Api { key: key.into() }
    }

    pub fn authorization(&self) -> String {
        format!("Bearer {}", self.key)
    }

    fn authed(&self, req: RequestBuilder) -> RequestBuilder {
        req.header("Authorization", &self.authorization())
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, UiError> {
        let resp = self.authed(Request::get(path)).send().await.map_err(UiError::network)?;
        read(resp).await
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T, UiError> {
        let req = self.authed(Request::post(path)).json(body).map_err(UiError::network)?;
        read(req.send().await.map_err(UiError::network)?).await
    }

    pub async fn whoami(&self) -> Result<WhoAmI, UiError> {
        self.get("/api/whoami").await
    }

    /// The board's snapshot and the clock offset measured with it: the server's time minus the midpoint of this
    /// browser's send and receive times (the request's round trip bounds the error).
    pub async fn snapshot(&self) -> Result<(LockList, i64), UiError> {
        let sent = js_sys::Date::now();
        let list: LockList = self.get("/api/locks").await?;
        let received = js_sys::Date::now();
        let midpoint = ((sent + received) / 2.0) as i64;
        Ok((list.clone(), list.server_time.timestamp_millis() - midpoint))
    }

    pub async fn lock_action<B: Serialize>(&self, path: &str, body: &B) -> Result<LockView, UiError> {
        self.post(path, body).await
    }
}

/// The body on success; the API's error (or a description of what came instead) otherwise.
async fn read<T: DeserializeOwned>(resp: Response) -> Result<T, UiError> {
    let status = resp.status();
    let text = resp.text().await.map_err(UiError::network)?;
    if (200..300).contains(&status) {
        return serde_json::from_str(&text)
            .map_err(|e| UiError { status, code: "bad_response".into(), message: format!("unexpected answer from HHS: {e}") });
    }
    // Read loosely: a code this build does not know yet is still shown as it came.
    let body: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    Err(match (body["error"]["code"].as_str(), body["error"]["message"].as_str()) {
        (Some(code), Some(message)) => UiError { status, code: code.to_owned(), message: message.to_owned() },
        _ => UiError { status, code: format!("http_{status}"), message: format!("HHS answered {status} without an error body") },
    })
}
