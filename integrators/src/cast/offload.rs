//! Offloading: which edges the exchange runs itself, inside the writes of their source, and
//! from which store version (see [`CastOptions::pushdown`](super::CastOptions::pushdown)).
//! Changes up to that version are still evaluated by the integrator; a store whose edges
//! all run in the exchange needs no watch.

use std::collections::{BTreeMap, BTreeSet};

use data_exchange::{EdgesRun, ExchangeError, ObjectExchange, StoreRef};

use super::plan::{CastPlan, EdgePlan};
use super::pushdown;

/// The edges an integrator has handed to the exchange.
#[derive(Debug, Default)]
pub(super) struct Offload {
    /// Edge names (in the plan) the exchange runs.
    running: BTreeSet<String>,
    /// For the stores that trigger them, the store version from which the exchange runs them.
    from: BTreeMap<StoreRef, u64>,
}

impl Offload {
    /// Whether the exchange runs any edge.
    pub(super) fn is_active(&self) -> bool {
        !self.running.is_empty()
    }

    /// How many edges the exchange runs.
    pub(super) fn len(&self) -> usize {
        self.running.len()
    }

    /// Whether the exchange handles every change of `store` after `version`: every edge the
    /// store triggers runs there, from `version` or earlier.
    pub(super) fn handles_store(&self, plan: &CastPlan, store: &StoreRef, version: u64) -> bool {
        if self.from.get(store).is_none_or(|from| version < *from) {
            return false;
        }
        let froms = plan.inputs.iter().filter(|(_, input)| input.store == *store);
        let mut edges = froms.flat_map(|(alias, _)| plan.edges_from(alias));
        edges.all(|edge| self.running.contains(&edge.spec.name))
    }

    /// Whether the exchange has already run `edge` for a change at `version` of `store`.
    pub(super) fn ran(&self, edge: &EdgePlan, store: &StoreRef, version: u64) -> bool {
        self.from.get(store).is_some_and(|from| version > *from)
            && self.running.contains(&edge.spec.name)
    }

    /// Hands the edges of `plan` the exchange can run to it, as `owner`, in place of those
    /// handed before; the others stay in the integrator, with the reason logged.
    pub(super) async fn hand_over(
        &mut self,
        exchange: &dyn ObjectExchange,
        owner: &str,
        plan: &CastPlan,
    ) -> Result<(), ExchangeError> {
        let (mut described, mut names) = (Vec::new(), BTreeMap::new());
        for edge in &plan.edges {
            match pushdown::describe(plan, edge) {
                Ok(description) => {
                    names.insert(description.name().to_owned(), edge.spec.name.clone());
                    described.push(description);
                }
                Err(why) => {
                    tracing::info!(cast = %plan.name, edge = edge.spec.name, "runs in the integrator: {why}");
                }
            }
        }
        let outcome = match exchange.edge_runner() {
            Some(runner) => runner.run_edges(owner, &described).await?,
            None => EdgesRun::refuse_all(&described, "the exchange does not run edges"),
        };
        for (edge, why) in &outcome.refused {
            tracing::info!(cast = %plan.name, edge, "runs in the integrator: {why}");
        }
        self.running = outcome.running.iter().filter_map(|name| names.remove(name)).collect();
        self.from = outcome.from;
        Ok(())
    }

    /// Takes every edge back from the exchange.
    pub(super) async fn withdraw(
        &mut self,
        exchange: &dyn ObjectExchange,
        owner: &str,
    ) -> Result<(), ExchangeError> {
        if let Some(runner) = exchange.edge_runner() {
            runner.run_edges(owner, &[]).await?;
        }
        *self = Offload::default();
        Ok(())
    }
}
