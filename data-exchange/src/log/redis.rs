//! The Redis Log exchange: one stream per store (`kn:{k/s}:log`, hash-tagged like the store's
//! object keys), one entry per append holding the batch as Arrow IPC bytes. An append is one
//! script call that reserves the offsets and adds the entry (appends that arrive while one is
//! in flight are grouped into the next entry); a tail keeps a blocking `XREAD` outstanding,
//! like an object watch.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use async_trait::async_trait;
use futures::StreamExt;
use redis::aio::ConnectionManager;
use serde_json::Value;

use super::coalesce::Coalescer;
use super::ingest::Ingest;
use super::{Checkpoint, LogExchange, RecordStream, Records, query};
use crate::error::{ExchangeError, Result};
use crate::object::StoreRef;
use crate::task_stream::TaskStream;

/// Reserves `n` offsets and adds the batch (when `n` > 0), and sets a checkpoint when given;
/// answers the first offset.
/// KEYS: 1 record count, 2 stream, 3 checkpoints. ARGV: 1 n, 2 the batch's IPC bytes,
/// 3 and 4 (optional) the checkpoint's key and value.
const APPEND: &str = r"
local n = tonumber(ARGV[1])
local first = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then
  redis.call('SET', KEYS[1], first + n)
  redis.call('XADD', KEYS[2], (first + 1) .. '-0', 'n', ARGV[1], 'b', ARGV[2])
end
if ARGV[3] then
  redis.call('HSET', KEYS[3], ARGV[3], ARGV[4])
end
return first
";

/// The Log exchange on a Redis server.
pub struct RedisLog {
    client: redis::Client,
    conn: ConnectionManager,
    append_script: redis::Script,
    stores: RwLock<HashMap<StoreRef, Arc<Ingest>>>,
    /// Plain appends per store, grouped into one entry under load.
    appenders: std::sync::Mutex<HashMap<StoreRef, Arc<Coalescer>>>,
}

impl std::fmt::Debug for RedisLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLog").finish_non_exhaustive()
    }
}

/// The Redis keys of a Log store.
struct Keys {
    count: String,
    stream: String,
    checkpoints: String,
}

fn keys(store: &StoreRef) -> Keys {
    Keys {
        count: format!("kn:{{{store}}}:logcount"),
        stream: format!("kn:{{{store}}}:log"),
        checkpoints: format!("kn:{{{store}}}:logcheckpoints"),
    }
}

fn encode(batch: &RecordBatch) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let mut writer = StreamWriter::try_new(&mut bytes, &batch.schema())?;
    writer.write(batch)?;
    writer.finish()?;
    drop(writer);
    Ok(bytes)
}

fn decode(bytes: &[u8]) -> Result<RecordBatch> {
    let mut reader = StreamReader::try_new(bytes, None)?;
    match reader.next() {
        Some(batch) => Ok(batch?),
        None => Err(ExchangeError::Corrupt("a log entry holds no batch".into())),
    }
}

/// Batches read ahead of a tail's consumer.
const READ_AHEAD: usize = 64;

/// The stream id just before `id` (`5-0` → `4-0`), to read from an entry inclusively.
fn before(id: &str) -> String {
    let first: u64 = id.split_once('-').and_then(|(v, _)| v.parse().ok()).unwrap_or(1);
    format!("{}-0", first.saturating_sub(1))
}

/// Reads entries after `cursor` for ever, sending the records from offset `next` on.
async fn read_ahead(
    mut conn: redis::aio::MultiplexedConnection,
    stream: String,
    mut cursor: String,
    mut next: u64,
    sender: &tokio::sync::mpsc::Sender<Result<Records>>,
) -> Result<()> {
    loop {
        let reply: Option<Vec<(String, Vec<Entry>)>> = redis::cmd("XREAD")
            .arg("BLOCK")
            .arg(0)
            .arg("STREAMS")
            .arg(&stream)
            .arg(&cursor)
            .query_async(&mut conn)
            .await?;
        for entry in reply.into_iter().flatten().flat_map(|(_, entries)| entries) {
            cursor = entry.0.clone();
            let Some(records) = records(&entry)?.from_offset(next) else { continue };
            next = records.end();
            if sender.send(Ok(records)).await.is_err() {
                return Ok(());
            }
        }
    }
}

/// One stream entry: its id's first part (first offset + 1), and its fields.
type Entry = (String, HashMap<String, redis::Value>);

/// The records of an entry.
fn records(entry: &Entry) -> Result<Records> {
    let corrupt = || ExchangeError::Corrupt(format!("log entry {}", entry.0));
    let first: u64 =
        entry.0.split_once('-').and_then(|(v, _)| v.parse().ok()).ok_or_else(corrupt)?;
    let bytes = match entry.1.get("b") {
        Some(redis::Value::BulkString(bytes)) => bytes,
        _ => return Err(corrupt()),
    };
    Ok(Records { offset: first - 1, batch: decode(bytes)? })
}

impl RedisLog {
    /// Connects to the server at `url`.
    pub async fn connect(url: &str) -> Result<Self> {
        let client = redis::Client::open(url)?;
        let conn = client.get_connection_manager().await?;
        let append_script = redis::Script::new(APPEND);
        Ok(RedisLog {
            client,
            conn,
            append_script,
            stores: RwLock::default(),
            appenders: std::sync::Mutex::default(),
        })
    }

    fn ingest(&self, store: &StoreRef) -> Result<Arc<Ingest>> {
        let stores = self.stores.read().expect("log store map poisoned");
        stores.get(store).cloned().ok_or_else(|| ExchangeError::UnknownStore(store.clone()))
    }

    /// Appends `batch` as one entry, with the checkpoint if any, in one script call.
    async fn append_batch(
        conn: &ConnectionManager,
        script: &redis::Script,
        store: &StoreRef,
        batch: &RecordBatch,
        checkpoint: Option<&Checkpoint>,
    ) -> Result<u64> {
        let keys = keys(store);
        let rows = batch.num_rows();
        let mut invocation = script.key(keys.count);
        invocation.key(keys.stream).key(keys.checkpoints).arg(rows);
        if rows > 0 {
            invocation.arg(encode(batch)?)
        } else {
            invocation.arg("")
        };
        if let Some(checkpoint) = checkpoint {
            invocation.arg(&checkpoint.key).arg(&checkpoint.value);
        }
        Ok(invocation.invoke_async(&mut conn.clone()).await?)
    }

    /// Appends `batch` without a checkpoint, grouped with concurrent appends to `store`.
    async fn append_grouped(&self, store: &StoreRef, batch: RecordBatch) -> Result<u64> {
        if batch.num_rows() == 0 {
            return self.end(store).await;
        }
        let appender = {
            let mut appenders = self.appenders.lock().expect("appenders poisoned");
            let appender = appenders.entry(store.clone()).or_insert_with(|| {
                let (conn, script, store) =
                    (self.conn.clone(), self.append_script.clone(), store.clone());
                Arc::new(Coalescer::spawn(move |batch| {
                    let (conn, script, store) = (conn.clone(), script.clone(), store.clone());
                    async move { RedisLog::append_batch(&conn, &script, &store, &batch, None).await }
                }))
            });
            appender.clone()
        };
        appender.append(batch).await
    }

    /// Every batch of `store`, in order.
    async fn all(&self, store: &StoreRef) -> Result<Vec<RecordBatch>> {
        let stream = keys(store).stream;
        let entries: Vec<Entry> = redis::cmd("XRANGE")
            .arg(stream)
            .arg("-")
            .arg("+")
            .query_async(&mut self.conn.clone())
            .await?;
        entries.iter().map(|e| records(e).map(|r| r.batch)).collect()
    }
}

#[async_trait]
impl LogExchange for RedisLog {
    async fn register(&self, store: &StoreRef, schema: &Value) -> Result<()> {
        let ingest = Arc::new(Ingest::new(store, schema)?);
        self.stores.write().expect("log store map poisoned").insert(store.clone(), ingest);
        Ok(())
    }

    fn arrow_schema(&self, store: &StoreRef) -> Result<SchemaRef> {
        Ok(self.ingest(store)?.arrow_schema().clone())
    }

    async fn end(&self, store: &StoreRef) -> Result<u64> {
        self.ingest(store)?;
        let end: Option<u64> =
            redis::cmd("GET").arg(keys(store).count).query_async(&mut self.conn.clone()).await?;
        Ok(end.unwrap_or(0))
    }

    async fn append_json(&self, store: &StoreRef, records: &[Value]) -> Result<u64> {
        let batch = self.ingest(store)?.decode(records)?;
        self.append_grouped(store, batch).await
    }

    async fn append(&self, store: &StoreRef, batch: RecordBatch) -> Result<u64> {
        self.ingest(store)?.check_batch(&batch)?;
        self.append_grouped(store, batch).await
    }

    async fn append_checkpointed(
        &self,
        store: &StoreRef,
        batch: RecordBatch,
        checkpoint: &Checkpoint,
    ) -> Result<u64> {
        self.ingest(store)?.check_batch(&batch)?;
        let script = &self.append_script;
        RedisLog::append_batch(&self.conn, script, store, &batch, Some(checkpoint)).await
    }

    async fn checkpoint(&self, store: &StoreRef, key: &str) -> Result<Option<String>> {
        self.ingest(store)?;
        let value = redis::cmd("HGET")
            .arg(keys(store).checkpoints)
            .arg(key)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(value)
    }

    async fn tail(&self, store: &StoreRef, from: u64) -> Result<RecordStream> {
        self.ingest(store)?;
        let stream = keys(store).stream;
        // Blocking reads wait as long as they must: no response timeout on this connection.
        let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
        let mut conn = self.client.get_multiplexed_async_connection_with_config(&config).await?;
        // Start at the entry that holds `from`: the last one whose first offset is <= from.
        let start: Vec<Entry> = redis::cmd("XREVRANGE")
            .arg(&stream)
            .arg(format!("{}-0", from + 1))
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut conn)
            .await?;
        let cursor = start.first().map_or_else(|| "0-0".to_owned(), |(id, _)| before(id));
        let tail = TaskStream::spawn(READ_AHEAD, move |sender| async move {
            if let Err(e) = read_ahead(conn, stream, cursor, from, &sender).await {
                let _ = sender.send(Err(e)).await;
            }
        });
        Ok(tail.boxed())
    }

    async fn query(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        let stores: Vec<(StoreRef, Arc<Ingest>)> = {
            let stores = self.stores.read().expect("log store map poisoned");
            stores.iter().map(|(s, i)| (s.clone(), i.clone())).collect()
        };
        let mut tables = Vec::new();
        for (store, ingest) in stores {
            let batches = self.all(&store).await?;
            tables.push((store, ingest.arrow_schema().clone(), batches));
        }
        query::run(tables, sql).await
    }
}
