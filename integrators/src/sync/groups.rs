//! The running groups of a plan, one task each, and reloading them: a new plan restarts only
//! the groups whose flows changed.
//!
//! A group is the flows reading the same sources (they share one tail and their common
//! prefixes). On reload, a group of the new plan whose flows all run exactly as in the running
//! group ([`FlowPlan::runs_as`]: same spec over the same store schemas), with the same members,
//! keeps its task: no restart, no re-read, its operators' state (open windows, dedupe keys)
//! carries on. Every other group is stopped at a batch boundary, with its checkpoints written,
//! and started again from them, so each record is processed by exactly one version of a flow.
//!
//! A changed, added or removed flow rebuilds its whole group, unchanged members included: they
//! share the group's tail and prefixes, and taking a flow out of (or into) a running task would
//! need that task to stop at a boundary anyway. The unchanged members resume from their
//! checkpoints, rebuilding their open windows by replaying their sources silently, exactly as
//! after any restart. A group in which a flow stopped on records it could not process is also
//! restarted, so that re-applying a spec resumes that flow.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use data_exchange::StoreRef;
use data_exchange::log::LogExchange;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use super::group::Group;
use super::plan::SyncPlan;
use super::run::{SyncOptions, SyncStats};

/// The group tasks of the running plan, by the sources their flows read.
#[derive(Debug)]
pub(super) struct Groups {
    log: Arc<dyn LogExchange>,
    /// Where the flows append and keep their checkpoints (`log`, but for a shadow run).
    out: Arc<dyn LogExchange>,
    options: SyncOptions,
    stats: Arc<SyncStats>,
    plan: Arc<SyncPlan>,
    tasks: BTreeMap<Vec<StoreRef>, GroupTask>,
}

/// A running group: cancelled at a batch boundary by [`GroupTask::stop`], aborted on drop.
#[derive(Debug)]
struct GroupTask {
    /// The plan the task runs and its flows' indices in it.
    plan: Arc<SyncPlan>,
    flows: Vec<usize>,
    failed: Arc<AtomicBool>,
    cancel: CancellationToken,
    task: AbortOnDropHandle<()>,
}

/// The flows of `plan` by the sources they read, as indices in `plan.flows`.
fn grouped(plan: &SyncPlan) -> BTreeMap<Vec<StoreRef>, Vec<usize>> {
    let mut groups: BTreeMap<Vec<StoreRef>, Vec<usize>> = BTreeMap::new();
    for (i, flow) in plan.flows.iter().enumerate() {
        groups.entry(flow.sources.clone()).or_default().push(i);
    }
    groups
}

impl Groups {
    /// Starts a task per group of `plan`, reading `log` and appending to `out`.
    pub(super) fn start(
        (log, out): (Arc<dyn LogExchange>, Arc<dyn LogExchange>),
        plan: SyncPlan,
        options: SyncOptions,
        stats: Arc<SyncStats>,
    ) -> Groups {
        let plan = Arc::new(plan);
        let tasks = BTreeMap::new();
        let mut groups = Groups { log, out, options, stats, plan, tasks };
        for (sources, flows) in grouped(&groups.plan) {
            let task = groups.spawn(flows);
            groups.tasks.insert(sources, task);
        }
        groups
    }

    /// The running plan.
    pub(super) fn plan(&self) -> &SyncPlan {
        &self.plan
    }

    /// Runs `plan` instead: the groups whose flows are unchanged keep running; the others stop
    /// with their checkpoints written before any new group starts from them.
    pub(super) async fn reload(&mut self, plan: SyncPlan) {
        self.plan = Arc::new(plan);
        let mut old = std::mem::take(&mut self.tasks);
        let (mut stopping, mut restart) = (Vec::new(), Vec::new());
        for (sources, flows) in grouped(&self.plan) {
            match old.remove(&sources) {
                Some(task) if task.runs(&self.plan, &flows) => {
                    self.tasks.insert(sources, task);
                }
                replaced => {
                    stopping.extend(replaced);
                    restart.push((sources, flows));
                }
            }
        }
        stop_all(stopping.into_iter().chain(old.into_values())).await;
        for (sources, flows) in restart {
            let task = self.spawn(flows);
            self.tasks.insert(sources, task);
        }
    }

    /// Stops every group at a batch boundary, with its checkpoints written.
    pub(super) async fn stop(&mut self) {
        stop_all(std::mem::take(&mut self.tasks).into_values()).await;
    }

    fn spawn(&self, flows: Vec<usize>) -> GroupTask {
        let failed = Arc::new(AtomicBool::new(false));
        let group = Group {
            log: self.log.clone(),
            out: self.out.clone(),
            plan: self.plan.clone(),
            flows: flows.clone(),
            options: self.options.clone(),
            stats: self.stats.clone(),
            failed: failed.clone(),
        };
        let cancel = CancellationToken::new();
        let task = AbortOnDropHandle::new(tokio::spawn(group.supervise(cancel.clone())));
        GroupTask { plan: self.plan.clone(), flows, failed, cancel, task }
    }
}

/// Cancels `tasks` together, then waits until each has written its final checkpoints.
async fn stop_all(tasks: impl IntoIterator<Item = GroupTask>) {
    let tasks: Vec<GroupTask> = tasks.into_iter().collect();
    for task in &tasks {
        task.cancel.cancel();
    }
    for task in tasks {
        if let Err(e) = task.task.await {
            tracing::error!(sync = task.plan.name, "a group of flows failed: {e}");
        }
    }
}

impl GroupTask {
    /// Whether the task can go on as the group of `flows` in `plan`: still running, with the
    /// same members, each running exactly as before, none stopped on records it could not
    /// process.
    fn runs(&self, plan: &SyncPlan, flows: &[usize]) -> bool {
        let same = |&new: &usize| {
            self.flows.iter().any(|&old| plan.flows[new].runs_as(&self.plan.flows[old]))
        };
        flows.len() == self.flows.len()
            && flows.iter().all(same)
            && !self.failed.load(Ordering::Relaxed)
            && !self.task.is_finished()
    }
}
