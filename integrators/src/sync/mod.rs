//! Sync: dataflows between Log stores (DESIGN §6).
//!
//! - [`spec`]: the spec as written.
//! - [`consolidate`]: flows with a common prefix compute it once.
//! - [`expr`]: SQL expressions, and runs of stateless operators fused into one [`expr::Map`].
//! - [`plan`]: a spec checked against the stores' schemas.
//! - [`run`]: the integrator: tails, shared prefixes, stages, checkpointed appends.
//! - [`stage`]: the operators that keep state or reorder: aggregate, dedupe, sort, limit.
//! - [`window`]: tumbling windows over `ts` and the watermark that closes them.

pub mod consolidate;
pub mod expr;
pub mod graph;
pub mod plan;
pub mod run;
pub mod spec;
pub mod stage;
pub mod window;

pub use plan::{FlowPlan, SyncPlan};
pub use run::{SyncError, SyncIntegrator, SyncOptions, SyncStats};
