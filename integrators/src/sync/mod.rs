//! Sync: dataflows between Log stores (DESIGN §6).
//!
//! - [`spec`]: the spec as written.
//! - [`consolidate`]: flows with a common prefix compute it once.
//! - [`expr`]: SQL expressions, and runs of stateless operators fused into one [`expr::Map`].
//! - [`plan`]: a spec checked against the stores' schemas.
//! - `rights`: what a running spec may reach ([`SyncPlan::rights`]).
//! - [`run`]: the integrator: starts a plan's groups of flows, re-applies plans, counts.
//! - `groups`: the running group tasks; a reload restarts only the groups whose flows changed.
//! - `group`: one group's task: tails, shared prefixes, checkpointed appends.
//! - `flow`: one flow of a group: its position, stages and checkpoint.
//! - [`stage`]: the operators that keep state or reorder: aggregate, dedupe, sort, limit.
//! - [`window`]: tumbling windows over `ts` and the watermark that closes them.

pub mod consolidate;
pub mod expr;
mod flow;
pub mod graph;
mod group;
mod groups;
pub mod plan;
mod rights;
pub mod run;
pub mod spec;
pub mod stage;
pub mod window;

pub use plan::{FlowPlan, SyncPlan};
pub use run::{Matched, SyncError, SyncIntegrator, SyncObserver, SyncOptions, SyncStats};
