//! A knactor's trimmer: every [`TRIM_EVERY`], drops the oldest segments of its Log stores as
//! their `retention` says (`maxAge`, `maxRecords`), never a record a Sync flow has not read.
//!
//! What each flow still needs of a source is in its checkpoint, kept in its destination store
//! with its output: `replay` (where it re-reads from to rebuild its open windows), else
//! `next`. A deleted spec's flows are marked `retired` there and hold nothing; a flow that is
//! stopped or crashed holds what it has not read until it runs again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

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
    /// The store keeps at least this many records.
    pub max_records: Option<u64>,
}

/// The retention of one knactor's Log stores.
#[derive(Debug)]
pub struct Trimmer {
    log: Arc<dyn LogExchange>,
    stores: Vec<Trimmed>,
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
        Trimmer { log, stores, destinations, metrics }
    }

    /// Runs until `shutdown`, trimming every [`TRIM_EVERY`].
    pub async fn run(self, shutdown: CancellationToken) {
        let dropped: Vec<Counter> =
            self.stores.iter().map(|t| self.metrics.trimmed(&t.store)).collect();
        let mut first: Vec<Option<u64>> = vec![None; self.stores.len()];
        let mut ticks = tokio::time::interval(TRIM_EVERY);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let kept = match self.trim().await {
                Ok(kept) => kept,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the flows' checkpoints; trimming nothing this round");
                    continue;
                }
            };
            for (i, kept) in kept.into_iter().enumerate() {
                match kept {
                    Ok(kept) => {
                        if let Some(before) = first[i] {
                            dropped[i].inc_by(kept.saturating_sub(before));
                        }
                        first[i] = Some(kept);
                    }
                    Err(e) => {
                        tracing::warn!(store = %self.stores[i].store, error = %e, "cannot trim");
                    }
                }
            }
        }
    }

    /// Trims each store once: the offset of its first record kept, or why it could not.
    pub async fn trim(&self) -> Result<Vec<Result<u64, ExchangeError>>, ExchangeError> {
        let needed = needed(&*self.log, &self.destinations).await?;
        let mut kept = Vec::with_capacity(self.stores.len());
        for trimmed in &self.stores {
            let hold = needed.get(&trimmed.store.to_string()).copied().unwrap_or(u64::MAX);
            let trim = Trim { max_records: trimmed.max_records, max_age: trimmed.max_age, hold };
            kept.push(self.log.trim(&trimmed.store, &trim).await);
        }
        Ok(kept)
    }
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
