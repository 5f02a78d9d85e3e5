//! API errors as HTTP responses: a status and `{"error": message, "reason": kind}`; a denial
//! also names `principal`, `operation`, `store` and, when a field is what was refused, `field`.

use axum::Json;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use data_exchange::store::InvalidStoreRef;
use data_exchange::{ExchangeError, StoreRef};
use serde_json::json;

use super::Principal;
use crate::specs::ApplyError;
use integrators::cast::CastError;
use integrators::sync::SyncError;

use crate::logins::LoginError;

/// An error answered to an API client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    reason: &'static str,
    message: String,
    pointer: Option<String>,
    diagnostics: Vec<String>,
    /// Who was denied what: `principal`, `operation`, `store` and `field`.
    denial: Option<Box<Denial>>,
}

#[derive(Debug)]
struct Denial {
    principal: Option<String>,
    operation: &'static str,
    store: Option<String>,
    field: Option<String>,
}

impl ApiError {
    /// A spec that was not applied, with its diagnostics: the first [`MAX_DIAGNOSTICS`], each
    /// cut like a message, and all of those in the message too (which the CLI prints).
    pub fn invalid_spec(message: String, diagnostics: Vec<String>) -> Self {
        let more = diagnostics.len().saturating_sub(MAX_DIAGNOSTICS);
        let mut diagnostics: Vec<String> =
            diagnostics.into_iter().take(MAX_DIAGNOSTICS).map(bounded).collect();
        if more > 0 {
            diagnostics.push(format!("... and {more} more"));
        }
        let message =
            if diagnostics.is_empty() { bounded(message) } else { diagnostics.join("\n") };
        let status = StatusCode::UNPROCESSABLE_ENTITY;
        ApiError { diagnostics, message, ..Self::new(status, "Invalid", String::new()) }
    }

    /// Something asked for that is not there (reason `NotFound`, 404).
    pub fn not_found(message: impl ToString) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFound", message.to_string())
    }

    /// A spec that is not running (reason `NotFound`, 404).
    pub fn no_spec(name: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFound", format!("no spec `{name}` is running"))
    }

    /// A store of the other kind than the route serves (404 `UnknownStore`, saying which kind
    /// it is and how to read it).
    pub fn other_kind(message: String) -> Self {
        Self::new(StatusCode::NOT_FOUND, "UnknownStore", message)
    }

    /// 500: a change was made in part (a knactor switched, but something did not start).
    pub fn incomplete(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "Incomplete", message.into())
    }

    /// The exchange could not do what was asked (503).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "Unavailable", message.into())
    }

    /// A malformed request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message.into())
    }

    /// A request naming a host this server does not answer to (DNS rebinding).
    pub fn bad_host(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadHost", message.into())
    }

    /// A request sent by a web page of another origin.
    pub fn cross_origin(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "CrossOrigin", message.into())
    }

    /// A request without a token, or with a token of no principal.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", message.into())
    }

    /// `principal` may not do `operation` (on `store`).
    pub fn forbidden(principal: &Principal, operation: &'static str, store: Option<&str>) -> Self {
        let on = store.map(|s| format!(" on store `{s}`")).unwrap_or_default();
        let message = format!("`{principal}` may not {operation}{on}");
        let denial = Denial {
            principal: Some(principal.to_string()),
            operation,
            store: store.map(str::to_owned),
            field: None,
        };
        ApiError {
            denial: Some(Box::new(denial)),
            ..Self::new(StatusCode::FORBIDDEN, "Forbidden", message)
        }
    }

    /// `operation` on `store` by an integrator whose spec does not run in this process: it
    /// has no rights here.
    pub fn not_running(principal: &Principal, operation: &'static str, store: &StoreRef) -> Self {
        let message = format!(
            "`{principal}` may not {operation} on store `{store}` here: its spec does not run in this process"
        );
        let denial = Denial {
            principal: Some(principal.to_string()),
            operation,
            store: Some(store.to_string()),
            field: None,
        };
        ApiError {
            denial: Some(Box::new(denial)),
            ..Self::new(StatusCode::FORBIDDEN, "Forbidden", message)
        }
    }

    /// A body of a content type the operation does not take.
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "UnsupportedMediaType", message.into())
    }

    fn new(status: StatusCode, reason: &'static str, message: String) -> Self {
        let message = bounded(message);
        ApiError { status, reason, message, pointer: None, diagnostics: Vec::new(), denial: None }
    }

    /// The HTTP status it is answered with.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<ApplyError> for ApiError {
    fn from(e: ApplyError) -> Self {
        match e {
            ApplyError::Invalid(diagnostics) => {
                let lines = diagnostics.0.iter().map(ToString::to_string).collect();
                ApiError::invalid_spec(diagnostics.to_string(), lines)
            }
            ApplyError::Schema(e) => (*e).into(),
            e @ ApplyError::Incomplete(_) => ApiError::incomplete(e.to_string()),
            ApplyError::NotRunning(message) => {
                Self::new(StatusCode::NOT_FOUND, "NotFound", message)
            }
            // The exchange failed (not the spec): say so, as the exchange's errors do.
            ApplyError::Login(LoginError::Exchange(e)) => e.into(),
            e @ (ApplyError::Login(_) | ApplyError::Sync(SyncError::KeptChanging(_))) => {
                ApiError::unavailable(e.to_string())
            }
            ApplyError::Cast(CastError::Exchange(e)) | ApplyError::Sync(SyncError::Exchange(e))
                if !e.is_client_error() =>
            {
                e.into()
            }
            e => ApiError::invalid_spec(e.to_string(), vec![e.to_string()]),
        }
    }
}

impl From<InvalidStoreRef> for ApiError {
    fn from(e: InvalidStoreRef) -> Self {
        ExchangeError::from(e).into()
    }
}

impl From<ExchangeError> for ApiError {
    fn from(e: ExchangeError) -> Self {
        use ExchangeError as E;
        let (status, reason) = match &e {
            E::UnknownStore(_) => (StatusCode::NOT_FOUND, "UnknownStore"),
            E::NotFound { .. } => (StatusCode::NOT_FOUND, "NotFound"),
            E::AlreadyExists { .. } => (StatusCode::CONFLICT, "AlreadyExists"),
            E::Conflict { .. } | E::SchemaChanged { .. } => (StatusCode::CONFLICT, "Conflict"),
            E::SchemaDiffers { .. }
            | E::LogSchemaDiffers { .. }
            | E::SchemaBreaks { .. }
            | E::Migration { .. } => (StatusCode::CONFLICT, "SchemaConflict"),
            E::SchemaViolation { .. } | E::NotAnObject { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "Invalid")
            }
            E::InvalidName(_) | E::InvalidStoreRef(_) => (StatusCode::BAD_REQUEST, "BadRequest"),
            E::Denied(_) => (StatusCode::FORBIDDEN, "Forbidden"),
            E::Expired { .. } => (StatusCode::GONE, "Expired"),
            E::InvalidRecord { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "Invalid"),
            E::Query(_) => (StatusCode::BAD_REQUEST, "BadQuery"),
            E::UnsupportedUrl(_)
            | E::NotBuilt { .. }
            | E::InvalidSchema { .. }
            | E::UnsupportedLogSchema { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "Internal"),
            E::Backend { .. } | E::Storage(_) | E::Corrupt(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "Unavailable")
            }
            E::NoProvenance => (StatusCode::NOT_IMPLEMENTED, "NoProvenance"),
        };
        let pointer = match &e {
            E::SchemaViolation { violation, .. } => Some(violation.pointer.clone()),
            _ => None,
        };
        let denial = match &e {
            E::Denied(denial) => Some(Box::new(Denial {
                principal: denial.principal.clone(),
                operation: denial.operation,
                store: Some(denial.store.to_string()),
                field: denial.field.clone(),
            })),
            _ => None,
        };
        ApiError { pointer, denial, ..Self::new(status, reason, e.to_string()) }
    }
}

impl ApiError {
    /// The error as one JSON value (also used as the last line of a failed watch).
    pub fn body(&self) -> serde_json::Value {
        let mut body = json!({"type": "Error", "reason": self.reason, "error": self.message});
        if let Some(pointer) = &self.pointer {
            body["pointer"] = json!(pointer);
        }
        if !self.diagnostics.is_empty() {
            body["diagnostics"] = json!(self.diagnostics);
        }
        if let Some(denial) = &self.denial {
            let Denial { principal, operation, store, field } = &**denial;
            body["principal"] = json!(principal);
            body["operation"] = json!(operation);
            body["store"] = json!(store);
            if let Some(field) = field {
                body["field"] = json!(field);
            }
        }
        body
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

/// The longest error message answered, in characters: a message that quotes what it was sent
/// (a parser's, say) is cut there, so that no answer echoes a large input back.
const MAX_MESSAGE: usize = 400;

/// The most diagnostics an invalid spec's answer names.
const MAX_DIAGNOSTICS: usize = 50;

/// `message`, cut at [`MAX_MESSAGE`] characters.
fn bounded(message: String) -> String {
    match message.char_indices().nth(MAX_MESSAGE) {
        Some((end, _)) => format!("{}…", &message[..end]),
        None => message,
    }
}

/// The largest request body the API takes (413 past it).
pub(super) const MAX_BODY_BYTES: usize = 2 << 20;

/// Refuses a body whose `Content-Length` passes [`MAX_BODY_BYTES`] before reading any of it
/// (a body without one is cut at the limit as it is read).
pub(super) async fn refuse_large_bodies(request: Request, next: Next) -> Response {
    let length = request.headers().get(header::CONTENT_LENGTH).and_then(|l| l.to_str().ok());
    if length.and_then(|l| l.parse::<u64>().ok()).is_some_and(|l| l > MAX_BODY_BYTES as u64) {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    }
    next.run(request).await
}

/// Answers every error in the API's JSON form, those axum makes itself included: a route that
/// does not exist (404) or does not take the method (405), a body too large (413), a query
/// string or body that does not parse (400, 415, 422).
pub(super) async fn json_errors(request: Request, next: Next) -> Response {
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 << 10).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_owned();
    let path = data_exchange::store::quoted_name(&path);
    let (reason, message) = match status {
        StatusCode::NOT_FOUND => ("NotFound", format!("no route {path}: see docs/http-api.md")),
        StatusCode::METHOD_NOT_ALLOWED => {
            ("MethodNotAllowed", format!("{path} does not take {method}"))
        }
        StatusCode::PAYLOAD_TOO_LARGE => (
            "TooLarge",
            format!("the body is larger than the {} MiB the API takes", MAX_BODY_BYTES >> 20),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("UnsupportedMediaType", text),
        // A body of valid JSON in another shape than the route takes (axum's `Json`).
        StatusCode::UNPROCESSABLE_ENTITY => ("Invalid", text),
        _ if status.is_server_error() => ("Internal", text),
        _ => ("BadRequest", text),
    };
    // Its own headers (`Allow` of a 405) go with it, but those of the body it replaces.
    parts.headers.remove(header::CONTENT_TYPE);
    parts.headers.remove(header::CONTENT_LENGTH);
    let mut answer = ApiError::new(status, reason, message).into_response();
    answer.headers_mut().extend(parts.headers);
    answer
}
