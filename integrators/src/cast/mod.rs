//! Cast: data exchange graphs between Object stores (DESIGN §5).
//!
//! [`CastSpec`] (spec) → [`CastPlan::load`] (plan: checked, expressions compiled once) →
//! [`CastIntegrator`] (run). `expr` holds CEL and JSONPath values (`jsonpath`: parsed once);
//! `pushdown` describes edges for an exchange that runs them itself
//! ([`data_exchange::EdgeRunner`]); `rights`: what a running spec may reach
//! ([`CastPlan::rights`]).

pub mod cel_bounds;
pub mod eval;
pub mod expr;
pub mod graph;
pub mod jsonpath;
mod offload;
pub mod plan;
mod progress;
pub mod pushdown;
mod rights;
pub mod run;
pub mod spec;
mod stats;
mod targets;

pub use crate::diff::PlanDiff;
pub use eval::{Bindings, Evaluator, TargetWrite};
pub use plan::{CastPlan, EdgePlan, Filled, Input, Schemas, Unfilled};
pub use progress::{checkpoint_name, checkpoint_schema, checkpoint_store};
pub use rights::{principal, shadow_principal};
pub use run::{CastError, CastIntegrator, CastOptions, DEFAULT_TARGET_CACHE, EdgeTiming};
pub use spec::CastSpec;
pub use stats::{CastObserver, CastStats, EdgeHandled, EdgeOutcome};
