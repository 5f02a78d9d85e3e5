//! The knactors of an app run by this process, reconfigured live: applying a knactor's
//! manifest to the running app changes its stores' schemas (migrating the objects stored) and
//! its reconciler, together with the integrator specs applied beside it, all checked first
//! against every spec that runs, and switched at one point: the knactor's reconciler and the
//! specs applied with it are stopped, the exchange switches each schema atomically with
//! writes, then the new reconciler starts and the new specs resume from their checkpoints.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use data_exchange::access::Rights;
use data_exchange::log::ingest::Ingest;
use data_exchange::{ObjectExchange, StoreRef};
use integrators::cast::Schemas;
use integrators::source::{Diagnostics, SpecFile, Step};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::app::{AppConfig, AppError};
use crate::controller::Controller;
use crate::handled::Handled;
use crate::logins::Logins;
use crate::manifest::{self, ExchangeKind, KnactorManifest, StoreSpec};
use crate::metrics::Metrics;
use crate::reconciler::Registry;
use crate::retention::{Collected, Collector, Retention, Trimmed, Trimmer};
use crate::specs::{ApplyError, ApplyReport, Specs};

/// Stores of the app and their schemas, as the API lists them (kept up to date as manifests
/// are applied).
pub type StoreSchemaMap = Arc<RwLock<BTreeMap<StoreRef, serde_json::Value>>>;

/// What applying a knactor's manifest did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnactorReport {
    /// The knactor.
    pub knactor: String,
    /// Its stores whose schema changed, with the version the exchange holds now.
    pub evolved: Vec<(String, u64)>,
    /// The stores it added.
    #[serde(default)]
    pub added: Vec<String>,
    /// The reconciler it runs now in this process, if any.
    pub reconciler: Option<String>,
    /// What applying each spec given beside it did.
    pub specs: Vec<ApplyReport>,
}

/// The knactors this process runs, and what it takes to start their reconcilers again.
pub struct Knactors {
    config: RwLock<AppConfig>,
    exchange: Arc<dyn ObjectExchange>,
    registry: Registry,
    logins: Logins,
    metrics: Arc<Metrics>,
    /// The knactors whose reconcilers run here (`None`: all).
    only: Option<Vec<String>>,
    /// Whether the stores' retention policies are off (see [`crate::app::AppOptions::keep`]).
    keep: bool,
    /// Whether a manifest applied live may add stores (not on Kubernetes, where a store is a
    /// CustomResourceDefinition that `knactor deploy --apply` makes).
    adds_stores: bool,
    /// The Object stores.
    stores: StoreSchemaMap,
    /// The Log stores.
    log_stores: StoreSchemaMap,
    /// Each knactor's rights: its own stores, and what policies grant it.
    rights: RwLock<BTreeMap<String, Arc<Rights>>>,
    /// What [`open`](Self::open) made ready to run, until [`start`](Self::start).
    ready: std::sync::Mutex<Vec<(String, Runner)>>,
    running: tokio::sync::Mutex<BTreeMap<String, RunningKnactor>>,
}

impl std::fmt::Debug for Knactors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Knactors").finish_non_exhaustive()
    }
}

/// What runs here for one knactor: its reconciler's controller, and the state retention of
/// its stores.
struct Runner {
    controller: Option<Controller>,
    collector: Option<Collector>,
    trimmer: Option<Trimmer>,
}

/// A knactor's [`Runner`] running, and how to stop it.
struct RunningKnactor {
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningKnactor {
    /// Stops it, letting running reconciles finish.
    async fn stop(self) {
        self.stop.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// What [`Knactors`] are built from.
#[derive(Debug)]
pub struct KnactorsOf {
    /// The app.
    pub config: AppConfig,
    /// The Object exchange, as the administrator (it changes schemas).
    pub exchange: Arc<dyn ObjectExchange>,
    /// The reconcilers this binary has.
    pub registry: Registry,
    /// How each knactor reaches the exchanges.
    pub logins: Logins,
    /// Where the controllers count.
    pub metrics: Arc<Metrics>,
    /// The knactors whose reconcilers run here (`None`: all).
    pub only: Option<Vec<String>>,
    /// Whether the stores' retention policies are off.
    pub keep: bool,
    /// Whether a manifest applied live may add stores (not on Kubernetes).
    pub adds_stores: bool,
}

impl Knactors {
    /// The knactors of `of`, their reconcilers ready to start: each knactor's exchange is
    /// open (on Redis, its user made). Fails when a knactor names a reconciler this binary
    /// does not have.
    pub async fn open(of: KnactorsOf) -> Result<Self, AppError> {
        let stores = Arc::new(RwLock::new(of.config.stores()));
        let log_stores = Arc::new(RwLock::new(of.config.log_stores()));
        let rights = RwLock::new(rights_of(&of.config));
        let knactors = Knactors {
            config: RwLock::new(of.config),
            exchange: of.exchange,
            registry: of.registry,
            logins: of.logins,
            metrics: of.metrics,
            only: of.only,
            keep: of.keep,
            adds_stores: of.adds_stores,
            stores,
            log_stores,
            rights,
            ready: std::sync::Mutex::default(),
            running: tokio::sync::Mutex::default(),
        };
        let (config, mut ready) = (knactors.config(), Vec::new());
        for knactor in &config.knactors {
            if let Some(runner) = knactors.runner(&config, knactor).await? {
                ready.push((knactor.metadata.name.clone(), runner));
            }
        }
        *knactors.ready.lock().unwrap_or_else(|e| e.into_inner()) = ready;
        Ok(knactors)
    }

    /// The Object stores and their schemas, kept up to date as manifests are applied.
    pub fn stores(&self) -> StoreSchemaMap {
        self.stores.clone()
    }

    /// The Log stores and their schemas, kept up to date as manifests are applied.
    pub fn log_stores(&self) -> StoreSchemaMap {
        self.log_stores.clone()
    }

    /// Registers every store again, with the schema of the manifest applied last, and writes
    /// the seeds the stores lack: for an exchange that lost its data (see [`crate::restore`]).
    /// A store refused (another process registered another schema first) is logged and left
    /// out; the others go on. Fails on the first error of the exchange itself.
    pub(crate) async fn register_again(&self) -> Result<(), data_exchange::ExchangeError> {
        use data_exchange::ExchangeError::SchemaDiffers;
        let config = self.config();
        for (store, schema) in config.log_stores() {
            match self.logins.log().register(&store, &schema).await {
                Err(error @ SchemaDiffers { .. }) => {
                    tracing::error!(%store, %error, "not registered again")
                }
                registered => registered?,
            }
        }
        for (store, schema) in config.stores() {
            match self.exchange.register(&store, &schema).await {
                Err(error @ SchemaDiffers { .. }) => {
                    tracing::error!(%store, %error, "not registered again")
                }
                registered => registered?,
            }
        }
        crate::app::seed(&config, &*self.exchange).await
    }

    /// Whether the Object exchange lost its data since the last look (see
    /// [`ObjectExchange::lost_data`]).
    pub(crate) async fn exchange_lost_data(&self) -> Result<bool, data_exchange::ExchangeError> {
        self.exchange.lost_data().await
    }

    /// The rights of `knactor`'s token: its own stores, and what the app's policies grant it.
    pub fn rights(&self, knactor: &str) -> Option<Arc<Rights>> {
        self.rights.read().unwrap_or_else(|e| e.into_inner()).get(knactor).cloned()
    }

    /// Starts the reconciler of every knactor that runs here.
    pub async fn start(&self) {
        let ready = std::mem::take(&mut *self.ready.lock().unwrap_or_else(|e| e.into_inner()));
        let mut running = self.running.lock().await;
        for (name, runner) in ready {
            running.insert(name, spawn(runner));
        }
    }

    /// Stops every reconciler, each letting its running reconciles finish.
    pub async fn stop(&self) {
        let running = std::mem::take(&mut *self.running.lock().await);
        for (_, running) in running {
            running.stop().await;
        }
    }

    /// Applies the knactor manifest in `manifest` to the running app, with the integrator
    /// specs in `specs` (see the module doc). A problem found by the checks changes nothing
    /// and is reported with file:line:column; a schema change the exchange refuses (an object
    /// that does not fit, a migration that fails) leaves everything as it was.
    pub async fn apply(
        &self,
        manifest: &SpecFile,
        spec_files: &[SpecFile],
        specs: &Specs,
    ) -> Result<KnactorReport, ApplyError> {
        let mut knactor = manifest::parse_knactor(manifest).map_err(ApplyError::Invalid)?;
        if self.keep {
            knactor.spec.keep_everything();
        }
        let name = knactor.metadata.name.clone();
        // One apply at a time, and no spec applied or deleted meanwhile: checked against the
        // app as it is, switched with it unchanged.
        let _specs = specs.exclusive().await;
        let mut running = self.running.lock().await;
        let config = self.config();
        let old = self.check_replaceable(manifest, &knactor, &config)?;
        let mut next = config.clone();
        *next.knactors.iter_mut().find(|k| k.metadata.name == name).expect("checked") =
            knactor.clone();
        let schemas = next.schemas();
        let mut problems = Vec::new();
        let mut given = Vec::new();
        for file in spec_files {
            match crate::specs::check(file, Some(&schemas)) {
                Ok(checked) => given.push((file, checked)),
                Err(e) => problems.extend(e.diagnostics(file)),
            }
        }
        let checked: Vec<_> = given.iter().map(|(file, checked)| (*file, checked)).collect();
        problems.extend(specs.recheck(&schemas, &checked).await);
        if !problems.is_empty() {
            return Err(ApplyError::Invalid(Diagnostics(problems)));
        }
        let given_names: Vec<&str> = given.iter().map(|(_, checked)| checked.name()).collect();
        // New stores first (no schema changes with them): when the exchange refuses one, the
        // knactor runs on as it was; those registered before it stay registered, empty.
        let (added, added_logs) = self.register_new_stores(&old, &knactor).await?;

        // The switch: what writes the changed store by the old shape stops first.
        if let Some(running) = running.remove(&name) {
            running.stop().await;
        }
        let stopped = specs.stop_for_reapply(&given_names).await;
        let evolved = match self.evolve(&old, &knactor).await {
            Ok(evolved) => evolved,
            Err(e) => {
                // As it was: the old specs resume, the old reconciler starts again.
                let mut failures = Vec::new();
                for spec in &stopped {
                    if let Err(error) = specs.restart(spec, None).await {
                        failures.push(format!("{}: {error}", spec.file().path().display()));
                    }
                }
                match self.runner(&config, &old).await {
                    Ok(Some(runner)) => {
                        running.insert(name.clone(), spawn(runner));
                    }
                    Ok(None) => {}
                    Err(error) => failures.push(format!("its reconciler: {error}")),
                }
                if !failures.is_empty() {
                    let failures = failures.join("; ");
                    return Err(ApplyError::Incomplete(format!(
                        "{e}; knactor `{name}` keeps its old manifest, but did not start again: {failures}"
                    )));
                }
                return Err(ApplyError::Schema(Box::new(e)));
            }
        };
        specs.set_schemas(schemas);
        self.logins.add_stores(&added, &added_logs);
        *self.stores.write().unwrap_or_else(|e| e.into_inner()) = next.stores();
        *self.log_stores.write().unwrap_or_else(|e| e.into_inner()) = next.log_stores();
        *self.rights.write().unwrap_or_else(|e| e.into_inner()) = rights_of(&next);
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = next.clone();
        // From here the knactor runs its new version: what fails to start is reported so.
        let mut failures = Vec::new();
        let reconciler = match self.runner(&next, &knactor).await {
            Ok(Some(runner)) => {
                let reconciler =
                    runner.controller.is_some().then(|| knactor.spec.reconciler.clone());
                running.insert(name.clone(), spawn(runner));
                reconciler.flatten()
            }
            Ok(None) => None,
            Err(error) => {
                failures.push(format!("its reconciler: {error}"));
                None
            }
        };
        let mut reports = Vec::new();
        for (file, checked) in &given {
            let restarted = stopped.iter().find(|spec| spec.name() == checked.name());
            let started = match restarted {
                Some(spec) => specs.restart(spec, Some(file)).await,
                None => specs.apply_now(file).await,
            };
            match started {
                Ok(report) => reports.push(report),
                Err(error) => failures.push(format!("{}: {error}", file.path().display())),
            }
        }
        if !failures.is_empty() {
            let evolved: Vec<String> = evolved.iter().map(|(s, v)| format!("{s} v{v}")).collect();
            return Err(ApplyError::Incomplete(format!(
                "knactor `{name}` switched to the new manifest ({}), but did not start: {}; apply them again",
                evolved.join(", "),
                failures.join("; ")
            )));
        }
        let added = added.keys().chain(added_logs.keys()).map(ToString::to_string).collect();
        Ok(KnactorReport { knactor: name, evolved, added, reconciler, specs: reports })
    }

    /// The knactor `knactor` replaces, once checked that it may: it names a knactor of the
    /// app, keeps its stores on their exchanges (it may add some, changing no schema then),
    /// changes no Log store's schema and at most one Object store's, and names a reconciler
    /// this binary has.
    fn check_replaceable(
        &self,
        file: &SpecFile,
        knactor: &KnactorManifest,
        config: &AppConfig,
    ) -> Result<KnactorManifest, ApplyError> {
        let invalid = |at: &[Step], message: String| {
            ApplyError::Invalid(Diagnostics(vec![file.error_at(at, message)]))
        };
        let name = &knactor.metadata.name;
        let Some(old) = config.knactors.iter().find(|k| k.metadata.name == *name) else {
            let message = format!(
                "the app has no knactor `{name}`: adding a knactor to a running app is not supported yet; add it to app.yaml and restart"
            );
            return Err(invalid(&["metadata".into(), "name".into()], message));
        };
        let kept = |store: &StoreSpec| knactor.spec.stores.iter().any(|s| s.name == store.name);
        let gone: Vec<String> =
            old.spec.stores.iter().filter(|s| !kept(s)).map(|s| format!("`{}`", s.name)).collect();
        if !gone.is_empty() {
            let message = format!(
                "`{name}` is missing {} ({}): removing a store of a running knactor is not supported; restart the app with the manifest",
                if gone.len() == 1 { "a store" } else { "stores" },
                gone.join(", ")
            );
            return Err(invalid(&["spec".into(), "stores".into()], message));
        }
        let before = |store: &StoreSpec| old.spec.stores.iter().find(|s| s.name == store.name);
        let no_logs = config.log_stores().is_empty();
        for (i, store) in knactor.spec.stores.iter().enumerate() {
            let at = |key: &'static str| ["spec".into(), "stores".into(), i.into(), key.into()];
            let Some(before) = before(store) else {
                if !self.adds_stores {
                    let message = format!(
                        "store `{}` is new: on Kubernetes a store is a CustomResourceDefinition; add it with `knactor deploy --apply` and restart",
                        store.name
                    );
                    return Err(invalid(&at("name"), message));
                }
                if !store.migrate.is_empty() {
                    let message =
                        format!("store `{}` is new: it has nothing to migrate", store.name);
                    return Err(invalid(&at("migrate"), message));
                }
                if store.exchange == ExchangeKind::Log && no_logs {
                    let message = format!(
                        "store `{}`: the app runs no Log store, so no Log exchange to add it to; restart the app with the manifest",
                        store.name
                    );
                    return Err(invalid(&at("exchange"), message));
                }
                continue;
            };
            if store.exchange != before.exchange {
                let message = format!(
                    "store `{}` moves to another exchange: a store keeps its exchange in a running app; restart the app with the manifest",
                    store.name
                );
                return Err(invalid(&at("exchange"), message));
            }
            if store.exchange == ExchangeKind::Log && store.schema != before.schema {
                let message = format!(
                    "store `{}`: a Log store's schema cannot change in a running app yet",
                    store.name
                );
                return Err(invalid(&at("schema"), message));
            }
            if !store.migrate.is_empty() && store.schema == before.schema {
                let message = format!(
                    "store `{}`: its schema is the one running, so there is nothing to migrate",
                    store.name
                );
                return Err(invalid(&at("migrate"), message));
            }
        }
        let names = |stores: Vec<&StoreSpec>| -> Vec<String> {
            stores.iter().map(|s| format!("`{}`", s.name)).collect()
        };
        let changes = |store: &&StoreSpec| before(store).is_some_and(|b| store.schema != b.schema);
        let changed = names(knactor.spec.stores.iter().filter(changes).collect());
        if changed.len() > 1 {
            let message = format!(
                "more than one store's schema changes ({}): the exchange switches one store at a time, so apply one change per manifest",
                changed.join(", ")
            );
            return Err(invalid(&["spec".into(), "stores".into()], message));
        }
        let added = names(knactor.spec.stores.iter().filter(|s| before(s).is_none()).collect());
        if !added.is_empty() && !changed.is_empty() {
            let message = format!(
                "the manifest adds stores ({}) and changes the schema of {}: apply one, then the other",
                added.join(", "),
                changed.join(", ")
            );
            return Err(invalid(&["spec".into(), "stores".into()], message));
        }
        if let Some(reconciler) = &knactor.spec.reconciler {
            if let Err(e) = implementation(&self.registry, name, reconciler) {
                return Err(invalid(&["spec".into(), "reconciler".into()], e.to_string()));
            }
            if self.only.as_ref().is_some_and(|only| !only.contains(name)) {
                let message = format!(
                    "this process does not run the reconciler of `{name}` (--only): apply the manifest to the process that does"
                );
                return Err(invalid(&["metadata".into(), "name".into()], message));
            }
        }
        Ok(old.clone())
    }

    /// Registers the stores of `new` that `old` does not have, Object and Log: those added, by
    /// exchange.
    async fn register_new_stores(
        &self,
        old: &KnactorManifest,
        new: &KnactorManifest,
    ) -> Result<(Schemas, Schemas), ApplyError> {
        let (mut objects, mut logs) = (Schemas::new(), Schemas::new());
        let name = &new.metadata.name;
        for store in &new.spec.stores {
            if old.spec.stores.iter().any(|s| s.name == store.name) {
                continue;
            }
            let store_ref = store.store_ref(name);
            let registered = match store.exchange {
                ExchangeKind::Object => {
                    objects.insert(store_ref.clone(), store.schema.clone());
                    self.exchange.register(&store_ref, &store.schema).await
                }
                ExchangeKind::Log => {
                    logs.insert(store_ref.clone(), store.schema.clone());
                    self.logins.log().register(&store_ref, &store.schema).await
                }
            };
            registered.map_err(|e| ApplyError::Schema(Box::new(e)))?;
            tracing::info!(store = %store_ref, "store added");
        }
        Ok((objects, logs))
    }

    /// Makes the exchange hold the schemas `new` gives the stores of `old`, each migrated as
    /// `new` says: the stores changed, with their schemas' versions.
    async fn evolve(
        &self,
        old: &KnactorManifest,
        new: &KnactorManifest,
    ) -> Result<Vec<(String, u64)>, data_exchange::ExchangeError> {
        let mut evolved = Vec::new();
        for store in new.spec.stores.iter().filter(|s| s.exchange == ExchangeKind::Object) {
            let before = old.spec.stores.iter().find(|s| s.name == store.name);
            if before.is_none_or(|before| store.schema == before.schema) {
                continue;
            }
            let store_ref = store.store_ref(&new.metadata.name);
            let version = crate::migration::evolve(&*self.exchange, &store_ref, store).await?;
            evolved.push((store_ref.to_string(), version));
        }
        Ok(evolved)
    }

    /// The retention policy of the Object store `store` (`keep` when the app has no such store).
    pub fn retention(&self, store: &StoreRef) -> Retention {
        let config = self.config.read().unwrap_or_else(|e| e.into_inner());
        let knactor = config.knactors.iter().find(|k| k.metadata.name == store.knactor());
        let spec = knactor.and_then(|k| k.spec.stores.iter().find(|s| s.name == store.store()));
        spec.map_or(Retention::Keep, |spec| spec.retention())
    }

    /// How many objects each Object store without a retention policy holds (a store with one
    /// is counted by its collector), where `exchange` can count them without reading them;
    /// and the first error of those it could not count.
    pub async fn count_kept(
        &self,
        exchange: &dyn ObjectExchange,
    ) -> (Vec<(StoreRef, u64)>, Option<data_exchange::ExchangeError>) {
        use futures::StreamExt;
        let collected: std::collections::HashSet<(String, String)> = {
            let config = self.config.read().unwrap_or_else(|e| e.into_inner());
            let stores = config.knactors.iter().flat_map(|k| {
                let collected = k.spec.stores.iter().filter(|s| s.retention() != Retention::Keep);
                collected.map(|s| (k.metadata.name.clone(), s.name.clone()))
            });
            stores.collect()
        };
        let kept: Vec<StoreRef> = {
            let stores = self.stores.read().unwrap_or_else(|e| e.into_inner());
            let is_kept =
                |s: &&StoreRef| !collected.contains(&(s.knactor().into(), s.store().into()));
            stores.keys().filter(is_kept).cloned().collect()
        };
        let counts = futures::stream::iter(kept).map(|store| async move {
            exchange.count(&store).await.map(|objects| objects.map(|objects| (store, objects)))
        });
        let counts: Vec<_> = counts.buffer_unordered(16).collect().await;
        let (mut counted, mut failed) = (Vec::new(), None);
        for count in counts {
            match count {
                Ok(count) => counted.extend(count),
                Err(error) => failed = failed.or(Some(error)),
            }
        }
        (counted, failed)
    }

    /// The app as it runs now.
    fn config(&self) -> AppConfig {
        self.config.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// What runs here for `knactor` (a knactor of `config`): `None` when nothing does.
    async fn runner(
        &self,
        config: &AppConfig,
        knactor: &KnactorManifest,
    ) -> Result<Option<Runner>, AppError> {
        let name = &knactor.metadata.name;
        if self.only.as_ref().is_some_and(|only| !only.contains(name)) {
            return Ok(None);
        }
        let controller = self.controller(config, knactor).await?;
        let handled = controller.as_ref().map(Controller::handled);
        let collector = self.collector(knactor, handled)?;
        let trimmer = self.trimmer(config, knactor);
        let runs = controller.is_some() || collector.is_some() || trimmer.is_some();
        Ok(runs.then_some(Runner { controller, collector, trimmer }))
    }

    /// The state retention of `knactor`'s stores, when one has a policy that collects;
    /// `handled` is what its reconciler handles, when it runs here (published for the
    /// collector, and for `get --show-retention`).
    fn collector(
        &self,
        knactor: &KnactorManifest,
        handled: Option<Arc<Handled>>,
    ) -> Result<Option<Collector>, AppError> {
        let name = &knactor.metadata.name;
        let mut stores = Vec::new();
        for store in &knactor.spec.stores {
            let retention = store.retention();
            let (Some(finished), Retention::Collect { ttl, .. }) =
                (retention.finished(), retention)
            else {
                continue;
            };
            let archive = match &store.archive {
                Some(archive) => {
                    let log = knactor.spec.stores.iter().find(|s| s.name == *archive);
                    let log = log.expect("checked at load");
                    let archive = log.store_ref(name);
                    let ingest = Ingest::new(&archive, &log.schema)?;
                    Some((archive, ingest))
                }
                None => None,
            };
            stores.push(Collected { store: store.store_ref(name), finished, ttl, archive });
        }
        if stores.is_empty() {
            return Ok(None);
        }
        let (exchange, log) = (self.exchange.clone(), self.logins.log().clone());
        let metrics = self.metrics.clone();
        Ok(Some(Collector::new(name, exchange, log, handled, stores, metrics)))
    }

    /// The retention of `knactor`'s Log stores, when one has a policy that trims.
    fn trimmer(&self, config: &AppConfig, knactor: &KnactorManifest) -> Option<Trimmer> {
        let trims = knactor.spec.stores.iter().filter_map(|store| match store.retention() {
            Retention::Trim { max_age, max_records } => Some(Trimmed {
                store: store.store_ref(&knactor.metadata.name),
                max_age,
                max_records,
            }),
            _ => None,
        });
        let stores: Vec<Trimmed> = trims.collect();
        if stores.is_empty() {
            return None;
        }
        let destinations = config.log_stores().into_keys().collect();
        Some(Trimmer::new(self.logins.log().clone(), stores, destinations, self.metrics.clone()))
    }

    /// The controller of `knactor`'s reconciler (a knactor of `config`), when it has one.
    async fn controller(
        &self,
        config: &AppConfig,
        knactor: &KnactorManifest,
    ) -> Result<Option<Controller>, AppError> {
        let name = &knactor.metadata.name;
        let Some(reconciler) = knactor.spec.reconciler.as_ref() else {
            return Ok(None);
        };
        let implementation = implementation(&self.registry, name, reconciler)?;
        let of_kind = |kind| {
            let stores = knactor.spec.stores.iter().filter(move |s| s.exchange == kind);
            stores.map(|s| s.store_ref(name)).collect::<Vec<_>>()
        };
        let rights = config.knactor_rights(knactor);
        let exchange = self.logins.exchange_for(&rights).await?;
        let controller = Controller::new(
            name,
            of_kind(ExchangeKind::Object),
            implementation,
            exchange,
            self.metrics.clone(),
        );
        let own_log = self.logins.log_for(&rights).await?;
        // Its reconciler reaches Object stores only (a Log store granted it, over HTTP).
        let object_stores = config.stores();
        let mut on_objects = rights;
        on_objects.retain(|store| object_stores.contains_key(store));
        let controller = controller.with_rights(on_objects);
        Ok(Some(controller.with_logs(of_kind(ExchangeKind::Log), own_log)))
    }
}

/// Starts `runner`.
fn spawn(runner: Runner) -> RunningKnactor {
    let stop = CancellationToken::new();
    let mut tasks = Vec::new();
    if let Some(controller) = runner.controller {
        tasks.push(tokio::spawn(controller.run(stop.clone())));
    }
    if let Some(collector) = runner.collector {
        tasks.push(tokio::spawn(collector.run(stop.clone())));
    }
    if let Some(trimmer) = runner.trimmer {
        tasks.push(tokio::spawn(trimmer.run(stop.clone())));
    }
    RunningKnactor { stop, tasks }
}

/// The reconciler `reconciler` of knactor `knactor`, from `registry`.
fn implementation(
    registry: &Registry,
    knactor: &str,
    reconciler: &str,
) -> Result<Arc<dyn crate::reconciler::Reconciler>, AppError> {
    registry.get(reconciler).ok_or_else(|| AppError::UnknownReconciler {
        knactor: knactor.to_owned(),
        reconciler: reconciler.to_owned(),
        known: registry.names().collect::<Vec<_>>().join(", "),
    })
}

/// Each knactor's rights in `config`, by knactor.
fn rights_of(config: &AppConfig) -> BTreeMap<String, Arc<Rights>> {
    let rights =
        config.knactors.iter().map(|k| (k.metadata.name.clone(), config.knactor_rights(k)));
    rights.map(|(name, rights)| (name, Arc::new(rights))).collect()
}
