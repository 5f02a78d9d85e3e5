//! Taps: what passes through the edges of the running Cast specs, streamed to whoever asks
//! (`knactor tap cast/SPEC/EDGE`). Nothing is gathered while no one listens.

use std::sync::Arc;

use integrators::cast::{CastObserver, EdgeHandled};
use serde_json::{Value, json};
use tokio::sync::broadcast;

/// How many edge events a slow listener may fall behind before it misses some.
const BACKLOG: usize = 1024;

/// The edge events of every running Cast spec, to the taps open on them.
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
    /// The events from now on, of every edge: `{"spec", "edge", "source": {"store", "name",
    /// "version"}, "deleted", "outcome", "target": {"store", "name"}, "set", "took_us"}`.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Value>> {
        self.events.subscribe()
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

/// Observers told, each in turn, of what one integrator does.
#[derive(Debug)]
pub struct Observers(pub Vec<Arc<dyn CastObserver>>);

impl CastObserver for Observers {
    fn edge_handled(&self, handled: &EdgeHandled<'_>) {
        for observer in &self.0 {
            observer.edge_handled(handled);
        }
    }
}
