//! Running a [`SyncPlan`]: one task per group of flows reading the same sources (module
//! `group`), each appending its flows' output together with their checkpoints, so that after
//! a crash or a re-apply every destination holds each expected record exactly once.
//! Re-applying restarts only the groups whose flows changed (module `groups`).

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::RecordBatch;
use data_exchange::log::{Checkpoint, LogExchange, ScopedLog};
use data_exchange::{ExchangeError, StoreRef};
use tokio::sync::Mutex as AsyncMutex;

use super::groups::Groups;
use super::plan::{FlowPlan, SyncPlan};
use crate::diff::PlanDiff;

/// Why a Sync integrator could not start or swap its plan.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The exchange failed or lacks a store.
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
    /// A destination kept changing while the live flows' checkpoints were read there.
    #[error("{0} kept changing while the live flows' checkpoints were read there: try again")]
    KeptChanging(StoreRef),
    /// A new plan has another name than the running one.
    #[error("cannot replace Sync `{running}` with a spec named `{applied}`")]
    OtherName {
        /// The running plan's name.
        running: String,
        /// The new plan's name.
        applied: String,
    },
}

/// Told of the records each flow of a Sync integrator appends or drops as late (e.g. to
/// count them; see [`SyncOptions::observer`]).
pub trait SyncObserver: Send + Sync + std::fmt::Debug {
    /// `flow` of the spec `spec` appended `records` to its destination `to`.
    fn flow_appended(&self, spec: &str, flow: &str, to: &StoreRef, records: &RecordBatch);
    /// `flow` of `spec` dropped `records` records whose window had closed.
    fn flow_dropped_late(&self, spec: &str, flow: &str, records: u64);
}

/// How a Sync integrator runs.
#[derive(Clone, Debug)]
pub struct SyncOptions {
    /// Compute the prefixes flows share once (on by default; off only to measure it).
    pub consolidate: bool,
    /// Write a checkpoint without records after this long without output, so a restart
    /// does not re-read what produced nothing.
    pub idle_checkpoint: Duration,
    /// Told of what each flow appends and drops.
    pub observer: Option<Arc<dyn SyncObserver>>,
}

impl Default for SyncOptions {
    fn default() -> Self {
        let idle_checkpoint = Duration::from_secs(1);
        SyncOptions { consolidate: true, idle_checkpoint, observer: None }
    }
}

/// What the flows of an integrator have done since it started.
#[derive(Debug, Default)]
pub struct SyncStats {
    /// Source records read (each once per group of flows).
    pub read: AtomicU64,
    /// Source records read whose every output is appended: what a test waits on to know that
    /// nothing more will come of what it appended.
    pub handled: AtomicU64,
    /// Records appended to destinations.
    pub written: AtomicU64,
    /// Records dropped because their window had closed.
    pub late: AtomicU64,
    /// How many times each flow (by name) started, from its checkpoint or from the start.
    starts: Mutex<BTreeMap<String, u64>>,
}

impl SyncStats {
    /// How many times the flow `name` started (or resumed from its checkpoint after a
    /// re-apply that restarted its group, or after a failure of the exchange).
    pub fn starts(&self, name: &str) -> u64 {
        self.lock_starts().get(name).copied().unwrap_or(0)
    }

    pub(super) fn started(&self, name: &str) {
        *self.lock_starts().entry(name.to_owned()).or_default() += 1;
    }

    fn lock_starts(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, u64>> {
        self.starts.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A running Sync spec.
#[derive(Debug)]
pub struct SyncIntegrator {
    /// The Log exchange, held to the running plan's rights.
    log: Arc<ScopedLog>,
    stats: Arc<SyncStats>,
    running: Arc<AsyncMutex<Groups>>,
}

impl SyncIntegrator {
    /// Starts `plan`'s flows on `log`; each resumes from its checkpoint, or reads its sources
    /// from the beginning when it has none.
    pub async fn start(
        log: Arc<dyn LogExchange>,
        plan: SyncPlan,
        options: SyncOptions,
    ) -> Result<Self, SyncError> {
        // From here on it reaches the exchange only as the plan's rights allow.
        let log = Arc::new(ScopedLog::new(log, plan.rights()));
        check_stores(&*log, &plan)?;
        // Running again, its flows hold what they have not read from now on.
        for flow in &plan.flows {
            mark_retired(&*log, flow, false).await;
        }
        Ok(Self::run(log.clone(), log, plan, options))
    }

    /// Starts `plan` as a shadow run: its flows read the sources through `log` (as
    /// [`SyncPlan::shadow_rights`] allow) and append into `copies`, where each destination
    /// must be registered. Each flow starts where the live flow of its name last checkpointed,
    /// with its state (a flow without one from the sources' beginning, as it would live), so
    /// both make the same records from there. Returns it, and per destination where the live
    /// records match the copy's from.
    pub async fn start_shadow(
        log: Arc<dyn LogExchange>,
        copies: Arc<dyn LogExchange>,
        plan: SyncPlan,
        options: SyncOptions,
    ) -> Result<(Self, BTreeMap<StoreRef, Matched>), SyncError> {
        let log = Arc::new(ScopedLog::new(log, plan.shadow_rights()));
        check_stores(&*log, &plan)?;
        let mut matched = BTreeMap::new();
        for (to, flows) in by_destination(&plan) {
            let (from, saved) = live_checkpoints(&*log, to, &flows).await?;
            for (flow, saved) in flows.iter().zip(saved) {
                let Some(saved) = saved else { continue };
                let empty = RecordBatch::new_empty(copies.arrow_schema(to)?);
                let checkpoint = Checkpoint { key: flow.checkpoint.clone(), value: saved };
                copies.append_checkpointed(to, empty, &checkpoint).await?;
            }
            let stamped = flows.iter().any(|flow| flow.conform.stamps_ts());
            matched.insert(to.clone(), Matched { from, stamped });
        }
        Ok((Self::run(log, copies, plan, options), matched))
    }

    fn run(
        log: Arc<ScopedLog>,
        out: Arc<dyn LogExchange>,
        plan: SyncPlan,
        options: SyncOptions,
    ) -> Self {
        let stats = Arc::new(SyncStats::default());
        let running = Groups::start((log.clone(), out), plan, options, stats.clone());
        SyncIntegrator { log, stats, running: Arc::new(AsyncMutex::new(running)) }
    }

    /// Replaces the running plan at a batch boundary. Groups of flows that did not change keep
    /// running untouched; the others stop after the batch they are on, with their checkpoints
    /// written, and the new plan's groups resume from those checkpoints. Returns the flows
    /// added, removed and changed.
    pub async fn apply(&self, plan: SyncPlan) -> Result<PlanDiff, SyncError> {
        let (running, log) = (self.running.clone(), self.log.clone());
        // In a task of its own: a caller that goes away mid-reload (an HTTP client that
        // disconnects) must not leave the groups it stopped without their successors.
        let reload = tokio::spawn(async move {
            let mut running = running.lock().await;
            if plan.name != running.plan().name {
                let running = running.plan().name.clone();
                return Err(SyncError::OtherName { running, applied: plan.name });
            }
            // The groups stopping and those starting both hold for the reload; the new
            // plan's rights alone after it.
            let mut either = (*log.rights()).clone();
            either.extend(&plan.rights());
            log.set_rights(either);
            if let Err(e) = check_stores(&*log, &plan) {
                log.set_rights(running.plan().rights());
                return Err(e);
            }
            let diff = plan.diff(running.plan());
            let rights = plan.rights();
            running.reload(plan).await;
            log.set_rights(rights);
            Ok(diff)
        });
        reload.await.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }

    /// The Log exchange handle it acts through, held to the running plan's rights.
    pub fn log(&self) -> &Arc<ScopedLog> {
        &self.log
    }

    /// Counters of the flows' work.
    pub fn stats(&self) -> &SyncStats {
        &self.stats
    }

    /// Stops every flow after its current batch, checkpointing it.
    pub async fn stop(self) {
        self.running.lock().await.stop().await;
    }

    /// Stops as [`stop`](Self::stop) does, and marks each flow's checkpoint retired: the spec
    /// was deleted, so the retention of its sources no longer keeps what it has not read;
    /// applying it again resumes from the checkpoints.
    pub async fn retire(self) {
        let mut running = self.running.lock().await;
        running.stop().await;
        for flow in &running.plan().flows {
            mark_retired(&*self.log, flow, true).await;
        }
    }
}

/// Marks `flow`'s checkpoint `retired` (or not), when it has one that says otherwise.
async fn mark_retired(log: &dyn LogExchange, flow: &FlowPlan, retired: bool) {
    let marked = async {
        let Some(saved) = log.checkpoint(&flow.to, &flow.checkpoint).await? else {
            return Ok(());
        };
        let corrupt = |e: serde_json::Error| {
            ExchangeError::Corrupt(format!("checkpoint {}: {e}", flow.checkpoint))
        };
        let mut saved: serde_json::Value = serde_json::from_str(&saved).map_err(corrupt)?;
        let Some(fields) = saved.as_object_mut() else { return Ok(()) };
        if (fields.get("retired") == Some(&true.into())) == retired {
            return Ok(());
        }
        if retired {
            fields.insert("retired".to_owned(), true.into());
        } else {
            fields.remove("retired");
        }
        let empty = RecordBatch::new_empty(log.arrow_schema(&flow.to)?);
        let checkpoint = Checkpoint { key: flow.checkpoint.clone(), value: saved.to_string() };
        log.append_checkpointed(&flow.to, empty, &checkpoint).await.map(drop)
    };
    if let Err(e) = marked.await {
        tracing::warn!(flow = flow.spec.name, error = %e, "cannot mark the checkpoint (retired: {retired})");
    }
}

/// Where the records a shadow appends to a copy of a destination match the live ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Matched {
    /// The live destination's offset from which its records match the copy's.
    pub from: u64,
    /// Whether `ts` is the time of the append (a flow does not give it), and so differs.
    pub stamped: bool,
}

/// How many times the live checkpoints are read again while their destination changes.
const CHECKPOINT_READS: usize = 100;

/// The flows of `plan` by the store they append to.
fn by_destination(plan: &SyncPlan) -> BTreeMap<&StoreRef, Vec<&FlowPlan>> {
    let mut flows: BTreeMap<&StoreRef, Vec<&FlowPlan>> = BTreeMap::new();
    for flow in &plan.flows {
        flows.entry(&flow.to).or_default().push(flow);
    }
    flows
}

/// The checkpoints of `flows` in their destination `to`, with the end of `to` they were
/// taken at: read again while an append comes between.
async fn live_checkpoints(
    log: &dyn LogExchange,
    to: &StoreRef,
    flows: &[&FlowPlan],
) -> Result<(u64, Vec<Option<String>>), SyncError> {
    for _ in 0..CHECKPOINT_READS {
        let end = log.end(to).await?;
        let mut saved = Vec::new();
        for flow in flows {
            saved.push(log.checkpoint(to, &flow.checkpoint).await?);
        }
        if log.end(to).await? == end {
            return Ok((end, saved));
        }
    }
    Err(SyncError::KeptChanging(to.clone()))
}

/// Checks that every store `plan` names is registered on `log`.
fn check_stores(log: &dyn LogExchange, plan: &SyncPlan) -> Result<(), SyncError> {
    for flow in &plan.flows {
        for store in flow.sources.iter().chain([&flow.to]) {
            log.arrow_schema(store)?;
        }
    }
    Ok(())
}
