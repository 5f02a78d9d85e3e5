//! Taps: what passes through the edges of the running Cast specs and the flows of the Sync
//! specs, streamed to whoever asks (`knactor tap cast/SPEC/EDGE`, `sync/SPEC/FLOW`). Nothing
//! is gathered while no one listens.

use std::sync::Arc;

use arrow::array::RecordBatch;
use data_exchange::StoreRef;
use data_exchange::log::json_lines;
use integrators::cast::{CastObserver, EdgeHandled};
use integrators::sync::SyncObserver;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::metrics::Metrics;

/// How many events a slow listener may fall behind before it misses some.
const BACKLOG: usize = 1024;

/// How many of the records a flow appended at once an event shows.
const SAMPLE: usize = 10;

/// The events of every running edge and flow, to the taps open on them.
#[derive(Debug)]
pub struct Taps {
    events: broadcast::Sender<Arc<Value>>,
}

impl Default for Taps {
    fn default() -> Self {
        Taps { events: broadcast::channel(BACKLOG).0 }
    }
}

impl Taps {
    /// The events from now on: of every edge, `{"spec", "edge", "source": {"store", "name",
    /// "version"}, "deleted", "outcome", "target": {"store", "name"}, "set", "took_us"}`; of
    /// every flow, `{"spec", "flow", "to", "count", "records"}` (the first ten appended).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Value>> {
        self.events.subscribe()
    }
}

impl Taps {
    /// Tells the taps on the spec `spec` that it stopped (deleted): `{"type": "Stopped",
    /// "spec"}`, after which they end.
    pub fn stopped(&self, spec: &str) {
        let _ = self.events.send(Arc::new(json!({"type": "Stopped", "spec": spec})));
    }
}

impl CastObserver for Taps {
    fn edge_handled(&self, handled: &EdgeHandled<'_>) {
        if self.events.receiver_count() == 0 {
            return;
        }
        let source = json!({
            "store": handled.source.to_string(),
            "name": handled.object.name,
            "version": handled.object.version,
        });
        let (target, set) = match handled.write {
            Some((store, name, set)) => {
                (json!({"store": store.to_string(), "name": name}), set.cloned())
            }
            None => (Value::Null, None),
        };
        let event = json!({
            "spec": handled.spec,
            "edge": handled.edge,
            "source": source,
            "deleted": handled.deleted,
            "outcome": handled.outcome.name(),
            "target": target,
            "set": set,
            "took_us": handled.took.as_micros() as u64,
        });
        let _ = self.events.send(Arc::new(event));
    }
}

impl SyncObserver for Taps {
    fn flow_appended(&self, spec: &str, flow: &str, to: &StoreRef, records: &RecordBatch) {
        if self.events.receiver_count() == 0 {
            return;
        }
        let sample = records.slice(0, records.num_rows().min(SAMPLE));
        let text = json_lines(&[sample]);
        let sample: Vec<Value> = String::from_utf8_lossy(&text)
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect();
        let event = json!({
            "spec": spec,
            "flow": flow,
            "to": to.to_string(),
            "count": records.num_rows(),
            "records": sample,
        });
        let _ = self.events.send(Arc::new(event));
    }

    fn flow_dropped_late(&self, _spec: &str, _flow: &str, _records: u64) {}
}

/// What the integrators do, told to the metrics (when counted) and the taps.
#[derive(Debug)]
pub struct Observers {
    /// Where the work is counted.
    pub metrics: Option<Arc<Metrics>>,
    /// Where it is streamed.
    pub taps: Arc<Taps>,
}

impl CastObserver for Observers {
    fn edge_handled(&self, handled: &EdgeHandled<'_>) {
        if let Some(metrics) = &self.metrics {
            metrics.edge_handled(handled);
        }
        self.taps.edge_handled(handled);
    }
}

impl SyncObserver for Observers {
    fn flow_appended(&self, spec: &str, flow: &str, to: &StoreRef, records: &RecordBatch) {
        if let Some(metrics) = &self.metrics {
            metrics.flow_appended(spec, flow, to, records);
        }
        self.taps.flow_appended(spec, flow, to, records);
    }

    fn flow_dropped_late(&self, spec: &str, flow: &str, records: u64) {
        if let Some(metrics) = &self.metrics {
            metrics.flow_dropped_late(spec, flow, records);
        }
    }
}
