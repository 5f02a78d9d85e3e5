//! The counters of a running Cast integrator.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use data_exchange::{Object, StoreRef};
use serde_json::Value;

/// What handling one change on one edge came to (see [`CastObserver`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EdgeOutcome {
    /// The target was written (or deleted).
    Written,
    /// The write would have changed nothing, so none was made.
    Unchanged,
    /// Nothing to write: `when` did not hold, a `from` object is missing, or the deletion is
    /// ignored.
    Skipped,
    /// The exchange failed (`unavailable`): it is tried again after a backoff.
    Retried,
    /// It failed, and the change is dropped for this edge: `eval` (the expressions on this
    /// data), `conflict` (the target kept changing), or `refused` (the exchange refused a read
    /// or the write).
    Failed(&'static str),
}

impl EdgeOutcome {
    /// Its name, as a metric label: `written`, `unchanged`, `skipped` or `failed`.
    pub fn name(self) -> &'static str {
        match self {
            EdgeOutcome::Written => "written",
            EdgeOutcome::Unchanged => "unchanged",
            EdgeOutcome::Skipped => "skipped",
            EdgeOutcome::Retried => "retried",
            EdgeOutcome::Failed(_) => "failed",
        }
    }
}

/// One change one edge handled, as a [`CastObserver`] is told of it.
#[derive(Clone, Copy, Debug)]
pub struct EdgeHandled<'a> {
    /// The spec.
    pub spec: &'a str,
    /// The edge.
    pub edge: &'a str,
    /// The store whose change it handled.
    pub source: &'a StoreRef,
    /// The changed object, as the change left it (before it, for a deletion).
    pub object: &'a Object,
    /// Whether the change was a deletion.
    pub deleted: bool,
    /// How it went.
    pub outcome: EdgeOutcome,
    /// Its target's store and object, and the fields it set there (`None`: it deleted it),
    /// when it had something to write (`written` or `unchanged`).
    pub write: Option<(&'a StoreRef, &'a str, Option<&'a Value>)>,
    /// How long it took: its reads, evaluation and write.
    pub took: Duration,
}

/// Told of every change each edge of a Cast integrator handles, e.g. to count them by outcome
/// (see [`CastOptions::observer`](super::CastOptions::observer)).
pub trait CastObserver: Send + Sync + std::fmt::Debug {
    /// An edge handled one change.
    fn edge_handled(&self, handled: &EdgeHandled<'_>);
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
    /// Edges the exchange runs itself (see [`CastOptions::pushdown`](super::CastOptions::pushdown)).
    pub pushed_down: AtomicU64,
    /// Targets read from the exchange before a write: the state this integrator last wrote was
    /// not in its cache (see [`CastOptions::target_cache`](super::CastOptions::target_cache)) or was out of date.
    pub target_reads: AtomicU64,
    /// Per store it watches, the version up to which every change is handled, as of its last
    /// checkpoint (at most 100 ms old while changes flow).
    handled: Mutex<BTreeMap<StoreRef, u64>>,
    /// When the change it is handling now was received; `None` while it waits for one.
    pending: Mutex<Option<Instant>>,
}

impl CastStats {
    /// See [`CastStats::handled`].
    pub fn handled(&self) -> BTreeMap<StoreRef, u64> {
        self.handled.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(super) fn set_handled(&self, positions: &BTreeMap<StoreRef, u64>) {
        positions.clone_into(&mut self.handled.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// How long the change it is handling now has waited since it was received (its retries
    /// included): the oldest it has seen and not handled; zero while it waits for one.
    pub fn pending_for(&self) -> Duration {
        let pending = *self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.map_or(Duration::ZERO, |since| since.elapsed())
    }

    pub(super) fn set_pending(&self, since: Option<Instant>) {
        *self.pending.lock().unwrap_or_else(|e| e.into_inner()) = since;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_being_handled_shows_how_long_it_has_waited() {
        let stats = CastStats::default();
        assert_eq!(stats.pending_for(), Duration::ZERO, "waiting for a change");
        let received = Instant::now() - Duration::from_secs(3);
        stats.set_pending(Some(received));
        assert!(stats.pending_for() >= Duration::from_secs(3));
        stats.set_pending(None);
        assert_eq!(stats.pending_for(), Duration::ZERO, "handled");
    }
}
