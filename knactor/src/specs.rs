//! The integrator specs of a running app: checked, started, and re-applied by name without
//! restarting anything (DESIGN §7). Cast specs run over the Object exchange, Sync specs over
//! the Log exchange.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use data_exchange::StoreRef;
use data_exchange::access::{Rights, ScopedExchange};
use data_exchange::log::ScopedLog;
use integrators::PlanDiff;
pub use integrators::cast::Filled;
use integrators::cast::{
    CastError, CastIntegrator, CastObserver, CastOptions, CastPlan, Schemas, shadow_principal,
};
use integrators::source::{Diagnostic, Diagnostics, SpecFile};
use integrators::sync::{SyncError, SyncIntegrator, SyncObserver, SyncOptions, SyncPlan};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::app::Exchanges;
use crate::composition::Footprint;
use crate::logins::{LoginError, Logins};
use crate::metrics::Metrics;
use crate::policy::Policies;
use crate::shadow::{Shadow, ShadowDiff};
use crate::tap::{Observers, Taps};

/// The JSON Schemas of an app's stores, by exchange.
#[derive(Clone, Debug, Default)]
pub struct StoreSchemas {
    /// Object stores (what Cast specs connect).
    pub objects: Schemas,
    /// Log stores (what Sync specs connect).
    pub logs: Schemas,
}

/// What applying a spec did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyReport {
    /// The spec's name.
    pub name: String,
    /// The spec's kind (`Cast` or `Sync`).
    pub kind: String,
    /// Whether the spec was new (started) rather than replacing a running one.
    pub created: bool,
    /// Edges (Cast) or flows (Sync) added.
    pub added: Vec<String>,
    /// Edges or flows removed.
    pub removed: Vec<String>,
    /// Edges or flows changed.
    pub changed: Vec<String>,
    /// Warnings of the check, as `file:line:col: warning: ...`.
    pub warnings: Vec<String>,
    /// Cast edges the exchange runs itself (pushdown).
    #[serde(default)]
    pub pushed_down: u64,
    /// Whether it was started as a shadow run beside the live spec (the parts added, removed
    /// and changed are against the live spec).
    #[serde(default)]
    pub shadow: bool,
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
    /// Running a Cast spec failed.
    #[error(transparent)]
    Cast(#[from] CastError),
    /// Running a Sync spec failed.
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// The integrator's own exchange could not be opened, or its rights not updated.
    #[error(transparent)]
    Login(#[from] LoginError),
    /// The exchange refused a change of a store's schema.
    #[error(transparent)]
    Schema(Box<data_exchange::ExchangeError>),
    /// Applying a knactor's manifest left something not running: a reconciler or a spec did
    /// not start after the switch, or after a refused one.
    #[error("{0}")]
    Incomplete(String),
    /// No spec of the name runs (to shadow), or it runs no shadow (to promote).
    #[error("{0}")]
    NotRunning(String),
}

impl ApplyError {
    /// The error as problems of the spec in `file`: its diagnostics, or one at the top.
    pub fn diagnostics(self, file: &SpecFile) -> Vec<Diagnostic> {
        match self {
            ApplyError::Invalid(d) => d.0,
            other => vec![file.error_at(&[], other.to_string())],
        }
    }
}

/// A checked integrator spec.
#[derive(Debug)]
pub enum Checked {
    /// A Cast spec and the warnings of its check.
    Cast(CastPlan, Diagnostics),
    /// A Sync spec.
    Sync(SyncPlan),
}

impl Checked {
    /// The spec's name.
    pub fn name(&self) -> &str {
        match self {
            Checked::Cast(plan, _) => &plan.name,
            Checked::Sync(plan) => &plan.name,
        }
    }

    /// `Cast` or `Sync`.
    pub fn kind(&self) -> &'static str {
        match self {
            Checked::Cast(..) => "Cast",
            Checked::Sync(_) => "Sync",
        }
    }

    /// The same spec, its integrator also granted what `policies` declare for it.
    pub fn with_policies(mut self, policies: &Policies) -> Self {
        let principal = integrators::cast::principal(self.name());
        let declared = match &mut self {
            Checked::Cast(plan, _) => &mut plan.declared,
            Checked::Sync(plan) => &mut plan.declared,
        };
        *declared = policies.of(&principal);
        self
    }

    /// The rights its integrator runs with.
    pub fn rights(&self) -> Rights {
        match self {
            Checked::Cast(plan, _) => plan.rights(),
            Checked::Sync(plan) => plan.rights(),
        }
    }

    /// The names of its edges or flows.
    pub fn parts(&self) -> Vec<&str> {
        match self {
            Checked::Cast(plan, _) => plan.edges.iter().map(|e| e.spec.name.as_str()).collect(),
            Checked::Sync(plan) => plan.flows.iter().map(|f| f.spec.name.as_str()).collect(),
        }
    }

    /// How many parts it has: `1 edge`, `5 edges`, `2 flows`.
    pub fn counted(&self) -> String {
        counted(self.parts().len(), part(self.kind()))
    }
}

/// What one part of a spec of `kind` is called: `edge` (Cast) or `flow` (Sync).
pub fn part(kind: &str) -> &'static str {
    if kind == "Sync" { "flow" } else { "edge" }
}

/// `n` of `noun`, in the plural but for one: `1 edge`, `5 edges`, `0 records`.
pub fn counted(n: usize, noun: &str) -> String {
    match n {
        1 => format!("1 {noun}"),
        n => format!("{n} {noun}s"),
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

/// Checks a spec file against the app's `schemas`, as `knactor check` and `apply` do. Without
/// schemas a Sync spec is checked for its form and SQL syntax only.
pub fn check(file: &SpecFile, schemas: Option<&StoreSchemas>) -> Result<Checked, ApplyError> {
    match kind_of(file).map_err(ApplyError::Invalid)?.as_str() {
        "Cast" => CastPlan::load(file, schemas.map(|s| &s.objects))
            .map(|(plan, warnings)| Checked::Cast(plan, warnings))
            .map_err(ApplyError::Invalid),
        "Sync" => SyncPlan::load(file, schemas.map(|s| &s.logs))
            .map(Checked::Sync)
            .map_err(ApplyError::Invalid),
        other => Err(ApplyError::Unsupported(format!(
            "{}: `{other}` is not an integrator spec: expected kind Cast or Sync",
            file.path().display()
        ))),
    }
}

/// The warnings about ingest fields `plan` leaves unfilled that no spec of `others` fills
/// either, one per store: in an app composed of several specs, one may fill what another does
/// not.
pub fn unfilled_warnings<'a>(
    plan: &CastPlan,
    others: impl IntoIterator<Item = &'a Filled> + Clone,
) -> Vec<Diagnostic> {
    let filled_elsewhere = |store: &StoreRef, field: &String| {
        others.clone().into_iter().any(|f| f.contains(&(store.clone(), field.clone())))
    };
    let mut by_store: BTreeMap<&StoreRef, Vec<&integrators::cast::Unfilled>> = BTreeMap::new();
    for unfilled in plan.unfilled.iter().filter(|u| !filled_elsewhere(&u.store, &u.field)) {
        by_store.entry(&unfilled.store).or_default().push(unfilled);
    }
    let warning = |(store, fields): (&StoreRef, Vec<&integrators::cast::Unfilled>)| match &fields[..]
    {
        [one] => one.warning.clone(),
        all => {
            let names: Vec<String> = all.iter().map(|u| format!("`{}`", u.field)).collect();
            let message = format!(
                "ingest fields {} of {store} are filled by no edge (a client may write them)",
                names.join(", ")
            );
            Diagnostic { message, ..all[0].warning.clone() }
        }
    };
    by_store.into_iter().map(warning).collect()
}

/// Why there is no shadow of `name`: no spec of that name runs, or it runs no shadow.
fn no_shadow(running: &BTreeMap<String, Running>, name: &str) -> ApplyError {
    ApplyError::NotRunning(match running.contains_key(name) {
        true => format!("`{name}` runs no shadow: apply a new version with --shadow first"),
        false => format!("no spec `{name}` is running"),
    })
}

/// How the warning starts that a shadow runs on beside a spec re-applied.
const SHADOW_RUNS_ON: &str = "warning: the shadow beside";

/// The warnings of applying `checked` (with `footprint`) beside the `running` specs, or the
/// conflicts with them that refuse it.
fn beside(
    running: &BTreeMap<String, Running>,
    footprint: &Footprint,
    checked: &Checked,
) -> Result<Vec<String>, ApplyError> {
    let conflicts = footprint.conflicts(running.values().map(|r| &r.footprint));
    if !conflicts.is_empty() {
        return Err(ApplyError::Invalid(Diagnostics(conflicts)));
    }
    let Checked::Cast(plan, found) = checked else { return Ok(Vec::new()) };
    let others = running.iter().filter(|(n, _)| **n != plan.name).filter_map(|(_, r)| {
        if let Integrator::Cast(_, filled) = &r.integrator { Some(filled) } else { None }
    });
    let unfilled = unfilled_warnings(plan, others);
    Ok(found.0.iter().chain(&unfilled).map(ToString::to_string).collect())
}

/// A running integrator.
#[derive(Debug)]
enum Integrator {
    /// A Cast spec, and the fields it fills.
    Cast(CastIntegrator, Filled),
    Sync(SyncIntegrator),
}

/// A running spec: its integrator, how many times it was applied, and when last.
#[derive(Debug)]
struct Running {
    integrator: Integrator,
    /// A new version run beside it, if one is.
    shadow: Option<Shadow>,
    version: u64,
    applied: std::time::SystemTime,
    /// What it does to the composition, to check the next specs applied beside it.
    footprint: Footprint,
    /// The file it was applied from, to check it again when a store's schema changes.
    file: SpecFile,
    /// What its edges or flows move between stores.
    links: Vec<Link>,
}

/// A spec stopped for a moment, while a knactor switches to a new manifest.
#[derive(Debug)]
pub struct Stopped {
    name: String,
    file: SpecFile,
    version: u64,
}

impl Stopped {
    /// The spec's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file it ran from.
    pub fn file(&self) -> &SpecFile {
        &self.file
    }
}

/// A running spec, as `GET /v1/specs` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecStatus {
    /// The spec's name.
    pub name: String,
    /// `Cast` or `Sync`.
    pub kind: String,
    /// How many times it has been applied since it started: 1, then one more per re-apply.
    pub version: u64,
    /// When it was last applied, as RFC 3339 (UTC, seconds).
    pub applied: String,
    /// When the shadow run beside it started, if one runs (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<String>,
    /// Cast: per store it watches, the version up to which it has handled every change (as of
    /// its last checkpoint, at most 100 ms old while changes flow).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub handled: BTreeMap<String, u64>,
}

/// What one Cast edge or Sync flow of a running spec moves between stores: an arrow of the
/// composition graph.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// The spec.
    pub spec: String,
    /// `Cast` or `Sync`.
    pub kind: String,
    /// The edge or flow.
    pub name: String,
    /// The stores whose changes (or records) it takes.
    pub from: Vec<String>,
    /// The stores it reads without being triggered by them (a Cast edge's other inputs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reads: Vec<String>,
    /// The store it writes (or appends to).
    pub to: String,
}

impl Link {
    /// The links of the edges or flows of `checked`.
    fn of(checked: &Checked) -> Vec<Link> {
        match checked {
            Checked::Cast(plan, _) => Link::of_cast(plan).collect(),
            Checked::Sync(plan) => Link::of_sync(plan).collect(),
        }
    }

    /// The links of `plan`'s edges.
    fn of_cast(plan: &CastPlan) -> impl Iterator<Item = Link> + '_ {
        let store = |alias: &String| plan.inputs.get(alias).map(|input| input.store.to_string());
        plan.edges.iter().map(move |edge| {
            let from: Vec<String> = edge.spec.from.iter().filter_map(store).collect();
            let to = store(&edge.spec.to).unwrap_or_default();
            let reads = edge.reads.iter().filter_map(store);
            let reads = reads.filter(|s| *s != to && !from.contains(s)).collect();
            let (spec, kind, name) = (plan.name.clone(), "Cast".to_owned(), edge.spec.name.clone());
            Link { spec, kind, name, from, reads, to }
        })
    }

    /// The links of `plan`'s flows.
    fn of_sync(plan: &SyncPlan) -> impl Iterator<Item = Link> + '_ {
        plan.flows.iter().map(|flow| Link {
            spec: plan.name.clone(),
            kind: "Sync".to_owned(),
            name: flow.spec.name.clone(),
            from: flow.sources.iter().map(StoreRef::to_string).collect(),
            reads: Vec::new(),
            to: flow.to.to_string(),
        })
    }
}

/// A shadow run stopped (`knactor delete spec NAME --shadow`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShadowStatus {
    /// The spec's name.
    pub name: String,
    /// When the shadow had started, as RFC 3339.
    pub since: String,
}

impl Integrator {
    /// Stops it, checkpointing its progress.
    async fn stop(self) {
        match self {
            Integrator::Cast(cast, _) => cast.stop().await,
            Integrator::Sync(sync) => sync.stop().await,
        }
    }

    /// Stops it for good: as [`stop`](Self::stop), and it consumes its stores no more (the
    /// state retention stops waiting for it) until it is applied again.
    async fn retire(self) {
        match self {
            Integrator::Cast(cast, _) => cast.retire().await,
            Integrator::Sync(sync) => sync.retire().await,
        }
    }
}

impl Running {
    /// Just started at `version`, applied now from `file`, whose check gave `footprint` and
    /// `links`.
    fn new(
        integrator: Integrator,
        version: u64,
        (footprint, links): (Footprint, Vec<Link>),
        file: SpecFile,
    ) -> Self {
        let applied = std::time::SystemTime::now();
        Running { integrator, shadow: None, version, applied, footprint, file, links }
    }

    /// `Cast` or `Sync`.
    fn kind(&self) -> &'static str {
        match &self.integrator {
            Integrator::Cast(..) => "Cast",
            Integrator::Sync(_) => "Sync",
        }
    }

    /// As listed, under `name`.
    fn status(&self, name: &str) -> SpecStatus {
        SpecStatus {
            name: name.to_owned(),
            kind: self.kind().to_owned(),
            version: self.version,
            applied: humantime::format_rfc3339_seconds(self.applied).to_string(),
            shadow: self.shadow.as_ref().map(Shadow::since),
            handled: match &self.integrator {
                Integrator::Cast(cast, _) => {
                    cast.stats().handled().into_iter().map(|(s, v)| (s.to_string(), v)).collect()
                }
                Integrator::Sync(_) => BTreeMap::new(),
            },
        }
    }
}

/// The handle a running spec's integrator acts through.
#[derive(Clone, Debug)]
enum Handle {
    Cast(Arc<ScopedExchange>),
    Sync(Arc<ScopedLog>),
}

/// The running integrators of an app, by spec name.
pub struct Specs {
    /// What specs are checked against; changed when a knactor's manifest is applied.
    schemas: std::sync::RwLock<StoreSchemas>,
    running: Mutex<BTreeMap<String, Running>>,
    /// Their handles, reachable while an apply holds `running`.
    handles: std::sync::RwLock<BTreeMap<String, Handle>>,
    /// Held for reading by each apply or delete, and for writing while a knactor's manifest is
    /// applied (see [`Specs::exclusive`]).
    switch: tokio::sync::RwLock<()>,
    pushdown: bool,
    logins: Logins,
    policies: Policies,
    /// Where the integrators' work is counted.
    metrics: Option<Arc<Metrics>>,
    /// Where what passes through the edges goes, to the taps open on them.
    taps: Arc<Taps>,
}

impl std::fmt::Debug for Specs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Specs").finish_non_exhaustive()
    }
}

impl Specs {
    /// No specs yet, over `exchanges` whose stores have `schemas`.
    pub fn new(exchanges: Exchanges, schemas: StoreSchemas) -> Self {
        let logins = Logins::shared(exchanges);
        let policies = Policies::default();
        let (running, handles) = (Mutex::default(), std::sync::RwLock::default());
        let schemas = std::sync::RwLock::new(schemas);
        let switch = tokio::sync::RwLock::default();
        let (metrics, taps) = (None, Arc::default());
        Specs {
            schemas,
            running,
            handles,
            switch,
            pushdown: false,
            logins,
            policies,
            metrics,
            taps,
        }
    }

    /// Has Cast integrators push the edges they can down into the exchange (Redis), which
    /// then runs them inside the writes of their source.
    pub fn with_pushdown(mut self, pushdown: bool) -> Self {
        self.pushdown = pushdown;
        self
    }

    /// Has each integrator act through the exchanges `logins` open for it (by default, those
    /// given to [`Specs::new`]).
    pub fn with_logins(mut self, logins: Logins) -> Self {
        self.logins = logins;
        self
    }

    /// Counts the integrators' work in `metrics` (each edge's and flow's).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// What passes through the edges and flows of the running specs.
    pub fn taps(&self) -> &Arc<Taps> {
        &self.taps
    }

    /// Where an integrator tells what it does: the metrics and the taps.
    fn observers(&self) -> Arc<Observers> {
        Arc::new(Observers { metrics: self.metrics.clone(), taps: self.taps.clone() })
    }

    /// The edges (`Cast`) or flows (`Sync`) of the running spec `name`, when it is of `kind`;
    /// `None` when no spec of that name and kind runs.
    pub async fn parts(&self, name: &str, kind: &str) -> Option<Vec<String>> {
        let running = self.running.lock().await;
        let spec = running.get(name).filter(|spec| spec.kind() == kind)?;
        let checked = check(&spec.file, Some(&self.schemas())).ok()?;
        Some(checked.parts().into_iter().map(str::to_owned).collect())
    }

    /// Grants each integrator what `policies` declare for it, besides what its spec needs.
    pub fn with_policies(mut self, policies: Policies) -> Self {
        self.policies = policies;
        self
    }

    /// The schemas specs are checked against.
    pub fn schemas(&self) -> StoreSchemas {
        self.schemas.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Checks the specs applied from now on against `schemas`.
    pub fn set_schemas(&self, schemas: StoreSchemas) {
        *self.schemas.write().unwrap_or_else(|e| e.into_inner()) = schemas;
    }

    /// The problems found when the specs `given` (checked, with their files) are to replace or
    /// join the running ones, and every store has the schema of `schemas`: each running spec
    /// but those given, checked against `schemas`, and each given spec beside the others
    /// (field cycles, double writers, Sync loops); with the file:line:column of their files.
    pub async fn recheck(
        &self,
        schemas: &StoreSchemas,
        given: &[(&SpecFile, &Checked)],
    ) -> Vec<Diagnostic> {
        let running = self.running.lock().await;
        let is_given = |name: &str| given.iter().any(|(_, checked)| checked.name() == name);
        let others = running.iter().filter(|(name, _)| !is_given(name));
        let mut problems = Vec::new();
        let mut footprints = Vec::new();
        for (_, spec) in others {
            if let Err(e) = check(&spec.file, Some(schemas)) {
                problems.extend(e.diagnostics(&spec.file));
            }
            footprints.push(spec.footprint.clone());
        }
        for (file, checked) in given {
            let footprint = Footprint::of(file, checked);
            problems.extend(footprint.conflicts(&footprints));
            footprints.push(footprint);
        }
        problems
    }

    /// Checks the spec in `file`; starts it, or swaps it for the running spec of its name.
    pub async fn apply(&self, file: &SpecFile) -> Result<ApplyReport, ApplyError> {
        let _switch = self.switch.read().await;
        self.apply_now(file).await
    }

    /// Holds off every other apply and delete of a spec until the guard is dropped: a
    /// knactor's manifest is checked against the specs running and switched with them
    /// unchanged. Meanwhile [`Specs::apply_now`] applies.
    pub async fn exclusive(&self) -> tokio::sync::RwLockWriteGuard<'_, ()> {
        self.switch.write().await
    }

    /// [`Specs::apply`], by the holder of [`Specs::exclusive`].
    pub async fn apply_now(&self, file: &SpecFile) -> Result<ApplyReport, ApplyError> {
        self.apply_locked(&mut *self.running.lock().await, file, 1).await
    }

    /// [`Specs::apply_now`], with the running specs in hand; a spec not running starts at
    /// version `first`.
    async fn apply_locked(
        &self,
        running: &mut BTreeMap<String, Running>,
        file: &SpecFile,
        first: u64,
    ) -> Result<ApplyReport, ApplyError> {
        let checked = check(file, Some(&self.schemas()))?.with_policies(&self.policies);
        let name = checked.name().to_owned();
        let kind = checked.kind().to_owned();
        let added = checked.parts().into_iter().map(str::to_owned).collect();
        let footprint = Footprint::of(file, &checked);
        let links = Link::of(&checked);
        let mut warnings = beside(running, &footprint, &checked)?;
        let version = running.get(&name).map_or(first, |r| r.version + 1);
        let diff = match (running.get_mut(&name).map(|r| &mut r.integrator), checked) {
            (Some(Integrator::Cast(cast, filled)), Checked::Cast(mut plan, _)) => {
                plan.version = version;
                let fills = plan.filled();
                let rights = || cast.exchange().rights();
                let diff = self.swap(rights, plan.rights(), cast.apply(plan)).await?;
                *filled = fills;
                Some(diff)
            }
            (Some(Integrator::Sync(sync)), Checked::Sync(plan)) => {
                let rights = || sync.log().rights();
                Some(self.swap(rights, plan.rights(), sync.apply(plan)).await?)
            }
            (Some(_), _) => {
                return Err(ApplyError::Unsupported(format!(
                    "a spec of another kind is already running as `{name}`"
                )));
            }
            (None, Checked::Cast(mut plan, _)) => {
                plan.version = version;
                let filled = plan.filled();
                let observer = Some(self.observers() as Arc<dyn CastObserver>);
                let options =
                    CastOptions { pushdown: self.pushdown, observer, ..CastOptions::default() };
                let exchange = self.logins.exchange_for(&plan.rights()).await?;
                let cast = CastIntegrator::start_with(exchange, plan, options).await?;
                self.handles_mut().insert(name.clone(), Handle::Cast(cast.exchange().clone()));
                let integrator = Integrator::Cast(cast, filled);
                running.insert(
                    name.clone(),
                    Running::new(
                        integrator,
                        version,
                        (footprint.clone(), links.clone()),
                        file.clone(),
                    ),
                );
                None
            }
            (None, Checked::Sync(plan)) => {
                let log = self.logins.log_for(&plan.rights()).await?;
                let observer = Some(self.observers() as Arc<dyn SyncObserver>);
                let options = SyncOptions { observer, ..SyncOptions::default() };
                let sync = SyncIntegrator::start(log, plan, options).await?;
                self.handles_mut().insert(name.clone(), Handle::Sync(sync.log().clone()));
                let integrator = Integrator::Sync(sync);
                running.insert(
                    name.clone(),
                    Running::new(
                        integrator,
                        version,
                        (footprint.clone(), links.clone()),
                        file.clone(),
                    ),
                );
                None
            }
        };
        let spec = running.get_mut(&name).expect("applied above");
        if diff.is_some() {
            spec.version = version;
            spec.applied = std::time::SystemTime::now();
            spec.footprint = footprint;
            spec.links = links;
            spec.file = file.clone();
            if spec.shadow.is_some() {
                warnings.push(format!(
                    "{SHADOW_RUNS_ON} `{name}` runs on: `knactor diff spec {name}` now compares it with this version"
                ));
            }
        }
        let pushed_down = match &spec.integrator {
            Integrator::Cast(cast, _) => cast.stats().pushed_down.load(Ordering::Relaxed),
            Integrator::Sync(_) => 0,
        };
        let created = diff.is_none();
        let PlanDiff { added, removed, changed } =
            diff.unwrap_or(PlanDiff { added, ..PlanDiff::default() });
        let shadow = false;
        Ok(ApplyReport {
            name,
            kind,
            created,
            added,
            removed,
            changed,
            warnings,
            pushed_down,
            shadow,
        })
    }

    /// Checks the spec in `file` and starts it as a shadow run beside the running spec of its
    /// name and kind, in place of the shadow running there (see [`crate::shadow`]).
    pub async fn apply_shadow(&self, file: &SpecFile) -> Result<ApplyReport, ApplyError> {
        let _switch = self.switch.read().await;
        let checked = check(file, Some(&self.schemas()))?.with_policies(&self.policies);
        let name = checked.name().to_owned();
        let footprint = Footprint::of(file, &checked);
        let mut running = self.running.lock().await;
        let mut warnings = beside(&running, &footprint, &checked)?;
        let kind = checked.kind().to_owned();
        let Some(live) = running.get_mut(&name).filter(|live| live.kind() == kind) else {
            return Err(ApplyError::NotRunning(format!(
                "no {kind} spec `{name}` runs to shadow: apply it without --shadow first"
            )));
        };
        let schemas = self.schemas();
        let started = match (checked, check(&live.file, Some(&schemas))?) {
            (Checked::Cast(mut plan, _), Checked::Cast(live_plan, _)) => {
                // The version it would be, promoted.
                plan.version = live.version + 1;
                let diff = plan.diff(&live_plan);
                match self.logins.exchange_for(&plan.shadow_rights()).await {
                    Ok(exchange) => {
                        Shadow::cast(exchange, plan, file.clone()).await.map_err(Into::into)
                    }
                    Err(e) => Err(e.into()),
                }
                .map(|shadow| (diff, shadow))
            }
            (Checked::Sync(plan), Checked::Sync(live_plan)) => {
                let diff = plan.diff(&live_plan);
                match self.logins.log_for(&plan.shadow_rights()).await {
                    Ok(log) => Shadow::sync(log, plan, file.clone(), &schemas.logs)
                        .await
                        .map_err(Into::into),
                    Err(e) => Err(e.into()),
                }
                .map(|shadow| (diff, shadow))
            }
            _ => unreachable!("a {kind} spec runs as `{name}`"),
        };
        let (PlanDiff { added, removed, changed }, shadow) = match started {
            Ok(started) => started,
            // A shadow that does not start leaves the one before running, with its rights.
            Err(e) => {
                let principal = shadow_principal(&name);
                let restored = match &live.shadow {
                    Some(old) => self.logins.update(&old.rights()).await,
                    None => self.logins.retire(&principal).await,
                };
                if let Err(error) = restored {
                    tracing::error!(principal, %error, "cannot restore the shadow's Redis user");
                }
                return Err(e);
            }
        };
        if let Some(old) = live.shadow.replace(shadow) {
            old.stop().await;
        }
        let destinations: BTreeSet<&str> = footprint.appends_to().collect();
        for (other, spec) in running.iter().filter(|(other, _)| **other != name) {
            for store in spec.footprint.appends_to().filter(|s| destinations.contains(s)) {
                warnings.push(format!(
                    "warning: `{other}` appends to {store} too: its records show as missing from the shadow in `knactor diff spec {name}`"
                ));
            }
        }
        let (created, pushed_down, shadow) = (false, 0, true);
        Ok(ApplyReport {
            name,
            kind,
            created,
            added,
            removed,
            changed,
            warnings,
            pushed_down,
            shadow,
        })
    }

    /// Why there is no shadow of `name` to compare, promote or stop (see [`no_shadow`]).
    pub async fn no_shadow(&self, name: &str) -> ApplyError {
        no_shadow(&*self.running.lock().await, name)
    }

    /// Where the shadow of the running spec `name` wrote otherwise than the live spec; `None`
    /// when it runs no shadow (see [`Specs::no_shadow`]).
    pub async fn diff(
        &self,
        name: &str,
    ) -> Result<Option<ShadowDiff>, data_exchange::ExchangeError> {
        // Compared without holding up applies and deletes meanwhile.
        let view =
            self.running.lock().await.get(name).and_then(|r| Some(r.shadow.as_ref()?.view()));
        let Some(view) = view else { return Ok(None) };
        Ok(Some(view.diff(&**self.logins.objects(), &**self.logins.log()).await?))
    }

    /// Applies the shadow of the running spec `name` as its live version, at an event boundary
    /// (every change after the swap handled by it, none by both), then stops the shadow. A
    /// refused apply leaves the shadow running.
    pub async fn promote(&self, name: &str) -> Result<ApplyReport, ApplyError> {
        let _switch = self.switch.read().await;
        let mut running = self.running.lock().await;
        let Some(file) = running.get(name).and_then(|r| r.shadow.as_ref()).map(|s| s.file.clone())
        else {
            return Err(no_shadow(&running, name));
        };
        let mut report = self.apply_locked(&mut running, &file, 1).await?;
        // Applied live: the shadow is no longer a new version (the warning of one running on
        // is not this apply's).
        report.warnings.retain(|w| !w.starts_with(SHADOW_RUNS_ON));
        if let Some(shadow) = running.get_mut(name).and_then(|r| r.shadow.take()) {
            self.end_shadow(shadow).await;
        }
        Ok(report)
    }

    /// Stops the shadow run beside the spec `name`; `None` when it runs none.
    pub async fn delete_shadow(&self, name: &str) -> Option<ShadowStatus> {
        // Held until its principal is retired: a shadow started meanwhile would lose its user.
        let mut running = self.running.lock().await;
        let shadow = running.get_mut(name).and_then(|r| r.shadow.take())?;
        let since = shadow.since();
        self.end_shadow(shadow).await;
        Some(ShadowStatus { name: name.to_owned(), since })
    }

    /// Stops `shadow`, and retires its principal: on Redis its user is deleted. A failure to
    /// delete the user is logged: it may then still read what the shadow read.
    async fn end_shadow(&self, shadow: Shadow) {
        let principal = shadow.rights().principal().to_owned();
        shadow.stop().await;
        if let Err(error) = self.logins.retire(&principal).await {
            tracing::error!(principal, %error, "cannot delete the shadow's Redis user");
        }
    }

    /// Runs `apply`, the swap of a running spec whose handle has `rights()` for a version
    /// needing `next`: its exchange user may do what either version needs during the swap,
    /// then what the handle has after it, whatever the swap got to. A failure to narrow the
    /// user after a swap is logged, not returned: the new version runs.
    async fn swap<E>(
        &self,
        rights: impl Fn() -> Arc<Rights>,
        next: Rights,
        apply: impl Future<Output = Result<PlanDiff, E>>,
    ) -> Result<PlanDiff, ApplyError>
    where
        ApplyError: From<E>,
    {
        let mut either = (*rights()).clone();
        either.extend(&next);
        self.logins.update(&either).await?;
        let diff = apply.await;
        if let Err(error) = self.logins.update(&rights()).await {
            let principal = either.principal();
            tracing::error!(principal, %error, "the spec's Redis user keeps the rights of both versions until the next apply");
        }
        Ok(diff?)
    }

    /// The exchange handle of the running Cast spec `name`, held to its rights.
    pub fn handle(&self, name: &str) -> Option<Arc<ScopedExchange>> {
        match self.handles().get(name)? {
            Handle::Cast(handle) => Some(handle.clone()),
            Handle::Sync(_) => None,
        }
    }

    /// The Log exchange handle of the running Sync spec `name`, held to its rights.
    pub fn log_handle(&self, name: &str) -> Option<Arc<ScopedLog>> {
        match self.handles().get(name)? {
            Handle::Sync(handle) => Some(handle.clone()),
            Handle::Cast(_) => None,
        }
    }

    /// The rights of the running spec `name`.
    pub fn rights(&self, name: &str) -> Option<Arc<Rights>> {
        Some(match self.handles().get(name)? {
            Handle::Cast(handle) => handle.rights(),
            Handle::Sync(handle) => handle.rights(),
        })
    }

    fn handles(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Handle>> {
        self.handles.read().unwrap_or_else(|e| e.into_inner())
    }

    fn handles_mut(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Handle>> {
        self.handles.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Per running Cast spec and store it watches, how many of the store's versions it has
    /// yet to handle: `(spec, store, versions)`. `None` while an apply holds the specs, and
    /// where a store's version is not its own (Kubernetes).
    pub async fn lags(
        &self,
    ) -> Result<Option<Vec<(String, String, u64)>>, data_exchange::ExchangeError> {
        let exchange = self.logins.objects();
        if !exchange.versions_per_store() {
            return Ok(None);
        }
        let handled: Vec<(String, BTreeMap<StoreRef, u64>)> = {
            let Ok(running) = self.running.try_lock() else { return Ok(None) };
            let cast = running.iter().filter_map(|(name, spec)| match &spec.integrator {
                Integrator::Cast(cast, _) => Some((name.clone(), cast.stats().handled())),
                Integrator::Sync(_) => None,
            });
            cast.collect()
        };
        let mut versions: BTreeMap<StoreRef, u64> = BTreeMap::new();
        let mut lags = Vec::new();
        for (spec, positions) in handled {
            for (store, position) in positions {
                let version = match versions.get(&store) {
                    Some(&version) => version,
                    None => {
                        let version = exchange.version(&store).await?;
                        versions.insert(store.clone(), version);
                        version
                    }
                };
                lags.push((spec.clone(), store.to_string(), version.saturating_sub(position)));
            }
        }
        Ok(Some(lags))
    }

    /// What the running specs' edges and flows move between stores, spec by spec.
    pub async fn links(&self) -> Vec<Link> {
        let running = self.running.lock().await;
        running.values().flat_map(|spec| spec.links.iter().cloned()).collect()
    }

    /// Per running Cast spec, how long the change it handles now has waited since it was
    /// received (see [`integrators::cast::CastStats::pending_for`]); `None` while an apply
    /// holds the specs.
    pub fn pending(&self) -> Option<Vec<(String, Duration)>> {
        let running = self.running.try_lock().ok()?;
        let cast = running.iter().filter_map(|(name, spec)| match &spec.integrator {
            Integrator::Cast(cast, _) => Some((name.clone(), cast.stats().pending_for())),
            Integrator::Sync(_) => None,
        });
        Some(cast.collect())
    }

    /// The running specs, by name.
    pub async fn list(&self) -> Vec<SpecStatus> {
        let running = self.running.lock().await;
        running.iter().map(|(name, spec)| spec.status(name)).collect()
    }

    /// Stops the running spec `name` at an event boundary, as a process stopping does: its
    /// checkpoint is kept, so applying it again resumes where it stopped. Its principal keeps
    /// no right (on Redis, its user reaches nothing). `None` when no spec of that name runs.
    pub async fn delete(&self, name: &str) -> Result<Option<SpecStatus>, LoginError> {
        let _switch = self.switch.read().await;
        let mut running = self.running.lock().await;
        let Some(mut spec) = running.remove(name) else { return Ok(None) };
        let handle = self.handles_mut().remove(name);
        let status = spec.status(name);
        let shadow = spec.shadow.take();
        spec.integrator.retire().await;
        // Streams opened through its handle (an HTTP watch or tail) end with a denial.
        let none = Rights::new(integrators::cast::principal(name));
        match handle {
            Some(Handle::Cast(handle)) => handle.set_rights(none.clone()),
            Some(Handle::Sync(handle)) => handle.set_rights(none.clone()),
            None => {}
        }
        let revoked = self.logins.update(&none).await;
        if let Some(shadow) = shadow {
            self.end_shadow(shadow).await;
        }
        if let Some(metrics) = &self.metrics {
            metrics.forget_spec(name);
        }
        self.taps.stopped(name);
        revoked?;
        Ok(Some(status))
    }

    /// Stops the running specs of `names` at an event boundary, keeping their checkpoints,
    /// to be started again with [`Specs::restart`] in a moment; their principals keep their
    /// rights meanwhile.
    pub async fn stop_for_reapply(&self, names: &[&str]) -> Vec<Stopped> {
        let mut running = self.running.lock().await;
        let mut stopped = Vec::new();
        for name in names {
            if let Some(spec) = running.remove(*name) {
                self.handles_mut().remove(*name);
                if spec.shadow.is_some() {
                    tracing::warn!(
                        spec = name,
                        "the shadow beside it stops; apply it again with --shadow to go on comparing"
                    );
                }
                let (file, version) = (spec.file.clone(), spec.version);
                stopped.push(Stopped { name: (*name).to_owned(), file, version });
                self.stop_running(spec).await;
            }
        }
        stopped
    }

    /// Starts a spec stopped by [`Specs::stop_for_reapply`] again, from its checkpoint: as it
    /// was (`None`), or applying `file`, as a re-apply does: one version more, and a report of
    /// what changed against the version stopped.
    pub async fn restart(
        &self,
        stopped: &Stopped,
        file: Option<&SpecFile>,
    ) -> Result<ApplyReport, ApplyError> {
        let mut running = self.running.lock().await;
        let new = file.unwrap_or(&stopped.file);
        let version = stopped.version + u64::from(file.is_some());
        let started = self.apply_locked(&mut running, new, version).await?;
        let diff = match (check(&stopped.file, None), check(new, None)) {
            (Ok(Checked::Cast(old, _)), Ok(Checked::Cast(new, _))) => new.diff(&old),
            (Ok(Checked::Sync(old)), Ok(Checked::Sync(new))) => new.diff(&old),
            _ => PlanDiff::default(),
        };
        let PlanDiff { added, removed, changed } = diff;
        Ok(ApplyReport { created: false, added, removed, changed, ..started })
    }

    /// Stops every integrator, checkpointing its progress.
    pub async fn stop(&self) {
        let running = std::mem::take(&mut *self.running.lock().await);
        self.handles_mut().clear();
        for spec in running.into_values() {
            self.stop_running(spec).await;
        }
    }

    /// Stops `spec`, and ends the shadow beside it.
    async fn stop_running(&self, spec: Running) {
        if let Some(shadow) = spec.shadow {
            self.end_shadow(shadow).await;
        }
        spec.integrator.stop().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_plural_but_for_one() {
        assert_eq!(counted(1, part("Cast")), "1 edge");
        assert_eq!(counted(2, part("Cast")), "2 edges");
        assert_eq!(counted(1, part("Sync")), "1 flow");
        assert_eq!(counted(0, "record"), "0 records");
    }
}
