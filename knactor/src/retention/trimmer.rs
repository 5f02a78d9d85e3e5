//! A knactor's trimmer: drops the oldest segments of its Log stores as their `retention` says
//! (`maxAge`, `maxRecords`), never a record a Sync flow has not read. It looks every
//! [`TRIM_EVERY`], and trims a store once it holds a tenth more than `maxRecords`, or a tenth
//! of `maxAge` after its last trim: a durable store's file is rewritten at each trim.
//!
//! What each flow still needs of a source is in its checkpoint, kept in its destination store
//! with its output: `replay` (where it re-reads from to rebuild its open windows), else
//! `next`. A deleted spec's flows are marked `retired` there and hold nothing; a flow that is
//! stopped or crashed holds what it has not read until it runs again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use data_exchange::backoff::Warnings;
use data_exchange::log::Trim;
use data_exchange::{ExchangeError, LogExchange, StoreRef};
use prometheus_client::metrics::counter::Counter;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// How often a trimmer trims.
pub const TRIM_EVERY: Duration = Duration::from_secs(1);

/// One Log store a [`Trimmer`] trims, and how.
#[derive(Debug)]
pub struct Trimmed {
    /// The store.
    pub store: StoreRef,
    /// Segments whose records are all older than this go.
    pub max_age: Option<Duration>,
    /// Segments older than the store's last this many records go.
    pub max_records: Option<u64>,
}

/// The retention of one knactor's Log stores.
#[derive(Debug)]
pub struct Trimmer {
    log: Arc<dyn LogExchange>,
    stores: Vec<Trimmed>,
    /// Per store: the first record kept at its last trim, and when that was.
    last: Vec<Option<(u64, Instant)>>,
    /// Every Log store of the app: where flows keep their checkpoints.
    destinations: Vec<StoreRef>,
    metrics: Arc<Metrics>,
}

impl Trimmer {
    /// Trims `stores` of `log` (which must reach them and read every store of
    /// `destinations`, the app's Log stores).
    pub fn new(
        log: Arc<dyn LogExchange>,
        stores: Vec<Trimmed>,
        destinations: Vec<StoreRef>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let last = vec![None; stores.len()];
        Trimmer { log, stores, last, destinations, metrics }
    }

    /// Runs until `shutdown`, trimming every [`TRIM_EVERY`].
    pub async fn run(mut self, shutdown: CancellationToken) {
        let dropped: Vec<Counter> =
            self.stores.iter().map(|t| self.metrics.trimmed(&t.store)).collect();
        let mut ticks = tokio::time::interval(TRIM_EVERY);
        let warnings = Warnings::default();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let kept = match self.trim().await {
                Ok(kept) => {
                    if let Some(failures) = warnings.succeeded() {
                        tracing::info!(failures, "trimming again");
                    }
                    kept
                }
                Err(e) => {
                    if let Some(failures) = warnings.failed() {
                        tracing::warn!(error = %e, failures, "cannot read the flows' checkpoints; trimming nothing this round");
                    }
                    continue;
                }
            };
            for (i, kept) in kept.into_iter().enumerate() {
                match kept {
                    Some(Ok((before, kept))) => {
                        dropped[i].inc_by(kept.saturating_sub(before));
                    }
                    Some(Err(e)) => {
                        tracing::warn!(store = %self.stores[i].store, error = %e, "cannot trim");
                    }
                    None => {}
                }
            }
        }
    }

    /// Trims each store that is due: the offsets of its first record kept before (as of
    /// its last trim, or this one's result the first time) and after, or why it could not;
    /// `None` for a store not due.
    pub async fn trim(&mut self) -> Result<Vec<Option<TrimOutcome>>, ExchangeError> {
        let needed = needed(&*self.log, &self.destinations).await?;
        let mut outcomes = Vec::with_capacity(self.stores.len());
        for (trimmed, last) in self.stores.iter().zip(&mut self.last) {
            let end = self.log.end(&trimmed.store).await?;
            if !due(trimmed, *last, end) {
                outcomes.push(None);
                continue;
            }
            let hold = needed.get(&trimmed.store.to_string()).copied().unwrap_or(u64::MAX);
            let trim = Trim { max_records: trimmed.max_records, max_age: trimmed.max_age, hold };
            let outcome = self.log.trim(&trimmed.store, &trim).await.map(|kept| {
                let before = last.map_or(kept, |(first, _)| first);
                *last = Some((kept, Instant::now()));
                (before, kept)
            });
            outcomes.push(Some(outcome));
        }
        Ok(outcomes)
    }
}

/// What one store's trim did: its first record kept before and after, or why it failed.
pub type TrimOutcome = Result<(u64, u64), ExchangeError>;

/// Whether `trimmed`, last trimmed keeping from `last` (and when), is due again at `end`.
fn due(trimmed: &Trimmed, last: Option<(u64, Instant)>, end: u64) -> bool {
    let Some((first, at)) = last else { return true };
    let held = end.saturating_sub(first);
    let over = trimmed.max_records.is_some_and(|keep| held > keep + (keep / 10).max(1));
    let aged = trimmed.max_age.is_some_and(|age| at.elapsed() >= (age / 10).max(TRIM_EVERY));
    over || aged
}

/// Per source store ref, the lowest offset a flow that is not retired still needs, from the
/// checkpoints in `destinations`.
pub async fn needed(
    log: &dyn LogExchange,
    destinations: &[StoreRef],
) -> Result<HashMap<String, u64>, ExchangeError> {
    let mut needed: HashMap<String, u64> = HashMap::new();
    for destination in destinations {
        for (_, value) in log.checkpoints(destination).await? {
            let Ok(saved) = serde_json::from_str::<Value>(&value) else { continue };
            if saved["retired"] == Value::Bool(true) {
                continue;
            }
            let Some(next) = saved["next"].as_object() else { continue };
            for (source, at) in next {
                let replay = saved["replay"][source].as_u64();
                let need = replay.into_iter().chain(at.as_u64()).min().unwrap_or(0);
                let held = needed.entry(source.clone()).or_insert(need);
                *held = (*held).min(need);
            }
        }
    }
    Ok(needed)
}
