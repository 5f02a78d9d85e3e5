//! Watching a Redis store: blocking `XREAD`s on a connection of the watch's own, resumed from
//! the last delivered version after the connection is lost.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, Stream};
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;

use super::{StoreKeys, parse_data, read_data_name};
use crate::backoff::{Backoff, Warnings};
use crate::error::{ExchangeError, Result};
use crate::object::{Object, Sequencer, StoreRef, WatchEvent, WatchStream, sequenced};
use crate::trace::TraceParent;

/// How long one `XREAD` blocks; the connection's own timeout is a little longer.
const BLOCK: Duration = Duration::from_secs(10);
/// Changes read per `XREAD`.
const BATCH: usize = 512;
/// Reconnection backoff bounds.
const MIN_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// One stream entry as `XREAD` returns it: id and flat field/value pairs.
type Entry = (String, Vec<String>);

/// The state of a watch between reads.
struct Watcher {
    client: redis::Client,
    conn: Option<MultiplexedConnection>,
    store: StoreRef,
    keys: StoreKeys,
    /// The last version read from the stream.
    last: u64,
    /// The name of the data its versions are of (see [`super::INCARNATION`]).
    incarnation: Option<String>,
    ready: VecDeque<WatchEvent>,
}

/// Streams the changes of `store` after version `from`, a version of the data named
/// `incarnation`.
///
/// The stream reads ahead with no task of its own: when it hands out the last change it
/// holds, it sends the next blocking `XREAD` at once, so the next change is on its way
/// whether or not the watcher is polling yet, and reaches it from the connection itself.
pub(super) async fn watch(
    client: redis::Client,
    store: StoreRef,
    from: u64,
    incarnation: Option<String>,
) -> Result<WatchStream> {
    let keys = StoreKeys::new(&store);
    let mut watcher = Watcher {
        client,
        conn: None,
        store,
        keys,
        last: from,
        incarnation,
        ready: VecDeque::new(),
    };
    watcher.connect().await?;
    let sequencer = Sequencer::new(watcher.store.clone(), from);
    Ok(sequenced(ReadAhead::Idle(Box::new(watcher)), sequencer))
}

/// The watch as a stream: holding changes read, or reading more; an error ends it.
enum ReadAhead {
    Idle(Box<Watcher>),
    Reading(BoxFuture<'static, (Box<Watcher>, Result<()>)>),
    Failed(ExchangeError),
    Ended,
}

impl ReadAhead {
    /// Starts reading more, and sends the read right away.
    fn read(watcher: Box<Watcher>, cx: &mut Context<'_>) -> Self {
        let mut read = Watcher::fill(watcher).boxed();
        match read.poll_unpin(cx) {
            Poll::Pending => ReadAhead::Reading(read),
            Poll::Ready((watcher, Ok(()))) => ReadAhead::Idle(watcher),
            Poll::Ready((_, Err(e))) => ReadAhead::Failed(e),
        }
    }
}

impl Stream for ReadAhead {
    type Item = Result<WatchEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match std::mem::replace(&mut *self, ReadAhead::Ended) {
                ReadAhead::Idle(mut watcher) => match watcher.ready.pop_front() {
                    Some(event) => {
                        *self = if watcher.ready.is_empty() {
                            ReadAhead::read(watcher, cx)
                        } else {
                            ReadAhead::Idle(watcher)
                        };
                        return Poll::Ready(Some(Ok(event)));
                    }
                    None => *self = ReadAhead::read(watcher, cx),
                },
                ReadAhead::Reading(mut read) => match read.poll_unpin(cx) {
                    Poll::Pending => {
                        *self = ReadAhead::Reading(read);
                        return Poll::Pending;
                    }
                    Poll::Ready((watcher, Ok(()))) => *self = ReadAhead::Idle(watcher),
                    Poll::Ready((_, Err(e))) => return Poll::Ready(Some(Err(e))),
                },
                ReadAhead::Failed(e) => return Poll::Ready(Some(Err(e))),
                ReadAhead::Ended => return Poll::Ready(None),
            }
        }
    }
}

impl Watcher {
    /// Reads until it holds changes, reconnecting with backoff for as long as the server is
    /// unreachable; gives itself back.
    async fn fill(mut watcher: Box<Self>) -> (Box<Self>, Result<()>) {
        let mut backoff = Backoff::new(MIN_BACKOFF, MAX_BACKOFF);
        let warnings = Warnings::default();
        loop {
            if !watcher.ready.is_empty() {
                return (watcher, Ok(()));
            }
            match watcher.read().await {
                Ok(()) => {
                    if let Some(failures) = warnings.succeeded() {
                        tracing::info!(store = %watcher.store, failures, "watch connected again");
                    }
                    backoff.reset();
                }
                Err(e) if is_connection_loss(&e) => {
                    if let Some(failures) = warnings.failed() {
                        tracing::warn!(store = %watcher.store, error = %e, failures, "watch lost its connection; retrying");
                    }
                    watcher.conn = None;
                    backoff.wait().await;
                }
                Err(e) => return (watcher, Err(e)),
            }
        }
    }

    /// The connection for blocking reads, opened when missing. A new connection first checks
    /// that the server still holds the store's history up to `last`: if its store version is
    /// behind, or its data has another name than the watch's versions (data lost, and
    /// perhaps written again since), the watch has expired, and the data was lost.
    async fn connect(&mut self) -> Result<&mut MultiplexedConnection> {
        if self.conn.is_none() {
            let config = AsyncConnectionConfig::new().set_response_timeout(Some(BLOCK * 2));
            let mut conn =
                self.client.get_multiplexed_async_connection_with_config(&config).await?;
            let seq: Option<u64> =
                redis::cmd("GET").arg(&self.keys.seq).query_async(&mut conn).await?;
            let renamed = self.last > 0 && read_data_name(&mut conn).await? != self.incarnation;
            if seq.unwrap_or(0) < self.last || renamed {
                let (store, from) = (self.store.clone(), self.last);
                return Err(ExchangeError::Expired { store, from, lost: true });
            }
            self.conn = Some(conn);
        }
        Ok(self.conn.as_mut().expect("connected above"))
    }

    /// Blocks until changes after `last` arrive (or the block times out) and queues them.
    async fn read(&mut self) -> Result<()> {
        let (changes, from) = (self.keys.changes.clone(), format!("{}-0", self.last));
        let conn = self.connect().await?;
        let reply: Option<Vec<(String, Vec<Entry>)>> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(BATCH)
            .arg("BLOCK")
            .arg(BLOCK.as_millis() as u64)
            .arg("STREAMS")
            .arg(&changes)
            .arg(from)
            .query_async(conn)
            .await?;
        for (_, entries) in reply.unwrap_or_default() {
            for entry in entries {
                let event = self.decode(entry)?;
                self.last = event.version();
                self.ready.push_back(event);
            }
        }
        Ok(())
    }

    fn decode(&self, (id, fields): Entry) -> Result<WatchEvent> {
        let corrupt = || ExchangeError::Corrupt(format!("{}: change {id}", self.store));
        let version = id.split_once('-').and_then(|(v, _)| v.parse().ok()).ok_or_else(corrupt)?;
        let field = |key: &str| {
            fields.chunks_exact(2).find(|pair| pair[0] == key).map(|pair| pair[1].as_str())
        };
        let (kind, name, data) = match (field("kind"), field("name"), field("data")) {
            (Some(kind), Some(name), Some(data)) => (kind, name, data),
            _ => return Err(corrupt()),
        };
        let (name, data) = (name.to_owned(), parse_data(name, data)?);
        let trace = field("tp").and_then(TraceParent::parse);
        let object = Arc::new(Object { name, version, data, trace });
        match kind {
            "Added" => Ok(WatchEvent::Added(object)),
            "Modified" => Ok(WatchEvent::Modified(object)),
            "Deleted" => Ok(WatchEvent::Deleted(object)),
            _ => Err(corrupt()),
        }
    }
}

/// Whether `e` says the connection to Redis was lost (or never made): worth reconnecting.
fn is_connection_loss(e: &ExchangeError) -> bool {
    let ExchangeError::Backend { error, .. } = e else { return false };
    error.downcast_ref::<redis::RedisError>().is_some_and(|e| {
        e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout()
    })
}
