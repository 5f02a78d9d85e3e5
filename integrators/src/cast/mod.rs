//! Cast: data exchange graphs between Object stores (DESIGN §5).

pub mod expr;
pub mod graph;
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
