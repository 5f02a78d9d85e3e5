//! The task of one group of flows reading the same sources: it tails the sources (never
//! polling), runs each batch through the shared prefixes and each flow's stages, and appends
//! each flow's output together with its checkpoint.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use data_exchange::log::{Checkpoint, LogExchange};
use data_exchange::{ExchangeError, StoreRef};
use datafusion::error::DataFusionError;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::consolidate::Trie;
use super::expr::{OpError, session};
use super::flow::{FlowRun, Saved};
use super::plan::{FlowPlan, SyncPlan};
use super::run::{SyncOptions, SyncStats};
use super::stage::Piece;

/// Flows reading the same sources, run by one task.
pub(super) struct Group {
    /// Where the sources are read.
    pub(super) log: Arc<dyn LogExchange>,
    /// Where the flows append and keep their checkpoints.
    pub(super) out: Arc<dyn LogExchange>,
    /// The plan the flows are part of, and the flows' indices in it.
    pub(super) plan: Arc<SyncPlan>,
    pub(super) flows: Vec<usize>,
    pub(super) options: SyncOptions,
    pub(super) stats: Arc<SyncStats>,
    /// Whether a flow of the group stopped on records it could not process.
    pub(super) failed: Arc<AtomicBool>,
}

/// Why a group of flows stopped; it resumes from its checkpoints a moment later.
#[derive(Debug, thiserror::Error)]
pub(super) enum RunError {
    /// The exchange failed.
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
    /// A flow's checkpoint is not one Sync wrote.
    #[error("the checkpoint `{key}` in {store} is unreadable: {source}")]
    Checkpoint {
        /// The checkpoint's key.
        key: String,
        /// The destination holding it.
        store: StoreRef,
        /// Why it does not parse.
        #[source]
        source: serde_json::Error,
    },
    /// The operators did not compile over the stores' current schemas.
    #[error(transparent)]
    Op(#[from] OpError),
    /// A batch could not be brought to a flow's input or output schema.
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
}

/// How long a failed group waits before resuming from its checkpoints.
const RETRY: Duration = Duration::from_secs(1);

impl Group {
    /// Runs the group until cancelled; after a failure, resumes from the checkpoints.
    pub(super) async fn supervise(self, cancel: CancellationToken) {
        let names: Vec<&str> =
            self.flows.iter().map(|&f| self.plan.flows[f].spec.name.as_str()).collect();
        loop {
            match self.run(&cancel).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::error!(
                        sync = self.plan.name,
                        flows = ?names,
                        "flows failed, resuming from their checkpoints: {e}"
                    )
                }
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(RETRY) => {}
            }
        }
    }

    async fn run(&self, cancel: &CancellationToken) -> Result<(), RunError> {
        let ctx = session();
        let plans: Vec<&FlowPlan> = self.flows.iter().map(|&f| &self.plan.flows[f]).collect();
        let sources = plans[0].sources.clone();
        let prefixes: Vec<_> = plans.iter().map(|p| p.prefix_ops()).collect();
        let (trie, schemas) =
            Trie::build(&ctx, &plans[0].input, &prefixes, self.options.consolidate)?;
        let mut runs = Vec::new();
        for (plan, schema) in plans.iter().zip(&schemas) {
            let saved: Saved = match self.out.checkpoint(&plan.to, &plan.checkpoint).await? {
                Some(text) => {
                    serde_json::from_str(&text).map_err(|source| RunError::Checkpoint {
                        key: plan.checkpoint.clone(),
                        store: plan.to.clone(),
                        source,
                    })?
                }
                None => Saved::default(),
            };
            runs.push(FlowRun::resume(plan, plan.stages(&ctx, schema)?, &saved));
            self.stats.started(&plan.spec.name);
        }
        self.failed.store(false, Ordering::Relaxed);
        let mut tails = Vec::new();
        for (s, store) in sources.iter().enumerate() {
            let from = runs.iter().map(|r| r.start[s]).min().unwrap_or(0);
            let tail = self.log.tail(store, from).await?;
            tails.push(tail.map(move |records| (s, records)));
        }
        let mut tails = futures::stream::select_all(tails);
        loop {
            let next = tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                next = tails.next() => next,
            };
            let Some((s, records)) = next else { break };
            let records = records?;
            let rows = records.batch.num_rows() as u64;
            self.stats.read.fetch_add(rows, Ordering::Relaxed);
            let batch = plans[0].align(&records.batch)?;
            process(&trie, &mut runs, s, records.offset, &batch).await;
            for run in &mut runs {
                let late = run.newly_late();
                self.stats.late.fetch_add(late, Ordering::Relaxed);
                if let (Some(observer), 1..) = (&self.options.observer, late) {
                    observer.flow_dropped_late(&self.plan.name, &run.plan.spec.name, late);
                }
                self.flush(run, false).await?;
            }
            self.stats.handled.fetch_add(rows, Ordering::Relaxed);
            self.failed.store(runs.iter().any(|run| run.failed), Ordering::Relaxed);
        }
        for run in &mut runs {
            self.flush(run, true).await?;
        }
        Ok(())
    }

    /// Appends a flow's output with its checkpoint; without output, writes the checkpoint
    /// alone when it is due (or `finally`).
    async fn flush(&self, run: &mut FlowRun<'_>, finally: bool) -> Result<(), RunError> {
        let due = run.last_checkpoint.elapsed() >= self.options.idle_checkpoint || finally;
        if !run.dirty || (run.output.is_empty() && !due) {
            return Ok(());
        }
        let conform = &run.plan.conform;
        let batch = match run.output.as_slice() {
            [] => Ok(RecordBatch::new_empty(conform.schema().clone())),
            [one] => conform.apply(one),
            [first, ..] => arrow::compute::concat_batches(&first.schema(), &run.output)
                .map_err(Into::into)
                .and_then(|b| conform.apply(&b)),
        }?;
        let checkpoint = Checkpoint { key: run.plan.checkpoint.clone(), value: run.save() };
        let rows = batch.num_rows() as u64;
        // Shared, not copied: the observer sees what was appended.
        let appended = self.options.observer.as_ref().map(|_| batch.clone());
        match self.out.append_checkpointed(&run.plan.to, batch, &checkpoint).await {
            Ok(_) => {}
            Err(e @ ExchangeError::InvalidRecord { .. }) => {
                run.fail(&format!("on output that breaks the schema of {}: {e}", run.plan.to));
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        }
        self.stats.written.fetch_add(rows, Ordering::Relaxed);
        if let (Some(observer), Some(appended), 1..) = (&self.options.observer, appended, rows) {
            observer.flow_appended(&self.plan.name, &run.plan.spec.name, &run.plan.to, &appended);
        }
        run.output.clear();
        run.dirty = false;
        run.last_checkpoint = Instant::now();
        Ok(())
    }
}

/// Runs the records of source `s` that start at `offset` through every flow that needs them.
async fn process(
    trie: &Trie,
    runs: &mut [FlowRun<'_>],
    s: usize,
    offset: u64,
    batch: &RecordBatch,
) {
    let end = offset + batch.num_rows() as u64;
    // Each flow reads [start, end): silently before `next`, for real after. Flows reading the
    // same range (normally all of them) share one pass through the trie.
    let mut segments: BTreeMap<(u64, u64, bool), Vec<bool>> = BTreeMap::new();
    for (k, run) in runs.iter().enumerate() {
        let from = run.start[s].max(offset);
        if from >= end || run.failed {
            continue; // It has these records already (it resumed further on), or it failed.
        }
        let split = run.next[s].clamp(from, end);
        for (a, b, silent) in [(from, split, true), (split, end, false)] {
            if a < b {
                segments.entry((a, b, silent)).or_insert_with(|| vec![false; runs.len()])[k] = true;
            }
        }
    }
    let mut out = Vec::new();
    for ((a, b, silent), active) in segments {
        let slice = batch.slice((a - offset) as usize, (b - a) as usize);
        out.clear();
        trie.run(&slice, &active, &mut out);
        for (k, prefixed) in out.drain(..) {
            let run = &mut runs[k];
            let pushed = match prefixed {
                Ok(batch) => {
                    run.push(Piece { batch, origin: (s, a) }, silent).await.map_err(Arc::new)
                }
                Err(e) => Err(e),
            };
            if let Err(e) = pushed {
                run.fail(&format!("on the records from offset {a}: {e}"));
            }
        }
    }
    for run in runs.iter_mut().filter(|run| !run.failed) {
        if run.next[s] < end {
            run.next[s] = end;
            run.dirty = true;
        }
        run.start[s] = run.start[s].max(end);
    }
}
