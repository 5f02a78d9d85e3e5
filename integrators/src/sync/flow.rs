//! One flow of a running group: where it is in each source, its stages and their state, the
//! output waiting to be appended, and the checkpoint that says all of it.

use std::collections::BTreeMap;
use std::time::Instant;

use arrow::array::RecordBatch;
use datafusion::error::Result as DfResult;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::plan::FlowPlan;
use super::stage::{Piece, Stage};

/// A flow's checkpoint, as stored with its output (offsets by source store ref).
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct Saved {
    /// The offset after the last record each source gave the flow.
    next: BTreeMap<String, u64>,
    /// Where to re-read each source from to rebuild the records held for open windows.
    replay: BTreeMap<String, u64>,
    /// The state of stateful stages: their operators as JSON, and the state.
    stages: Vec<(String, Value)>,
}

/// A flow of a running group.
pub(super) struct FlowRun<'p> {
    pub(super) plan: &'p FlowPlan,
    stages: Vec<(Stage, String)>,
    /// Per source: records before `next` were already seen; from `start` on they are read.
    pub(super) next: Vec<u64>,
    pub(super) start: Vec<u64>,
    pub(super) output: Vec<RecordBatch>,
    pub(super) last_checkpoint: Instant,
    pub(super) dirty: bool,
    /// Late records already counted in the stats.
    late: u64,
    /// Whether the flow stopped on records it could not process (until re-applied).
    pub(super) failed: bool,
}

impl<'p> FlowRun<'p> {
    pub(super) fn resume(
        plan: &'p FlowPlan,
        mut stages: Vec<(Stage, String)>,
        saved: &Saved,
    ) -> Self {
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
    pub(super) async fn push(&mut self, piece: Piece, silent: bool) -> DfResult<()> {
        let mut pieces = vec![piece];
        for (stage, _) in &mut self.stages {
            let mut next = Vec::new();
            for piece in pieces {
                next.extend(stage.push(piece, silent).await?);
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
    pub(super) fn fail(&mut self, why: &str) {
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
    pub(super) fn newly_late(&mut self) -> u64 {
        let late: u64 = self.stages.iter().map(|(stage, _)| stage.late()).sum();
        let new = late - self.late;
        self.late = late;
        new
    }

    /// The checkpoint for the flow's current position.
    pub(super) fn save(&self) -> String {
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
