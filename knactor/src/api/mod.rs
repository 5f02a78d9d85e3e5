//! The HTTP API of a running app (DESIGN §10): JSON over HTTP under `/v1`, plus `/healthz` (503
//! when the exchange does not answer) and `/metrics`.
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
//! - `GET /v1/version`: the server's version; `GET /v1/openapi.json`: the API's OpenAPI
//!   document.
//! - `GET /v1/graph`: what the running specs' edges and flows move between stores.
//! - `GET /v1/specs`: the running integrator specs; `POST /v1/specs?file=NAME` with a spec's
//!   YAML as body checks it and starts it, or swaps it for the running spec of its name
//!   (`&shadow=true`: runs it as a shadow beside it); `DELETE /v1/specs/{name}` stops it.
//! - `GET /v1/specs/{name}/shadow`: where the shadow wrote otherwise than the live spec;
//!   `DELETE` stops the shadow; `POST /v1/specs/{name}/promote` makes it the live version.
//! - `GET /v1/specs/{name}/edges/{edge}/tap` (`flows/{flow}/tap`): what passes through an
//!   edge (a flow), as JSON lines.
//! - `POST /v1/knactors`: applies a knactor's manifest to the running app, with the specs
//!   that fit it (`{"manifest": {"file", "text"}, "specs": [{"file", "text"}]}`).
//!
//! - `/ui`: the web console's page, script and style (see [`console`]).
//!
//! Every request but `/healthz` and the console's files passes the [`guard`](Access) first: a known `Host`, no foreign
//! `Origin`, a bearer token of one of the app's [`Principal`]s ([`Tokens`]) with the right for
//! the operation, and a body of the documented content type.

mod console;
mod error;
mod guard;
mod knactors;
mod logs;
mod objects;
mod specs;
mod tls;
mod tokens;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use data_exchange::access::{Rights, ScopedExchange};
use data_exchange::log::ScopedLog;
use data_exchange::{EmbeddedLog, LogExchange, ObjectExchange, StoreRef};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::knactors::{Knactors, StoreSchemaMap};
use crate::metrics::Metrics;
use crate::specs::Specs;
pub use error::ApiError;
pub use guard::Access;
pub use tls::{TlsError, server_config};
pub use tokens::{Principal, TokenError, Tokens};

/// The routes the guard tells apart.
mod routes {
    pub(super) const METRICS: &str = "/metrics";
    pub(super) const VERSION: &str = "/v1/version";
    pub(super) const OPENAPI: &str = "/v1/openapi.json";
    pub(super) const STORES: &str = "/v1/stores";
    pub(super) const SPECS: &str = "/v1/specs";
    pub(super) const GRAPH: &str = "/v1/graph";
    pub(super) const SPEC: &str = "/v1/specs/{name}";
    pub(super) const SHADOW: &str = "/v1/specs/{name}/shadow";
    pub(super) const PROMOTE: &str = "/v1/specs/{name}/promote";
    pub(super) const TAP_EDGE: &str = "/v1/specs/{name}/edges/{edge}/tap";
    pub(super) const TAP_FLOW: &str = "/v1/specs/{name}/flows/{flow}/tap";
    pub(super) const KNACTORS: &str = "/v1/knactors";
    pub(super) const QUERY: &str = "/v1/query";
    pub(super) const RECORDS: &str = "/v1/logs/{knactor}/{store}/records";
    pub(super) const OBJECTS: &str = "/v1/stores/{knactor}/{store}/objects";
    pub(super) const OBJECT: &str = "/v1/stores/{knactor}/{store}/objects/{name}";
    pub(super) const WHY: &str = "/v1/stores/{knactor}/{store}/objects/{name}/why";
}

/// What the API handlers share.
#[derive(Clone)]
pub struct ApiState {
    exchange: Arc<dyn ObjectExchange>,
    log: Arc<dyn LogExchange>,
    stores: StoreSchemaMap,
    /// The Log stores and their schemas.
    log_stores: StoreSchemaMap,
    metrics: Arc<Metrics>,
    specs: Arc<Specs>,
    access: Arc<Access>,
    shutdown: CancellationToken,
    /// The knactors the process runs: their rights, and to apply their manifests.
    running: Option<Arc<Knactors>>,
    /// The runtime the app's reconcilers and integrators run on (the API may serve on
    /// another, see [`serve_apart`]): what starts or stops them runs there.
    app: tokio::runtime::Handle,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState").finish_non_exhaustive()
    }
}

impl ApiState {
    /// The state for serving `stores` (ref -> schema) of `exchange` to the callers `access`
    /// lets in.
    ///
    /// # Panics
    /// Outside a Tokio runtime: it is made on the app's.
    pub fn new(
        exchange: Arc<dyn ObjectExchange>,
        stores: StoreSchemaMap,
        metrics: Arc<Metrics>,
        specs: Arc<Specs>,
        access: Access,
    ) -> Self {
        let log = Arc::new(EmbeddedLog::in_memory());
        let access = Arc::new(access);
        let shutdown = CancellationToken::new();
        let (running, log_stores) = (None, Arc::default());
        let app = tokio::runtime::Handle::current();
        ApiState {
            exchange,
            log,
            stores,
            log_stores,
            metrics,
            specs,
            access,
            shutdown,
            running,
            app,
        }
    }

    /// Runs `work`, which starts or stops reconcilers or integrators, on the app's runtime, in
    /// a task of its own: they run there, and a client gone mid-way does not leave it half
    /// done.
    async fn on_app<T: Send + 'static>(
        &self,
        work: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, ApiError> {
        let done = self.app.spawn(work).await;
        done.map_err(|e| ApiError::unavailable(format!("the change stopped: {e}")))
    }

    /// Applies knactors' manifests to `knactors` (`POST /v1/knactors`).
    pub fn with_knactors(mut self, knactors: Arc<Knactors>) -> Self {
        self.running = Some(knactors);
        self
    }

    /// The rights of `principal`'s token on stores: `None` for the operator and the viewer,
    /// whose rights are not per store (the guard decides for them); none for an integrator
    /// whose spec does not run here.
    fn rights_of(&self, principal: &Principal) -> Option<Arc<Rights>> {
        let none = || Arc::new(Rights::new(principal.to_string()));
        match principal {
            Principal::Knactor(name) => {
                Some(self.running.as_ref().and_then(|k| k.rights(name)).unwrap_or_else(none))
            }
            Principal::Integrator(spec) => Some(self.specs.rights(spec).unwrap_or_else(none)),
            Principal::Operator | Principal::Viewer => None,
        }
    }

    /// The rights `principal` does `operation` on `store` with, when they are per store: those
    /// of a knactor, or of an integrator's running spec (refused when it runs elsewhere).
    fn store_rights(
        &self,
        principal: &Principal,
        (operation, store): (&'static str, &StoreRef),
    ) -> Result<Option<Rights>, ApiError> {
        let rights = match principal {
            Principal::Integrator(spec) => match self.specs.rights(spec) {
                Some(rights) => Some(rights),
                None => return Err(ApiError::not_running(principal, operation, store)),
            },
            _ => self.rights_of(principal),
        };
        Ok(rights.map(|rights| (*rights).clone()))
    }

    /// Refuses a route of one kind of store for a store of the other, saying which it is and
    /// how to read it, to a principal that may see the store (others learn only that it is
    /// unknown, from the exchange).
    fn of_kind(
        &self,
        principal: &Principal,
        store: &StoreRef,
        route: StoreKind,
    ) -> Result<(), ApiError> {
        let objects = self.stores.read().unwrap_or_else(|e| e.into_inner()).contains_key(store);
        let logs = self.log_stores.read().unwrap_or_else(|e| e.into_inner()).contains_key(store);
        let sees = self.rights_of(principal).is_none_or(|r| r.on(store).is_some());
        let message = match (route, objects, logs) {
            (StoreKind::Object, false, true) => format!(
                "`{store}` is a Log store, not an Object store: read it with `knactor log tail {store}` (GET /v1/logs/{store}/records)"
            ),
            (StoreKind::Log, true, false) => format!(
                "`{store}` is an Object store, not a Log store: read it with `knactor get {store}` (GET /v1/stores/{store}/objects)"
            ),
            _ => return Ok(()),
        };
        if sees { Err(ApiError::other_kind(message)) } else { Ok(()) }
    }

    /// The Object exchange `principal` acts through: a Cast spec's own handle; one held to
    /// their rights for a knactor and a Sync spec; the app's for the operator.
    fn exchange_for(
        &self,
        principal: &Principal,
        target: (&'static str, &StoreRef),
    ) -> Result<Arc<dyn ObjectExchange>, ApiError> {
        self.of_kind(principal, target.1, StoreKind::Object)?;
        if let Principal::Integrator(spec) = principal
            && let Some(handle) = self.specs.handle(spec)
        {
            return Ok(handle);
        }
        Ok(match self.store_rights(principal, target)? {
            Some(rights) => Arc::new(ScopedExchange::new(self.exchange.clone(), rights)),
            None => self.exchange.clone(),
        })
    }

    /// The Log exchange `principal` acts through: a Sync spec's own handle; one held to their
    /// rights for a knactor and a Cast spec; the app's for the operator.
    fn log_for(
        &self,
        principal: &Principal,
        target: (&'static str, &StoreRef),
    ) -> Result<Arc<dyn LogExchange>, ApiError> {
        self.of_kind(principal, target.1, StoreKind::Log)?;
        if let Principal::Integrator(spec) = principal
            && let Some(handle) = self.specs.log_handle(spec)
        {
            return Ok(handle);
        }
        Ok(match self.store_rights(principal, target)? {
            Some(rights) => Arc::new(ScopedLog::new(self.log.clone(), rights)),
            None => self.log.clone(),
        })
    }

    /// Serves `log` as the app's Log exchange, whose stores are `stores`.
    pub fn with_log(mut self, log: Arc<dyn LogExchange>, stores: StoreSchemaMap) -> Self {
        self.log = log;
        self.log_stores = stores;
        self
    }
}

/// The kinds of stores the routes serve.
#[derive(Clone, Copy)]
enum StoreKind {
    Object,
    Log,
}

/// The API's OpenAPI document ([`openapi.yaml`](openapi.yaml)), as JSON.
static OPENAPI: std::sync::LazyLock<serde_json::Value> = std::sync::LazyLock::new(|| {
    let mut document: serde_json::Value =
        serde_yaml::from_str(include_str!("openapi.yaml")).expect("openapi.yaml is valid YAML");
    document["info"]["version"] = env!("CARGO_PKG_VERSION").into();
    document
});

/// `GET /v1/openapi.json`: the API's OpenAPI document (any principal).
async fn openapi() -> axum::Json<&'static serde_json::Value> {
    axum::Json(&OPENAPI)
}

/// How long `/healthz` waits for the exchange before saying it is unreachable.
const HEALTH_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

/// `GET /healthz`: `ok` when the exchange answers (it reads a store's version), else 503
/// `Unavailable` (why goes to the log).
async fn healthz(State(state): State<ApiState>) -> Response {
    let store = state.stores.read().unwrap_or_else(|e| e.into_inner()).keys().next().cloned();
    let Some(store) = store else { return "ok\n".into_response() };
    let answer = tokio::time::timeout(HEALTH_PATIENCE, state.exchange.version(&store)).await;
    let failure = match answer {
        Ok(Ok(_)) => return "ok\n".into_response(),
        Ok(Err(error)) => error.to_string(),
        Err(_) => format!("no answer within {HEALTH_PATIENCE:?}"),
    };
    // The detail goes to the log: `/healthz` answers anyone.
    tracing::warn!(error = failure, "health check: the exchange does not answer");
    ApiError::unavailable("the exchange does not answer").into_response()
}

/// `GET /v1/version`: the server's version.
async fn version() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "version": env!("CARGO_PKG_VERSION") }))
}

/// The API's routes: `/healthz` for anyone, the others behind the guard.
pub fn router(state: ApiState) -> Router {
    let guarded = Router::new()
        .route(routes::METRICS, get(metrics))
        .route(routes::VERSION, get(version))
        .route(routes::OPENAPI, get(openapi))
        .route(routes::STORES, get(objects::stores))
        .route(routes::SPECS, get(specs::list).post(specs::apply))
        .route(routes::GRAPH, get(specs::graph))
        .route(routes::SPEC, axum::routing::delete(specs::delete))
        .route(routes::SHADOW, get(specs::diff).delete(specs::delete_shadow))
        .route(routes::PROMOTE, axum::routing::post(specs::promote))
        .route(routes::TAP_EDGE, get(specs::tap_edge))
        .route(routes::TAP_FLOW, get(specs::tap_flow))
        .route(routes::KNACTORS, axum::routing::post(knactors::apply))
        .route(routes::RECORDS, get(logs::tail).post(logs::append))
        .route(routes::QUERY, axum::routing::post(logs::query))
        .route(routes::OBJECTS, get(objects::list))
        .route(
            routes::OBJECT,
            get(objects::get).put(objects::put).patch(objects::patch).delete(objects::delete),
        )
        .route(routes::WHY, get(objects::why))
        // Inside the guard: only the requests it lets through are traced.
        .route_layer(middleware::from_fn(trace_writes))
        .route_layer(middleware::from_fn_with_state(state.clone(), guard::guard));
    Router::new()
        .route("/healthz", get(healthz))
        .merge(console::routes())
        .merge(guarded)
        .layer(axum::extract::DefaultBodyLimit::max(error::MAX_BODY_BYTES))
        .layer(middleware::from_fn(error::refuse_large_bodies))
        .layer(middleware::from_fn(error::json_errors))
        .layer(middleware::from_fn_with_state(state.clone(), count_requests))
        .with_state(state)
}

/// [`serve`] on a runtime of its own, with two worker threads (`knactor-api`), so that the
/// app's work, an integrator evaluating or a reconciler, does not keep the API from answering
/// (what needs a Redis exchange still waits for the app's runtime, which drives its
/// connections); returns when it stops serving.
pub async fn serve_apart(
    listener: TcpListener,
    state: ApiState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let listener = listener.into_std()?;
    let (served, serving) = tokio::sync::oneshot::channel();
    std::thread::Builder::new().name("knactor-api".into()).spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("knactor-api")
            .enable_all()
            .build();
        let outcome = runtime.and_then(|runtime| {
            runtime
                .block_on(async { serve(TcpListener::from_std(listener)?, state, shutdown).await })
        });
        let _ = served.send(outcome);
    })?;
    serving.await.unwrap_or_else(|_| Err(std::io::Error::other("the API's thread ended")))
}

/// Serves the API on `listener` (over TLS when the state's [`Access`] has a certificate) until
/// `shutdown` is cancelled; open watches are then ended so that the server stops promptly.
pub async fn serve(
    listener: TcpListener,
    mut state: ApiState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    state.shutdown = shutdown.clone();
    let tls = state.access.tls().cloned();
    let app = router(state);
    let stopped = shutdown.cancelled_owned();
    match tls {
        Some(config) => {
            let listener = tls::TlsListener::new(listener, config);
            axum::serve(listener, app).with_graceful_shutdown(stopped).await
        }
        None => axum::serve(listener, app).with_graceful_shutdown(stopped).await,
    }
}

async fn metrics(State(state): State<ApiState>) -> impl IntoResponse {
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    match state.specs.lags().await {
        Ok(Some(lags)) => state.metrics.set_lags(lags),
        // Specs being applied: the lag shown is the last known.
        Ok(None) => {}
        Err(error) => tracing::warn!(%error, "cannot read the stores' versions for the specs' lag"),
    }
    if let Some(pending) = state.specs.pending() {
        state.metrics.set_pending(pending);
    }
    if let Some(knactors) = &state.running {
        let (counts, failed) = knactors.count_kept(&*state.exchange).await;
        state.metrics.set_objects(counts);
        if let Some(error) = failed {
            tracing::warn!(%error, "cannot count the objects of some stores");
        }
    }
    ([(axum::http::header::CONTENT_TYPE, content_type)], state.metrics.render())
}

/// Runs each request that may write (not `GET` or `HEAD`) in a span of its own, a child of the
/// request's `traceparent` header when it has a valid one: the changes it makes carry it (see
/// [`data_exchange::trace`]). While tracing is off here, they carry the header's context on.
async fn trace_writes(request: Request, next: Next) -> Response {
    use data_exchange::trace::{self, ChangeSpan, KeyValue, SpanKind, TraceParent};
    let method = request.method();
    if method == axum::http::Method::GET || method == axum::http::Method::HEAD {
        return next.run(request).await;
    }
    let header = request.headers().get("traceparent").and_then(|h| h.to_str().ok());
    let parent = header.and_then(TraceParent::parse);
    let mut span = ChangeSpan::start(SpanKind::Server, parent, || {
        let route = request.extensions().get::<axum::extract::MatchedPath>();
        let route = route.map_or(request.uri().path(), |r| r.as_str());
        let attributes = vec![
            KeyValue::new("http.request.method", method.to_string()),
            KeyValue::new("http.route", route.to_owned()),
            KeyValue::new("url.path", request.uri().path().to_owned()),
        ];
        (format!("{method} {route}"), attributes)
    });
    let context = trace::carried(span.as_ref(), parent);
    let response = trace::within(context, next.run(request)).await;
    if let Some(span) = &mut span {
        let status = response.status();
        span.set("http.response.status_code", i64::from(status.as_u16()));
        if status.is_server_error() {
            span.fail(&status);
        }
    }
    response
}

async fn count_requests(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let method = request.method().to_string();
    let response = next.run(request).await;
    state.metrics.requested(&method, response.status().as_u16());
    response
}
