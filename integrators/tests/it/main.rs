//! Integration tests of the integrators: golden Cast cases on every backend (and pushed down
//! into Redis), spec checks, re-applying plans, Sync.

mod check;
mod golden;
mod pushdown;
mod reload;
mod sync;
mod target_cache;
