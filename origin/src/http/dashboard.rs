//! The dashboard (`ui/dist`, built by `cargo xtask`) at `/dashboard/`, so the one-process mode has one too. Its
//! API base is the page's own origin, so the same build works here and behind the edge.

use std::path::Path;

use axum::response::Redirect;
use axum::routing::get;
use axum::Router;
use http::header::CACHE_CONTROL;
use http::HeaderValue;
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;

use super::AppState;

/// Routes for the dashboard when `dir` holds a build; none otherwise (`/dashboard/` is then a JSON 404).
pub fn router(dir: Option<&Path>) -> Router<AppState> {
    let Some(dir) = dir else { return Router::new() };
    let files = ServeDir::new(dir).append_index_html_on_directories(true);
    Router::new()
        .route("/dashboard", get(|| async { Redirect::permanent("/dashboard/") }))
        .nest_service("/dashboard/", files)
        // File names are not content-hashed: revalidate every time (ETag/Last-Modified make that cheap), so a
        // new build is never mixed with a cached old one.
        .layer(SetResponseHeaderLayer::overriding(CACHE_CONTROL, HeaderValue::from_static("no-cache")))
}
