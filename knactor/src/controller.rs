//! The controller runtime: runs one knactor's reconciler over the changes of its stores.
//!
//! Per store, a reflector lists the store, then watches it (re-listing when the watch expires)
//! and keeps a cache of the latest objects. Changed names go into a [`WorkQueue`]; workers take
//! them one key at a time and call the reconciler with the cached state. Errors are retried
//! with exponential backoff, `RequeueAfter` is honoured, and shutdown lets running reconciles
//! finish.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use data_exchange::access::Rights;
use data_exchange::backoff::Backoff;
use data_exchange::{ExchangeError, LogExchange, Object, ObjectExchange, StoreRef, WatchEvent};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::time::DelayQueue;

use data_exchange::trace::{self, ChangeSpan, SpanKind};

use crate::follow::{Mirror, follow};
use crate::handled::Handled;
use crate::metrics::{Metrics, ReconcilerSeries};
use crate::queue::WorkQueue;
use crate::reconciler::{Action, Change, Context, Reconciler, StoreError};

/// Tuning of a controller.
#[derive(Clone, Debug)]
pub struct ControllerOptions {
    /// Reconciles that may run at once (of different objects).
    pub workers: usize,
    /// First retry delay after an error; doubles with each further error.
    pub backoff_base: Duration,
    /// The longest retry delay.
    pub backoff_max: Duration,
}

impl Default for ControllerOptions {
    fn default() -> Self {
        ControllerOptions {
            workers: 8,
            backoff_base: Duration::from_millis(10),
            backoff_max: Duration::from_secs(60),
        }
    }
}

impl ControllerOptions {
    /// The retry delays these options describe.
    fn backoff(&self) -> Backoff {
        Backoff::new(self.backoff_base, self.backoff_max)
    }
}

/// An object of one of the knactor's stores: (store name, object name).
type Key = (Arc<str>, String);
/// The latest objects of each store, by name.
type Cache = HashMap<Arc<str>, RwLock<HashMap<String, Arc<Object>>>>;

/// Runs one knactor's reconciler.
pub struct Controller {
    ctx: Context,
    reconciler: Arc<dyn Reconciler>,
    exchange: Arc<dyn ObjectExchange>,
    stores: Vec<StoreRef>,
    options: ControllerOptions,
    metrics: Arc<Metrics>,
    handled: Arc<Handled>,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller").field("knactor", &self.ctx.knactor()).finish_non_exhaustive()
    }
}

/// What the workers share.
struct Shared {
    ctx: Context,
    reconciler: Arc<dyn Reconciler>,
    cache: Cache,
    queue: WorkQueue<Key>,
    failures: Mutex<HashMap<Key, u32>>,
    delays: mpsc::UnboundedSender<(Key, Duration)>,
    options: ControllerOptions,
    metrics: Arc<Metrics>,
    /// Its queue and retries, as the metrics show them.
    series: ReconcilerSeries,
    handled: Arc<Handled>,
}

impl Controller {
    /// A controller running `reconciler` for the knactor that owns `stores`.
    pub fn new(
        knactor: &str,
        stores: Vec<StoreRef>,
        reconciler: Arc<dyn Reconciler>,
        exchange: Arc<dyn ObjectExchange>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let ctx = Context::new(knactor, stores.clone(), exchange.clone());
        let options = ControllerOptions::default();
        let handled = Arc::default();
        Controller { ctx, reconciler, exchange, stores, options, metrics, handled }
    }

    /// The changes its reconciler has handled, as it runs.
    pub fn handled(&self) -> Arc<Handled> {
        self.handled.clone()
    }

    /// Holds the reconciler to `rights` (its knactor's, with what policies grant it).
    pub fn with_rights(mut self, rights: Rights) -> Self {
        self.ctx = self.ctx.with_rights(rights);
        self
    }

    /// Lets the reconciler append to the knactor's Log stores `logs` on `log`.
    pub fn with_logs(mut self, logs: Vec<StoreRef>, log: Arc<dyn LogExchange>) -> Self {
        self.ctx = self.ctx.with_logs(logs, log);
        self
    }

    /// Replaces the default tuning.
    pub fn with_options(mut self, options: ControllerOptions) -> Self {
        self.options = options;
        self
    }

    /// Runs until `shutdown` is cancelled, then waits for running reconciles to finish.
    pub async fn run(self, shutdown: CancellationToken) {
        let (delays, delayed) = mpsc::unbounded_channel();
        let cache = self
            .stores
            .iter()
            .map(|s| (Arc::from(s.store()), RwLock::new(HashMap::new())))
            .collect();
        let series = self.metrics.reconciler(self.ctx.knactor());
        // A controller started again (its manifest applied) starts with nothing failing.
        series.failing.set(0);
        let shared = Arc::new(Shared {
            ctx: self.ctx,
            reconciler: self.reconciler,
            cache,
            queue: WorkQueue::new(),
            failures: Mutex::default(),
            delays,
            options: self.options,
            series,
            metrics: self.metrics,
            handled: self.handled,
        });
        let mut tasks = JoinSet::new();
        for store in self.stores {
            let name: Arc<str> = Arc::from(store.store());
            let reflector = Arc::new(Reflector { shared: shared.clone(), name });
            let backoff = shared.options.backoff();
            tasks.spawn(follow(self.exchange.clone(), store, reflector, backoff, shutdown.clone()));
        }
        tasks.spawn(shared.clone().requeue_delayed(delayed, shutdown.clone()));
        for _ in 0..shared.options.workers {
            tasks.spawn(shared.clone().work(shutdown.clone()));
        }
        while let Some(outcome) = tasks.join_next().await {
            if let Err(e) = outcome {
                tracing::error!(knactor = shared.ctx.knactor(), error = %e, "controller task failed");
            }
        }
        shared.series.failing.set(0); // Stopped: nothing of it waits for a retry.
    }
}

/// Mirrors one store into the cache and queues every object that changes.
struct Reflector {
    shared: Arc<Shared>,
    /// The store's name.
    name: Arc<str>,
}

impl Mirror for Reflector {
    fn listed(&self, objects: Vec<Arc<Object>>, version: u64) {
        let (shared, name) = (&self.shared, &self.name);
        let touched: Vec<(String, u64)> = {
            let mut cache = shared.cache[name].write().expect("cache poisoned");
            // Listed, they are states, not changes: a reconcile of one starts a trace of its own.
            let fresh: HashMap<_, _> =
                objects.into_iter().map(|o| (o.name.clone(), Object::untraced(o))).collect();
            // Objects gone since the last list were deleted while we were not watching.
            let mut touched: Vec<(String, u64)> = cache
                .keys()
                .filter(|k| !fresh.contains_key(*k))
                .map(|k| (k.clone(), version))
                .collect();
            touched.extend(
                fresh
                    .iter()
                    .filter(|(k, o)| cache.get(*k).is_none_or(|c| c.version != o.version))
                    .map(|(k, o)| (k.clone(), o.version)),
            );
            *cache = fresh;
            touched
        };
        shared.handled.listed(name, version, &touched);
        for (object, _) in touched {
            shared.queue.add((name.clone(), object));
        }
        shared.show_queue();
    }

    fn changed(&self, event: WatchEvent) {
        let (shared, name) = (&self.shared, &self.name);
        let object = event.object().clone();
        {
            let mut cache = shared.cache[name].write().expect("cache poisoned");
            match event {
                WatchEvent::Deleted(_) => cache.remove(&object.name),
                _ => cache.insert(object.name.clone(), object.clone()),
            };
        }
        shared.handled.changed(name, &object.name, object.version);
        shared.queue.add((name.clone(), object.name.clone()));
        shared.show_queue();
    }
}

impl Shared {
    /// Shows in the metrics how many keys wait for a worker.
    fn show_queue(&self) {
        self.series.queue_depth.set(i64::try_from(self.queue.len()).unwrap_or(i64::MAX));
    }

    /// Shows in the metrics how many objects wait for a retry.
    fn show_failing(&self, objects: usize) {
        self.series.failing.set(i64::try_from(objects).unwrap_or(i64::MAX));
    }

    /// Puts keys back on the queue when their requeue or retry delay has passed.
    async fn requeue_delayed(
        self: Arc<Self>,
        mut delays: mpsc::UnboundedReceiver<(Key, Duration)>,
        shutdown: CancellationToken,
    ) {
        let mut timers = DelayQueue::new();
        loop {
            tokio::select! {
                Some((key, delay)) = delays.recv() => { timers.insert(key, delay); }
                Some(expired) = timers.next(), if !timers.is_empty() => {
                    self.queue.add(expired.into_inner());
                    self.show_queue();
                }
                () = shutdown.cancelled() => return,
            }
        }
    }

    /// Takes keys from the queue and reconciles them until shutdown.
    async fn work(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            let key = tokio::select! {
                key = self.queue.next() => key,
                () = shutdown.cancelled() => return,
            };
            self.show_queue();
            self.reconcile(&key).await;
            self.queue.done(&key);
            self.show_queue();
        }
    }

    async fn reconcile(&self, key: &Key) {
        let (store, name) = key;
        // What is pending before the cache is read: the object read is at least as recent.
        let taking = self.handled.taking(store, name);
        let object = self.cache[store].read().expect("cache poisoned").get(name).cloned();
        let knactor = self.ctx.knactor();
        // A child of the write that made the object's state (a new trace for a deletion, whose
        // state is gone); the reconciler's writes carry it on.
        let parent = object.as_ref().and_then(|o| o.trace);
        let mut span = ChangeSpan::start(SpanKind::Consumer, parent, || {
            let (store, version) =
                (format!("{knactor}/{store}"), object.as_ref().map(|o| o.version));
            (format!("reconcile {knactor}"), ChangeSpan::object_attributes(&store, name, version))
        });
        let change = Change { store: store.to_string(), name: name.clone(), object };
        if self.failures.lock().expect("failures poisoned").contains_key(key) {
            self.series.retries.inc();
        }
        let started = Instant::now();
        let reconciling = self.reconciler.reconcile(&self.ctx, &change);
        let outcome = trace::within(trace::carried(span.as_ref(), parent), reconciling).await;
        if let (Some(span), Err(error)) = (&mut span, &outcome) {
            span.fail(error);
        }
        self.metrics.reconciled(knactor, outcome.is_ok(), started.elapsed());
        let delay = match outcome {
            Ok(action) => {
                let mut failures = self.failures.lock().expect("failures poisoned");
                if failures.remove(key).is_some() {
                    self.show_failing(failures.len());
                }
                drop(failures);
                if let Some(upto) = taking {
                    self.handled.done(store, name, upto);
                }
                match action {
                    Action::Done => return,
                    Action::RequeueAfter(delay) => delay,
                }
            }
            Err(error) => {
                if let Some((operation, denied)) = denial(&*error) {
                    let principal = format!("knactor:{knactor}");
                    self.metrics.reconcile_denied(&principal, operation);
                    tracing::warn!(target: "knactor::audit", principal, operation, store = denied, "denied");
                }
                let mut failures = self.failures.lock().expect("failures poisoned");
                let count = failures.entry(key.clone()).or_insert(0);
                *count += 1;
                let delay = self.options.backoff().after(*count);
                self.show_failing(failures.len());
                tracing::warn!(knactor, store = &**store, name, %error, "reconcile failed; retrying in {delay:?}");
                delay
            }
        };
        let _ = self.delays.send((key.clone(), delay));
    }
}

/// The operation and store a reconcile's `error` was refused, when it (or an error it wraps)
/// is a denial: a store the knactor may not reach, or the exchange's refusal.
fn denial(error: &(dyn std::error::Error + 'static)) -> Option<(&'static str, String)> {
    let refused = |e: &ExchangeError| match e {
        ExchangeError::Denied(denial) => Some((denial.operation, denial.store.to_string())),
        _ => None,
    };
    std::iter::successors(Some(error), |e| e.source()).find_map(|e| {
        if let Some(e) = e.downcast_ref::<StoreError>() {
            return match e {
                StoreError::NotOwned { store, .. } | StoreError::NotGranted { store, .. } => {
                    Some(("reach", store.clone()))
                }
                StoreError::Exchange(e) => refused(e),
            };
        }
        e.downcast_ref::<ExchangeError>().and_then(refused)
    })
}
