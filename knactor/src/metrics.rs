//! The runtime's Prometheus metrics, served at `/metrics`: reconciles, HTTP requests and
//! denials, and the integrators' work: each Cast edge's evaluations by outcome, errors by kind
//! and durations, each Sync flow's records, and each spec's lag behind its stores; per Object
//! store, the writes made and the watches open.

use std::collections::HashMap;
use std::time::Duration;

use arrow::array::RecordBatch;
use data_exchange::StoreRef;
use integrators::cast::{CastObserver, EdgeHandled, EdgeOutcome};
use integrators::sync::SyncObserver;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    knactor: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KnactorLabels {
    knactor: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DenialLabels {
    principal: String,
    operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EdgeLabels {
    spec: String,
    edge: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EdgeOutcomeLabels {
    spec: String,
    edge: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EdgeErrorLabels {
    spec: String,
    edge: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FlowLabels {
    spec: String,
    flow: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreLabels {
    store: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SpecLabels {
    spec: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LagLabels {
    spec: String,
    store: String,
}

fn latency_histogram() -> Histogram {
    // 50 µs .. ~13 s.
    Histogram::new(exponential_buckets(0.000_05, 4.0, 10))
}

/// The metrics of one running app.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ReconcileLabels, Counter>,
    reconcile_seconds: Family<KnactorLabels, Histogram, fn() -> Histogram>,
    requests: Family<RequestLabels, Counter>,
    denials: Family<DenialLabels, Counter>,
    reconcile_denials: Family<DenialLabels, Counter>,
    edge_evaluations: Family<EdgeOutcomeLabels, Counter>,
    edge_errors: Family<EdgeErrorLabels, Counter>,
    edge_seconds: Family<EdgeLabels, Histogram, fn() -> Histogram>,
    flow_records: Family<FlowLabels, Counter>,
    flow_late: Family<FlowLabels, Counter>,
    spec_lag: Family<LagLabels, Gauge>,
    spec_pending: Family<SpecLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    queue_depth: Family<KnactorLabels, Gauge>,
    reconcile_retries: Family<KnactorLabels, Counter>,
    reconcile_failing: Family<KnactorLabels, Gauge>,
    store_objects: Family<StoreLabels, Gauge>,
    retention_held: Family<StoreLabels, Gauge>,
    retention_collected: Family<StoreLabels, Counter>,
    retention_archived: Family<StoreLabels, Counter>,
    retention_trimmed: Family<StoreLabels, Counter>,
    store_writes: Family<StoreLabels, Counter>,
    store_watches: Family<StoreLabels, Gauge>,
    /// Each edge's series, by spec and edge: found without building labels at every change.
    edges: std::sync::RwLock<HashMap<String, HashMap<String, EdgeSeries>>>,
}

/// The series of one store's state retention.
#[derive(Clone, Debug)]
pub struct RetentionSeries {
    /// The objects the store holds.
    pub objects: Gauge,
    /// The finished objects a consumer (or the policy's `ttl`) still holds.
    pub held: Gauge,
    /// The objects collected.
    pub collected: Counter,
    /// The objects appended to the archive before they were collected.
    pub archived: Counter,
}

/// The series of one knactor's reconciler.
#[derive(Clone, Debug)]
pub(crate) struct ReconcilerSeries {
    /// The objects waiting for a reconcile.
    pub(crate) queue_depth: Gauge,
    /// The reconciles that ran again after the object's last reconcile failed.
    pub(crate) retries: Counter,
    /// The objects whose last reconcile failed, waiting for their retry.
    pub(crate) failing: Gauge,
}

/// The series of one Cast edge.
#[derive(Clone, Debug)]
struct EdgeSeries {
    written: Counter,
    unchanged: Counter,
    skipped: Counter,
    retried: Counter,
    failed: Counter,
    seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("knactor");
        let reconciles = Family::default();
        registry.register("reconciles", "Reconciles run, by outcome", reconciles.clone());
        let reconcile_seconds = Family::new_with_constructor(latency_histogram as fn() -> _);
        registry.register(
            "reconcile_duration_seconds",
            "Time spent in reconcilers",
            reconcile_seconds.clone(),
        );
        let requests = Family::default();
        registry.register("http_requests", "HTTP API requests, by status", requests.clone());
        let denials = Family::default();
        registry.register(
            "http_denied",
            "HTTP API requests refused (a foreign host or origin, no token, no right), by principal and operation",
            denials.clone(),
        );
        let reconcile_denials = Family::default();
        registry.register(
            "reconcile_denied",
            "Reconciles refused a store or a field (a reconciler reaching beyond its rights), by principal and operation",
            reconcile_denials.clone(),
        );
        let edge_evaluations = Family::default();
        registry.register(
            "cast_edge_evaluations",
            "Changes each Cast edge handled, by outcome: written, unchanged (a write that would change nothing, not made), skipped (nothing to write), retried (the exchange failed; each attempt counted), failed (dropped)",
            edge_evaluations.clone(),
        );
        let edge_errors = Family::default();
        registry.register(
            "cast_edge_errors",
            "Cast edge evaluations that failed, by kind: eval, conflict, refused, unavailable (retried)",
            edge_errors.clone(),
        );
        let edge_seconds = Family::new_with_constructor(latency_histogram as fn() -> _);
        registry.register(
            "cast_edge_duration_seconds",
            "Time each Cast edge took to handle a change: its reads, evaluation and write",
            edge_seconds.clone(),
        );
        let flow_records = Family::default();
        registry.register(
            "sync_flow_records",
            "Records each Sync flow appended to its destination",
            flow_records.clone(),
        );
        let flow_late = Family::default();
        registry.register(
            "sync_flow_late_records",
            "Records each Sync flow dropped because their window had closed",
            flow_late.clone(),
        );
        let spec_lag = Family::default();
        registry.register(
            "spec_lag_versions",
            "Per Cast spec and store it watches: the store's versions it has yet to handle (as of its last checkpoint, at most 100 ms old)",
            spec_lag.clone(),
        );
        let spec_pending = Family::default();
        registry.register(
            "spec_pending_seconds",
            "Per Cast spec: how long the change it handles now has waited since it received it, retries included (the oldest it has seen and not handled); 0 while it waits for one",
            spec_pending.clone(),
        );
        let queue_depth = Family::default();
        registry.register(
            "reconcile_queue_depth",
            "Objects waiting for a reconcile, by knactor",
            queue_depth.clone(),
        );
        let reconcile_retries = Family::default();
        registry.register(
            "reconcile_retries",
            "Reconciles that ran again after the object's last reconcile failed (retries, whether they succeeded or not), by knactor",
            reconcile_retries.clone(),
        );
        let reconcile_failing = Family::default();
        registry.register(
            "reconcile_failing_objects",
            "Objects whose last reconcile failed, waiting for their retry, by knactor",
            reconcile_failing.clone(),
        );
        let store_objects = Family::default();
        registry.register(
            "store_objects",
            "Objects each Object store holds: counted at each scrape, or for a store with a retention policy as its collector sees them (not at all on Kubernetes without one)",
            store_objects.clone(),
        );
        let retention_held = Family::default();
        registry.register(
            "retention_held_objects",
            "Per store: finished objects not collected yet, because a consumer has not handled them (or the policy's ttl keeps them)",
            retention_held.clone(),
        );
        let retention_collected = Family::default();
        registry.register(
            "retention_collected",
            "Objects collected by the state retention, per store",
            retention_collected.clone(),
        );
        let retention_archived = Family::default();
        registry.register(
            "retention_archived",
            "Objects appended to their store's archive (a Log store) before they were collected",
            retention_archived.clone(),
        );
        let retention_trimmed = Family::default();
        registry.register(
            "retention_trimmed_records",
            "Records a Log store's retention dropped (since this process first trimmed it)",
            retention_trimmed.clone(),
        );
        let store_writes = Family::default();
        registry.register(
            "store_writes",
            "Writes this process made to each Object store (one that changed nothing included)",
            store_writes.clone(),
        );
        let store_watches = Family::default();
        registry.register(
            "store_watches",
            "Watches this process holds open on each Object store (its reconcilers', integrators', collectors' and the API's)",
            store_watches.clone(),
        );
        Metrics {
            store_writes,
            store_watches,
            queue_depth,
            reconcile_retries,
            reconcile_failing,
            retention_trimmed,
            store_objects,
            retention_held,
            retention_collected,
            retention_archived,
            edges: std::sync::RwLock::default(),
            registry,
            reconciles,
            reconcile_seconds,
            requests,
            denials,
            reconcile_denials,
            edge_evaluations,
            edge_errors,
            edge_seconds,
            flow_records,
            flow_late,
            spec_lag,
            spec_pending,
        }
    }
}

impl Metrics {
    /// The series of Object store `store`: its writes and its open watches (see
    /// [`crate::metered::Metered`]).
    pub(crate) fn store_series(&self, store: &StoreRef) -> (Counter, Gauge) {
        let labels = StoreLabels { store: store.to_string() };
        (
            self.store_writes.get_or_create(&labels).clone(),
            self.store_watches.get_or_create(&labels).clone(),
        )
    }

    fn edge_error(&self, spec: &str, edge: &str, kind: &'static str) {
        let (spec, edge) = (spec.to_owned(), edge.to_owned());
        self.edge_errors.get_or_create(&EdgeErrorLabels { spec, edge, kind }).inc();
    }

    /// Stops showing the edges and flows of the spec `spec` (deleted).
    pub fn forget_spec(&self, spec: &str) {
        let Some(edges) = self.edges.write().unwrap_or_else(|e| e.into_inner()).remove(spec) else {
            return;
        };
        for edge in edges.into_keys() {
            let outcomes = [
                EdgeOutcome::Written,
                EdgeOutcome::Unchanged,
                EdgeOutcome::Skipped,
                EdgeOutcome::Retried,
                EdgeOutcome::Failed(""),
            ];
            for outcome in outcomes {
                let (spec, edge, outcome) = (spec.to_owned(), edge.clone(), outcome.name());
                self.edge_evaluations.remove(&EdgeOutcomeLabels { spec, edge, outcome });
            }
            for kind in ["eval", "conflict", "refused", "unavailable"] {
                let (spec, edge) = (spec.to_owned(), edge.clone());
                self.edge_errors.remove(&EdgeErrorLabels { spec, edge, kind });
            }
            self.edge_seconds.remove(&EdgeLabels { spec: spec.to_owned(), edge });
        }
    }

    /// Makes the series of `edge` of `spec`, at its first change.
    fn new_edge_series(&self, spec: &str, edge: &str) -> EdgeSeries {
        let (spec, edge) = (spec.to_owned(), edge.to_owned());
        let counter = |outcome: EdgeOutcome| {
            let (spec, edge, outcome) = (spec.clone(), edge.clone(), outcome.name());
            self.edge_evaluations.get_or_create(&EdgeOutcomeLabels { spec, edge, outcome }).clone()
        };
        let series = EdgeSeries {
            written: counter(EdgeOutcome::Written),
            unchanged: counter(EdgeOutcome::Unchanged),
            skipped: counter(EdgeOutcome::Skipped),
            retried: counter(EdgeOutcome::Retried),
            failed: counter(EdgeOutcome::Failed("")),
            seconds: self
                .edge_seconds
                .get_or_create(&EdgeLabels { spec: spec.clone(), edge: edge.clone() })
                .clone(),
        };
        let mut known = self.edges.write().unwrap_or_else(|e| e.into_inner());
        known.entry(spec).or_default().insert(edge, series.clone());
        series
    }

    /// Counts `handled` in the series of its edge.
    fn count(&self, series: &EdgeSeries, handled: &EdgeHandled<'_>) {
        let (spec, edge) = (handled.spec, handled.edge);
        let counter = match handled.outcome {
            EdgeOutcome::Written => &series.written,
            EdgeOutcome::Unchanged => &series.unchanged,
            EdgeOutcome::Skipped => &series.skipped,
            EdgeOutcome::Retried => {
                self.edge_error(spec, edge, "unavailable");
                &series.retried
            }
            EdgeOutcome::Failed(kind) => {
                self.edge_error(spec, edge, kind);
                &series.failed
            }
        };
        counter.inc();
        series.seconds.observe(handled.took.as_secs_f64());
    }
}

impl CastObserver for Metrics {
    fn edge_handled(&self, handled: &EdgeHandled<'_>) {
        let known = self.edges.read().unwrap_or_else(|e| e.into_inner());
        match known.get(handled.spec).and_then(|edges| edges.get(handled.edge)) {
            Some(series) => self.count(series, handled),
            None => {
                drop(known);
                self.count(&self.new_edge_series(handled.spec, handled.edge), handled);
            }
        }
    }
}

impl SyncObserver for Metrics {
    fn flow_appended(&self, spec: &str, flow: &str, _to: &StoreRef, records: &RecordBatch) {
        let labels = FlowLabels { spec: spec.to_owned(), flow: flow.to_owned() };
        self.flow_records.get_or_create(&labels).inc_by(records.num_rows() as u64);
    }

    fn flow_dropped_late(&self, spec: &str, flow: &str, records: u64) {
        let labels = FlowLabels { spec: spec.to_owned(), flow: flow.to_owned() };
        self.flow_late.get_or_create(&labels).inc_by(records);
    }
}

impl Metrics {
    /// Counts one reconcile of `knactor` and its duration.
    pub fn reconciled(&self, knactor: &str, ok: bool, took: Duration) {
        let outcome = if ok { "ok" } else { "error" }.to_owned();
        self.reconciles
            .get_or_create(&ReconcileLabels { knactor: knactor.to_owned(), outcome })
            .inc();
        self.reconcile_seconds
            .get_or_create(&KnactorLabels { knactor: knactor.to_owned() })
            .observe(took.as_secs_f64());
    }

    /// The series of the state retention of `store` (see [`crate::retention`]).
    pub fn retention(&self, store: &StoreRef) -> RetentionSeries {
        let labels = StoreLabels { store: store.to_string() };
        RetentionSeries {
            objects: self.store_objects.get_or_create(&labels).clone(),
            held: self.retention_held.get_or_create(&labels).clone(),
            collected: self.retention_collected.get_or_create(&labels).clone(),
            archived: self.retention_archived.get_or_create(&labels).clone(),
        }
    }

    /// The counter of the records the retention of the Log store `store` dropped.
    pub fn trimmed(&self, store: &StoreRef) -> Counter {
        self.retention_trimmed.get_or_create(&StoreLabels { store: store.to_string() }).clone()
    }

    /// The series of the reconciler of `knactor`.
    pub(crate) fn reconciler(&self, knactor: &str) -> ReconcilerSeries {
        let labels = KnactorLabels { knactor: knactor.to_owned() };
        ReconcilerSeries {
            queue_depth: self.queue_depth.get_or_create(&labels).clone(),
            retries: self.reconcile_retries.get_or_create(&labels).clone(),
            failing: self.reconcile_failing.get_or_create(&labels).clone(),
        }
    }

    /// Counts one HTTP request.
    pub fn requested(&self, method: &str, status: u16) {
        self.requests.get_or_create(&RequestLabels { method: method.to_owned(), status }).inc();
    }

    /// Counts one request refused to `principal` (`anonymous` without a valid token).
    pub fn denied(&self, principal: &str, operation: &str) {
        let labels =
            DenialLabels { principal: principal.to_owned(), operation: operation.to_owned() };
        self.denials.get_or_create(&labels).inc();
    }

    /// Counts one reconcile of `principal` refused `operation`.
    pub fn reconcile_denied(&self, principal: &str, operation: &str) {
        let labels =
            DenialLabels { principal: principal.to_owned(), operation: operation.to_owned() };
        self.reconcile_denials.get_or_create(&labels).inc();
    }

    /// Sets each spec's lag behind each store it watches, `(spec, store, versions)`, in place
    /// of the last (a spec deleted since is no longer shown).
    pub fn set_lags(&self, lags: impl IntoIterator<Item = (String, String, u64)>) {
        self.spec_lag.clear();
        for (spec, store, versions) in lags {
            let versions = i64::try_from(versions).unwrap_or(i64::MAX);
            self.spec_lag.get_or_create(&LagLabels { spec, store }).set(versions);
        }
    }

    /// Sets how many objects each store holds, `(store, objects)`.
    pub fn set_objects(&self, counts: impl IntoIterator<Item = (StoreRef, u64)>) {
        for (store, objects) in counts {
            let labels = StoreLabels { store: store.to_string() };
            let objects = i64::try_from(objects).unwrap_or(i64::MAX);
            self.store_objects.get_or_create(&labels).set(objects);
        }
    }

    /// Sets how long each spec's change being handled has waited, `(spec, waited)`, in place
    /// of the last (a spec deleted since is no longer shown).
    pub fn set_pending(&self, pending: impl IntoIterator<Item = (String, Duration)>) {
        self.spec_pending.clear();
        for (spec, waited) in pending {
            self.spec_pending.get_or_create(&SpecLabels { spec }).set(waited.as_secs_f64());
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}
