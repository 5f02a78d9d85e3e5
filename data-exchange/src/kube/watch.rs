//! Watching a store's custom resources: one apiserver watch after another, each resumed from
//! the last version delivered (or bookmarked: kube asks for bookmarks), drained by a task of the
//! watch's own so that a slow watcher never makes the apiserver drop it. A watch the apiserver
//! cannot serve for now (it is unreachable, or answers 429, 503, 504) is made again after a
//! backoff; any other refusal ends the stream with its error, as `410 Gone` ends it expired.

use futures::StreamExt;
use kube::api::{Api, DynamicObject, WatchEvent as KubeEvent, WatchParams};
use tokio::sync::mpsc;

use super::retry::{self, RETRY_BACKOFF};
use super::{denied_or, parse_version, status, to_object};
use crate::error::{ExchangeError, Result};
use crate::object::{Object, StoreRef, WatchEvent, WatchStream};

/// How long one apiserver watch lasts before it is renewed (the server caps it anyway).
const WATCH_SECONDS: u32 = 290;

/// Streams the changes of `store` after version `from` (0: every object there is, as added).
/// A refusal names `principal`.
pub(super) fn watch(
    api: Api<DynamicObject>,
    store: StoreRef,
    from: u64,
    principal: Option<String>,
) -> WatchStream {
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let pump = Pump { api, store, principal, last: from, tx };
        pump.run().await;
    });
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}

struct Pump {
    api: Api<DynamicObject>,
    store: StoreRef,
    principal: Option<String>,
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
            // A watch that ends with nothing received (one that fails as it starts, say) is
            // made again after a wait that grows.
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
        let params = Default::default();
        let list =
            retry::read(|| self.api.list(&params)).await.map_err(|e| self.denied_or(e, "list"))?;
        self.last = parse_version(&self.store, list.metadata.resource_version.as_deref())?;
        for resource in list.items {
            // The objects as they are, not changes: no trace goes on from them.
            let object = Object::untraced(to_object(&self.store, resource)?);
            let _ = self.tx.send(Ok(WatchEvent::Added(object)));
        }
        Ok(())
    }

    /// One apiserver watch: `Ok(true)` when it ended after receiving something, `Ok(false)`
    /// when it ended with nothing or failed for now (watch again after a wait), `Err` when the
    /// watch cannot go on.
    async fn watch_once(&mut self) -> Result<bool> {
        let params = WatchParams::default().timeout(WATCH_SECONDS);
        let events = match self.api.watch(&params, &self.last.to_string()).await {
            Ok(events) => events,
            Err(e) => return self.failed(e).map(|()| false),
        };
        let mut events = std::pin::pin!(events);
        let mut received = false;
        while let Some(event) = events.next().await {
            let event = match event {
                Ok(KubeEvent::Added(o)) => WatchEvent::Added(to_object(&self.store, o)?),
                Ok(KubeEvent::Modified(o)) => WatchEvent::Modified(to_object(&self.store, o)?),
                // The state deleted names the trace of the write that made it, not the
                // deletion's, which the apiserver does not keep.
                Ok(KubeEvent::Deleted(o)) => {
                    WatchEvent::Deleted(Object::untraced(to_object(&self.store, o)?))
                }
                Ok(KubeEvent::Bookmark(mark)) => {
                    let version = mark.metadata.resource_version.as_str();
                    self.last = self.last.max(parse_version(&self.store, Some(version))?);
                    received = true;
                    continue;
                }
                Ok(KubeEvent::Error(status)) => {
                    return self.failed(kube::Error::Api(status)).map(|()| received);
                }
                Err(e) => {
                    tracing::debug!(store = %self.store, error = %e, "watch broke; renewing");
                    return Ok(received);
                }
            };
            received = true;
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

    /// `Ok` when the watch failed for now (it is made again), else the error that ends it.
    fn failed(&self, e: kube::Error) -> Result<()> {
        match status(&e) {
            Some(410) => Err(self.expired()),
            Some(401 | 403) => Err(self.denied_or(e, "watch")),
            _ if retry::is_transient(&e) => {
                tracing::debug!(store = %self.store, error = %e, "watch failed; renewing");
                Ok(())
            }
            _ => Err(ExchangeError::Backend {
                backend: "kube",
                error: format!("watch of {}: {e}", self.store).into(),
            }),
        }
    }

    fn denied_or(&self, e: kube::Error, operation: &'static str) -> ExchangeError {
        denied_or(e, &self.store, operation, self.principal.as_deref())
    }

    fn expired(&self) -> ExchangeError {
        ExchangeError::Expired { store: self.store.clone(), from: self.last, lost: false }
    }
}
