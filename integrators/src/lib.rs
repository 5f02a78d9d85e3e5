//! Integrators compose knactors by moving state between their stores.
//!
//! Start with [`source::SpecFile`]: every spec (Knactor, App, Cast, Sync) is read through it, so
//! that each problem found in a spec is reported at its file:line:column as a
//! [`source::Diagnostic`].

pub mod cast;
pub mod diff;
pub mod graph;
pub mod source;
pub mod sync;

pub use diff::PlanDiff;
