//! A knactor's collector: publishes what its reconciler handled, and collects from its stores
//! what every consumer is done with (see the module doc of [`crate::retention`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use data_exchange::backoff::{Backoff, Warnings};
use data_exchange::log::Checkpoint;
use data_exchange::log::ingest::Ingest;
use data_exchange::{ExchangeError, LogExchange, Object, ObjectExchange, StoreRef, Write};
use integrators::cast::{checkpoint_schema, checkpoint_store};
use serde_json::{Map, Value, json};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::follow::{Candidates, Names, Presence};
use super::{COLLECT_EVERY, Consumers, Feeder, Finished, reconciler_checkpoint};
use crate::follow::{Mirror, follow};
use crate::handled::Handled;
use crate::metrics::{Metrics, RetentionSeries};

/// One store a [`Collector`] collects from, and how.
#[derive(Debug)]
pub struct Collected {
    /// The store.
    pub store: StoreRef,
    /// What marks its objects finished.
    pub finished: Finished,
    /// How long a consumed, finished object is kept unchanged.
    pub ttl: Duration,
    /// Where collected objects are appended first, with how its records are checked.
    pub archive: Option<(StoreRef, Ingest)>,
}

/// The state retention of one knactor's stores.
#[derive(Debug)]
pub struct Collector {
    knactor: String,
    exchange: Arc<dyn ObjectExchange>,
    log: Arc<dyn LogExchange>,
    /// What its reconciler handled, when it has one running here.
    handled: Option<Arc<Handled>>,
    stores: Vec<Collected>,
    metrics: Arc<Metrics>,
}

impl Collector {
    /// Collects from `stores` of `knactor` through `exchange` (which must reach them, the
    /// stores that feed them and the checkpoints), archiving to `log`; publishes what its
    /// reconciler `handled`.
    pub fn new(
        knactor: &str,
        exchange: Arc<dyn ObjectExchange>,
        log: Arc<dyn LogExchange>,
        handled: Option<Arc<Handled>>,
        stores: Vec<Collected>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Collector { knactor: knactor.to_owned(), exchange, log, handled, stores, metrics }
    }

    /// Runs until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        if let Err(e) = self.exchange.register(&checkpoint_store(), &checkpoint_schema()).await {
            tracing::warn!(knactor = self.knactor, error = %e, "cannot register the checkpoint store; the state retention is off");
            return;
        }
        let mut follows = Follows::new(self.exchange.clone(), shutdown.clone());
        let mut stores = Vec::new();
        for collected in self.stores {
            let series = self.metrics.retention(&collected.store);
            let candidates = Arc::new(Candidates::new(collected.finished, series.clone()));
            follows.start(&collected.store, candidates.clone());
            let archived = match &collected.archive {
                Some((archive, _)) => archived_last(&*self.log, archive, &collected.store).await,
                None => HashSet::new(),
            };
            let Collected { store, ttl, archive, .. } = collected;
            stores.push(Collection { store, ttl, archive, candidates, series, archived });
        }
        let round = Round {
            me: reconciler_checkpoint(&self.knactor),
            knactor: self.knactor,
            exchange: self.exchange,
            log: self.log,
            handled: self.handled,
            warnings: Warnings::default(),
        };
        let mut published = None;
        let mut ticks = tokio::time::interval(COLLECT_EVERY);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = ticks.tick() => {
                    round.publish(&mut published).await;
                    round.collect(&mut stores, &mut follows).await;
                }
            }
        }
        follows.tasks.shutdown().await;
    }
}

/// The stores followed, and the tasks following them.
struct Follows {
    exchange: Arc<dyn ObjectExchange>,
    shutdown: CancellationToken,
    tasks: JoinSet<()>,
    /// The stores that feed stores collected from.
    feeding: HashMap<StoreRef, Arc<Names>>,
}

impl Follows {
    fn new(exchange: Arc<dyn ObjectExchange>, shutdown: CancellationToken) -> Self {
        Follows { exchange, shutdown, tasks: JoinSet::new(), feeding: HashMap::new() }
    }

    fn start(&mut self, store: &StoreRef, mirror: Arc<dyn Mirror>) {
        let (exchange, shutdown) = (self.exchange.clone(), self.shutdown.clone());
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
        self.tasks.spawn(follow(exchange, store.clone(), mirror, backoff, shutdown));
    }

    /// The names of `store`, followed from its first call on.
    fn names(&mut self, store: &StoreRef) -> Arc<Names> {
        if let Some(names) = self.feeding.get(store) {
            return names.clone();
        }
        let names = Arc::new(Names::default());
        self.start(store, names.clone());
        self.feeding.insert(store.clone(), names.clone());
        names
    }
}

/// One store collected from, between rounds.
struct Collection {
    store: StoreRef,
    ttl: Duration,
    archive: Option<(StoreRef, Ingest)>,
    candidates: Arc<Candidates>,
    series: RetentionSeries,
    /// Objects (name, version) archived but perhaps not collected yet (since before a
    /// restart, too): they are not archived again.
    archived: HashSet<(String, u64)>,
}

/// What a collection round reaches.
struct Round {
    knactor: String,
    /// The name of its reconciler's checkpoint.
    me: String,
    exchange: Arc<dyn ObjectExchange>,
    log: Arc<dyn LogExchange>,
    handled: Option<Arc<Handled>>,
    /// Which failures of the rounds to warn about (the exchange down, say).
    warnings: Warnings,
}

impl Round {
    /// Checkpoints what the reconciler handled, when that moved.
    async fn publish(&self, published: &mut Option<Value>) {
        let Some(handled) = &self.handled else { return };
        let consumed: Map<String, Value> = handled
            .positions()
            .into_iter()
            .map(|(store, at)| (format!("{}/{store}", self.knactor), json!(at)))
            .collect();
        let state = json!({ "consumed": consumed });
        if published.as_ref() == Some(&state) {
            return;
        }
        let write = Write::put(self.me.clone(), state.clone());
        match self.exchange.write(&checkpoint_store(), write).await {
            Ok(_) => *published = Some(state),
            Err(e) => {
                if let Some(failures) = self.warnings.failed() {
                    tracing::warn!(knactor = self.knactor, error = %e, failures, "cannot checkpoint what the reconciler handled");
                }
            }
        }
    }

    /// Collects from each store what is due.
    async fn collect(&self, stores: &mut [Collection], follows: &mut Follows) {
        if stores.is_empty() {
            return;
        }
        let consumers = match Consumers::read(&*self.exchange).await {
            Ok(consumers) => {
                if let Some(failures) = self.warnings.succeeded() {
                    tracing::info!(knactor = self.knactor, failures, "collecting again");
                }
                consumers
            }
            Err(e) => {
                if let Some(failures) = self.warnings.failed() {
                    tracing::warn!(knactor = self.knactor, error = %e, failures, "cannot read the consumers' checkpoints; collecting nothing this round");
                }
                return;
            }
        };
        for store in stores {
            let mut position = consumers.position(&store.store, &self.me);
            if let Some(handled) = &self.handled {
                position = position.min(handled.position(store.store.store()));
            }
            let (mut due, finished) = store.candidates.due(position, store.ttl);
            let feeders = consumers.feeders(&store.store);
            due.retain(|object| !fed(object, &feeders, follows, &consumers));
            store.series.held.set(i64::try_from(finished - due.len()).unwrap_or(i64::MAX));
            if !due.is_empty() {
                self.collect_from(store, due).await;
            }
        }
        for (store, names) in &follows.feeding {
            names.handled(consumers.position(store, ""));
        }
    }

    /// Archives (when the store has an archive) then deletes `due`, each only if unchanged.
    async fn collect_from(&self, store: &mut Collection, mut due: Vec<Arc<Object>>) {
        if let Some((archive, ingest)) = &store.archive {
            let archived = &store.archived;
            let fresh = |o: &&Arc<Object>| !archived.contains(&(o.name.clone(), o.version));
            let records = |due: &[Arc<Object>]| -> Vec<Value> {
                due.iter().filter(fresh).map(|o| archive_record(o)).collect()
            };
            let batch = match ingest.decode(&records(&due)) {
                Ok(batch) => batch,
                Err(_) => {
                    // An object the archive refuses stays (said every round) and holds no other.
                    let refused: Vec<String> = due
                        .iter()
                        .filter(|o| fresh(o) && ingest.decode(&[archive_record(o)]).is_err())
                        .map(|o| o.name.clone())
                        .collect();
                    tracing::warn!(store = %store.store, %archive, objects = ?refused, "the archive's schema refuses these objects; they are kept");
                    due.retain(|o| !refused.contains(&o.name));
                    match ingest.decode(&records(&due)) {
                        Ok(batch) => batch,
                        Err(e) => {
                            tracing::warn!(store = %store.store, %archive, error = %e, "cannot archive");
                            return;
                        }
                    }
                }
            };
            let fresh: Vec<(String, u64)> =
                due.iter().filter(fresh).map(|o| (o.name.clone(), o.version)).collect();
            if !fresh.is_empty() {
                let mut archived = store.archived.clone();
                archived.extend(fresh.iter().cloned());
                // Written with the records: after a crash, those it names are not archived
                // again.
                let checkpoint = Checkpoint {
                    key: archive_key(&store.store),
                    value: serde_json::to_string(&archived).expect("serializable"),
                };
                if let Err(e) = self.log.append_checkpointed(archive, batch, &checkpoint).await {
                    tracing::warn!(store = %store.store, %archive, error = %e, "cannot archive; collecting nothing there until it can");
                    return;
                }
                store.series.archived.inc_by(fresh.len() as u64);
                store.archived = archived;
            }
        }
        for object in due {
            let write = Write::delete(object.name.clone()).if_version(object.version);
            match self.exchange.write(&store.store, write).await {
                Ok(_) => {
                    store.series.collected.inc();
                }
                // Changed since: the watch brings its new state.
                Err(ExchangeError::Conflict { .. } | ExchangeError::NotFound { .. }) => {}
                Err(e) => {
                    tracing::warn!(store = %store.store, name = object.name, error = %e, "cannot collect; again next round");
                    continue;
                }
            }
            store.archived.remove(&(object.name.clone(), object.version));
            store.candidates.forget(&object);
        }
        // Those archived before a restart and gone since are no longer in doubt.
        let candidates = &store.candidates;
        store.archived.retain(|(name, version)| candidates.has(name, *version));
    }
}

/// Whether an edge could create `object` again: an object of its name is in a store that
/// feeds its store, or was deleted there and the edge has not handled that yet (or the edge
/// names its targets with a `key`, so it cannot be told).
fn fed(object: &Object, feeders: &[Feeder], follows: &mut Follows, consumers: &Consumers) -> bool {
    feeders.iter().any(|feeder| {
        let Some(store) = &feeder.store else { return true };
        let handled = consumers.position_of(&feeder.checkpoint, store);
        match follows.names(store).presence(&object.name, handled) {
            Presence::Unknown | Presence::Present => true,
            Presence::Gone(at) => at > handled,
            Presence::Absent => false,
        }
    })
}

/// The record an object collected is archived as: its data's fields, and `name`.
fn archive_record(object: &Object) -> Value {
    let mut record = object.data.as_object().cloned().unwrap_or_default();
    record.insert("name".to_owned(), Value::String(object.name.clone()));
    Value::Object(record)
}

/// The key of the archive's checkpoint for what was collected from `store`.
fn archive_key(store: &StoreRef) -> String {
    format!("collected:{store}")
}

/// The objects last archived from `store` into `archive` (perhaps not collected yet).
async fn archived_last(
    log: &dyn LogExchange,
    archive: &StoreRef,
    store: &StoreRef,
) -> HashSet<(String, u64)> {
    let last = match log.checkpoint(archive, &archive_key(store)).await {
        Ok(last) => last,
        Err(e) => {
            tracing::warn!(%archive, error = %e, "cannot read the archive's checkpoint");
            None
        }
    };
    let names: Vec<(String, u64)> =
        last.and_then(|v| serde_json::from_str(&v).ok()).unwrap_or_default();
    names.into_iter().collect()
}
