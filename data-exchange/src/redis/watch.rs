//! Watching a Redis store: blocking `XREAD`s on a connection of the watch's own, resumed from
//! the last delivered version after the connection is lost.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;

use super::{StoreKeys, parse_data};
use crate::error::{ExchangeError, Result};
use crate::object::{Object, Sequencer, StoreRef, WatchEvent, WatchStream, sequenced};
use crate::task_stream::TaskStream;

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
    ready: VecDeque<WatchEvent>,
}

/// Changes read ahead of the consumer.
const READ_AHEAD: usize = 4 * BATCH;

/// Streams the changes of `store` after version `from`.
///
/// A task owned by the stream keeps one blocking `XREAD` outstanding at all times, so a change
/// is on its way to the watcher as soon as the server applies it; dropping the stream stops it.
pub(super) async fn watch(
    client: redis::Client,
    store: StoreRef,
    from: u64,
) -> Result<WatchStream> {
    let keys = StoreKeys::new(&store);
    let mut watcher =
        Watcher { client, conn: None, store, keys, last: from, ready: VecDeque::new() };
    watcher.connect().await?;
    let sequencer = Sequencer::new(watcher.store.clone(), from);
    let events = TaskStream::spawn(READ_AHEAD, |events| async move {
        loop {
            let event = watcher.next().await;
            let failed = event.is_err();
            if events.send(event).await.is_err() || failed {
                return;
            }
        }
    });
    Ok(sequenced(events, sequencer))
}

impl Watcher {
    /// The next change, reconnecting with backoff for as long as the server is unreachable.
    async fn next(&mut self) -> Result<WatchEvent> {
        let mut backoff = MIN_BACKOFF;
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Ok(event);
            }
            match self.read().await {
                Ok(()) => backoff = MIN_BACKOFF,
                Err(ExchangeError::Redis(e)) if is_connection_loss(&e) => {
                    tracing::warn!(store = %self.store, error = %e, "watch lost its connection; retrying");
                    self.conn = None;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The connection for blocking reads, opened when missing. A new connection first checks
    /// that the server still holds the store's history up to `last`: if its store version is
    /// behind (data lost or reset), the watch has expired.
    async fn connect(&mut self) -> Result<&mut MultiplexedConnection> {
        if self.conn.is_none() {
            let config = AsyncConnectionConfig::new().set_response_timeout(Some(BLOCK * 2));
            let mut conn =
                self.client.get_multiplexed_async_connection_with_config(&config).await?;
            let seq: Option<u64> =
                redis::cmd("GET").arg(&self.keys.seq).query_async(&mut conn).await?;
            if seq.unwrap_or(0) < self.last {
                return Err(ExchangeError::Expired { store: self.store.clone(), from: self.last });
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
        let object =
            Arc::new(Object { name: name.to_owned(), version, data: parse_data(name, data)? });
        match kind {
            "Added" => Ok(WatchEvent::Added(object)),
            "Modified" => Ok(WatchEvent::Modified(object)),
            "Deleted" => Ok(WatchEvent::Deleted(object)),
            _ => Err(corrupt()),
        }
    }
}

fn is_connection_loss(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout()
}
