//! The web console at `/ui` (docs/observability.md#web-console): a page and its script and
//! style, built into the binary. They hold no data: the page asks for a token and reads the
//! API with it, so what it shows is what the API lets that token read.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

/// The console's files, and their media types.
const INDEX: (&str, &str) = (include_str!("console/index.html"), "text/html; charset=utf-8");
const SCRIPT: (&str, &str) = (include_str!("console/console.js"), "text/javascript; charset=utf-8");
const STYLE: (&str, &str) = (include_str!("console/console.css"), "text/css; charset=utf-8");
const ICON: (&str, &str) = (include_str!("console/icon.svg"), "image/svg+xml");

/// What the page may load and reach: its own files and this server's API, nothing inline,
/// nothing framed.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The routes of the console; they need no token (the API calls the page makes do).
pub(super) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/ui", get(|| async { file(INDEX) }))
        .route("/ui/", get(|| async { file(INDEX) }))
        .route("/ui/console.js", get(|| async { file(SCRIPT) }))
        .route("/ui/console.css", get(|| async { file(STYLE) }))
        .route("/ui/icon.svg", get(|| async { file(ICON) }))
}

fn file((body, media_type): (&'static str, &'static str)) -> impl IntoResponse {
    let headers = [
        (header::CONTENT_TYPE, media_type),
        (header::CONTENT_SECURITY_POLICY, POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-cache"),
    ];
    (headers, body)
}
