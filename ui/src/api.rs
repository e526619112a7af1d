//! Calls to the HHS API. The base is the page's own origin (the edge, or the origin's `/dashboard/`), so paths
//! are absolute (`/api/…`). Every failure becomes a [`UiError`] with the API's stable code and its words.

use std::fmt;

use hhs_core::wire::endpoints::{self, Endpoint, NoBody, RequestBody};
use hhs_core::wire::{AnomalyView, LockList, WhoAmIView};
use serde::de::DeserializeOwned;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortSignal, Headers, Request, RequestInit, Response};

/// An API error as the dashboard shows it: the server's message and code (or what went wrong on the way).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UiError {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl UiError {
    /// Words for a rejected key on the sign-in page, with the server's code.
    pub fn sign_in_message(&self) -> String {
        if self.is_unauthenticated() {
            format!(
                "Your key was not accepted — it may be mistyped or revoked. Sign in with a valid key. ({}: {})",
                self.code, self.message
            )
        } else {
            format!("Could not sign in: {self}")
        }
    }

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

    /// `fetch` with the key; `body` is sent as JSON. Plain web-sys rather than a fetch crate: the wasm stays
    /// smaller, and the event stream needs the raw `Response` anyway.
    pub async fn fetch(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
        signal: Option<&AbortSignal>,
    ) -> Result<Response, UiError> {
        let failed = |e: JsValue| UiError::network(e.as_string().unwrap_or_else(|| format!("{e:?}")));
        let headers = Headers::new().map_err(failed)?;
        headers.set("Authorization", &self.authorization()).map_err(failed)?;
        let init = RequestInit::new();
        init.set_method(method);
        if let Some(b) = body {
            headers.set("Content-Type", "application/json").map_err(failed)?;
            init.set_body(&JsValue::from_str(&b));
        }
        init.set_headers(&headers);
        init.set_signal(signal);
        let req = Request::new_with_str_and_init(path, &init).map_err(failed)?;
        let window = web_sys::window().ok_or_else(|| UiError::network("no window"))?;
        let resp = JsFuture::from(window.fetch_with_request(&req)).await.map_err(failed)?;
        resp.dyn_into::<Response>().map_err(failed)
    }

    /// Calls endpoint `E` with its method and path from the one endpoint table: `param` fills the path's
    /// `{…}`, `query` (without `?`) is appended, `body` is sent when the endpoint takes one. The answer decodes as
    /// the endpoint's response type, so a request and its answer cannot be mismatched.
    pub async fn call<E: Endpoint>(
        &self,
        param: Option<&str>,
        query: &str,
        body: &E::Request,
    ) -> Result<E::Response, UiError>
    where
        E::Response: DeserializeOwned,
    {
        let mut path = E::PATH.to_owned();
        if let (Some(value), Some(start), Some(end)) = (param, path.find('{'), path.find('}')) {
            path.replace_range(start..=end, &String::from(js_sys::encode_uri_component(value)));
        }
        if !query.is_empty() {
            path = format!("{path}?{query}");
        }
        let json = <E::Request as RequestBody>::PRESENT
            .then(|| serde_json::to_string(body))
            .transpose()
            .map_err(UiError::network)?;
        read(self.fetch(E::METHOD, &path, json, None).await?).await
    }

    pub async fn whoami(&self) -> Result<WhoAmIView, UiError> {
        self.call::<endpoints::WhoAmI>(None, "", &NoBody).await
    }

    /// The board's snapshot and the clock offset measured with it: the server's time minus the midpoint of this
    /// browser's send and receive times (the request's round trip bounds the error).
    /// Every page of `GET /api/locks`. The first page's `last_event_id` and clock are kept: every later page is
    /// at least as new, so streaming from the first page's cursor misses nothing.
    pub async fn snapshot(&self) -> Result<(LockList, i64), UiError> {
        let sent = js_sys::Date::now();
        let mut list: LockList = self.call::<endpoints::ListLocks>(None, "", &NoBody).await?;
        let received = js_sys::Date::now();
        let midpoint = ((sent + received) / 2.0) as i64;
        let offset = list.server_time.timestamp_millis() - midpoint;
        while let Some(after) = list.next_after.take() {
            let page = self.call::<endpoints::ListLocks>(None, &format!("after={after}"), &NoBody).await?;
            list.items.extend(page.items);
            list.next_after = page.next_after;
        }
        Ok((list, offset))
    }

    /// Every page of `GET /api/ml/anomalies`, most unusual first.
    pub async fn anomalies(&self) -> Result<Vec<AnomalyView>, UiError> {
        let mut items = Vec::new();
        let mut query = String::new();
        loop {
            let page = self.call::<endpoints::Anomalies>(None, &query, &NoBody).await?;
            items.extend(page.items);
            match page.next_after {
                Some(after) => query = format!("after={after}"),
                None => break,
            }
        }
        items.sort_by(|a, b| b.anomaly_score.total_cmp(&a.anomaly_score));
        Ok(items)
    }
}

/// A response's body as text.
pub async fn text(resp: &Response) -> Result<String, UiError> {
    let failed = |e: JsValue| UiError::network(e.as_string().unwrap_or_else(|| format!("{e:?}")));
    let promise = resp.text().map_err(failed)?;
    Ok(JsFuture::from(promise).await.map_err(failed)?.as_string().unwrap_or_default())
}

/// The API's error from a failed response's body (or a description of what came instead).
pub fn error(status: u16, text: &str) -> UiError {
    // Read loosely: a code this build does not know yet is still shown as it came.
    let body: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    match (body["error"]["code"].as_str(), body["error"]["message"].as_str()) {
        (Some(code), Some(message)) => UiError { status, code: code.to_owned(), message: message.to_owned() },
        _ => UiError {
            status,
            code: format!("http_{status}"),
            message: format!("HHS answered {status} without an error body"),
        },
    }
}

/// The body on success; the API's error otherwise.
async fn read<T: DeserializeOwned>(resp: Response) -> Result<T, UiError> {
    let status = resp.status();
    let text = text(&resp).await?;
    if (200..300).contains(&status) {
        return serde_json::from_str(&text).map_err(|e| UiError {
            status,
            code: "bad_response".into(),
            message: format!("unexpected answer from HHS: {e}"),
        });
    }
    Err(error(status, &text))
}
