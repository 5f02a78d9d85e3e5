//! Watching a store's custom resources: one apiserver watch after another, each resumed from
//! the last version delivered, drained by a task of the watch's own so that a slow watcher
//! never makes the apiserver drop it.

use futures::StreamExt;
use kube::api::{Api, DynamicObject, WatchEvent as KubeEvent, WatchParams};
use tokio::sync::mpsc;

use super::{RETRY_BACKOFF, denied_or, status, to_object};
use crate::error::{ExchangeError, Result};
use crate::object::{StoreRef, WatchEvent, WatchStream};

/// How long one apiserver watch lasts before it is renewed (the server caps it anyway).
const WATCH_SECONDS: u32 = 290;

/// Streams the changes of `store` after version `from` (0: every object there is, as added).
pub(super) fn watch(api: Api<DynamicObject>, store: StoreRef, from: u64) -> WatchStream {
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let pump = Pump { api, store, last: from, tx };
        pump.run().await;
    });
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}

struct Pump {
    api: Api<DynamicObject>,
    store: StoreRef,
    /// The version of the last change delivered (or bookmarked).
    last: u64,
    tx: mpsc::UnboundedSender<Result<WatchEvent>>,
}

impl Pump {
    /// Watches until the watcher goes away or the watch cannot go on.
    async fn run(mut self) {
        if self.last == 0
            && let Err(e) = self.replay().await
        {
            let _ = self.tx.send(Err(e));
            return;
        }
        let mut backoff = RETRY_BACKOFF;
        let watcher = self.tx.clone();
        loop {
            let ended = tokio::select! {
                ended = self.watch_once() => ended,
                () = watcher.closed() => return,
            };
            match ended {
                Ok(true) => backoff.reset(),
                Ok(false) => backoff.wait().await,
                Err(e) => {
                    let _ = self.tx.send(Err(e));
                    return;
                }
            }
        }
    }

    /// Sends every present object as added, then goes on from the list's version: a watch from
    /// 0 starts at the beginning of the store.
    async fn replay(&mut self) -> Result<()> {
        let list = self
            .api
            .list(&Default::default())
            .await
            .map_err(|e| denied_or(e, &self.store, "list"))?;
        let version = list.metadata.resource_version.as_deref().unwrap_or("0");
        self.last = version.parse().unwrap_or(0);
        for resource in list.items {
            let object = to_object(&self.store, resource)?;
            let _ = self.tx.send(Ok(WatchEvent::Added(object)));
        }
        Ok(())
    }

    /// One apiserver watch: `Ok(true)` when it ended after delivering, `Ok(false)` when it
    /// failed on its way (retry after a wait), `Err` when the watch cannot be resumed.
    async fn watch_once(&mut self) -> Result<bool> {
        let params = WatchParams::default().timeout(WATCH_SECONDS);
        let events = match self.api.watch(&params, &self.last.to_string()).await {
            Ok(events) => events,
            Err(e) if status(&e) == Some(410) => return Err(self.expired()),
            Err(e) if matches!(status(&e), Some(401 | 403)) => {
                return Err(denied_or(e, &self.store, "watch"));
            }
            Err(e) => {
                tracing::debug!(store = %self.store, error = %e, "watch failed; retrying");
                return Ok(false);
            }
        };
        let mut events = std::pin::pin!(events);
        while let Some(event) = events.next().await {
            let event = match event {
                Ok(KubeEvent::Added(o)) => WatchEvent::Added(to_object(&self.store, o)?),
                Ok(KubeEvent::Modified(o)) => WatchEvent::Modified(to_object(&self.store, o)?),
                Ok(KubeEvent::Deleted(o)) => WatchEvent::Deleted(to_object(&self.store, o)?),
                Ok(KubeEvent::Bookmark(mark)) => {
                    let version = mark.metadata.resource_version.parse().unwrap_or(0);
                    self.last = self.last.max(version);
                    continue;
                }
                Ok(KubeEvent::Error(status)) if status.code == 410 => return Err(self.expired()),
                Ok(KubeEvent::Error(status)) => {
                    tracing::debug!(store = %self.store, %status, "watch error; renewing");
                    return Ok(false);
                }
                Err(e) => {
                    tracing::debug!(store = %self.store, error = %e, "watch broke; renewing");
                    return Ok(false);
                }
            };
            if event.version() <= self.last {
                continue;
            }
            self.last = event.version();
            if self.tx.send(Ok(event)).is_err() {
                return Ok(true);
            }
        }
        Ok(true)
    }

    fn expired(&self) -> ExchangeError {
        ExchangeError::Expired { store: self.store.clone(), from: self.last }
    }
}
