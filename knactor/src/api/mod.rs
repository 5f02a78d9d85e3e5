//! The HTTP API of a running app (DESIGN §10): JSON over HTTP under `/v1`, plus `/healthz` and
//! `/metrics`.
//!
//! - `GET /v1/stores`: the stores and their schemas.
//! - `GET /v1/stores/{knactor}/{store}/objects`: `{version, items}`; with `?watch=true` a stream
//!   of JSON lines `{"type": "Added"|"Modified"|"Deleted", "object": {...}}` (from `?version=N`,
//!   or the current objects as `Added` first). A watch that can no longer resume ends with
//!   `{"type": "Error", "reason": "Expired", ...}`: re-list.
//! - `GET|PUT|PATCH|DELETE /v1/stores/{knactor}/{store}/objects/{name}`: one object. `PUT`
//!   takes `{"data": {...}}` and creates or replaces; `PATCH` takes a JSON merge patch of the
//!   data. Writes are conditional with `If-Match: VERSION` (or `"version"` in a `PUT` body);
//!   `If-None-Match: *` makes a `PUT` create-only.
//! - `POST /v1/logs/{knactor}/{store}/records`: append JSON records (JSON lines, or one array),
//!   all or none; `GET` with `?from=N&follow=true` streams them as JSON lines.
//! - `POST /v1/query?format=json|csv|table`: SQL (the body) over the Log stores.
//! - `GET /v1/specs`: the running integrator specs; `POST /v1/specs?file=NAME` with a spec's
//!   YAML as body checks it and starts it, or swaps it for the running spec of its name.

mod error;
mod logs;
mod objects;
mod specs;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use data_exchange::{EmbeddedLog, LogExchange, ObjectExchange, StoreRef};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::specs::Specs;
pub use error::ApiError;

/// What the API handlers share.
#[derive(Clone)]
pub struct ApiState {
    exchange: Arc<dyn ObjectExchange>,
    log: Arc<dyn LogExchange>,
    stores: Arc<BTreeMap<StoreRef, serde_json::Value>>,
    metrics: Arc<Metrics>,
    specs: Arc<Specs>,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState").field("stores", &self.stores.len()).finish_non_exhaustive()
    }
}

impl ApiState {
    /// The state for serving `stores` (ref -> schema) of `exchange`.
    pub fn new(
        exchange: Arc<dyn ObjectExchange>,
        stores: BTreeMap<StoreRef, serde_json::Value>,
        metrics: Arc<Metrics>,
        specs: Arc<Specs>,
    ) -> Self {
        let stores = Arc::new(stores);
        let log = Arc::new(EmbeddedLog::in_memory());
        ApiState { exchange, log, stores, metrics, specs, shutdown: CancellationToken::new() }
    }

    /// Serves `log` as the app's Log exchange.
    pub fn with_log(mut self, log: Arc<dyn LogExchange>) -> Self {
        self.log = log;
        self
    }
}

/// The API's routes.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/v1/stores", get(objects::stores))
        .route("/v1/specs", get(specs::list).post(specs::apply))
        .route("/v1/logs/{knactor}/{store}/records", get(logs::tail).post(logs::append))
        .route("/v1/query", axum::routing::post(logs::query))
        .route("/v1/stores/{knactor}/{store}/objects", get(objects::list))
        .route(
            "/v1/stores/{knactor}/{store}/objects/{name}",
            get(objects::get).put(objects::put).patch(objects::patch).delete(objects::delete),
        )
        .layer(middleware::from_fn_with_state(state.clone(), count_requests))
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` is cancelled; open watches are then ended so
/// that the server stops promptly.
pub async fn serve(
    listener: TcpListener,
    mut state: ApiState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    state.shutdown = shutdown.clone();
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown.cancelled_owned()).await
}

async fn metrics(State(state): State<ApiState>) -> impl IntoResponse {
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    ([(axum::http::header::CONTENT_TYPE, content_type)], state.metrics.render())
}

async fn count_requests(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let method = request.method().to_string();
    let response = next.run(request).await;
    state.metrics.requested(&method, response.status().as_u16());
    response
}
