//! Running a [`SyncPlan`]: one task per group of flows reading the same sources, tailing them
//! (never polling), running each batch through the shared prefixes and each flow's stages,
//! and appending each flow's output together with its checkpoint, so that after a crash or a
//! re-apply every destination holds each expected record exactly once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use data_exchange::log::{Checkpoint, LogExchange};
use data_exchange::{ExchangeError, StoreRef};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Mutex;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::consolidate::Trie;
use super::expr::session;
use super::plan::{FlowPlan, SyncPlan};
use super::stage::{Piece, Stage};
use crate::diff::PlanDiff;

/// Why a Sync integrator could not start or swap its plan.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The exchange failed or lacks a store.
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
    /// A new plan has another name than the running one.
    #[error("cannot replace Sync `{running}` with a spec named `{applied}`")]
    OtherName {
        /// The running plan's name.
        running: String,
        /// The new plan's name.
        applied: String,
    },
}

/// How a Sync integrator runs.
#[derive(Clone, Copy, Debug)]
pub struct SyncOptions {
    /// Compute the prefixes flows share once (on by default; off only to measure it).
    pub consolidate: bool,
    /// Write a checkpoint without records after this long without output, so a restart
    /// does not re-read what produced nothing.
    pub idle_checkpoint: Duration,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions { consolidate: true, idle_checkpoint: Duration::from_secs(1) }
    }
}

/// What the flows of an integrator have done since it started.
#[derive(Debug, Default)]
pub struct SyncStats {
    /// Source records read (each once per group of flows).
    pub read: AtomicU64,
    /// Records appended to destinations.
    pub written: AtomicU64,
    /// Records dropped because their window had closed.
    pub late: AtomicU64,
}

/// A running Sync spec.
#[derive(Debug)]
pub struct SyncIntegrator {
    log: Arc<dyn LogExchange>,
    options: SyncOptions,
    stats: Arc<SyncStats>,
    running: Mutex<Running>,
}

#[derive(Debug)]
struct Running {
    plan: Arc<SyncPlan>,
    cancel: CancellationToken,
    tasks: JoinSet<()>,
}

impl SyncIntegrator {
    /// Starts `plan`'s flows on `log`; each resumes from its checkpoint, or reads its sources
    /// from the beginning when it has none.
    pub async fn start(
        log: Arc<dyn LogExchange>,
        plan: SyncPlan,
        options: SyncOptions,
    ) -> Result<Self, SyncError> {
        check_stores(&log, &plan)?;
        let stats = Arc::new(SyncStats::default());
        let running = Running::start(&log, Arc::new(plan), options, &stats);
        Ok(SyncIntegrator { log, options, stats, running: Mutex::new(running) })
    }

    /// Replaces the running plan at a batch boundary: the flows stop after the batch they are
    /// on, with their checkpoints written, and the new plan's flows resume from those
    /// checkpoints. Returns the flows added, removed and changed.
    pub async fn apply(&self, plan: SyncPlan) -> Result<PlanDiff, SyncError> {
        let mut running = self.running.lock().await;
        if plan.name != running.plan.name {
            let running = running.plan.name.clone();
            return Err(SyncError::OtherName { running, applied: plan.name });
        }
        check_stores(&self.log, &plan)?;
        let diff = plan.diff(&running.plan);
        running.stop().await;
        *running = Running::start(&self.log, Arc::new(plan), self.options, &self.stats);
        Ok(diff)
    }

    /// Counters of the flows' work.
    pub fn stats(&self) -> &SyncStats {
        &self.stats
    }

    /// Stops every flow after its current batch, checkpointing it.
    pub async fn stop(self) {
        self.running.into_inner().stop().await;
    }
}

/// Checks that every store `plan` names is registered on `log`.
fn check_stores(log: &Arc<dyn LogExchange>, plan: &SyncPlan) -> Result<(), SyncError> {
    for flow in &plan.flows {
        for store in flow.sources.iter().chain([&flow.to]) {
            log.arrow_schema(store)?;
        }
    }
    Ok(())
}

impl Running {
    fn start(
        log: &Arc<dyn LogExchange>,
        plan: Arc<SyncPlan>,
        options: SyncOptions,
        stats: &Arc<SyncStats>,
    ) -> Running {
        let mut groups: BTreeMap<&[StoreRef], Vec<usize>> = BTreeMap::new();
        for (i, flow) in plan.flows.iter().enumerate() {
            groups.entry(&flow.sources).or_default().push(i);
        }
        let cancel = CancellationToken::new();
        let mut tasks = JoinSet::new();
        for flows in groups.into_values() {
            let group = Group {
                log: log.clone(),
                plan: plan.clone(),
                flows,
                options,
                stats: stats.clone(),
            };
            tasks.spawn(group.supervise(cancel.clone()));
        }
        Running { plan, cancel, tasks }
    }

    /// Cancels the groups and waits until each has written its final checkpoints.
    async fn stop(&mut self) {
        self.cancel.cancel();
        while let Some(ended) = self.tasks.join_next().await {
            if let Err(e) = ended {
                tracing::error!(sync = self.plan.name, "a group of flows failed: {e}");
            }
        }
    }
}

/// Flows reading the same sources, run by one task.
struct Group {
    log: Arc<dyn LogExchange>,
    plan: Arc<SyncPlan>,
    flows: Vec<usize>,
    options: SyncOptions,
    stats: Arc<SyncStats>,
}

/// How long a failed group waits before resuming from its checkpoints.
const RETRY: Duration = Duration::from_secs(1);

/// A flow's checkpoint, as stored with its output (offsets by source store ref).
#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    /// The offset after the last record each source gave the flow.
    next: BTreeMap<String, u64>,
    /// Where to re-read each source from to rebuild the records held for open windows.
    replay: BTreeMap<String, u64>,
    /// The state of stateful stages: their operators as JSON, and the state.
    stages: Vec<(String, Value)>,
}

/// A flow of a running group.
struct FlowRun<'p> {
    plan: &'p FlowPlan,
    stages: Vec<(Stage, String)>,
    /// Per source: records before `next` were already seen; from `start` on they are read.
    next: Vec<u64>,
    start: Vec<u64>,
    output: Vec<RecordBatch>,
    last_checkpoint: Instant,
    dirty: bool,
    /// Late records already counted in the stats.
    late: u64,
    /// Whether the flow stopped on records it could not process (until re-applied).
    failed: bool,
}

impl Group {
    /// Runs the group until cancelled; after a failure, resumes from the checkpoints.
    async fn supervise(self, cancel: CancellationToken) {
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

    async fn run(&self, cancel: &CancellationToken) -> Result<(), String> {
        let ctx = session();
        let plans: Vec<&FlowPlan> = self.flows.iter().map(|&f| &self.plan.flows[f]).collect();
        let sources = plans[0].sources.clone();
        let prefixes: Vec<_> = plans.iter().map(|p| p.prefix_ops()).collect();
        let (trie, schemas) =
            Trie::build(&ctx, &plans[0].input, &prefixes, self.options.consolidate)?;
        let mut runs = Vec::new();
        for (plan, schema) in plans.iter().zip(&schemas) {
            let saved =
                self.log.checkpoint(&plan.to, &plan.checkpoint).await.map_err(|e| e.to_string())?;
            let saved: Saved = match saved {
                Some(text) => serde_json::from_str(&text).map_err(|e| {
                    format!(
                        "the checkpoint `{}` in {} is unreadable: {e}",
                        plan.checkpoint, plan.to
                    )
                })?,
                None => Saved::default(),
            };
            runs.push(FlowRun::resume(plan, plan.stages(&ctx, schema)?, &saved));
        }
        let mut tails = Vec::new();
        for (s, store) in sources.iter().enumerate() {
            let from = runs.iter().map(|r| r.start[s]).min().unwrap_or(0);
            let tail = self.log.tail(store, from).await.map_err(|e| e.to_string())?;
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
            let records = records.map_err(|e| e.to_string())?;
            self.stats.read.fetch_add(records.batch.num_rows() as u64, Ordering::Relaxed);
            let batch = plans[0].align(&records.batch).map_err(|e| e.to_string())?;
            process(&trie, &mut runs, s, records.offset, &batch).await?;
            for run in &mut runs {
                self.stats.late.fetch_add(run.newly_late(), Ordering::Relaxed);
                self.flush(run, false).await?;
            }
        }
        for run in &mut runs {
            self.flush(run, true).await?;
        }
        Ok(())
    }

    /// Appends a flow's output with its checkpoint; without output, writes the checkpoint
    /// alone when it is due (or `finally`).
    async fn flush(&self, run: &mut FlowRun<'_>, finally: bool) -> Result<(), String> {
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
        }
        .map_err(|e| e.to_string())?;
        let checkpoint = Checkpoint { key: run.plan.checkpoint.clone(), value: run.save() };
        let rows = batch.num_rows() as u64;
        match self.log.append_checkpointed(&run.plan.to, batch, &checkpoint).await {
            Ok(_) => {}
            Err(e @ ExchangeError::InvalidRecord { .. }) => {
                run.fail(&format!("on output that breaks the schema of {}: {e}", run.plan.to));
                return Ok(());
            }
            Err(e) => return Err(e.to_string()),
        }
        self.stats.written.fetch_add(rows, Ordering::Relaxed);
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
) -> Result<(), String> {
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
                Ok(batch) => run.push(Piece { batch, origin: (s, a) }, silent).await,
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
    Ok(())
}

impl<'p> FlowRun<'p> {
    fn resume(plan: &'p FlowPlan, mut stages: Vec<(Stage, String)>, saved: &Saved) -> Self {
        let offsets = |map: &BTreeMap<String, u64>, default: &dyn Fn(usize) -> u64| -> Vec<u64> {
            let sources = plan.sources.iter().enumerate();
            sources
                .map(|(s, store)| {
                    map.get(&store.to_string()).copied().unwrap_or_else(|| default(s))
                })
                .collect()
        };
        let next = offsets(&saved.next, &|_| 0);
        let start = offsets(&saved.replay, &|s| next[s]);
        let mut remaining = saved.stages.iter();
        for (stage, ops) in &mut stages {
            if stage.save().is_some()
                && let Some((_, state)) = remaining.find(|(saved_ops, _)| saved_ops == ops)
            {
                stage.restore(state);
            }
        }
        FlowRun {
            plan,
            stages,
            next,
            start,
            output: Vec::new(),
            last_checkpoint: Instant::now(),
            dirty: false,
            late: 0,
            failed: false,
        }
    }

    /// Runs `piece` through the flow's stages, keeping what comes out unless `silent`.
    async fn push(&mut self, piece: Piece, silent: bool) -> Result<(), String> {
        let mut pieces = vec![piece];
        for (stage, _) in &mut self.stages {
            let mut next = Vec::new();
            for piece in pieces {
                next.extend(stage.push(piece, silent).await.map_err(|e| e.to_string())?);
            }
            pieces = next;
        }
        if !silent {
            self.output.extend(pieces.into_iter().map(|p| p.batch).filter(|b| b.num_rows() > 0));
        }
        Ok(())
    }

    /// Stops the flow on records it cannot process (`why`): it keeps its checkpoint (before
    /// them) and its output so far, and its sibling flows go on.
    fn fail(&mut self, why: &str) {
        tracing::error!(
            flow = self.plan.spec.name,
            to = %self.plan.to,
            "the flow stopped {why}; it resumes from its checkpoint when its spec is applied \
             again or the app restarts"
        );
        self.failed = true;
        self.output.clear();
        self.dirty = false;
    }

    /// Late records dropped since the last call.
    fn newly_late(&mut self) -> u64 {
        let late: u64 = self.stages.iter().map(|(stage, _)| stage.late()).sum();
        let new = late - self.late;
        self.late = late;
        new
    }

    /// The checkpoint for the flow's current position.
    fn save(&self) -> String {
        let mut holds = BTreeMap::new();
        for (stage, _) in &self.stages {
            stage.holds(&mut holds);
        }
        let name = |s: usize| self.plan.sources[s].to_string();
        let saved = Saved {
            next: self.next.iter().enumerate().map(|(s, &n)| (name(s), n)).collect(),
            replay: self
                .next
                .iter()
                .enumerate()
                .map(|(s, &n)| (name(s), holds.get(&s).map_or(n, |&h| h.min(n))))
                .collect(),
            stages: self
                .stages
                .iter()
                .filter_map(|(stage, ops)| Some((ops.clone(), stage.save()?)))
                .collect(),
        };
        serde_json::to_string(&saved).expect("a checkpoint serializes")
    }
}
