//! Following a store: list it, then watch it from the version listed; list again when the
//! watch expires, and after an error, with backoff. What is kept of it is a [`Mirror`]'s: a
//! controller's cache and queue, a collector's candidates.

use std::sync::Arc;

use data_exchange::backoff::{Backoff, Warnings};
use data_exchange::{ExchangeError, Object, ObjectExchange, StoreRef, WatchEvent};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

/// What is kept of a store followed.
pub(crate) trait Mirror: Send + Sync + 'static {
    /// The store was listed: `objects` are all it holds, as of `version`.
    fn listed(&self, objects: Vec<Arc<Object>>, version: u64);
    /// The store changed.
    fn changed(&self, event: WatchEvent);
}

/// Keeps `mirror` up to date with `store` until `shutdown`, waiting `backoff` after errors.
pub(crate) async fn follow(
    exchange: Arc<dyn ObjectExchange>,
    store: StoreRef,
    mirror: Arc<dyn Mirror>,
    mut backoff: Backoff,
    shutdown: CancellationToken,
) {
    let warnings = Warnings::default();
    loop {
        let followed = async {
            let list = exchange.list(&store).await?;
            let mut watch = exchange.watch(&store, list.version).await?;
            if let Some(failures) = warnings.succeeded() {
                tracing::info!(%store, failures, "following again");
            }
            mirror.listed(list.items, list.version);
            while let Some(event) = watch.next().await {
                mirror.changed(event?);
            }
            Ok::<(), ExchangeError>(())
        };
        let outcome = tokio::select! {
            outcome = followed => outcome,
            () = shutdown.cancelled() => return,
        };
        match outcome {
            Err(ExchangeError::Expired { .. }) => {
                tracing::debug!(%store, "watch expired; re-listing");
                backoff.reset();
            }
            Err(e) => {
                let delay = backoff.next_delay();
                if let Some(failures) = warnings.failed() {
                    tracing::warn!(%store, error = %e, failures, "watch failed; re-listing after {delay:?}");
                }
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = shutdown.cancelled() => return,
                }
            }
            Ok(()) => return,
        }
    }
}
