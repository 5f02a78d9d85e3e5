//! Handlers of `/v1/specs`: apply, list and delete integrator specs; run a new version as a
//! shadow, compare it with the live one, promote it or drop it.

use std::path::PathBuf;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use integrators::source::SpecFile;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::{ApiError, ApiState};
use crate::shadow::ShadowDiff;
use crate::specs::{ApplyError, ApplyReport, ShadowStatus, SpecStatus};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ApplyQuery {
    /// The spec's file name, for diagnostics.
    file: Option<String>,
    /// Run it as a shadow beside the live spec of its name.
    #[serde(default)]
    shadow: bool,
}

/// `POST /v1/specs`: check the spec in the body, then start it or swap it in (with
/// `?shadow=true`: start it as a shadow beside the live spec).
pub(super) async fn apply(
    State(state): State<ApiState>,
    Query(query): Query<ApplyQuery>,
    body: String,
) -> Result<Json<ApplyReport>, ApiError> {
    let path = PathBuf::from(query.file.unwrap_or_else(|| "<request>".into()));
    let (file, specs) = (SpecFile::from_text(&path, body), state.specs.clone());
    let applied = state.on_app(async move {
        match query.shadow {
            true => specs.apply_shadow(&file).await,
            false => specs.apply(&file).await,
        }
    });
    Ok(Json(applied.await??))
}

/// `GET /v1/specs`: the running specs, with their kinds, versions and when they were applied.
pub(super) async fn list(State(state): State<ApiState>) -> Json<Value> {
    Json(json!({ "specs": state.specs.list().await }))
}

/// `GET /v1/graph`: what the running specs' edges and flows move between stores.
pub(super) async fn graph(State(state): State<ApiState>) -> Json<Value> {
    Json(json!({ "links": state.specs.links().await }))
}

/// `DELETE /v1/specs/{name}`: stops the running spec, keeping its checkpoint; answers what it
/// was.
pub(super) async fn delete(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<SpecStatus>, ApiError> {
    let (specs, deleting) = (state.specs.clone(), name.clone());
    match state.on_app(async move { specs.delete(&deleting).await }).await? {
        Ok(Some(deleted)) => Ok(Json(deleted)),
        Ok(None) => Err(ApiError::no_spec(&name)),
        // Stopped, but its exchange user could not be limited: say so.
        Err(e) => Err(ApiError::unavailable(format!("`{name}` stopped, but {e}"))),
    }
}

/// `GET /v1/specs/{name}/shadow`: where the shadow of the spec wrote otherwise than the live
/// spec, per object and field, with counts.
pub(super) async fn diff(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<ShadowDiff>, ApiError> {
    match state.specs.diff(&name).await? {
        Some(diff) => Ok(Json(diff)),
        None => Err(state.specs.no_shadow(&name).await.into()),
    }
}

/// `POST /v1/specs/{name}/promote`: the shadow becomes the live version.
pub(super) async fn promote(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<ApplyReport>, ApiError> {
    let specs = state.specs.clone();
    Ok(Json(state.on_app(async move { specs.promote(&name).await }).await??))
}

/// `DELETE /v1/specs/{name}/shadow`: stops the shadow; the live spec runs on.
pub(super) async fn delete_shadow(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<ShadowStatus>, ApiError> {
    let (specs, deleting) = (state.specs.clone(), name.clone());
    match state.on_app(async move { specs.delete_shadow(&deleting).await }).await? {
        Some(deleted) => Ok(Json(deleted)),
        None => Err(state.specs.no_shadow(&name).await.into()),
    }
}

/// `GET /v1/specs/{name}/edges/{edge}/tap`: what passes through an edge of a running Cast
/// spec from now on, one JSON line per change it handles (see [`crate::tap::Taps::subscribe`]).
pub(super) async fn tap_edge(
    State(state): State<ApiState>,
    Path((name, edge)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    tap(state, name, edge, "Cast").await
}

/// `GET /v1/specs/{name}/flows/{flow}/tap`: what a flow of a running Sync spec appends from now
/// on, one JSON line per append (a sample of its records).
pub(super) async fn tap_flow(
    State(state): State<ApiState>,
    Path((name, flow)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    tap(state, name, flow, "Sync").await
}

/// The events of `part` of the running spec `name` of `kind`, as JSON lines; a listener that
/// falls behind gets `{"type": "Lagged", "missed": N}` in place of what it missed (counting
/// the events of every edge and flow); the stream ends with `{"type": "Stopped", "spec"}` when
/// the spec is deleted.
async fn tap(
    state: ApiState,
    name: String,
    part: String,
    kind: &str,
) -> Result<Response, ApiError> {
    let key = crate::specs::part(kind);
    let Some(parts) = state.specs.parts(&name, kind).await else {
        let message = format!("no {kind} spec `{name}` is running");
        return Err(ApplyError::NotRunning(message).into());
    };
    if !parts.contains(&part) {
        let message = format!("no {key} `{part}` in `{name}`: its {key}s are {}", parts.join(", "));
        return Err(ApplyError::NotRunning(message).into());
    }
    let events = state.specs.taps().subscribe();
    // The spec's end is the stream's last line.
    let lines = futures::stream::unfold(Some(events), move |events| {
        let (name, part) = (name.clone(), part.clone());
        async move {
            let mut events = events?;
            loop {
                let event = match events.recv().await {
                    Ok(event) if event["spec"] == name.as_str() && event["type"] == "Stopped" => {
                        let mut line = serde_json::to_vec(&*event).expect("JSON values serialize");
                        line.push(b'\n');
                        return Some((Ok(Bytes::from(line)), None));
                    }
                    Ok(event) if event["spec"] == name.as_str() && event[key] == part.as_str() => {
                        serde_json::to_vec(&*event)
                    }
                    Ok(_) => continue,
                    Err(RecvError::Lagged(missed)) => {
                        serde_json::to_vec(&json!({"type": "Lagged", "missed": missed}))
                    }
                    Err(RecvError::Closed) => return None,
                };
                let mut line = event.expect("JSON values serialize");
                line.push(b'\n');
                return Some((Ok::<_, std::convert::Infallible>(Bytes::from(line)), Some(events)));
            }
        }
    });
    let lines = lines.take_until(state.shutdown.clone().cancelled_owned());
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(lines)).into_response())
}
