//! Integration tests of the integrators: golden Cast cases on every backend, and spec checks.

mod check;
mod golden;
mod reload;
mod sync;
