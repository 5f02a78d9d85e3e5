//! The integrator specs of a running app: checked, started, and re-applied by name without
//! restarting anything (DESIGN §7).

use std::collections::BTreeMap;
use std::sync::Arc;

use data_exchange::ObjectExchange;
use integrators::cast::{CastError, CastIntegrator, CastPlan, PlanDiff, Schemas};
use integrators::source::{Diagnostics, SpecFile};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

/// What applying a spec did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyReport {
    /// The spec's name.
    pub name: String,
    /// The spec's kind (`Cast`).
    pub kind: String,
    /// Whether the spec was new (started) rather than replacing a running one.
    pub created: bool,
    /// Edges added.
    pub added: Vec<String>,
    /// Edges removed.
    pub removed: Vec<String>,
    /// Edges changed.
    pub changed: Vec<String>,
    /// Warnings of the check, as `file:line:col: warning: ...`.
    pub warnings: Vec<String>,
}

/// Why a spec was not applied; the running specs keep going.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The spec has errors.
    #[error("{0}")]
    Invalid(Diagnostics),
    /// The spec is of a kind that cannot be applied.
    #[error("{0}")]
    Unsupported(String),
    /// Running it failed.
    #[error(transparent)]
    Cast(#[from] CastError),
}

/// The running integrators of an app, by spec name.
pub struct Specs {
    exchange: Arc<dyn ObjectExchange>,
    schemas: Arc<Schemas>,
    running: Mutex<BTreeMap<String, CastIntegrator>>,
}

impl std::fmt::Debug for Specs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Specs").field("stores", &self.schemas.len()).finish_non_exhaustive()
    }
}

/// Reads the `kind` of a spec without parsing the rest.
fn kind_of(file: &SpecFile) -> Result<String, Diagnostics> {
    #[derive(Deserialize)]
    struct Head {
        kind: Option<String>,
    }
    let head: Head = file.parse()?;
    Ok(head.kind.unwrap_or_default())
}

/// Checks a spec file against `schemas`, as `knactor check` and `apply` do.
pub fn check(
    file: &SpecFile,
    schemas: Option<&Schemas>,
) -> Result<(CastPlan, Diagnostics), ApplyError> {
    match kind_of(file).map_err(ApplyError::Invalid)?.as_str() {
        "Cast" => CastPlan::load(file, schemas).map_err(ApplyError::Invalid),
        "Sync" => Err(ApplyError::Unsupported(format!(
            "{}: Sync specs need the Log exchange, which this build does not have yet",
            file.path().display()
        ))),
        other => Err(ApplyError::Unsupported(format!(
            "{}: `{other}` is not an integrator spec: expected kind Cast",
            file.path().display()
        ))),
    }
}

impl Specs {
    /// No specs yet, over `exchange` whose stores have `schemas`.
    pub fn new(exchange: Arc<dyn ObjectExchange>, schemas: Schemas) -> Self {
        Specs { exchange, schemas: Arc::new(schemas), running: Mutex::default() }
    }

    /// The schemas specs are checked against.
    pub fn schemas(&self) -> &Schemas {
        &self.schemas
    }

    /// Checks the spec in `file`; starts it, or swaps it for the running spec of its name.
    pub async fn apply(&self, file: &SpecFile) -> Result<ApplyReport, ApplyError> {
        let (plan, warnings) = check(file, Some(&self.schemas))?;
        let warnings = warnings.0.iter().map(ToString::to_string).collect();
        let name = plan.name.clone();
        let mut running = self.running.lock().await;
        let (created, diff) = match running.get(&name) {
            Some(integrator) => (false, integrator.apply(plan).await?),
            None => {
                let added = plan.edges.iter().map(|e| e.spec.name.clone()).collect();
                let integrator = CastIntegrator::start(self.exchange.clone(), plan).await?;
                running.insert(name.clone(), integrator);
                (true, PlanDiff { added, ..PlanDiff::default() })
            }
        };
        let PlanDiff { added, removed, changed } = diff;
        let kind = "Cast".to_owned();
        Ok(ApplyReport { name, kind, created, added, removed, changed, warnings })
    }

    /// The names of the running specs.
    pub async fn names(&self) -> Vec<String> {
        self.running.lock().await.keys().cloned().collect()
    }

    /// Stops every integrator, checkpointing its progress.
    pub async fn stop(&self) {
        let running = std::mem::take(&mut *self.running.lock().await);
        for integrator in running.into_values() {
            integrator.stop().await;
        }
    }
}
