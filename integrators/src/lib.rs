//! Integrators compose knactors by moving state between their stores: Cast between Object
//! stores, Sync between Log stores. Neither knows which backend it runs on; both are re-applied
//! to a running app without a restart.
//!
//! Where to start: every spec goes through three types, parse → check → run.
//! - **Cast**: [`cast::CastSpec`] (the YAML) → [`cast::CastPlan::load`] (checked, expressions
//!   compiled once) → [`cast::CastIntegrator::start`] (watches, evaluates, writes);
//!   [`cast::CastIntegrator::apply`] swaps in a new plan between two changes.
//! - **Sync**: [`sync::spec::SyncSpec`] → [`sync::SyncPlan::load`] (checked against the stores'
//!   schemas) → [`sync::SyncIntegrator::start`] (tails, runs operators, appends exactly once).
//!
//! Every spec file is read through [`source::SpecFile`], so each problem found in it is
//! reported at its file:line:column as a [`source::Diagnostic`].
//!
//! Layout:
//! - [`source`]: spec files, YAML with locations, diagnostics.
//! - [`cast`]: `spec` → `plan` (with `expr`: CEL and JSONPath) → `run` (the task loop), which
//!   uses `eval` (one edge, one change: bindings in, the target's write out; pure),
//!   `targets` (cached, conditional target writes), `progress` (checkpoints) and `offload`
//!   (edges the exchange runs itself, described by `pushdown`); `graph` draws a spec.
//! - [`sync`]: `spec` → `plan` → `run`, which starts one `group` task per set of flows
//!   reading the same sources (`groups` restarts only the changed ones on a re-apply), each
//!   `flow` with its position and stages; `expr` and `stage` are the operators, with `window`,
//!   `consolidate` (shared prefixes) and `graph`.
//! - [`diff`]: what a re-apply changed; [`graph`]: a whole composition as DOT or Mermaid;
//!   [`loops`]: flows that come back to where they started.

pub mod cast;
pub mod diff;
pub mod graph;
pub mod loops;
pub mod source;
pub mod sync;

pub use diff::PlanDiff;
