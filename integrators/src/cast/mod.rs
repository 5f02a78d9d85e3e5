//! Cast: data exchange graphs between Object stores (DESIGN §5).
//!
//! [`CastSpec`] (spec) → [`CastPlan::load`] (plan: checked, expressions compiled once) →
//! [`CastIntegrator`] (run). `expr` holds CEL and JSONPath values (`jsonpath`: parsed once);
//! `pushdown` describes edges for an exchange that runs them itself
//! ([`data_exchange::EdgeRunner`]).

pub mod expr;
pub mod graph;
pub mod jsonpath;
pub mod plan;
pub mod pushdown;
pub mod run;
pub mod spec;

pub use crate::diff::PlanDiff;
pub use plan::{CastPlan, EdgePlan, Filled, Input, Schemas, Unfilled};
pub use run::{
    CastError, CastIntegrator, CastOptions, CastStats, DEFAULT_TARGET_CACHE, EdgeTiming,
};
pub use spec::CastSpec;
