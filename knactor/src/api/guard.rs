//! What every request but `/healthz` passes before its handler runs (docs/security.md): a
//! `Host` the server answers to, no foreign `Origin`, a bearer token of one of the app's
//! principals, the rights for the operation, and the content type the API documents for its
//! body. A refusal answers a JSON error; a denied principal is also counted in /metrics and
//! leaves one line in the audit log (tracing target `knactor::audit`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{MatchedPath, RawPathParams, Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use data_exchange::{ExchangeError, StoreRef};
use tokio_rustls::rustls::ServerConfig;

use super::tokens::{Principal, Tokens};
use super::{ApiError, ApiState, routes};

/// Who may call the API, and under which names it is reached.
#[derive(Clone, Debug)]
pub struct Access {
    tokens: Tokens,
    listen: IpAddr,
    hosts: Vec<String>,
    tls: Option<Arc<ServerConfig>>,
}

impl Access {
    /// Callers authenticate with `tokens`, and name the server (`Host`) by a loopback name or
    /// address, or the address it listens on (`listen`; any address when that is
    /// unspecified, e.g. `0.0.0.0`).
    pub fn new(tokens: Tokens, listen: SocketAddr) -> Self {
        Access { tokens, listen: listen.ip(), hosts: Vec::new(), tls: None }
    }

    /// Also answers to the host names `hosts` (e.g. the name of the machine).
    pub fn allow_hosts(mut self, hosts: impl IntoIterator<Item = String>) -> Self {
        self.hosts.extend(hosts.into_iter().map(|h| h.to_ascii_lowercase()));
        self
    }

    /// Serves over TLS with `config` (see [`server_config`](super::tls::server_config)).
    pub fn with_tls(mut self, config: Arc<ServerConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// The TLS configuration it serves with, if any.
    pub(super) fn tls(&self) -> Option<&Arc<ServerConfig>> {
        self.tls.as_ref()
    }

    /// `https` over TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    fn host_allowed(&self, host: &str) -> bool {
        let name = host_name(host).to_ascii_lowercase();
        if name == "localhost" || self.hosts.contains(&name) {
            return true;
        }
        let ip = match name.strip_prefix('[') {
            Some(v6) => {
                v6.strip_suffix(']').and_then(|ip| ip.parse::<Ipv6Addr>().ok()).map(IpAddr::V6)
            }
            None => name.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
        };
        ip.is_some_and(|ip| ip.is_loopback() || ip == self.listen || self.listen.is_unspecified())
    }
}

/// `HOST[:PORT]` without the port.
fn host_name(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_once(']').map_or(host, |(name, _)| &host[..=name.len()]);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// What a request does, for rights, messages, metrics and the audit log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Version,
    /// The API's OpenAPI document.
    Describe,
    ListStores,
    ListSpecs,
    Metrics,
    ApplySpec,
    DeleteSpec,
    DiffSpec,
    PromoteSpec,
    Tap,
    ApplyKnactor,
    Query,
    Get,
    /// Field provenance (`knactor why`).
    Why,
    List,
    Watch,
    Put,
    Patch,
    Delete,
    Append,
    Tail,
    /// A method the route does not serve: only the operator gets as far as its 405.
    Other,
}

impl Action {
    fn of(method: &Method, route: &str, query: Option<&str>) -> Action {
        let watch = query.is_some_and(|q| q.split('&').any(|p| p == "watch=true"));
        let method = if method == Method::HEAD { &Method::GET } else { method };
        match (method.as_str(), route) {
            ("GET", routes::METRICS) => Action::Metrics,
            ("GET", routes::VERSION) => Action::Version,
            ("GET", routes::OPENAPI) => Action::Describe,
            ("GET", routes::STORES) => Action::ListStores,
            ("GET", routes::SPECS | routes::GRAPH) => Action::ListSpecs,
            ("POST", routes::SPECS) => Action::ApplySpec,
            ("DELETE", routes::SPEC | routes::SHADOW) => Action::DeleteSpec,
            ("GET", routes::SHADOW) => Action::DiffSpec,
            ("POST", routes::PROMOTE) => Action::PromoteSpec,
            ("GET", routes::TAP_EDGE | routes::TAP_FLOW) => Action::Tap,
            ("POST", routes::KNACTORS) => Action::ApplyKnactor,
            ("POST", routes::QUERY) => Action::Query,
            ("GET", routes::RECORDS) => Action::Tail,
            ("POST", routes::RECORDS) => Action::Append,
            ("GET", routes::OBJECTS) if watch => Action::Watch,
            ("GET", routes::OBJECTS) => Action::List,
            ("GET", routes::OBJECT) => Action::Get,
            ("GET", routes::WHY) => Action::Why,
            ("PUT", routes::OBJECT) => Action::Put,
            ("PATCH", routes::OBJECT) => Action::Patch,
            ("DELETE", routes::OBJECT) => Action::Delete,
            _ => Action::Other,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Action::Version => "version",
            Action::Describe => "describe",
            Action::ListStores => "list-stores",
            Action::ListSpecs => "list-specs",
            Action::Metrics => "metrics",
            Action::ApplySpec => "apply-spec",
            Action::DeleteSpec => "delete-spec",
            Action::DiffSpec => "diff-spec",
            Action::PromoteSpec => "promote-spec",
            Action::Tap => "tap",
            Action::ApplyKnactor => "apply-knactor",
            Action::Query => "query",
            Action::Get => "get",
            Action::Why => "why",
            Action::List => "list",
            Action::Watch => "watch",
            Action::Put => "put",
            Action::Patch => "patch",
            Action::Delete => "delete",
            Action::Append => "append",
            Action::Tail => "tail",
            Action::Other => "other",
        }
    }

    /// Whether it reads or writes the objects or records of one store.
    fn on_store(self) -> bool {
        use Action as A;
        matches!(
            self,
            A::Get
                | A::Why
                | A::List
                | A::Watch
                | A::Put
                | A::Patch
                | A::Delete
                | A::Append
                | A::Tail
        )
    }

    /// Whether it takes query parameters (each route that does refuses those it does not know).
    fn takes_query(self) -> bool {
        use Action as A;
        matches!(self, A::List | A::Watch | A::Tail | A::Query | A::ApplySpec | A::Why)
    }

    /// The media types its body may have (none: it takes no body).
    fn body_types(self) -> &'static [&'static str] {
        match self {
            Action::Put => &["application/json"],
            Action::Patch => &["application/merge-patch+json", "application/json"],
            Action::Append => &["application/x-ndjson", "application/jsonl", "application/json"],
            Action::Query => &["application/sql"],
            Action::ApplySpec => &["application/yaml", "application/x-yaml", "application/json"],
            Action::ApplyKnactor => &["application/json"],
            _ => &[],
        }
    }
}

/// Whether `principal` may do `action` at all.
fn may(principal: &Principal, action: Action) -> bool {
    match principal {
        Principal::Operator => true,
        _ if matches!(action, Action::Version | Action::Describe) => true,
        Principal::Viewer => {
            matches!(action, Action::ListStores | Action::ListSpecs | Action::Metrics)
        }
        // Their operations on stores go through handles held to their rights (a knactor's own
        // stores and what policies grant it; a spec's running version's), which decide per
        // store and field: the handler refuses the rest, as 403 too. The store list is cut
        // down to the stores they reach.
        Principal::Knactor(_) | Principal::Integrator(_) => {
            action == Action::ListStores || action.on_store()
        }
    }
}

/// The middleware: refuses what it must, or runs the handler with the [`Principal`] in the
/// request's extensions.
pub(super) async fn guard(
    State(state): State<ApiState>,
    route: MatchedPath,
    params: RawPathParams,
    mut request: Request,
    next: Next,
) -> Response {
    let access = &state.access;
    let headers = request.headers();
    let action = Action::of(request.method(), route.as_str(), request.uri().query());
    let param = |key: &str| params.iter().find(|(k, _)| *k == key).map(|(_, v)| v.to_owned());
    let knactor = param("knactor");
    let store = knactor.as_ref().zip(param("store")).map(|(k, s)| format!("{k}/{s}"));
    // HTTP/1.1 names the host in a header, HTTP/2 in the request's authority.
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let Some(host) = host.or_else(|| request.uri().authority().map(|a| a.as_str())) else {
        let error = ApiError::bad_host("the request names no host");
        return refuse(&state, "anonymous", action, store, error);
    };
    if !access.host_allowed(host) {
        let message = format!(
            "this server does not answer to the host `{host}` (start it with --allowed-host NAME to add a name)"
        );
        return refuse(&state, "anonymous", action, store, ApiError::bad_host(message));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let own = format!("{}://{host}", access.scheme());
        if !origin.to_str().is_ok_and(|o| o.eq_ignore_ascii_case(&own)) {
            let origin = String::from_utf8_lossy(origin.as_bytes());
            let message = format!("cross-origin request from `{origin}` refused");
            return refuse(&state, "anonymous", action, store, ApiError::cross_origin(message));
        }
    }
    let principal = match bearer(headers) {
        None => {
            let message =
                "this request needs a token: `Authorization: Bearer TOKEN` (see docs/security.md)";
            return refuse(&state, "anonymous", action, store, ApiError::unauthorized(message));
        }
        Some(token) => match access.tokens.principal(token) {
            Some(principal) => principal.clone(),
            None => {
                let message = "the bearer token is not one of this app's";
                let error = ApiError::unauthorized(message);
                return refuse(&state, "anonymous", action, store, error);
            }
        },
    };
    if !may(&principal, action) {
        let error = ApiError::forbidden(&principal, action.name(), store.as_deref());
        return refuse(&state, &principal.to_string(), action, store, error);
    }
    if !action.takes_query() && request.uri().query().is_some_and(|q| !q.is_empty()) {
        let message = format!("{} takes no query parameters", action.name());
        return ApiError::bad_request(message).into_response();
    }
    let types = action.body_types();
    if !types.is_empty() {
        let given = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        let essence = given.map(|t| t.split(';').next().unwrap_or_default().trim());
        if !essence.is_some_and(|e| types.iter().any(|t| t.eq_ignore_ascii_case(e))) {
            let given = given.map_or("no Content-Type".to_owned(), |t| format!("`{t}`"));
            let message = format!(
                "{} takes a body of type {}, not {given}",
                action.name(),
                types.join(" or ")
            );
            return ApiError::unsupported_media_type(message).into_response();
        }
    }
    let name = principal.to_string();
    request.extensions_mut().insert(principal);
    let response = next.run(request).await;
    if response.status() == axum::http::StatusCode::FORBIDDEN {
        // Let through here, refused by the exchange (an integrator's store or field rights).
        record_denial(&state, &name, action.name(), store, 403);
    }
    response
}

/// The token of `Authorization: Bearer TOKEN`.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// What records a denial met in the middle of a stream (a watch or a tail whose rights a
/// re-apply took away), which the answer's status, sent before it, cannot show: counted, and
/// one audit line, like a refused request.
pub(super) fn stream_denials(
    state: &ApiState,
    principal: &Principal,
    operation: &'static str,
    store: &StoreRef,
) -> impl Fn(&ExchangeError) + Send + Sync + 'static {
    let (state, principal, store) = (state.clone(), principal.to_string(), store.to_string());
    move |error| {
        if matches!(error, ExchangeError::Denied(_)) {
            record_denial(&state, &principal, operation, Some(store.clone()), 403);
        }
    }
}

/// Answers `error` to a request `principal` may not make (or to one from a foreign host or
/// origin, before any principal is known: `anonymous`): counted, and one audit line.
fn refuse(
    state: &ApiState,
    principal: &str,
    action: Action,
    store: Option<String>,
    error: ApiError,
) -> Response {
    record_denial(state, principal, action.name(), store, error.status().as_u16());
    let unauthorized = error.status() == axum::http::StatusCode::UNAUTHORIZED;
    let mut response = error.into_response();
    if unauthorized {
        let challenge = axum::http::HeaderValue::from_static("Bearer realm=\"knactor\"");
        response.headers_mut().insert(header::WWW_AUTHENTICATE, challenge);
    }
    response
}

/// Counts a refusal of `operation` to `principal` in /metrics and leaves its audit line.
fn record_denial(
    state: &ApiState,
    principal: &str,
    operation: &str,
    store: Option<String>,
    status: u16,
) {
    state.metrics.denied(principal, operation);
    let store = store.unwrap_or_default();
    tracing::warn!(target: "knactor::audit", principal, operation, store, status, "denied");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(listen: &str) -> Access {
        let tokens = Tokens::ephemeral([Principal::Knactor("a".into())]).unwrap();
        Access::new(tokens, listen.parse().unwrap()).allow_hosts(["Knactor.Example".to_owned()])
    }

    #[test]
    fn hosts_are_loopback_the_listen_address_or_allowed_names() {
        let local = access("127.0.0.1:7700");
        for host in
            ["localhost:7700", "127.0.0.1:7700", "[::1]:7700", "localhost", "knactor.example:1"]
        {
            assert!(local.host_allowed(host), "{host}");
        }
        for host in ["evil.example:7700", "10.0.0.1:7700", "localhost.evil.example", "[::1"] {
            assert!(!local.host_allowed(host), "{host}");
        }
        let anywhere = access("0.0.0.0:7700");
        assert!(anywhere.host_allowed("10.0.0.1:7700"));
        assert!(!anywhere.host_allowed("evil.example:7700"));
        let one = access("10.0.0.1:7700");
        assert!(one.host_allowed("10.0.0.1:7700"));
        assert!(!one.host_allowed("10.0.0.2:7700"));
    }

    #[test]
    fn rights_follow_the_principal() {
        let a = Principal::Knactor("a".into());
        assert!(may(&a, Action::Put), "its handle decides per store");
        assert!(!may(&a, Action::Query));
        assert!(!may(&a, Action::ApplySpec));
        assert!(may(&Principal::Viewer, Action::ListStores));
        assert!(!may(&Principal::Viewer, Action::Get));
        assert!(!may(&Principal::Viewer, Action::Tail));
        assert!(!may(&Principal::Viewer, Action::Other));
        assert!(may(&Principal::Operator, Action::ApplySpec));
        assert!(may(&Principal::Operator, Action::ApplyKnactor));
        for principal in [&a, &Principal::Viewer, &Principal::Integrator("i".into())] {
            assert!(!may(principal, Action::ApplyKnactor), "{principal}");
        }
        let integrator = Principal::Integrator("c".into());
        assert!(may(&integrator, Action::Patch), "its handle decides");
        assert!(may(&integrator, Action::Append), "a Sync spec's handle decides");
        assert!(!may(&integrator, Action::Query));
    }
}
