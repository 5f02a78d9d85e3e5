//! Running a Cast plan: watch the stores that trigger edges, evaluate the edges a change
//! triggers, and merge-patch their targets — only when that changes something.
//!
//! One task owns the plan and processes changes one at a time, so a new plan swaps in between
//! two changes: each change is handled entirely by one plan version. Progress (the last store
//! version handled per input store) is checkpointed in the exchange, in the store
//! `_knactor/checkpoints`, so a restarted integrator resumes where it stopped; re-handling a
//! change is harmless because writes that change nothing are not made.
//!
//! With pushdown, the exchange runs the edges it can run itself inside the writes of their
//! source, from the store version it reports; this task evaluates them for the changes up to
//! that version only, and does not watch a store whose edges all run in the exchange. Changes
//! written while a new plan is pushed down may then be handled by both plan versions (the
//! later one wins).

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use data_exchange::{
    EdgesRun, ExchangeError, Expect, Object, ObjectExchange, StoreRef, WatchEvent, Write, WriteOp,
};
use futures::StreamExt;
use lru::LruCache;
use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_stream::StreamMap;
use tokio_util::sync::CancellationToken;

use super::expr::{ExprError, base_context, json_to_cel};
use super::plan::{CastPlan, EdgePlan};
use super::pushdown;
use super::spec::OnDelete;
use crate::diff::PlanDiff;

/// How often progress is checkpointed while changes flow.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);
/// Writes retried when the target changes between read and write.
const WRITE_ATTEMPTS: usize = 16;

/// Why a Cast integrator failed.
#[derive(Debug, thiserror::Error)]
pub enum CastError {
    /// The exchange failed.
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
    /// The integrator has stopped.
    #[error("the Cast integrator `{0}` has stopped")]
    Stopped(String),
    /// A new plan has another name than the running one.
    #[error("cannot replace Cast `{running}` with a spec named `{applied}`")]
    OtherName {
        /// The running plan's name.
        running: String,
        /// The new plan's name.
        applied: String,
    },
}

/// Why one edge evaluation failed.
#[derive(Debug, thiserror::Error)]
enum EdgeError {
    /// The data or the spec cannot give a write (a bad expression result, a schema refusal).
    #[error("{0}")]
    Data(String),
    /// An expression failed on the data.
    #[error(transparent)]
    Expr(#[from] ExprError),
    /// The exchange refused or failed.
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
}

impl From<String> for EdgeError {
    fn from(message: String) -> Self {
        EdgeError::Data(message)
    }
}

impl EdgeError {
    /// Whether retrying later may succeed: the exchange itself failed.
    fn is_transient(&self) -> bool {
        matches!(self, EdgeError::Exchange(e) if !e.is_client_error())
    }
}

/// Counters of a running integrator.
#[derive(Debug, Default)]
pub struct CastStats {
    /// Edge evaluations (including those whose `when` was false).
    pub evaluations: AtomicU64,
    /// Target writes made.
    pub writes: AtomicU64,
    /// Evaluations that failed (bad data, a write the schema refused).
    pub failures: AtomicU64,
    /// Edges the exchange runs itself (see [`CastOptions::pushdown`]).
    pub pushed_down: AtomicU64,
    /// Targets read from the exchange before a write: the state this integrator last wrote was
    /// not in its cache (see [`CastOptions::target_cache`]) or was out of date.
    pub target_reads: AtomicU64,
}

/// How many targets' last written state an integrator keeps by default.
pub const DEFAULT_TARGET_CACHE: NonZeroUsize = NonZeroUsize::new(65_536).expect("not zero");

/// How a Cast integrator runs.
#[derive(Debug)]
pub struct CastOptions {
    /// Hands the edges an exchange can run to the exchange, which runs them inside the writes
    /// of their source (Redis); the others, and every edge on other exchanges, run here.
    pub pushdown: bool,
    /// Where an [`EdgeTiming`] goes for every edge evaluation that reached its target.
    pub probe: Option<mpsc::UnboundedSender<EdgeTiming>>,
    /// How many targets' last written state to keep, so that writing them again needs no read
    /// first; the least recently written go first.
    pub target_cache: NonZeroUsize,
}

impl Default for CastOptions {
    fn default() -> Self {
        CastOptions { pushdown: false, probe: None, target_cache: DEFAULT_TARGET_CACHE }
    }
}

/// When the integrator handled one change on one edge that reached its target (see
/// [`CastOptions::probe`]): for measuring propagation.
#[derive(Clone, Debug)]
pub struct EdgeTiming {
    /// The edge.
    pub edge: String,
    /// The changed object's name.
    pub key: String,
    /// The change came out of the watch.
    pub seen: Instant,
    /// The target's new fields were computed.
    pub computed: Instant,
    /// The exchange acknowledged the target's write.
    pub written: Instant,
}

/// The store where integrators checkpoint their progress.
pub fn checkpoint_store() -> StoreRef {
    StoreRef::new("_knactor", "checkpoints").expect("a valid store ref")
}

enum Control {
    Apply(CastPlan, oneshot::Sender<Result<PlanDiff, CastError>>),
}

/// A running Cast integrator; stop it with [`CastIntegrator::stop`] (dropping it aborts it).
#[derive(Debug)]
pub struct CastIntegrator {
    name: String,
    control: mpsc::Sender<Control>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
    stats: Arc<CastStats>,
}

impl CastIntegrator {
    /// Starts running `plan`: resumes from its checkpoint, or evaluates every existing object
    /// when there is none.
    pub async fn start(
        exchange: Arc<dyn ObjectExchange>,
        plan: CastPlan,
    ) -> Result<Self, CastError> {
        Self::start_with(exchange, plan, CastOptions::default()).await
    }

    /// Like [`CastIntegrator::start`], with `options`.
    pub async fn start_with(
        exchange: Arc<dyn ObjectExchange>,
        plan: CastPlan,
        options: CastOptions,
    ) -> Result<Self, CastError> {
        exchange.register(&checkpoint_store(), &json!({"type": "object"})).await?;
        let name = plan.name.clone();
        let stats = Arc::new(CastStats::default());
        let mut engine = Engine {
            exchange,
            plan,
            positions: BTreeMap::new(),
            dirty: false,
            stats: stats.clone(),
            cel: base_context(),
            targets: std::sync::Mutex::new(LruCache::new(options.target_cache)),
            absent_on_miss: std::sync::Mutex::default(),
            shutdown: CancellationToken::new(),
            probe: options.probe,
            pushdown: options.pushdown,
            pushed: BTreeSet::new(),
            pushed_from: BTreeMap::new(),
        };
        let shutdown = engine.shutdown.clone();
        let mut watches = Watches::new();
        // Edges run by the exchange from now on; the changes before are handled here.
        engine.push_down().await?;
        engine.resume(&mut watches).await?;
        let (control, controls) = mpsc::channel(8);
        let task = tokio::spawn(engine.run(watches, controls));
        Ok(CastIntegrator { name, control, shutdown, task: Some(task), stats })
    }

    /// Replaces the running plan between two changes; answers what changed.
    pub async fn apply(&self, plan: CastPlan) -> Result<PlanDiff, CastError> {
        if plan.name != self.name {
            return Err(CastError::OtherName { running: self.name.clone(), applied: plan.name });
        }
        let (reply, replied) = oneshot::channel();
        let stopped = || CastError::Stopped(self.name.clone());
        self.control.send(Control::Apply(plan, reply)).await.map_err(|_| stopped())?;
        replied.await.map_err(|_| stopped())?
    }

    /// The integrator's counters.
    pub fn stats(&self) -> &Arc<CastStats> {
        &self.stats
    }

    /// The running plan's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Stops after the change in hand, checkpointing progress.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for CastIntegrator {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// The state of the integrator's task.
struct Engine {
    exchange: Arc<dyn ObjectExchange>,
    plan: CastPlan,
    /// Per input store, the last store version handled.
    positions: BTreeMap<StoreRef, u64>,
    dirty: bool,
    stats: Arc<CastStats>,
    /// The CEL environment with the aggregation functions, built once.
    cel: cel::Context<'static, 'static>,
    /// The last known state of the targets this integrator wrote most recently, to write them
    /// without reading first.
    targets: std::sync::Mutex<LruCache<(StoreRef, String), Arc<Object>>>,
    /// Target stores where the last target missing from the cache was missing from the store
    /// too: the next one is created without reading first.
    absent_on_miss: std::sync::Mutex<BTreeSet<StoreRef>>,
    shutdown: CancellationToken,
    /// Where timings go, when measured.
    probe: Option<mpsc::UnboundedSender<EdgeTiming>>,
    /// Whether to hand edges to the exchange.
    pushdown: bool,
    /// The edges the exchange runs, by name.
    pushed: BTreeSet<String>,
    /// For the stores that trigger them, the store version from which the exchange runs them:
    /// changes up to it are still evaluated here.
    pushed_from: BTreeMap<StoreRef, u64>,
}

/// The watches of the input stores, by store (kept apart from [`Engine`], which handlers share).
type Watches = StreamMap<StoreRef, data_exchange::WatchStream>;

impl Engine {
    fn checkpoint_name(&self) -> String {
        format!("cast.{}", self.plan.name)
    }

    /// Watches every trigger store from its checkpoint; catches up on stores with none.
    async fn resume(&mut self, watches: &mut Watches) -> Result<(), CastError> {
        let saved = self.exchange.get(&checkpoint_store(), &self.checkpoint_name()).await?;
        let saved: BTreeMap<String, u64> = saved
            .and_then(|o| serde_json::from_value(o.data["positions"].clone()).ok())
            .unwrap_or_default();
        for store in self.plan.trigger_stores() {
            match saved.get(&store.to_string()) {
                Some(&version) if self.handled_by_exchange(&store, version) => {
                    self.positions.insert(store, version);
                }
                Some(&version) => match self.exchange.watch(&store, version).await {
                    Ok(watch) => {
                        self.positions.insert(store.clone(), version);
                        watches.insert(store, watch);
                    }
                    Err(ExchangeError::Expired { .. }) => self.catch_up(&store, watches).await?,
                    Err(e) => return Err(e.into()),
                },
                None => self.catch_up(&store, watches).await?,
            }
        }
        self.checkpoint().await;
        Ok(())
    }

    /// Evaluates every object of `store` and watches it from the version listed.
    async fn catch_up(&mut self, store: &StoreRef, watches: &mut Watches) -> Result<(), CastError> {
        let list = self.exchange.list(store).await?;
        let watch = self.exchange.watch(store, list.version).await?;
        for object in &list.items {
            if !self.handle(store, &WatchEvent::Modified(object.clone())).await {
                return Ok(()); // Shutting down: the store's position stays where it was.
            }
        }
        self.positions.insert(store.clone(), list.version);
        self.dirty = true;
        if !self.handled_by_exchange(store, list.version) {
            watches.insert(store.clone(), watch);
        }
        Ok(())
    }

    async fn run(mut self, mut watches: Watches, mut controls: mpsc::Receiver<Control>) {
        let shutdown = self.shutdown.clone();
        let mut ticks = tokio::time::interval(CHECKPOINT_EVERY);
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                Some(Control::Apply(plan, reply)) = controls.recv() => {
                    let _ = reply.send(self.swap(plan, &mut watches).await);
                }
                Some((store, event)) = watches.next() => match event {
                    Ok(event) => {
                        if !self.handle(&store, &event).await {
                            break;
                        }
                        if self.handled_by_exchange(&store, event.version()) {
                            watches.remove(&store);
                        }
                        self.positions.insert(store, event.version());
                        self.dirty = true;
                    }
                    Err(e) => self.rewatch(&store, e, &mut watches).await,
                },
                _ = ticks.tick() => if self.dirty { self.checkpoint().await },
            }
        }
        if !self.pushed.is_empty() {
            let watched = watches.keys().cloned().collect();
            let withdrawn = async {
                self.catch_up_unwatched(watched).await?;
                match self.exchange.edge_runner() {
                    Some(runner) => runner.run_edges(&self.checkpoint_name(), &[]).await.map(drop),
                    None => Ok(()),
                }
            };
            if let Err(e) = withdrawn.await {
                tracing::warn!(cast = %self.plan.name, error = %e, "cannot withdraw pushed-down edges");
            }
        }
        self.checkpoint().await;
    }

    /// Whether the exchange handles every change of `store` after `version`: every edge the
    /// store triggers is pushed down, from `version` or earlier. Such a store needs no watch.
    fn handled_by_exchange(&self, store: &StoreRef, version: u64) -> bool {
        if self.pushed_from.get(store).is_none_or(|from| version < *from) {
            return false;
        }
        let froms = self.plan.inputs.iter().filter(|(_, input)| input.store == *store);
        let mut edges = froms.flat_map(|(alias, _)| self.plan.edges_from(alias));
        edges.all(|edge| self.pushed.contains(&edge.spec.name))
    }

    /// Moves the position of every trigger store left unwatched (the exchange handles its
    /// changes) to its current version, before the exchange stops handling them.
    async fn catch_up_unwatched(
        &mut self,
        watched: BTreeSet<StoreRef>,
    ) -> Result<(), ExchangeError> {
        for store in self.plan.trigger_stores() {
            if !watched.contains(&store) {
                let version = self.exchange.version(&store).await?;
                self.positions.insert(store, version);
                self.dirty = true;
            }
        }
        Ok(())
    }

    /// Hands the plan's edges that an exchange can run to the exchange, in place of those
    /// handed before (see [`CastOptions::pushdown`]).
    async fn push_down(&mut self) -> Result<(), CastError> {
        if !self.pushdown {
            return Ok(());
        }
        let (mut described, mut names) = (Vec::new(), BTreeMap::new());
        for edge in &self.plan.edges {
            match pushdown::describe(&self.plan, edge) {
                Ok(description) => {
                    names.insert(description.name().to_owned(), edge.spec.name.clone());
                    described.push(description);
                }
                Err(why) => {
                    tracing::info!(cast = %self.plan.name, edge = edge.spec.name, "runs in the integrator: {why}");
                }
            }
        }
        let outcome = match self.exchange.edge_runner() {
            Some(runner) => runner.run_edges(&self.checkpoint_name(), &described).await?,
            None => EdgesRun::refuse_all(&described, "the exchange does not run edges"),
        };
        for (edge, why) in &outcome.refused {
            tracing::info!(cast = %self.plan.name, edge, "runs in the integrator: {why}");
        }
        self.pushed = outcome.running.iter().filter_map(|name| names.remove(name)).collect();
        self.pushed_from = outcome.from;
        self.stats.pushed_down.store(self.pushed.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Whether the exchange has already run `edge` for a change at `version` of `store`.
    fn ran_in_exchange(&self, edge: &EdgePlan, store: &StoreRef, version: u64) -> bool {
        self.pushed_from.get(store).is_some_and(|from| version > *from)
            && self.pushed.contains(&edge.spec.name)
    }

    /// Resumes a failed watch: re-list on expiry, else retry from the last position.
    async fn rewatch(&mut self, store: &StoreRef, error: ExchangeError, watches: &mut Watches) {
        watches.remove(store);
        let mut backoff = Duration::from_millis(10);
        loop {
            let outcome = match &error {
                ExchangeError::Expired { .. } => self.catch_up(store, watches).await,
                _ => {
                    let from = self.positions.get(store).copied().unwrap_or(0);
                    match self.exchange.watch(store, from).await {
                        Ok(watch) => {
                            watches.insert(store.clone(), watch);
                            Ok(())
                        }
                        Err(ExchangeError::Expired { .. }) => self.catch_up(store, watches).await,
                        Err(e) => Err(e.into()),
                    }
                }
            };
            match outcome {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(cast = %self.plan.name, %store, error = %e, "cannot watch; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    /// Swaps in `plan`: new stores are watched from now, dropped ones unwatched; with
    /// `resync`, every object of every input is evaluated under the new plan.
    async fn swap(&mut self, plan: CastPlan, watches: &mut Watches) -> Result<PlanDiff, CastError> {
        let diff = plan.diff(&self.plan);
        self.catch_up_unwatched(watches.keys().cloned().collect()).await?;
        let (old, new) = (self.plan.trigger_stores(), plan.trigger_stores());
        for store in new.difference(&old) {
            let version = self.exchange.version(store).await?;
            self.positions.insert(store.clone(), version);
        }
        for store in old.difference(&new) {
            watches.remove(store);
            self.positions.remove(store);
        }
        self.plan = plan;
        self.dirty = true;
        self.push_down().await?;
        for store in new {
            let position = match self.positions.get(&store) {
                Some(&position) => position,
                None => self.exchange.version(&store).await?,
            };
            self.positions.insert(store.clone(), position);
            if self.handled_by_exchange(&store, position) {
                watches.remove(&store);
            } else if !watches.contains_key(&store) {
                watches.insert(store.clone(), self.exchange.watch(&store, position).await?);
            }
        }
        if self.plan.resync {
            for store in self.plan.trigger_stores() {
                for object in self.exchange.list(&store).await?.items {
                    if !self.handle(&store, &WatchEvent::Modified(object)).await {
                        return Ok(diff);
                    }
                }
            }
        }
        tracing::info!(cast = %self.plan.name, ?diff, "applied");
        Ok(diff)
    }

    async fn checkpoint(&mut self) {
        let positions: Map<String, Value> =
            self.positions.iter().map(|(s, v)| (s.to_string(), json!(v))).collect();
        let write = Write::put(self.checkpoint_name(), json!({ "positions": positions }));
        match self.exchange.write(&checkpoint_store(), write).await {
            Ok(_) => self.dirty = false,
            Err(e) => tracing::warn!(cast = %self.plan.name, error = %e, "checkpoint failed"),
        }
    }

    /// Evaluates every edge a change of `store` triggers. While the exchange is unavailable
    /// an edge is retried with backoff; `false` when shutdown came first (the change is then
    /// not done, and is handled again after a restart).
    async fn handle(&self, store: &StoreRef, event: &WatchEvent) -> bool {
        let seen = Instant::now();
        for (alias, input) in &self.plan.inputs {
            if input.store != *store {
                continue;
            }
            for edge in self.plan.edges_from(alias) {
                if self.ran_in_exchange(edge, store, event.version()) {
                    continue;
                }
                let mut backoff = Duration::from_millis(10);
                loop {
                    self.stats.evaluations.fetch_add(1, Ordering::Relaxed);
                    let (cast, name) = (&self.plan.name, &event.object().name);
                    match self.evaluate(edge, alias, event, seen).await {
                        Ok(()) => break,
                        Err(e) if e.is_transient() => {
                            tracing::warn!(cast, edge = edge.spec.name, object = name, error = %e, "exchange unavailable; retrying in {backoff:?}");
                            tokio::select! {
                                () = tokio::time::sleep(backoff) => {}
                                () = self.shutdown.cancelled() => return false,
                            }
                            backoff = (backoff * 2).min(Duration::from_secs(1));
                        }
                        Err(e) => {
                            self.stats.failures.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(cast, edge = edge.spec.name, object = name, error = %e, "edge failed");
                            break;
                        }
                    }
                }
            }
        }
        true
    }

    async fn evaluate(
        &self,
        edge: &EdgePlan,
        alias: &str,
        event: &WatchEvent,
        seen: Instant,
    ) -> Result<(), EdgeError> {
        let object = event.object();
        let deleted = matches!(event, WatchEvent::Deleted(_));
        if deleted && edge.spec.on_delete == OnDelete::Ignore {
            return Ok(());
        }
        let Some(bindings) = self.bind(edge, alias, object, deleted).await? else {
            return Ok(()); // Waits until every `from` object exists.
        };
        let mut scope = self.cel.new_inner_scope();
        for (name, data) in &bindings {
            scope.add_variable_from_value(name.as_str(), json_to_cel(data));
        }
        scope.add_variable_from_value("key", object.name.as_str());
        let target_name = match &edge.key {
            Some(key) => match key.eval(&scope)? {
                Value::String(name) => name,
                got => return Err(ExprError::Type { role: "key", want: "string", got }.into()),
            },
            None => object.name.clone(),
        };
        let target = &self.plan.inputs[&edge.spec.to].store;
        if deleted {
            let key = (target.clone(), target_name.clone());
            self.targets.lock().expect("target cache poisoned").pop(&key);
            let delete = Write::delete(target_name);
            return match self.exchange.write(target, delete).await {
                Ok(_) | Err(ExchangeError::NotFound { .. }) => Ok(()),
                Err(e) => Err(e.into()),
            };
        }
        if let Some(when) = &edge.when {
            match when.eval(&scope)? {
                Value::Bool(true) => {}
                Value::Bool(false) => return Ok(()),
                got => return Err(ExprError::Type { role: "when", want: "boolean", got }.into()),
            }
        }
        let document: Value =
            if edge.set.iter().any(|(_, v)| matches!(v, super::expr::ValueExpr::Path(_))) {
                Value::Object(bindings.into_iter().collect())
            } else {
                Value::Null
            };
        let mut patch = Value::Object(Map::new());
        for (path, value) in &edge.set {
            if let Some(value) = value.eval(&scope, &document)? {
                set_path(&mut patch, path, value);
            }
        }
        let computed = Instant::now();
        self.merge_into(target, &target_name, &patch).await?;
        if let Some(probe) = &self.probe {
            let (edge, key) = (edge.spec.name.clone(), object.name.clone());
            let _ = probe.send(EdgeTiming { edge, key, seen, computed, written: Instant::now() });
        }
        Ok(())
    }

    /// Binds the edge's aliases: the changed object, the other `from` objects of the same
    /// name, and the `collect` inputs it reads. `None` while a `from` object is missing.
    async fn bind(
        &self,
        edge: &EdgePlan,
        alias: &str,
        object: &Object,
        deleted: bool,
    ) -> Result<Option<Vec<(String, Value)>>, EdgeError> {
        let mut bindings = Vec::with_capacity(edge.spec.from.len());
        for other in edge.spec.from.iter().filter(|f| *f != alias) {
            let input = &self.plan.inputs[other];
            if input.collect {
                continue;
            }
            match self.exchange.get(&input.store, &object.name).await {
                Ok(Some(found)) => bindings.push((other.clone(), found.data.clone())),
                Ok(None) if deleted => bindings.push((other.clone(), Value::Null)),
                Ok(None) => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
        // Copied once every other `from` object is known to exist.
        bindings.push((alias.to_owned(), object.data.clone()));
        let collected: BTreeSet<&String> = edge
            .reads
            .iter()
            .chain(&edge.spec.from)
            .filter(|a| self.plan.inputs.get(*a).is_some_and(|i| i.collect))
            .collect();
        for name in collected {
            let list = self
                .exchange
                .list(&self.plan.inputs[name].store)
                .await
                .map_err(|e| e.to_string())?;
            let items = list.items.iter().map(|o| o.data.clone()).collect();
            bindings.retain(|(n, _)| n != name);
            bindings.push((name.clone(), Value::Array(items)));
        }
        Ok(Some(bindings))
    }

    /// Merges `patch` into `name` of `store` and writes the result conditionally on the
    /// version it was merged over; writes nothing when that changes nothing. The state this
    /// integrator last wrote is tried first, saving a read; so is creating the target when the
    /// store's last uncached target was new. A conflict falls back to reading.
    async fn merge_into(
        &self,
        store: &StoreRef,
        name: &str,
        patch: &Value,
    ) -> Result<(), EdgeError> {
        let key = (store.clone(), name.to_owned());
        let mut current = self.targets.lock().expect("target cache poisoned").get(&key).cloned();
        // A miss where misses were new targets: take it as absent, as if read.
        let mut guessed = current.is_none() && self.misses_are_new(store);
        let mut read = guessed;
        for _ in 0..WRITE_ATTEMPTS {
            if current.is_none() && !read {
                current = self.exchange.get(store, name).await?;
                self.stats.target_reads.fetch_add(1, Ordering::Relaxed);
                self.remember_miss(store, current.is_none());
                read = true;
            }
            let mut merged = current.as_ref().map_or_else(|| json!({}), |o| o.data.clone());
            json_patch::merge(&mut merged, patch);
            if current.as_ref().is_some_and(|o| o.data == merged) {
                if read {
                    return Ok(());
                }
                // Unchanged as far as we know: make sure from the exchange itself.
                current = None;
                continue;
            }
            let expect = current.as_ref().map_or(Expect::Absent, |o| Expect::Version(o.version));
            let write = Write { name: name.to_owned(), op: WriteOp::Put(merged), expect };
            match self.exchange.write(store, write).await {
                Ok(written) => {
                    self.stats.writes.fetch_add(1, Ordering::Relaxed);
                    self.targets.lock().expect("target cache poisoned").put(key, written);
                    return Ok(());
                }
                Err(ExchangeError::Conflict { .. } | ExchangeError::AlreadyExists { .. }) => {
                    if std::mem::take(&mut guessed) {
                        self.remember_miss(store, false);
                    }
                    current = None;
                    read = false;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(format!("{store}/{name} kept changing; gave up after {WRITE_ATTEMPTS} attempts").into())
    }

    /// Whether the last target of `store` missing from the cache was new (not in the store).
    fn misses_are_new(&self, store: &StoreRef) -> bool {
        self.absent_on_miss.lock().expect("absent set poisoned").contains(store)
    }

    /// Records whether a target of `store` missing from the cache was new.
    fn remember_miss(&self, store: &StoreRef, new: bool) {
        let mut stores = self.absent_on_miss.lock().expect("absent set poisoned");
        if new {
            stores.insert(store.clone());
        } else {
            stores.remove(store);
        }
    }
}

/// Sets `value` at the dotted `path` of `doc`, creating objects on the way.
fn set_path(doc: &mut Value, path: &[String], value: Value) {
    let mut node = doc;
    for part in &path[..path.len() - 1] {
        let map = node.as_object_mut().expect("patches are objects");
        node = map.entry(part.clone()).or_insert_with(|| Value::Object(Map::new()));
        if !node.is_object() {
            *node = Value::Object(Map::new());
        }
    }
    node.as_object_mut().expect("patches are objects").insert(path[path.len() - 1].clone(), value);
}
