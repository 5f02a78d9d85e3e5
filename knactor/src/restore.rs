//! What an app does when its exchange lost its data (a Redis server restarted without
//! persistence): it says so, loudly, and registers its stores and writes their seeds again,
//! so that the app goes on where it would have started. What was written before is gone; the
//! watches of Object stores that followed it expire, and their followers list the stores
//! afresh, handling every object listed as new. Edges pushed down into the server are lost
//! with it: the app must be started again (it says so).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::knactors::Knactors;

/// How often the exchange is asked whether it lost its data.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// Looks every [`LOOK_EVERY`] whether the exchange of `knactors` lost its data, and gives it
/// back the stores and seeds when it did (trying again at each look until that succeeds),
/// until `shutdown`. With `pushdown`, says that the app must be started again.
pub(crate) async fn restore_lost_data(
    knactors: Arc<Knactors>,
    pushdown: bool,
    shutdown: CancellationToken,
) {
    let mut ticks = tokio::time::interval(LOOK_EVERY);
    let mut restoring = false;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        // An exchange that does not answer is for its writers and watches to report.
        if knactors.exchange_lost_data().await.unwrap_or(false) {
            tracing::error!(
                "the exchange lost the app's data (a Redis server restarted without persistence?): every object and record written before is gone; registering the stores and writing their seeds again"
            );
            if pushdown {
                tracing::error!(
                    "the edges pushed down into Redis were lost with its data: they no longer run; start the app again"
                );
            }
            restoring = true;
        }
        if restoring {
            restoring = match knactors.register_again().await {
                Ok(()) => {
                    tracing::info!("the stores are registered and seeded again");
                    false
                }
                Err(error) => {
                    tracing::error!(%error, "cannot register and seed the stores again; trying again");
                    true
                }
            };
        }
    }
}
