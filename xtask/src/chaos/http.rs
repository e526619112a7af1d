//! The harness's HTTP: blocking calls over loopback with short timeouts, each classified the way the checks
//! need — a definite answer (its status and body), or `Unknown` when the call may or may not have taken effect
//! (the connection failed, reset or timed out).

use std::time::Duration;

use serde_json::Value;

/// What came back from one call.
#[derive(Clone, Debug)]
pub enum Answer {
    Status(u16, Value),
    /// No answer: connection refused, reset or timed out (the replica died, the database hung).
    Unknown,
}

pub fn agent(timeout: Duration) -> ureq::Agent {
    ureq::AgentBuilder::new().timeout_connect(Duration::from_millis(500)).timeout(timeout).build()
}

/// Sends `body` (or none) with `key`; never panics, never retries.
pub fn call(agent: &ureq::Agent, method: &str, url: &str, key: &str, body: Option<&Value>) -> Answer {
    let req = agent.request(method, url).set("Authorization", &format!("Bearer {key}"));
    let result = match body {
        Some(b) => req.send_json(b.clone()),
        None => req.call(),
    };
    let resp = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(ureq::Error::Transport(_)) => return Answer::Unknown,
    };
    let status = resp.status();
    match resp.into_string() {
        Ok(text) => Answer::Status(status, serde_json::from_str(&text).unwrap_or(Value::String(text))),
        // The status line came, the body did not: the call's effect is as unknown as its answer.
        Err(_) => Answer::Unknown,
    }
}

/// Sends a text body of `content_type` (an HL7 v2 message); the answer's body as a JSON string.
pub fn call_text(agent: &ureq::Agent, url: &str, key: &str, content_type: &str, body: &str) -> Answer {
    let req = agent.post(url).set("Authorization", &format!("Bearer {key}")).set("Content-Type", content_type);
    let resp = match req.send_string(body) {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(ureq::Error::Transport(_)) => return Answer::Unknown,
    };
    let status = resp.status();
    match resp.into_string() {
        Ok(text) => Answer::Status(status, serde_json::from_str(&text).unwrap_or(Value::String(text))),
        Err(_) => Answer::Unknown,
    }
}
