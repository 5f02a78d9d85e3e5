//! A client of the HTTP API, used by the CLI and by out-of-process tools.

use std::pin::Pin;

use data_exchange::StoreRef;
use futures::{Stream, StreamExt};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::Value;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server could not be reached or the connection broke.
    #[error("cannot reach {server}: {}", explained(.cause))]
    Unreachable {
        /// The server's URL.
        server: String,
        /// The transport error (its innermost cause is what the message shows).
        cause: reqwest::Error,
    },
    /// The server refused the request.
    #[error("{message}")]
    Api {
        /// The HTTP status.
        status: StatusCode,
        /// The error's kind (`NotFound`, `Conflict`, `Invalid`, ...).
        reason: String,
        /// What went wrong.
        message: String,
    },
    /// The reply was not what the API sends.
    #[error("unexpected reply from {server}: {message}")]
    Decode {
        /// The server's URL.
        server: String,
        /// What was wrong with it.
        message: String,
    },
    /// The store ref is malformed.
    #[error(transparent)]
    Store(#[from] data_exchange::store::InvalidStoreRef),
    /// An object name the server refuses, refused here: some (`..`) would not reach it as a
    /// name at all.
    #[error(transparent)]
    Name(data_exchange::ExchangeError),
}

/// The innermost cause of `error` (e.g. `Connection refused (os error 111)`), which says
/// what went wrong without the layers that each repeat the URL.
fn innermost(error: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = error;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    cause.to_string()
}

/// What went wrong reaching a server, with what to check: the certificate when TLS failed,
/// else whether the server runs there.
fn explained(error: &reqwest::Error) -> String {
    let cause = innermost(error);
    let lower = cause.to_lowercase();
    let hint = if lower.contains("certificate") || lower.contains("tls") {
        "does the client trust its certificate? (--ca-cert or KNACTOR_CA_CERT)"
    } else {
        "is `knactor up` running there? (set the server with --server or KNACTOR_SERVER)"
    };
    format!("{cause}; {hint}")
}

/// An HTTP client from `builder`, HTTPS through rustls with the ring provider (the one the
/// server and the Kubernetes client use too). Build every reqwest client of the process this
/// way: reqwest is built without a provider of its own, so `reqwest::Client::new()` panics.
pub fn http_client(builder: reqwest::ClientBuilder) -> reqwest::Result<reqwest::Client> {
    // Installed once per process; a later call finds it there.
    let _ = rustls::crypto::ring::default_provider().install_default();
    builder.tls_backend_rustls().build()
}

/// A stream of JSON lines: watch events (`{"type": ..., "object": ...}`) or log records.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<Value, ClientError>> + Send>>;

/// Talks to `knactor up`'s API.
#[derive(Clone)]
pub struct Client {
    server: String,
    http: reqwest::Client,
    /// The bearer token sent with every request.
    token: Option<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token itself.
        let token = self.token.as_ref().map(|_| "<redacted>");
        f.debug_struct("Client").field("server", &self.server).field("token", &token).finish()
    }
}

impl Client {
    /// A client of the server at `server` (e.g. `http://127.0.0.1:7700`) that sends no token
    /// (see [`with_token`](Self::with_token)).
    pub fn new(server: &str) -> Self {
        let server = server.trim_end_matches('/').to_owned();
        let http = http_client(reqwest::Client::builder())
            .expect("an HTTP client with no roots of its own");
        Client { server, http, token: None }
    }

    /// Trusts, for HTTPS, the certificate authorities of `pem` (PEM, e.g. a self-signed
    /// server certificate) instead of the system's.
    pub fn trusting(mut self, pem: &[u8]) -> Result<Self, String> {
        let roots = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| e.to_string())?;
        if roots.is_empty() {
            return Err("no PEM certificate in it".into());
        }
        self.http = http_client(reqwest::Client::builder().tls_certs_only(roots))
            .map_err(|e| e.to_string())?;
        Ok(self)
    }

    /// Sends `token` (`Authorization: Bearer TOKEN`) with every request.
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token;
        self
    }

    /// A request with the token.
    fn request(&self, method: Method, url: String) -> RequestBuilder {
        let request = self.http.request(method, url);
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// The URL of `store`'s objects, then `then` (an object's name, and what of it).
    fn objects_url(&self, store: &str, then: &[&str]) -> Result<String, ClientError> {
        let store: StoreRef = store.parse()?;
        if let Some(name) = then.first().filter(|name| !data_exchange::store::is_valid_name(name)) {
            return Err(ClientError::Name(data_exchange::ExchangeError::InvalidName(
                (*name).to_owned(),
            )));
        }
        let path = ["v1", "stores", store.knactor(), store.store(), "objects"];
        self.url(path.into_iter().chain(then.iter().copied()))
    }

    /// The server's URL with `segments` appended, each percent-encoded as one path segment:
    /// a name holding `/`, `?` or `#` stays one name (which the server then refuses).
    fn url<'a>(&self, segments: impl IntoIterator<Item = &'a str>) -> Result<String, ClientError> {
        let invalid = |e: &dyn std::fmt::Display| ClientError::Decode {
            server: self.server.clone(),
            message: format!("not a server URL: {e}"),
        };
        let mut url = reqwest::Url::parse(&self.server).map_err(|e| invalid(&e))?;
        let mut path = url.path_segments_mut().map_err(|()| invalid(&"cannot be a base"))?;
        path.pop_if_empty().extend(segments);
        drop(path);
        Ok(url.into())
    }

    async fn send(&self, request: RequestBuilder) -> Result<Value, ClientError> {
        let response = request.send().await.map_err(|source| self.unreachable(source))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|source| self.unreachable(source))?;
        let value: Value = serde_json::from_slice(&body).map_err(|e| ClientError::Decode {
            server: self.server.clone(),
            message: format!("{status}: {e}"),
        })?;
        if status.is_success() { Ok(value) } else { Err(self.api_error(status, &value)) }
    }

    fn unreachable(&self, source: reqwest::Error) -> ClientError {
        ClientError::Unreachable { server: self.server.clone(), cause: source }
    }

    /// `{version, items}` of `store`.
    pub async fn list(&self, store: &str) -> Result<Value, ClientError> {
        self.send(self.request(Method::GET, self.objects_url(store, &[])?)).await
    }

    /// The objects of `store`, each with what keeps it from being collected (`heldBy`).
    pub async fn list_retention(&self, store: &str) -> Result<Value, ClientError> {
        let url = self.objects_url(store, &[])? + "?retention=true";
        self.send(self.request(Method::GET, url)).await
    }

    /// The object `name` of `store`.
    pub async fn get(&self, store: &str, name: &str) -> Result<Value, ClientError> {
        self.send(self.request(Method::GET, self.objects_url(store, &[name])?)).await
    }

    /// Where the value of `field` of object `name` of `store` came from (every field's, when
    /// `None`): `{store, name, fields: [trail]}`.
    pub async fn why(
        &self,
        store: &str,
        name: &str,
        field: Option<&str>,
    ) -> Result<Value, ClientError> {
        let url = self.objects_url(store, &[name, "why"])?;
        let query: Vec<(&str, &str)> = field.map(|f| ("field", f)).into_iter().collect();
        self.send(self.request(Method::GET, url).query(&query)).await
    }

    /// Creates or replaces `name` with `data` (conditional on `version` when given).
    pub async fn put(
        &self,
        store: &str,
        name: &str,
        data: Value,
        version: Option<u64>,
    ) -> Result<Value, ClientError> {
        let body = serde_json::json!({"data": data, "version": version});
        self.send(self.request(Method::PUT, self.objects_url(store, &[name])?).json(&body)).await
    }

    /// Creates `name` with `data`; `AlreadyExists` (409) when it exists.
    pub async fn create(&self, store: &str, name: &str, data: Value) -> Result<Value, ClientError> {
        let request = self
            .request(Method::PUT, self.objects_url(store, &[name])?)
            .header(reqwest::header::IF_NONE_MATCH, "*")
            .json(&serde_json::json!({ "data": data }));
        self.send(request).await
    }

    /// Merge-patches the data of `name`.
    pub async fn patch(
        &self,
        store: &str,
        name: &str,
        patch: &Value,
    ) -> Result<Value, ClientError> {
        let request = self
            .request(Method::PATCH, self.objects_url(store, &[name])?)
            .header(reqwest::header::CONTENT_TYPE, "application/merge-patch+json")
            .body(patch.to_string());
        self.send(request).await
    }

    /// Deletes `name`.
    pub async fn delete(&self, store: &str, name: &str) -> Result<Value, ClientError> {
        self.send(self.request(Method::DELETE, self.objects_url(store, &[name])?)).await
    }

    /// Applies the integrator spec `text` (named `file` in diagnostics) to the running app.
    pub async fn apply(
        &self,
        file: &str,
        text: String,
        shadow: bool,
    ) -> Result<knactor::specs::ApplyReport, ClientError> {
        let url = format!("{}/v1/specs", self.server);
        let shadow = if shadow { "true" } else { "false" };
        let request = self
            .request(Method::POST, url)
            .query(&[("file", file), ("shadow", shadow)])
            .header(reqwest::header::CONTENT_TYPE, "application/yaml")
            .body(text);
        let value = self.send(request).await?;
        self.decode(value, "apply report")
    }

    /// Applies the knactor manifest `manifest` to the running app, with the integrator specs
    /// `specs`; each is `(file, text)`, the file naming it in diagnostics.
    pub async fn apply_knactor(
        &self,
        manifest: (&str, String),
        specs: Vec<(String, String)>,
    ) -> Result<knactor::knactors::KnactorReport, ClientError> {
        let sent = |(file, text): (&str, String)| serde_json::json!({"file": file, "text": text});
        let specs: Vec<Value> = specs.iter().map(|(f, t)| sent((f, t.clone()))).collect();
        let body = serde_json::json!({"manifest": sent(manifest), "specs": specs});
        let url = format!("{}/v1/knactors", self.server);
        let value = self.send(self.request(Method::POST, url).json(&body)).await?;
        self.decode(value, "apply report")
    }

    /// The server's URL.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The Prometheus text of the server's `/metrics`.
    pub async fn metrics(&self) -> Result<String, ClientError> {
        let request = self.request(Method::GET, format!("{}/metrics", self.server));
        let response = request.send().await.map_err(|source| self.unreachable(source))?;
        let status = response.status();
        let text = response.text().await.map_err(|source| self.unreachable(source))?;
        if status.is_success() {
            return Ok(text);
        }
        let value = serde_json::from_str(&text).unwrap_or(Value::Null);
        Err(self.api_error(status, &value))
    }

    /// The server's version.
    pub async fn server_version(&self) -> Result<String, ClientError> {
        let value = self.send(self.request(Method::GET, format!("{}/v1/version", self.server)));
        self.decode(value.await?["version"].take(), "version")
    }

    /// Every store of the app (that the token reaches): `{"stores": [{"store", "kind",
    /// "owner", "count", "schema"}]}`.
    pub async fn stores(&self) -> Result<Value, ClientError> {
        self.send(self.request(Method::GET, format!("{}/v1/stores", self.server))).await
    }

    /// The running specs.
    pub async fn specs(&self) -> Result<Vec<knactor::specs::SpecStatus>, ClientError> {
        let value = self.send(self.request(Method::GET, format!("{}/v1/specs", self.server)));
        self.decode(value.await?["specs"].take(), "spec list")
    }

    /// Stops the running spec `name`, keeping its checkpoint; answers what it was.
    pub async fn delete_spec(&self, name: &str) -> Result<knactor::specs::SpecStatus, ClientError> {
        let value = self.send(self.request(Method::DELETE, self.spec_url(name, &[])?)).await?;
        self.decode(value, "deleted spec")
    }

    /// Stops the shadow run beside the spec `name`.
    pub async fn delete_shadow(
        &self,
        name: &str,
    ) -> Result<knactor::specs::ShadowStatus, ClientError> {
        let url = self.spec_url(name, &["shadow"])?;
        let value = self.send(self.request(Method::DELETE, url)).await?;
        self.decode(value, "deleted shadow")
    }

    /// Where the shadow of the spec `name` wrote otherwise than the live spec.
    pub async fn diff_spec(&self, name: &str) -> Result<knactor::shadow::ShadowDiff, ClientError> {
        let value = self.send(self.request(Method::GET, self.spec_url(name, &["shadow"])?)).await?;
        self.decode(value, "shadow diff")
    }

    /// Makes the shadow of the spec `name` its live version.
    pub async fn promote_spec(
        &self,
        name: &str,
    ) -> Result<knactor::specs::ApplyReport, ClientError> {
        let url = self.spec_url(name, &["promote"])?;
        let value = self.send(self.request(Method::POST, url)).await?;
        self.decode(value, "promote report")
    }

    /// `/v1/specs/NAME[/then...]`, the name one path segment whatever it holds.
    fn spec_url(&self, name: &str, then: &[&str]) -> Result<String, ClientError> {
        self.url(["v1", "specs", name].into_iter().chain(then.iter().copied()))
    }

    /// `value` as a `T`, or an error naming `what` the server answered.
    fn decode<T: serde::de::DeserializeOwned>(
        &self,
        value: Value,
        what: &str,
    ) -> Result<T, ClientError> {
        serde_json::from_value(value).map_err(|e| ClientError::Decode {
            server: self.server.clone(),
            message: format!("{what}: {e}"),
        })
    }

    /// Watches `store` from `version` on: every change after it.
    pub async fn watch_from(&self, store: &str, version: u64) -> Result<EventStream, ClientError> {
        let url = format!("{}?watch=true&version={version}", self.objects_url(store, &[])?);
        self.json_lines(self.request(Method::GET, url)).await
    }

    /// What passes through `part` of the running spec `spec`, from now on: an edge of a Cast
    /// spec (`parts`: `edges`) or a flow of a Sync spec (`flows`).
    pub async fn tap(
        &self,
        spec: &str,
        parts: &str,
        part: &str,
    ) -> Result<EventStream, ClientError> {
        let url = self.spec_url(spec, &[parts, part, "tap"])?;
        self.json_lines(self.request(Method::GET, url)).await
    }

    /// Watches `store`: its current objects as `Added`, then every change.
    pub async fn watch(&self, store: &str) -> Result<EventStream, ClientError> {
        let url = format!("{}?watch=true", self.objects_url(store, &[])?);
        self.json_lines(self.request(Method::GET, url)).await
    }

    /// Appends JSON records (`text`: JSON lines) to the Log store `store`.
    pub async fn log_append(&self, store: &str, text: String) -> Result<Value, ClientError> {
        let request = self
            .request(Method::POST, self.records_url(store)?)
            .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
            .body(text);
        self.send(request).await
    }

    /// The records of the Log store `store` from offset `from`; with `follow`, new ones too.
    pub async fn log_tail(
        &self,
        store: &str,
        from: u64,
        follow: bool,
    ) -> Result<EventStream, ClientError> {
        let query = [("from", from.to_string()), ("follow", follow.to_string())];
        self.json_lines(self.request(Method::GET, self.records_url(store)?).query(&query)).await
    }

    /// Runs `sql` over the Log stores; the answer rendered as `format` (json, csv, table).
    pub async fn query(&self, sql: &str, format: &str) -> Result<String, ClientError> {
        let url = format!("{}/v1/query", self.server);
        let request = self
            .request(Method::POST, url)
            .query(&[("format", format)])
            .header(reqwest::header::CONTENT_TYPE, "application/sql")
            .body(sql.to_owned());
        let response = request.send().await.map_err(|source| self.unreachable(source))?;
        let status = response.status();
        let body = response.text().await.map_err(|source| self.unreachable(source))?;
        if status.is_success() {
            return Ok(body);
        }
        Err(self.api_error(status, &serde_json::from_str(&body).unwrap_or_default()))
    }

    /// The error of a refused request; a 401 to a client without a token says where the CLI
    /// looks for one.
    fn api_error(&self, status: StatusCode, body: &Value) -> ClientError {
        let mut error = api_error(status, body);
        if let ClientError::Api { message, .. } = &mut error
            && status == StatusCode::UNAUTHORIZED
            && self.token.is_none()
        {
            *message = format!(
                "{message}; no token found for {}: set KNACTOR_TOKEN, pass --token-file FILE, or run this as the user who started `knactor up` (see docs/security.md)",
                self.server
            );
        }
        error
    }

    fn records_url(&self, store: &str) -> Result<String, ClientError> {
        let store: StoreRef = store.parse()?;
        Ok(format!("{}/v1/logs/{store}/records", self.server))
    }

    /// Sends `request` and streams its JSON-lines answer; a `{"type": "Error"}` line ends it
    /// with that error.
    async fn json_lines(&self, request: RequestBuilder) -> Result<EventStream, ClientError> {
        let response = request.send().await.map_err(|source| self.unreachable(source))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.json::<Value>().await.unwrap_or_default();
            return Err(self.api_error(status, &body));
        }
        let server = self.server.clone();
        let chunks = response.bytes_stream();
        let lines =
            futures::stream::unfold((chunks, Vec::<u8>::new()), move |(mut chunks, mut buffer)| {
                let server = server.clone();
                async move {
                    loop {
                        if let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                            let line: Vec<u8> = buffer.drain(..=end).collect();
                            let value = decode_line(&server, &line);
                            return Some((value, (chunks, buffer)));
                        }
                        match chunks.next().await? {
                            Ok(chunk) => buffer.extend_from_slice(&chunk),
                            Err(source) => {
                                let error = ClientError::Unreachable { server, cause: source };
                                return Some((Err(error), (chunks, Vec::new())));
                            }
                        }
                    }
                }
            });
        Ok(lines.boxed())
    }
}

fn decode_line(server: &str, line: &[u8]) -> Result<Value, ClientError> {
    let event: Value = serde_json::from_slice(line).map_err(|e| ClientError::Decode {
        server: server.to_owned(),
        message: format!("a streamed line: {e}"),
    })?;
    if event["type"] == "Error" {
        return Err(api_error(StatusCode::OK, &event));
    }
    Ok(event)
}

fn api_error(status: StatusCode, body: &Value) -> ClientError {
    let text = |key: &str| body[key].as_str().map(str::to_owned);
    ClientError::Api {
        status,
        reason: text("reason").unwrap_or_else(|| "Unknown".into()),
        message: text("error").unwrap_or_else(|| format!("request failed with {status}")),
    }
}
