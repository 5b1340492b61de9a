//! The live dashboard at `/`: one page, its script and its styles, inside the binary (no CDN,
//! no build step, plain SVG charts). The page reads only public routes of this gateway:
//! `GET /api/v1/status` (the pipeline's parts and numbers), the analytics API (the latest
//! closed minute's top products, a product's last hour, and the live stream, read with
//! `fetch` so that a token can go with it) and the catalog (product names). Where those need a
//! token, the page signs in through `POST /api/v1/auth/token` and keeps the token for the tab.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

const INDEX: &str = include_str!("index.html");
const SCRIPT: &str = include_str!("app.js");
const STYLE: &str = include_str!("style.css");

/// Only this origin's own files and API; nothing inline, nothing framed.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(POLICY),
            ),
        ],
        body,
    )
        .into_response()
}

/// `/`, `/dashboard/app.js`, `/dashboard/style.css`.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/",
            get(|| async { asset(INDEX, "text/html; charset=utf-8") }),
        )
        .route(
            "/dashboard/app.js",
            get(|| async { asset(SCRIPT, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/dashboard/style.css",
            get(|| async { asset(STYLE, "text/css; charset=utf-8") }),
        )
}
