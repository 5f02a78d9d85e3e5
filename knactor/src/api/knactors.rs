//! Handler of `POST /v1/knactors`: a knactor's manifest applied to the running app.

use std::path::PathBuf;

use axum::Json;
use axum::extract::State;
use integrators::source::SpecFile;
use serde::Deserialize;

use super::{ApiError, ApiState};
use crate::knactors::KnactorReport;

/// A file sent to apply: its name (for diagnostics) and text.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Sent {
    file: String,
    text: String,
}

impl Sent {
    fn spec_file(self) -> SpecFile {
        SpecFile::from_text(&PathBuf::from(self.file), self.text)
    }
}

/// The body: the knactor's manifest, and the integrator specs applied with it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ApplyKnactor {
    manifest: Sent,
    #[serde(default)]
    specs: Vec<Sent>,
}

/// `POST /v1/knactors`: checks the manifest and the specs against the running app, then
/// switches to them (see [`crate::knactors`]).
pub(super) async fn apply(
    State(state): State<ApiState>,
    Json(body): Json<ApplyKnactor>,
) -> Result<Json<KnactorReport>, ApiError> {
    let Some(knactors) = state.running.clone() else {
        return Err(ApiError::unavailable(String::from("this server runs no knactors")));
    };
    let manifest = body.manifest.spec_file();
    let specs: Vec<SpecFile> = body.specs.into_iter().map(Sent::spec_file).collect();
    let running = state.specs.clone();
    let applied = state.on_app(async move { knactors.apply(&manifest, &specs, &running).await });
    Ok(Json(applied.await??))
}
