//! The HHS dashboard: a live board of every hold, a resource's history, analytics, and the actions a key's role
//! allows. Yew (client-side rendering) compiled to WASM; `cargo xtask` builds it into `ui/dist`, which the edge
//! serves as static assets and the origin at `/dashboard/`.
//!
//! * [`state`] — the board as a `Reducible` store: snapshot + stream events + renewals fold into it.
//! * [`feed`], [`sse`] — the live feed: `GET /api/locks`, then `GET /api/events/stream` read with `fetch`.
//! * [`api`], [`session`] — calls with the signed-in key; the key lives in session storage.
//! * [`analytics`], [`history`], [`format`] — pure helpers for what the pages show; [`loaded`], a list read
//!   from a list endpoint and its four states.
//! * [`components`] — the views, one small component per file, named after what it shows.

pub mod analytics;
pub mod api;
pub mod components;
pub mod feed;
pub mod format;
pub mod history;
pub mod loaded;
pub mod session;
pub mod sse;
pub mod state;

/// Mounts the dashboard on the page's `<body>` when the wasm module loads.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen(start)]
pub fn start() {
    yew::Renderer::<components::app::App>::new().render();
}
