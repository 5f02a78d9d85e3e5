//! Running a Cast plan: the task loop. It watches the stores that trigger edges, binds the
//! objects each edge reads, has `eval` compute the target's write and
//! `targets` make it — only when that changes something.
//!
//! One task owns the plan and processes changes one at a time, so a new plan swaps in between
//! two changes: each change is handled entirely by one plan version. Its
//! `progress` is checkpointed in the exchange, so a restarted integrator
//! resumes where it stopped; re-handling a change is harmless because writes that change
//! nothing are not made.
//!
//! With pushdown, the exchange runs the edges it can run itself inside the writes of their source, from
//! the store version it reports (`offload`); this task evaluates them for
//! the changes up to that version only, and does not watch a store whose edges all run in the
//! exchange. Changes written while a new plan is pushed down may then be handled by both plan
//! versions (the later one wins).

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use data_exchange::access::ScopedExchange;
use data_exchange::backoff::Backoff;
use data_exchange::trace::{self, ChangeSpan, SpanKind, TraceParent};
use data_exchange::{
    EdgeOrigin, ExchangeError, Object, ObjectExchange, Origin, Source, StoreRef, WatchEvent,
};
use futures::StreamExt;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_stream::StreamMap;
use tokio_util::sync::CancellationToken;

use super::eval::{Bindings, Evaluator, TargetWrite};
use super::expr::ExprError;
use super::offload::Offload;
use super::plan::{CastPlan, EdgePlan};
use super::progress::{Progress, checkpoint_name, checkpoint_schema, checkpoint_store};
use super::stats::{CastObserver, CastStats, EdgeHandled, EdgeOutcome};
use super::targets::{TargetError, Targets};
use crate::diff::PlanDiff;

/// How often progress is checkpointed while changes flow.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// Retries while the exchange is unavailable: from 10 ms, doubling up to 1 s.
const RETRY: Backoff = Backoff::new(Duration::from_millis(10), Duration::from_secs(1));

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

/// Why handling one change on one edge failed.
#[derive(Debug, thiserror::Error)]
enum EdgeError {
    /// The edge cannot give a write for this data.
    #[error(transparent)]
    Eval(#[from] ExprError),
    /// The target could not be written.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// The exchange refused or failed.
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
}

impl EdgeError {
    /// What failed, as [`EdgeOutcome::Failed`] names it (a transient failure is retried).
    fn kind(&self) -> &'static str {
        match self {
            EdgeError::Eval(_) => "eval",
            EdgeError::Target(TargetError::KeptChanging { .. }) => "conflict",
            EdgeError::Exchange(_) | EdgeError::Target(TargetError::Exchange(_)) => "refused",
        }
    }

    /// Whether retrying later may succeed: the exchange itself failed.
    fn is_transient(&self) -> bool {
        match self {
            EdgeError::Exchange(e) | EdgeError::Target(TargetError::Exchange(e)) => {
                !e.is_client_error()
            }
            EdgeError::Eval(_) | EdgeError::Target(TargetError::KeptChanging { .. }) => false,
        }
    }
}

/// How many targets' last written state an integrator keeps by default.
pub const DEFAULT_TARGET_CACHE: NonZeroUsize = NonZeroUsize::new(65_536).expect("not zero");

/// How a Cast integrator runs.
#[derive(Debug)]
pub struct CastOptions {
    /// Hands the edges the exchange can run itself to it, to run inside the writes of their
    /// source (Redis); the others, and every edge on other exchanges, run here.
    pub pushdown: bool,
    /// Where an [`EdgeTiming`] goes for every edge evaluation that reached its target.
    pub probe: Option<mpsc::UnboundedSender<EdgeTiming>>,
    /// How many targets' last written state to keep, so that writing them again needs no read
    /// first; the least recently written go first.
    pub target_cache: NonZeroUsize,
    /// Told of every change each edge handles, and how it went.
    pub observer: Option<Arc<dyn CastObserver>>,
    /// Stamps each target write with its origin (the edge, the spec's version, the objects
    /// read), for `knactor why`; on by default.
    pub provenance: bool,
    /// A shadow run: the targets are written into this exchange (copies of the live ones)
    /// instead, from the changes made after the start on; it reads the live exchange with
    /// [`CastPlan::shadow_rights`], keeps no checkpoint and pushes nothing down.
    pub shadow: Option<Arc<dyn ObjectExchange>>,
}

impl Default for CastOptions {
    fn default() -> Self {
        let target_cache = DEFAULT_TARGET_CACHE;
        CastOptions {
            pushdown: false,
            probe: None,
            target_cache,
            observer: None,
            provenance: true,
            shadow: None,
        }
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
    exchange: Arc<ScopedExchange>,
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
        let shadow = options.shadow.is_some();
        if !shadow {
            exchange.register(&checkpoint_store(), &checkpoint_schema()).await?;
        }
        let name = plan.name.clone();
        let stats = Arc::new(CastStats::default());
        // From here on it reaches the exchange only as the plan's rights allow.
        let exchange = Arc::new(ScopedExchange::new(exchange, rights_of(&plan, shadow)));
        let written: Arc<dyn ObjectExchange> = match options.shadow {
            Some(copies) => copies,
            None => exchange.clone(),
        };
        let mut engine = Engine {
            targets: Targets::new(written, options.target_cache, stats.clone()),
            exchange: exchange.clone(),
            progress: if shadow {
                Progress::unsaved(&plan.name)
            } else {
                Progress::new(&plan.name)
            },
            plan,
            evaluator: Evaluator::default(),
            offload: Offload::default(),
            pushdown: options.pushdown && !shadow,
            shadow,
            stats: stats.clone(),
            shutdown: CancellationToken::new(),
            probe: options.probe,
            observer: options.observer,
            provenance: options.provenance,
        };
        let shutdown = engine.shutdown.clone();
        let mut watches = Watches::new();
        // Edges run by the exchange from now on; the changes before are handled here.
        engine.push_down().await?;
        engine.resume(&mut watches).await?;
        let (control, controls) = mpsc::channel(8);
        let task = tokio::spawn(engine.run(watches, controls));
        Ok(CastIntegrator { name, control, shutdown, task: Some(task), stats, exchange })
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

    /// The exchange handle it acts through, held to the running plan's rights.
    pub fn exchange(&self) -> &Arc<ScopedExchange> {
        &self.exchange
    }

    /// The running plan's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Stops as [`stop`](Self::stop) does, and marks its checkpoint retired: the spec was
    /// deleted, so the state retention waits for it no more; applying it again resumes from
    /// the checkpoint (and consumes again).
    pub async fn retire(self) {
        let (exchange, name) = (self.exchange.clone(), checkpoint_name(&self.name));
        self.stop().await;
        let write = data_exchange::Write::patch(name, serde_json::json!({ "retired": true }));
        if let Err(e) = exchange.write(&checkpoint_store(), write).await {
            tracing::warn!(checkpoint = %e, "cannot mark the checkpoint retired");
        }
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

/// The rights a run of `plan` acts with: its own, or its shadow run's.
fn rights_of(plan: &CastPlan, shadow: bool) -> data_exchange::access::Rights {
    if shadow { plan.shadow_rights() } else { plan.rights() }
}

/// The state of the integrator's task.
struct Engine {
    /// The exchange, held to the running plan's rights.
    exchange: Arc<ScopedExchange>,
    plan: CastPlan,
    progress: Progress,
    evaluator: Evaluator,
    targets: Targets,
    /// The edges the exchange runs.
    offload: Offload,
    /// Whether to hand edges to the exchange.
    pushdown: bool,
    /// Whether it is a shadow run (see [`CastOptions::shadow`]).
    shadow: bool,
    stats: Arc<CastStats>,
    shutdown: CancellationToken,
    /// Where timings go, when measured.
    probe: Option<mpsc::UnboundedSender<EdgeTiming>>,
    observer: Option<Arc<dyn CastObserver>>,
    /// Whether target writes are stamped with their origins.
    provenance: bool,
}

/// What a change handled again (after a re-list) was handled by before: such a change creates
/// no target, so that a target deleted since (by someone, or collected by the state
/// retention) does not come back; only a change newer than those handled, or an edge new to
/// the plan, creates one.
struct Rerun {
    /// The store's version up to which every change was handled.
    handled: u64,
    /// The edges that handled them.
    edges: BTreeSet<String>,
}

impl Rerun {
    /// Whether `edge` handling `event` again may create its target.
    fn creates(&self, edge: &EdgePlan, event: &WatchEvent) -> bool {
        event.version() > self.handled || !self.edges.contains(&edge.spec.name)
    }
}

/// The watches of the input stores, by store (kept apart from [`Engine`], which handlers share).
type Watches = StreamMap<StoreRef, data_exchange::WatchStream>;

impl Engine {
    /// Watches every trigger store from its checkpoint; catches up on stores with none.
    async fn resume(&mut self, watches: &mut Watches) -> Result<(), CastError> {
        let saved = if self.shadow {
            // A shadow run starts at the sources' versions now.
            let mut now = std::collections::BTreeMap::new();
            for store in self.plan.trigger_stores() {
                now.insert(store.to_string(), self.exchange.version(&store).await?);
            }
            now
        } else {
            self.progress.saved(&*self.exchange).await?
        };
        let unseen = |store: &StoreRef| !saved.contains_key(&store.to_string());
        if !self.shadow && self.plan.trigger_stores().iter().any(unseen) {
            // Consumes the stores it has not seen from now: the state retention collects
            // nothing there before it has caught up.
            for store in self.plan.trigger_stores() {
                if let Some(&version) = saved.get(&store.to_string()) {
                    self.progress.advance(&store, version);
                }
            }
            self.checkpoint().await;
        }
        for store in self.plan.trigger_stores() {
            match saved.get(&store.to_string()) {
                Some(&version) if self.offload.handles_store(&self.plan, &store, version) => {
                    self.progress.advance(&store, version);
                }
                Some(&version) => match self.exchange.watch(&store, version).await {
                    Ok(watch) => {
                        self.progress.advance(&store, version);
                        watches.insert(store, watch);
                    }
                    Err(ExchangeError::Expired { lost, .. }) => {
                        // What it handled before stays handled: the re-list creates no
                        // target again for it (unless the data was lost with it).
                        self.progress.advance(&store, if lost { 0 } else { version });
                        self.catch_up(&store, watches, lost).await?;
                    }
                    Err(e) => return Err(e.into()),
                },
                None => self.catch_up(&store, watches, false).await?,
            }
        }
        self.checkpoint().await;
        Ok(())
    }

    /// Evaluates every object of `store` and watches it from the version listed. What it
    /// handled before creates no target again, unless the exchange `lost` its data: then
    /// every object listed is new.
    async fn catch_up(
        &mut self,
        store: &StoreRef,
        watches: &mut Watches,
        lost: bool,
    ) -> Result<(), CastError> {
        if lost {
            // No version of the lost data may be checkpointed, whatever happens next.
            self.progress.advance(store, 0);
        }
        let list = self.exchange.list(store).await?;
        let watch = self.exchange.watch(store, list.version).await?;
        let edges = self.plan.edges.iter().map(|e| e.spec.name.clone()).collect();
        let handled = self.progress.get(store).unwrap_or(0);
        let rerun = Rerun { handled, edges };
        for object in &list.items {
            let event = WatchEvent::Modified(object.clone());
            if !self.handle(store, &event, Some(&rerun)).await {
                return Ok(()); // Shutting down: the store's position stays where it was.
            }
        }
        self.progress.advance(store, list.version);
        if !self.offload.handles_store(&self.plan, store, list.version) {
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
                        if !self.handle(&store, &event, None).await {
                            break;
                        }
                        if self.offload.handles_store(&self.plan, &store, event.version()) {
                            watches.remove(&store);
                        }
                        self.progress.advance(&store, event.version());
                    }
                    Err(e) => self.rewatch(&store, e, &mut watches).await,
                },
                // The exchange moves the stores whose edges it runs: they are checkpointed
                // as it does.
                _ = ticks.tick() => if self.progress.is_dirty() || self.offload.is_active() {
                    self.checkpoint().await;
                },
            }
        }
        if self.offload.is_active() {
            let watched = watches.keys().cloned().collect();
            let withdrawn = async {
                self.catch_up_unwatched(watched).await?;
                self.offload.withdraw(&*self.exchange, self.progress.owner()).await
            };
            if let Err(e) = withdrawn.await {
                tracing::warn!(cast = %self.plan.name, error = %e, "cannot withdraw pushed-down edges");
            }
        }
        self.checkpoint().await;
    }

    /// Checkpoints progress, and shows it in the stats (but for the stores whose edges all
    /// run in the exchange, whose positions stay behind).
    async fn checkpoint(&mut self) {
        let consumed = self.consumed().await;
        self.progress.checkpoint(&*self.exchange, &consumed, &self.plan.creates()).await;
        let mut handled = self.progress.positions().clone();
        handled.retain(|store, &mut at| !self.offload.handles_store(&self.plan, store, at));
        self.stats.set_handled(&handled);
    }

    /// Per trigger store, the version up to which every change is handled: its position, or
    /// its version now when the exchange runs all its edges; 0 (nothing) before it is caught
    /// up with, so that the state retention collects nothing this run has not seen.
    async fn consumed(&self) -> BTreeMap<StoreRef, u64> {
        let mut consumed = BTreeMap::new();
        for store in self.plan.trigger_stores() {
            let position = self.progress.get(&store).unwrap_or(0);
            let at = if position > 0 && self.offload.handles_store(&self.plan, &store, position) {
                self.exchange.version(&store).await.unwrap_or(position)
            } else {
                position
            };
            consumed.insert(store, at);
        }
        consumed
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
                self.progress.advance(&store, version);
            }
        }
        Ok(())
    }

    /// Hands the plan's edges the exchange can run to it, in place of those handed before
    /// (see [`CastOptions::pushdown`]).
    async fn push_down(&mut self) -> Result<(), CastError> {
        if !self.pushdown {
            return Ok(());
        }
        self.offload.hand_over(&*self.exchange, self.progress.owner(), &self.plan).await?;
        self.stats.pushed_down.store(self.offload.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Resumes a failed watch: re-list on expiry, else retry from the last position.
    async fn rewatch(&mut self, store: &StoreRef, error: ExchangeError, watches: &mut Watches) {
        watches.remove(store);
        let mut backoff = RETRY;
        loop {
            let outcome = match &error {
                ExchangeError::Expired { lost, .. } => self.catch_up(store, watches, *lost).await,
                _ => {
                    let from = self.progress.get(store).unwrap_or(0);
                    match self.exchange.watch(store, from).await {
                        Ok(watch) => {
                            watches.insert(store.clone(), watch);
                            Ok(())
                        }
                        Err(ExchangeError::Expired { lost, .. }) => {
                            self.catch_up(store, watches, lost).await
                        }
                        Err(e) => Err(e.into()),
                    }
                }
            };
            match outcome {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(cast = %self.plan.name, %store, error = %e, "cannot watch; retrying");
                    tokio::select! {
                        () = backoff.wait() => {}
                        () = self.shutdown.cancelled() => return,
                    }
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
        // The new plan's rights hold from the swap on, its first reads included.
        self.exchange.set_rights(rights_of(&plan, self.shadow));
        for store in new.difference(&old) {
            match self.exchange.version(store).await {
                Ok(version) => self.progress.advance(store, version),
                Err(e) => {
                    self.exchange.set_rights(rights_of(&self.plan, self.shadow));
                    return Err(e.into());
                }
            }
        }
        for store in old.difference(&new) {
            watches.remove(store);
            self.progress.forget(store);
        }
        let added: BTreeSet<StoreRef> = new.difference(&old).cloned().collect();
        let old_edges: BTreeSet<String> =
            self.plan.edges.iter().map(|e| e.spec.name.clone()).collect();
        self.plan = plan;
        self.push_down().await?;
        for store in new {
            let position = match self.progress.get(&store) {
                Some(position) => position,
                None => self.exchange.version(&store).await?,
            };
            self.progress.advance(&store, position);
            if self.offload.handles_store(&self.plan, &store, position) {
                watches.remove(&store);
            } else if !watches.contains_key(&store) {
                watches.insert(store.clone(), self.exchange.watch(&store, position).await?);
            }
        }
        if self.plan.resync {
            for store in self.plan.trigger_stores() {
                let handled =
                    if added.contains(&store) { 0 } else { self.progress.get(&store).unwrap_or(0) };
                let rerun = Rerun { handled, edges: old_edges.clone() };
                for object in self.exchange.list(&store).await?.items {
                    let event = WatchEvent::Modified(object);
                    if !self.handle(&store, &event, Some(&rerun)).await {
                        return Ok(diff);
                    }
                }
            }
        }
        let PlanDiff { added, removed, changed } = &diff;
        tracing::info!(cast = %self.plan.name, ?added, ?removed, ?changed, "applied");
        Ok(diff)
    }

    /// Evaluates every edge a change of `store` triggers. While the exchange is unavailable
    /// an edge is retried with backoff; `false` when shutdown came first (the change is then
    /// not done, and is handled again after a restart).
    async fn handle(&self, store: &StoreRef, event: &WatchEvent, rerun: Option<&Rerun>) -> bool {
        let seen = Instant::now();
        self.stats.set_pending(Some(seen));
        let done = self.handle_edges(store, event, rerun, seen).await;
        self.stats.set_pending(None);
        done
    }

    /// [`Self::handle`], of a change received at `seen`.
    async fn handle_edges(
        &self,
        store: &StoreRef,
        event: &WatchEvent,
        rerun: Option<&Rerun>,
        seen: Instant,
    ) -> bool {
        for (alias, input) in &self.plan.inputs {
            if input.store != *store {
                continue;
            }
            for edge in self.plan.edges_from(alias) {
                if self.offload.ran(edge, store, event.version()) {
                    continue;
                }
                let mut backoff = RETRY;
                let (cast, name) = (&self.plan.name, &event.object().name);
                loop {
                    self.stats.evaluations.fetch_add(1, Ordering::Relaxed);
                    let started = Instant::now();
                    // An edge that reads its target fills it in, and never creates it (not
                    // even when it was deleted, or collected, since it was read); but in a
                    // shadow run's copies, which start empty.
                    let fills = edge.spec.from.contains(&edge.spec.to) && !self.shadow;
                    let creates = !fills && rerun.is_none_or(|rerun| rerun.creates(edge, event));
                    // A change read from a list (catching up, or a resync) is a state, not the
                    // write that made it: its trace does not go on.
                    let parent = if rerun.is_some() { None } else { event.object().trace };
                    let change = (store, alias.as_str(), event, parent);
                    let handled = self.apply_edge(edge, change, creates, seen).await;
                    if let Some(observer) = &self.observer {
                        let (outcome, write) = match &handled {
                            Ok((outcome, write)) => (*outcome, write.as_ref()),
                            Err(e) if e.is_transient() => (EdgeOutcome::Retried, None),
                            Err(e) => (EdgeOutcome::Failed(e.kind()), None),
                        };
                        let target = &self.plan.inputs[&edge.spec.to].store;
                        let write = write.map(|write| match write {
                            TargetWrite::Merge { name, patch } => {
                                (target, name.as_str(), Some(patch))
                            }
                            TargetWrite::Delete { name } => (target, name.as_str(), None),
                        });
                        observer.edge_handled(&EdgeHandled {
                            spec: cast,
                            edge: &edge.spec.name,
                            source: store,
                            object: event.object(),
                            deleted: matches!(event, WatchEvent::Deleted(_)),
                            outcome,
                            write,
                            took: started.elapsed(),
                        });
                    }
                    match handled {
                        Ok(_) => break,
                        Err(e) if e.is_transient() => {
                            let delay = backoff.next_delay();
                            tracing::warn!(cast, edge = edge.spec.name, object = name, error = %e, "exchange unavailable; retrying in {delay:?}");
                            tokio::select! {
                                () = tokio::time::sleep(delay) => {}
                                () = self.shutdown.cancelled() => return false,
                            }
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

    /// Handles one change (`event` of `store`, bound to `alias`, in trace `parent`) on one
    /// edge: binds, evaluates, writes the target. Answers how it went, and what it had to
    /// write. The trace gets a span for the edge when it derives a write (`written` or
    /// `unchanged`) or fails, not when it has nothing to write; a shadow run records none.
    async fn apply_edge(
        &self,
        edge: &EdgePlan,
        (store, alias, event, parent): (&StoreRef, &str, &WatchEvent, Option<TraceParent>),
        creates: bool,
        seen: Instant,
    ) -> Result<(EdgeOutcome, Option<TargetWrite>), EdgeError> {
        let started = trace::enabled().then(SystemTime::now);
        let object = event.object();
        let span = || {
            let started = started.filter(|_| !self.shadow)?;
            ChangeSpan::start_at(started, SpanKind::Consumer, parent, || {
                let name = format!("cast {}/{}", self.plan.name, edge.spec.name);
                let version = Some(object.version);
                (name, ChangeSpan::object_attributes(store, &object.name, version))
            })
        };
        let failed = |span: Option<ChangeSpan>, e: &EdgeError| {
            if let Some(mut span) = span {
                match e.is_transient() {
                    true => span.set("knactor.outcome", EdgeOutcome::Retried.name()),
                    false => span.set("knactor.outcome", EdgeOutcome::Failed(e.kind()).name()),
                }
                span.fail(e);
            }
        };
        let (write, sources) = match self.derive(edge, alias, event).await {
            Ok(Some(derived)) => derived,
            Ok(None) => return Ok((EdgeOutcome::Skipped, None)),
            Err(e) => {
                failed(span(), &e);
                return Err(e);
            }
        };
        let mut span = span();
        let writing = self.write_target(edge, object, &write, &sources, creates, seen);
        let context = if self.shadow { None } else { trace::carried(span.as_ref(), parent) };
        let outcome = match trace::within(context, writing).await {
            Ok(true) => EdgeOutcome::Written,
            Ok(false) => EdgeOutcome::Unchanged,
            Err(e) => {
                failed(span, &e);
                return Err(e);
            }
        };
        if let Some(span) = &mut span {
            span.set("knactor.outcome", outcome.name());
        }
        Ok((outcome, Some(write)))
    }

    /// What `edge` makes of a change: the write of its target, with the objects it read;
    /// `None` when it has nothing to write.
    async fn derive(
        &self,
        edge: &EdgePlan,
        alias: &str,
        event: &WatchEvent,
    ) -> Result<Option<(TargetWrite, Vec<Source>)>, EdgeError> {
        let object = event.object();
        let deleted = matches!(event, WatchEvent::Deleted(_));
        if deleted && edge.spec.on_delete == super::spec::OnDelete::Ignore {
            return Ok(None); // The evaluator would write nothing: spare the reads of binding.
        }
        let Some((bindings, sources)) = self.bind(edge, alias, object, deleted).await? else {
            return Ok(None); // Waits until every `from` object exists.
        };
        let write = self.evaluator.evaluate(edge, &object.name, bindings, deleted)?;
        Ok(write.map(|write| (write, sources)))
    }

    /// Makes `write`, derived by `edge` from `sources` for a change of `object`: whether it
    /// changed the target.
    async fn write_target(
        &self,
        edge: &EdgePlan,
        object: &Object,
        write: &TargetWrite,
        sources: &[Source],
        creates: bool,
        seen: Instant,
    ) -> Result<bool, EdgeError> {
        let target = &self.plan.inputs[&edge.spec.to].store;
        Ok(match write {
            TargetWrite::Delete { name } => self.targets.delete(target, name).await?,
            TargetWrite::Merge { name, patch } => {
                let computed = Instant::now();
                let origin = || self.origin(edge, sources);
                let origin = self.provenance.then_some(&origin as &(dyn Fn() -> _ + Sync));
                let written = self.targets.merge(target, (name, patch), origin, creates).await?;
                if let Some(probe) = &self.probe {
                    let (edge, key) = (edge.spec.name.clone(), object.name.clone());
                    let written = Instant::now();
                    let _ = probe.send(EdgeTiming { edge, key, seen, computed, written });
                }
                written
            }
        })
    }

    /// Who writes what `edge` derives from `sources`: this spec's integrator, by that edge.
    fn origin(&self, edge: &EdgePlan, sources: &[Source]) -> Arc<Origin> {
        let set = edge.spec.set.iter().map(|(path, value)| (path.clone(), value.source()));
        Arc::new(Origin {
            writer: super::principal(&self.plan.name),
            edge: Some(EdgeOrigin {
                spec: self.plan.name.clone(),
                spec_version: self.plan.version,
                edge: edge.spec.name.clone(),
                set: set.collect(),
                sources: sources.to_vec(),
            }),
        })
    }

    /// Binds the edge's aliases: the changed object, the other `from` objects of the same
    /// name, and the `collect` inputs it reads; with the objects bound, at their versions
    /// (a `collect` input's at its store's version). `None` while a `from` object is missing.
    async fn bind(
        &self,
        edge: &EdgePlan,
        alias: &str,
        object: &Object,
        deleted: bool,
    ) -> Result<Option<(Bindings, Vec<Source>)>, ExchangeError> {
        let mut bindings = Vec::with_capacity(edge.spec.from.len());
        let mut sources = Vec::with_capacity(edge.spec.from.len());
        let source = |alias: &str, store: &StoreRef, name: &str, version| Source {
            alias: alias.to_owned(),
            store: store.to_string(),
            name: name.to_owned(),
            version,
        };
        for other in edge.spec.from.iter().filter(|f| *f != alias) {
            let input = &self.plan.inputs[other];
            if input.collect {
                continue;
            }
            match self.exchange.get(&input.store, &object.name).await? {
                Some(found) => {
                    sources.push(source(other, &input.store, &found.name, found.version));
                    bindings.push((other.clone(), found.data.clone()));
                }
                None if deleted => bindings.push((other.clone(), Value::Null)),
                None => return Ok(None),
            }
        }
        // Copied once every other `from` object is known to exist.
        let store = &self.plan.inputs[alias].store;
        sources.push(source(alias, store, &object.name, object.version));
        bindings.push((alias.to_owned(), object.data.clone()));
        let collected: BTreeSet<&String> = edge
            .reads
            .iter()
            .chain(&edge.spec.from)
            .filter(|a| self.plan.inputs.get(*a).is_some_and(|i| i.collect))
            .collect();
        for name in collected {
            let store = &self.plan.inputs[name].store;
            let list = self.exchange.list(store).await?;
            let items = list.items.iter().map(|o| o.data.clone()).collect();
            bindings.retain(|(n, _)| n != name);
            bindings.push((name.clone(), Value::Array(items)));
            sources.retain(|s| s.alias != *name);
            sources.push(source(name, store, "*", list.version));
        }
        Ok(Some((bindings, sources)))
    }
}
