//! The counters of a running Cast integrator.

use std::sync::atomic::AtomicU64;

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
}
