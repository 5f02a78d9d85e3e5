//! Progress: the last store version a Cast integrator handled per input store, checkpointed in
//! the exchange (the store `_knactor/checkpoints`) so that a restarted integrator resumes where
//! it stopped.
//!
//! A checkpoint object holds `positions` (where to resume) and `consumed` (per store it reads,
//! the version up to which every change is handled, by this task or by the exchange running its
//! edges: what the state retention may collect), `creates` (per store its edges may create
//! objects in, the stores they create them from: see [`super::CastPlan::creates`]), and
//! `retired` once the spec is deleted.

use std::collections::{BTreeMap, BTreeSet};

use data_exchange::{ExchangeError, ObjectExchange, StoreRef, Write};
use serde_json::{Map, Value, json};

/// The store where integrators checkpoint their progress.
pub fn checkpoint_store() -> StoreRef {
    StoreRef::new("_knactor", "checkpoints").expect("a valid store ref")
}

/// The schema the checkpoint store is registered with.
pub fn checkpoint_schema() -> Value {
    json!({"type": "object"})
}

/// The name of the checkpoint object of the Cast named `cast`: `cast.<name>`.
pub fn checkpoint_name(cast: &str) -> String {
    format!("cast.{cast}")
}

/// The positions of one integrator, and whether they moved since the last checkpoint.
#[derive(Debug)]
pub(super) struct Progress {
    /// The Cast's name.
    cast: String,
    /// The checkpoint object's name: `cast.<name>`.
    name: String,
    positions: BTreeMap<StoreRef, u64>,
    dirty: bool,
    /// Whether checkpoints are written (a shadow run keeps none).
    saves: bool,
    /// The `consumed` of the last checkpoint written.
    written: BTreeMap<StoreRef, u64>,
}

impl Progress {
    /// No position yet, for the Cast named `cast`.
    pub(super) fn new(cast: &str) -> Self {
        let name = checkpoint_name(cast);
        let positions = BTreeMap::new();
        let written = BTreeMap::new();
        Progress { cast: cast.to_owned(), name, positions, dirty: false, saves: true, written }
    }

    /// Like [`Progress::new`], for a run that writes no checkpoint (a shadow run).
    pub(super) fn unsaved(cast: &str) -> Self {
        Progress { saves: false, ..Progress::new(cast) }
    }

    /// The name the integrator's checkpoint (and its pushed-down edges) go by.
    pub(super) fn owner(&self) -> &str {
        &self.name
    }

    /// The positions last checkpointed, by store ref.
    pub(super) async fn saved(
        &self,
        exchange: &dyn ObjectExchange,
    ) -> Result<BTreeMap<String, u64>, ExchangeError> {
        let saved = exchange.get(&checkpoint_store(), &self.name).await?;
        Ok(saved
            .and_then(|o| serde_json::from_value(o.data["positions"].clone()).ok())
            .unwrap_or_default())
    }

    /// The last version of `store` handled.
    pub(super) fn get(&self, store: &StoreRef) -> Option<u64> {
        self.positions.get(store).copied()
    }

    /// Records that every change of `store` up to `version` is handled.
    pub(super) fn advance(&mut self, store: &StoreRef, version: u64) {
        self.positions.insert(store.clone(), version);
        self.dirty = true;
    }

    /// The last version handled of each store.
    pub(super) fn positions(&self) -> &BTreeMap<StoreRef, u64> {
        &self.positions
    }

    /// Stops tracking `store`.
    pub(super) fn forget(&mut self, store: &StoreRef) {
        self.positions.remove(store);
        self.dirty = true;
    }

    /// Whether positions moved since the last checkpoint.
    pub(super) fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Writes the positions to the exchange, with what is `consumed` of each store read, when
    /// either moved; a failure is logged and retried at the next one.
    pub(super) async fn checkpoint(
        &mut self,
        exchange: &dyn ObjectExchange,
        consumed: &BTreeMap<StoreRef, u64>,
        creates: &BTreeMap<StoreRef, BTreeSet<String>>,
    ) {
        if !self.saves || (!self.dirty && self.written == *consumed) {
            self.dirty = false;
            return;
        }
        let by_name = |map: &BTreeMap<StoreRef, u64>| -> Map<String, Value> {
            map.iter().map(|(s, v)| (s.to_string(), json!(v))).collect()
        };
        let creates: Map<String, Value> =
            creates.iter().map(|(s, from)| (s.to_string(), json!(from))).collect();
        let state = json!({
            "positions": by_name(&self.positions),
            "consumed": by_name(consumed),
            "creates": creates,
        });
        match exchange.write(&checkpoint_store(), Write::put(self.name.clone(), state)).await {
            Ok(_) => {
                self.dirty = false;
                self.written = consumed.clone();
            }
            Err(e) => tracing::warn!(cast = self.cast, error = %e, "checkpoint failed"),
        }
    }
}
