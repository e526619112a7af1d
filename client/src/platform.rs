//! What differs between a native client and one in a browser or a Worker (wasm32): sleeping and randomness.
//! Everything else — typed calls, retries, errors — is the same code on both.

use std::time::Duration;

#[cfg(not(target_arch = "wasm32"))]
pub async fn sleep(d: Duration) {
    tokio::time::sleep(d).await;
}

#[cfg(target_arch = "wasm32")]
pub async fn sleep(d: Duration) {
    gloo_timers::future::sleep(d).await;
}

/// A number in [0, 1): for jitter, not secrets.
#[cfg(not(target_arch = "wasm32"))]
pub fn unit_random() -> f64 {
    let mut b = [0u8; 4];
    let _ = getrandom::fill(&mut b);
    f64::from(u32::from_le_bytes(b)) / (f64::from(u32::MAX) + 1.0)
}

#[cfg(target_arch = "wasm32")]
pub fn unit_random() -> f64 {
    js_sys::Math::random()
}

/// A request id (a random UUID v4): one per call, kept across its retries.
#[cfg(not(target_arch = "wasm32"))]
pub fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(target_arch = "wasm32")]
pub fn request_id() -> String {
    // Unique, not unguessable, is all a request id needs: Math.random, shaped as a v4 UUID.
    let hex = |n: usize| {
        (0..n).map(|_| char::from_digit((unit_random() * 16.0) as u32, 16).unwrap_or('0')).collect::<String>()
    };
    format!("{}-{}-4{}-a{}-{}", hex(8), hex(4), hex(3), hex(3), hex(12))
}
