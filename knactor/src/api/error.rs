//! API errors as HTTP responses: a status and `{"error": message, "reason": kind}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use data_exchange::ExchangeError;
use data_exchange::store::InvalidStoreRef;
use serde_json::json;

/// An error answered to an API client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    reason: &'static str,
    message: String,
    pointer: Option<String>,
    diagnostics: Vec<String>,
}

impl ApiError {
    /// A spec that was not applied, with its diagnostics.
    pub fn invalid_spec(message: String, diagnostics: Vec<String>) -> Self {
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            reason: "Invalid",
            message,
            pointer: None,
            diagnostics,
        }
    }

    /// A malformed request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            reason: "BadRequest",
            message: message.into(),
            pointer: None,
            diagnostics: Vec::new(),
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
            E::Conflict { .. } => (StatusCode::CONFLICT, "Conflict"),
            E::SchemaViolation { .. } | E::NotAnObject { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "Invalid")
            }
            E::InvalidName(_) | E::InvalidStoreRef(_) => (StatusCode::BAD_REQUEST, "BadRequest"),
            E::Denied { .. } => (StatusCode::FORBIDDEN, "Forbidden"),
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
        };
        let pointer = match &e {
            E::SchemaViolation { violation, .. } => Some(violation.pointer.clone()),
            _ => None,
        };
        ApiError { status, reason, message: e.to_string(), pointer, diagnostics: Vec::new() }
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
        body
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}
