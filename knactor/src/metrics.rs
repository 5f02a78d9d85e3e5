//! The runtime's Prometheus metrics, served at `/metrics`.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
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
        Metrics { registry, reconciles, reconcile_seconds, requests, denials, reconcile_denials }
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

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}
