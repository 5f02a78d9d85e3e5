//! Handlers of `/v1/specs`: apply, list and delete integrator specs.

use std::path::PathBuf;

use axum::Json;
use axum::extract::{Path, Query, State};
use integrators::source::SpecFile;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, ApiState};
use crate::specs::{ApplyError, ApplyReport, SpecStatus};

#[derive(Debug, Deserialize)]
pub(super) struct ApplyQuery {
    /// The spec's file name, for diagnostics.
    file: Option<String>,
}

/// `POST /v1/specs`: check the spec in the body, then start it or swap it in.
pub(super) async fn apply(
    State(state): State<ApiState>,
    Query(query): Query<ApplyQuery>,
    body: String,
) -> Result<Json<ApplyReport>, ApiError> {
    let path = PathBuf::from(query.file.unwrap_or_else(|| "<request>".into()));
    let file = SpecFile::from_text(&path, body);
    match state.specs.apply(&file).await {
        Ok(report) => Ok(Json(report)),
        Err(ApplyError::Invalid(diagnostics)) => {
            let lines = diagnostics.0.iter().map(ToString::to_string).collect();
            Err(ApiError::invalid_spec(diagnostics.to_string(), lines))
        }
        Err(e) => Err(ApiError::invalid_spec(e.to_string(), vec![e.to_string()])),
    }
}

/// `GET /v1/specs`: the running specs, with their kinds, versions and when they were applied.
pub(super) async fn list(State(state): State<ApiState>) -> Json<Value> {
    Json(json!({ "specs": state.specs.list().await }))
}

/// `DELETE /v1/specs/{name}`: stops the running spec, keeping its checkpoint; answers what it
/// was.
pub(super) async fn delete(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<SpecStatus>, ApiError> {
    match state.specs.delete(&name).await {
        Ok(Some(deleted)) => Ok(Json(deleted)),
        Ok(None) => Err(ApiError::no_spec(&name)),
        // Stopped, but its exchange user could not be limited: say so.
        Err(e) => Err(ApiError::unavailable(format!("`{name}` stopped, but {e}"))),
    }
}
