//! Integration tests of the integrators: golden Cast cases on every backend (and pushed down
//! into Redis), spec checks, re-applying plans, shadow runs, Sync, and re-applying Sync plans.

mod check;
mod golden;
mod pushdown;
mod reload;
mod rights;
mod shadow;
mod sync;
mod sync_reload;
mod target_cache;

use std::time::{Duration, Instant};

/// Polls `done` until it holds; fails the test after 20 s, naming `what` it waited for.
async fn wait_until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
