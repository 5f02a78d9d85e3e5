//! An app (DESIGN §8): its manifest and knactors loaded from a directory, then run with their
//! stores on one exchange, their reconcilers, and the HTTP API.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use data_exchange::access::Rights;
use data_exchange::{EmbeddedLog, ExchangeError, LogExchange, ObjectExchange, StoreRef};
use integrators::source::{Diagnostics, SpecFile};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::api::{self, Access, ApiState, Principal, TokenError, Tokens};
use crate::composition::Footprint;
use crate::knactors::{Knactors, KnactorsOf};
use crate::logins::{LoginError, Logins, knactor_rights};
use crate::manifest::{self, AppManifest, ExchangeKind, KnactorManifest};
use crate::metrics::Metrics;
use crate::policy::{self, Policies};
use crate::reconciler::Registry;
use crate::specs::{self, ApplyError, Checked, Filled, Specs, StoreSchemas};

/// The file in an app directory that holds the `App` manifest.
pub const APP_FILE: &str = "app.yaml";

/// Why an app cannot start.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A manifest is wrong.
    #[error("{0}")]
    Spec(#[from] Diagnostics),
    /// The exchange URL names no exchange this build can open.
    #[error("{0}")]
    UnsupportedExchange(String),
    /// The exchange could not be opened or refused a store.
    #[error(transparent)]
    Exchange(Box<ExchangeError>),
    /// A knactor names a reconciler this binary does not have.
    #[error(
        "knactor `{knactor}` wants reconciler `{reconciler}`, which is not registered (registered: {known})"
    )]
    UnknownReconciler {
        /// The knactor.
        knactor: String,
        /// The reconciler it names.
        reconciler: String,
        /// The registered names.
        known: String,
    },
    /// `--only` names a knactor the app does not have.
    #[error("the app has no knactor `{0}`")]
    UnknownKnactor(String),
    /// The exchange holds another schema for a store than the app's manifest gives it.
    #[error(
        "{0}: the app's manifest is not the one the exchange's schema came from; start from that manifest, or pass --evolve-schemas to make the exchange hold this one (refused when an object stored does not fit it)"
    )]
    SchemaDiffers(Box<ExchangeError>),
    /// An integrator spec could not be started.
    #[error(transparent)]
    Apply(Box<ApplyError>),
    /// A knactor's or integrator's own exchange could not be opened.
    #[error(transparent)]
    Login(#[from] LoginError),
    /// Serving the API failed.
    #[error("serving the API: {0}")]
    Io(#[from] std::io::Error),
}

impl From<ApplyError> for AppError {
    fn from(e: ApplyError) -> Self {
        AppError::Apply(Box::new(e))
    }
}

impl From<ExchangeError> for AppError {
    fn from(e: ExchangeError) -> Self {
        AppError::Exchange(Box::new(e))
    }
}

/// An app's manifests, read and checked.
#[derive(Clone, Debug)]
pub struct AppConfig {
    /// The app directory; relative paths in the manifest are relative to it.
    pub dir: PathBuf,
    /// The `App` manifest.
    pub manifest: AppManifest,
    /// The knactors, in file order.
    pub knactors: Vec<KnactorManifest>,
    /// The integrator specs (Cast and Sync), checked against the knactors' stores.
    pub integrators: Vec<PathBuf>,
    /// The fields each Cast spec fills, by spec name.
    pub filled: BTreeMap<String, Filled>,
    /// The names of the Sync specs.
    pub syncs: BTreeSet<String>,
    /// What each integrator spec does to the composition, in file order.
    pub footprints: Vec<Footprint>,
    /// The grants its `Policy` manifests declare.
    pub policies: Policies,
}

impl AppConfig {
    /// Reads `dir/app.yaml` and the knactor manifests it names, reporting every problem found.
    pub fn load(dir: &Path) -> Result<Self, Diagnostics> {
        Self::load_for(dir, None)
    }

    /// [`load`](Self::load), checking too that every store can live on `exchange` (a URL;
    /// `None` for the manifest's own): on Kubernetes each Object store must become a
    /// CustomResourceDefinition, so its names and its schema are checked here, with
    /// file:line:column, rather than refused by the apiserver at run time.
    pub fn load_for(dir: &Path, exchange: Option<&str>) -> Result<Self, Diagnostics> {
        let file = SpecFile::read(&dir.join(APP_FILE))?;
        let manifest = manifest::load_app(&file)?;
        let on_kube = manifest::is_kube_url(exchange.unwrap_or(&manifest.spec.exchange.object));
        let paths = manifest::expand_globs(&file, dir, &manifest.spec.knactors, "knactors")?;
        let mut problems = Vec::new();
        let mut knactors: Vec<KnactorManifest> = Vec::new();
        for path in paths {
            let file = SpecFile::read(&path)?;
            match manifest::load_knactor(&file) {
                Ok(k) if knactors.iter().any(|o| o.metadata.name == k.metadata.name) => {
                    let message = format!("knactor `{}` is declared twice", k.metadata.name);
                    problems.push(file.error_at(&["metadata".into(), "name".into()], message));
                }
                Ok(k) => {
                    if on_kube {
                        problems.extend(manifest::check_crds(&file, &k));
                    }
                    knactors.push(k);
                }
                Err(e) => problems.extend(e.0),
            }
        }
        let integrators =
            manifest::expand_globs(&file, dir, &manifest.spec.integrators, "integrators")?;
        let policies = manifest::expand_globs(&file, dir, &manifest.spec.policies, "policies")?;
        let mut config = AppConfig {
            dir: dir.to_owned(),
            manifest,
            knactors,
            integrators,
            filled: BTreeMap::new(),
            syncs: BTreeSet::new(),
            footprints: Vec::new(),
            policies: Policies::default(),
        };
        if problems.is_empty() {
            let schemas = config.schemas();
            for path in &config.integrators {
                let spec = SpecFile::read(path)?;
                let checked = specs::check(&spec, Some(&schemas));
                if let Ok(checked) = &checked {
                    // Each spec beside those before it: a conflict is reported once, in the
                    // later of the two.
                    let footprint = Footprint::of(&spec, checked);
                    problems.extend(footprint.conflicts(&config.footprints));
                    config.footprints.push(footprint);
                }
                match checked {
                    Ok(Checked::Cast(plan, _)) => {
                        config.filled.insert(plan.name.clone(), plan.filled());
                    }
                    Ok(Checked::Sync(plan)) => {
                        config.syncs.insert(plan.name.clone());
                    }
                    Err(e) => problems.extend(e.diagnostics(&spec)),
                }
            }
        }
        if problems.is_empty() {
            let files =
                policies.iter().map(|p| SpecFile::read(p)).collect::<Result<Vec<_>, _>>()?;
            match Policies::load(&files, &config.known()) {
                Ok(policies) => config.policies = policies,
                Err(d) => problems.extend(d.0),
            }
        }
        config.integrators.sort();
        Diagnostics(problems).into_result(config)
    }

    /// The app's name.
    pub fn name(&self) -> &str {
        &self.manifest.metadata.name
    }

    /// Where the API's tokens are kept: `DATA_DIR/tokens`, or `APP_DIR/.knactor/tokens` for an
    /// app without a `dataDir`.
    pub fn token_dir(&self) -> PathBuf {
        match &self.manifest.spec.data_dir {
            Some(data_dir) => self.dir.join(data_dir).join("tokens"),
            None => self.dir.join(".knactor").join("tokens"),
        }
    }

    /// The tokens of the app's principals, created in [`token_dir`](Self::token_dir) at the
    /// first start and read from there after.
    pub fn tokens(&self) -> Result<Tokens, TokenError> {
        Tokens::load_or_create(&self.token_dir(), self.principals())
    }

    /// The app's principals besides the operator and the viewer: its knactors, and its Cast
    /// and Sync specs as integrators.
    pub fn principals(&self) -> Vec<Principal> {
        let knactors = self.knactor_names().map(|k| Principal::Knactor(k.to_owned()));
        let specs = self.filled.keys().chain(&self.syncs);
        knactors.chain(specs.map(|spec| Principal::Integrator(spec.clone()))).collect()
    }

    /// The rights of knactor `knactor`: everything on its own stores, and what the app's
    /// policies grant it.
    pub fn knactor_rights(&self, knactor: &KnactorManifest) -> Rights {
        let mut rights = knactor_rights(knactor);
        self.policies.add_to(&mut rights);
        rights
    }

    /// The rights of each of its principals that acts on the exchanges: its knactors, then its
    /// integrator specs as checked against its stores, with what its policies grant them.
    pub fn rights(&self) -> Result<Vec<Rights>, ApplyError> {
        let mut rights: Vec<Rights> =
            self.knactors.iter().map(|k| self.knactor_rights(k)).collect();
        let schemas = self.schemas();
        for path in &self.integrators {
            let file = SpecFile::read(path).map_err(|e| ApplyError::Invalid(e.into()))?;
            let checked = specs::check(&file, Some(&schemas))?;
            rights.push(checked.with_policies(&self.policies).rights());
        }
        Ok(rights)
    }

    /// What the app's policies are checked against: its principals and stores.
    fn known(&self) -> policy::Known {
        let integrator = |spec: &String| Principal::Integrator(spec.clone()).to_string();
        policy::Known {
            knactors: self.knactor_names().map(|k| format!("knactor:{k}")).collect(),
            casts: self.filled.keys().map(integrator).collect(),
            syncs: self.syncs.iter().map(integrator).collect(),
            objects: self.stores(),
            logs: self.log_stores().into_keys().collect(),
        }
    }

    /// The names of the app's knactors.
    pub fn knactor_names(&self) -> impl Iterator<Item = &str> {
        self.knactors.iter().map(|k| k.metadata.name.as_str())
    }

    /// Connects to the app's exchanges (or `exchange`, a URL for both; a `kube` one for the
    /// Object stores only) and registers every store, with `schemas` saying what to do where
    /// the exchange holds another schema than the manifest. Without Log stores the Log
    /// exchange is an empty in-memory one.
    pub async fn connect(
        &self,
        exchange: Option<&str>,
        schemas: Schemas,
    ) -> Result<Exchanges, AppError> {
        let spec = &self.manifest.spec;
        let url = exchange.unwrap_or(&spec.exchange.object);
        if let Err(message) = manifest::check_exchange_url(url) {
            return Err(AppError::UnsupportedExchange(message));
        }
        let data_dir = spec.data_dir.as_ref().map(|d| self.dir.join(d));
        // Log stores first: one refused (its schema cannot change) stops the start before any
        // Object store's schema is evolved.
        let log_stores = self.log_stores();
        let log = match log_stores.is_empty() {
            true => Arc::new(EmbeddedLog::in_memory()),
            false => {
                data_exchange::log::connect(self.log_url(exchange), data_dir.as_deref()).await?
            }
        };
        for (store, schema) in log_stores {
            log.register(&store, &schema).await?;
        }
        let objects = data_exchange::connect(url, data_dir.as_deref()).await?;
        for knactor in &self.knactors {
            let stores = knactor.spec.stores.iter().filter(|s| s.exchange == ExchangeKind::Object);
            for spec in stores {
                let store = spec.store_ref(&knactor.metadata.name);
                match (objects.register(&store, &spec.schema).await, schemas) {
                    (Ok(()), _) => {}
                    (Err(ExchangeError::SchemaDiffers { version, .. }), Schemas::Evolve) => {
                        let now = crate::migration::evolve(&*objects, &store, spec).await?;
                        tracing::info!(%store, from = version, to = now, "the exchange holds the manifest's schema now");
                    }
                    (Err(e @ ExchangeError::SchemaDiffers { .. }), Schemas::Held) => {
                        return Err(AppError::SchemaDiffers(Box::new(e)));
                    }
                    (Err(e), _) => return Err(e.into()),
                }
            }
        }
        Ok(Exchanges { objects, log })
    }

    /// The Log exchange's URL: `exchange` (the Object exchange's, overriding the manifest's)
    /// unless it is a `kube` one, else the manifest's.
    fn log_url<'a>(&'a self, exchange: Option<&'a str>) -> &'a str {
        match exchange {
            Some(url) if !manifest::is_kube_url(url) => url,
            _ => &self.manifest.spec.exchange.log,
        }
    }

    /// How its knactors and integrators reach the exchanges `shared` (connected as the
    /// administrator, with the stores registered): on Redis without pushdown, each as its own
    /// ACL user (see [`crate::logins`]); else all through `shared` (with pushdown, their Redis
    /// users are deleted, so that the edges pushed down can run in their writes).
    pub async fn logins(
        &self,
        shared: Exchanges,
        options: &AppOptions,
    ) -> Result<Logins, LoginError> {
        let exchange = options.exchange.as_deref();
        let url = exchange.unwrap_or(&self.manifest.spec.exchange.object);
        if options.pushdown {
            return Logins::shared_for_pushdown(shared, url, self).await;
        }
        Logins::per_user(shared, url, self.log_url(exchange), self).await
    }

    /// The schemas of every store, by exchange.
    pub fn schemas(&self) -> StoreSchemas {
        StoreSchemas { objects: self.stores(), logs: self.log_stores() }
    }

    /// Turns every store's retention policy off: everything is kept.
    fn keep_everything(&mut self) {
        for knactor in &mut self.knactors {
            knactor.spec.keep_everything();
        }
    }

    /// Every Object store of every knactor, with its schema.
    pub fn stores(&self) -> BTreeMap<StoreRef, serde_json::Value> {
        self.stores_on(ExchangeKind::Object)
    }

    /// Every Log store of every knactor, with its schema.
    pub fn log_stores(&self) -> BTreeMap<StoreRef, serde_json::Value> {
        self.stores_on(ExchangeKind::Log)
    }

    fn stores_on(&self, kind: ExchangeKind) -> BTreeMap<StoreRef, serde_json::Value> {
        self.knactors
            .iter()
            .flat_map(|k| {
                let stores = k.spec.stores.iter().filter(move |s| s.exchange == kind);
                stores.map(|s| (s.store_ref(&k.metadata.name), s.schema.clone()))
            })
            .collect()
    }
}

/// What registering the app's stores does where the exchange holds another schema for one
/// than the app's manifest (see [`ObjectExchange::register`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Schemas {
    /// Refuses to start: the process would validate the store otherwise than the exchange.
    #[default]
    Held,
    /// Makes the exchange hold the manifest's schema, once every stored object fits it.
    Evolve,
}

/// How to run an app.
#[derive(Clone, Debug, Default)]
pub struct AppOptions {
    /// Overrides the manifest's object exchange URL.
    pub exchange: Option<String>,
    /// Runs only these knactors' reconcilers (all stores are still served).
    pub only: Option<Vec<String>>,
    /// Runs none of the app's integrator specs (they run elsewhere, e.g. `knactor integrate`).
    pub no_integrators: bool,
    /// Pushes the Cast edges the exchange can run itself down into it (Redis).
    pub pushdown: bool,
    /// What to do where the exchange holds another schema than the manifest.
    pub schemas: Schemas,
    /// Keeps every object and record: the stores' retention policies are off, in manifests
    /// applied later too.
    pub keep: bool,
}

/// An app's exchanges, connected, with its stores registered.
#[derive(Clone, Debug)]
pub struct Exchanges {
    /// The Object exchange.
    pub objects: Arc<dyn ObjectExchange>,
    /// The Log exchange.
    pub log: Arc<dyn LogExchange>,
}

/// An app ready to run: its exchange is open and its stores are registered.
pub struct App {
    config: AppConfig,
    exchange: Arc<dyn ObjectExchange>,
    log: Arc<dyn LogExchange>,
    knactors: Knactors,
    /// The integrator spec files this process runs.
    integrators: Vec<PathBuf>,
    metrics: Arc<Metrics>,
    pushdown: bool,
    logins: Logins,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("name", &self.config.name()).finish_non_exhaustive()
    }
}

impl App {
    /// Opens the exchange, registers every store, and prepares the reconcilers to run.
    pub async fn open(
        mut config: AppConfig,
        options: AppOptions,
        registry: &Registry,
    ) -> Result<Self, AppError> {
        if options.keep {
            config.keep_everything();
        }
        let metrics = Arc::new(Metrics::default());
        let mut exchanges = config.connect(options.exchange.as_deref(), options.schemas).await?;
        exchanges.objects = crate::metered::Metered::wrap(exchanges.objects, metrics.clone());
        let Exchanges { objects: exchange, log } = exchanges.clone();
        seed(&config, &*exchange).await?;
        if let Some(only) = &options.only {
            for name in only {
                if !config.knactors.iter().any(|k| &k.metadata.name == name) {
                    return Err(AppError::UnknownKnactor(name.clone()));
                }
            }
        }
        let logins = config.logins(exchanges, &options).await?.with_metrics(metrics.clone());
        let knactors = Knactors::open(KnactorsOf {
            config: config.clone(),
            exchange: exchange.clone(),
            registry: registry.clone(),
            logins: logins.clone(),
            metrics: metrics.clone(),
            only: options.only.clone(),
            keep: options.keep,
            adds_stores: !manifest::is_kube_url(
                options.exchange.as_deref().unwrap_or(&config.manifest.spec.exchange.object),
            ),
        })
        .await?;
        let integrators =
            if options.no_integrators { Vec::new() } else { config.integrators.clone() };
        let pushdown = options.pushdown;
        Ok(App { config, exchange, log, knactors, integrators, metrics, pushdown, logins })
    }

    /// The app's configuration.
    pub fn config(&self) -> &AppConfig {
        &self.config
    }

    /// The Object exchange the app runs on.
    pub fn exchange(&self) -> &Arc<dyn ObjectExchange> {
        &self.exchange
    }

    /// The Log exchange the app runs on.
    pub fn log(&self) -> &Arc<dyn LogExchange> {
        &self.log
    }

    /// Runs the reconcilers and integrators and serves the API on `listener` to the callers
    /// `access` lets in until `shutdown` is cancelled; then stops serving, lets running
    /// reconciles finish, checkpoints the integrators, and returns. Integrator spec files are
    /// watched: an edited spec is re-applied (or rejected, leaving the running one in place).
    pub async fn run(
        self,
        listener: TcpListener,
        access: Access,
        shutdown: CancellationToken,
    ) -> Result<(), AppError> {
        let knactors = Arc::new(self.knactors);
        let mut tasks = JoinSet::new();
        let exchanges = Exchanges { objects: self.exchange.clone(), log: self.log.clone() };
        let specs = Specs::new(exchanges, self.config.schemas());
        let specs = specs.with_pushdown(self.pushdown).with_logins(self.logins);
        let specs = specs.with_policies(self.config.policies.clone());
        let specs = Arc::new(specs.with_metrics(self.metrics.clone()));
        for path in &self.integrators {
            let file = SpecFile::read(path).map_err(Diagnostics::from)?;
            let report = specs.apply(&file).await?;
            let (spec, kind, parts) = (&report.name, &report.kind, &report.added);
            tracing::info!(spec, kind, ?parts, "integrator started");
        }
        // After the specs: each has checkpointed the stores it consumes, so the retention
        // waits for them from its first round.
        knactors.start().await;
        let files = self.integrators.clone();
        tasks.spawn(watch_spec_files(files, specs.clone(), shutdown.clone()));
        let restoring =
            crate::restore::restore_lost_data(knactors.clone(), self.pushdown, shutdown.clone());
        tasks.spawn(restoring);
        let state =
            ApiState::new(self.exchange, knactors.stores(), self.metrics, specs.clone(), access)
                .with_log(self.log, knactors.log_stores())
                .with_knactors(knactors.clone());
        let served = api::serve_apart(listener, state, shutdown.clone()).await;
        shutdown.cancel();
        tasks.join_all().await;
        knactors.stop().await;
        specs.stop().await;
        Ok(served?)
    }
}

/// Creates the seed objects of every store that does not have them yet, on `exchange` (where
/// the stores are registered); objects already there are kept as they are. A store the
/// exchange's principal may not write (a knactor's own, on Kubernetes) is left to one that may:
/// its knactor's process, or the operator's `knactor deploy --apply`. Their writer on record
/// is `seed:KNACTOR`, the knactor's manifest.
pub async fn seed(config: &AppConfig, exchange: &dyn ObjectExchange) -> Result<(), ExchangeError> {
    for knactor in &config.knactors {
        let origin = Arc::new(data_exchange::Origin::by(format!("seed:{}", knactor.metadata.name)));
        for store in &knactor.spec.stores {
            let store_ref = store.store_ref(&knactor.metadata.name);
            for seed in &store.seeds {
                let create = crate::Write::create(&seed.name, seed.data.clone());
                let create = create.by(origin.clone());
                match exchange.write(&store_ref, create).await {
                    Ok(_) | Err(ExchangeError::AlreadyExists { .. }) => {}
                    Err(ExchangeError::Denied(_)) => {
                        tracing::debug!(store = %store_ref, "not ours to seed");
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(())
}

/// How often integrator spec files are checked for edits.
const SPEC_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// Re-applies each spec file when its modification time changes.
async fn watch_spec_files(paths: Vec<PathBuf>, specs: Arc<Specs>, shutdown: CancellationToken) {
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let mut seen: Vec<_> = paths.iter().map(|p| modified(p)).collect();
    let mut ticks = tokio::time::interval(SPEC_POLL);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        for (path, seen) in paths.iter().zip(seen.iter_mut()) {
            let now = modified(path);
            if now == *seen {
                continue;
            }
            *seen = now;
            let outcome = match SpecFile::read(path) {
                Ok(file) => specs.apply(&file).await,
                Err(d) => Err(ApplyError::Invalid(d.into())),
            };
            match outcome {
                Ok(report) => tracing::info!(
                    spec = report.name,
                    added = ?report.added,
                    removed = ?report.removed,
                    changed = ?report.changed,
                    "spec file re-applied"
                ),
                Err(e) => tracing::error!(
                    file = %path.display(),
                    "spec file rejected; the running spec keeps going:\n{e}"
                ),
            }
        }
    }
}
