//! The Redis Log exchange: one stream per store (`kn:{k/s}:log`, hash-tagged like the store's
//! object keys), one entry per append holding the batch as Arrow IPC bytes. An append is one
//! call of the library's `kn_append` function, which reserves the offsets and adds the entry
//! (appends that arrive while one is in flight are grouped into the next entry); a tail keeps a
//! blocking `XREAD` outstanding, like an object watch. Connected as a principal's ACL user
//! ([`RedisLog::connect_as`]), it reaches the stores Redis lets that user reach, and what Redis
//! refuses is [`ExchangeError::Denied`].

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
use super::{Checkpoint, LogExchange, RecordStream, Records, Trim, query};
use crate::error::{ExchangeError, Result};
use crate::object::StoreRef;
use crate::redis::acl::{self, Credential};
use crate::redis::pushdown;
use crate::task_stream::TaskStream;

/// The Log exchange on a Redis server.
pub struct RedisLog {
    server: Server,
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
    /// The schema its records have (JSON), set by the first administrator to register it;
    /// outside the store's `kn:{k/s}:*`, which its writers may write.
    schema: String,
}

fn keys(store: &StoreRef) -> Keys {
    Keys {
        count: format!("kn:{{{store}}}:logcount"),
        stream: format!("kn:{{{store}}}:log"),
        checkpoints: format!("kn:{{{store}}}:logcheckpoints"),
        schema: format!("kn:logschema:{{{store}}}"),
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

/// A connection to the server, and the user it is.
#[derive(Clone)]
struct Server {
    client: redis::Client,
    conn: ConnectionManager,
    /// The ACL user it connects as, when not the URL's (or the default).
    user: Option<String>,
}

impl Server {
    /// Maps a refusal by Redis of `operation` on `store` to the denial it is.
    fn refusal(
        &self,
        store: &StoreRef,
        operation: &'static str,
    ) -> impl Fn(ExchangeError) -> ExchangeError + use<> {
        acl::refusal(self.user.clone(), store, operation)
    }

    /// Sends `command`, about `store`, on the shared connection: again once if the connection
    /// had dropped, as every command sent this way is a read, or a trim that may be repeated.
    async fn query<T: redis::FromRedisValue>(
        &self,
        store: &StoreRef,
        operation: &'static str,
        command: &redis::Cmd,
    ) -> Result<T> {
        let reply = crate::redis::reads::read(&self.conn, command).await;
        reply.map_err(|e| self.refusal(store, operation)(e.into()))
    }

    /// Appends `batch` as one entry, with the checkpoint if any, in one function call.
    async fn append(
        &self,
        store: &StoreRef,
        batch: &RecordBatch,
        checkpoint: Option<&Checkpoint>,
    ) -> Result<u64> {
        let keys = keys(store);
        let rows = batch.num_rows();
        let mut call = redis::cmd("FCALL");
        call.arg(pushdown::APPEND).arg(3).arg(keys.count).arg(keys.stream).arg(keys.checkpoints);
        call.arg(rows);
        if rows > 0 {
            call.arg(encode(batch)?)
        } else {
            call.arg("")
        };
        if let Some(checkpoint) = checkpoint {
            call.arg(&checkpoint.key).arg(&checkpoint.value);
        }
        let user = self.user.as_deref();
        let appended = pushdown::call(&self.client, &mut self.conn.clone(), user, &call).await;
        appended.map_err(self.refusal(store, "append"))
    }
}

impl RedisLog {
    /// Connects to the server at `url`.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::open(redis::Client::open(url)?, None).await
    }

    /// Connects to the server at `url` as the ACL user of `credential` (see
    /// [`crate::redis::acl`]).
    pub async fn connect_as(url: &str, credential: &Credential) -> Result<Self> {
        let client = acl::client_as(url, credential)?;
        Self::open(client, Some(credential.user.clone())).await
    }

    async fn open(client: redis::Client, user: Option<String>) -> Result<Self> {
        let conn = client.get_connection_manager().await.map_err(acl::login_error(&user))?;
        let server = Server { client, conn, user };
        Ok(RedisLog { server, stores: RwLock::default(), appenders: Default::default() })
    }

    fn ingest(&self, store: &StoreRef) -> Result<Arc<Ingest>> {
        let stores = self.stores.read().expect("log store map poisoned");
        stores.get(store).cloned().ok_or_else(|| ExchangeError::UnknownStore(store.clone()))
    }

    /// Appends `batch` without a checkpoint, grouped with concurrent appends to `store`.
    async fn append_grouped(&self, store: &StoreRef, batch: RecordBatch) -> Result<u64> {
        if batch.num_rows() == 0 {
            return self.end(store).await;
        }
        let appender = {
            let mut appenders = self.appenders.lock().expect("appenders poisoned");
            let appender = appenders.entry(store.clone()).or_insert_with(|| {
                let (server, store) = (self.server.clone(), store.clone());
                Arc::new(Coalescer::spawn(move |batch| {
                    let (server, store) = (server.clone(), store.clone());
                    async move { server.append(&store, &batch, None).await }
                }))
            });
            appender.clone()
        };
        appender.append(batch).await
    }

    /// Every batch of `store`, in order.
    async fn all(&self, store: &StoreRef) -> Result<Vec<RecordBatch>> {
        let mut range = redis::cmd("XRANGE");
        range.arg(keys(store).stream).arg("-").arg("+");
        let entries: Vec<Entry> = self.server.query(store, "query", &range).await?;
        entries.iter().map(|e| records(e).map(|r| r.batch)).collect()
    }
}

#[async_trait]
impl LogExchange for RedisLog {
    /// Registers `store`; as the administrator, makes Redis hold its schema the first time,
    /// and refuses a schema whose records have another shape (Arrow fields) than the one held.
    async fn register(&self, store: &StoreRef, schema: &Value) -> Result<()> {
        let ingest = Arc::new(Ingest::new(store, schema)?);
        if self.server.user.is_none() {
            let key = keys(store).schema;
            let mut hold = redis::cmd("SET");
            hold.arg(&key).arg(schema.to_string()).arg("NX").arg("GET");
            let held: Option<String> = self.server.query(store, "register", &hold).await?;
            let corrupt = |e: serde_json::Error| ExchangeError::Corrupt(format!("{key}: {e}"));
            if let Some(held) = held {
                let held = Ingest::new(store, &serde_json::from_str(&held).map_err(corrupt)?)?;
                if held.arrow_schema().fields() != ingest.arrow_schema().fields() {
                    return Err(ExchangeError::LogSchemaDiffers { store: store.clone() });
                }
            }
        }
        self.stores.write().expect("log store map poisoned").insert(store.clone(), ingest);
        Ok(())
    }

    fn arrow_schema(&self, store: &StoreRef) -> Result<SchemaRef> {
        Ok(self.ingest(store)?.arrow_schema().clone())
    }

    async fn end(&self, store: &StoreRef) -> Result<u64> {
        self.ingest(store)?;
        let end: Option<u64> =
            self.server.query(store, "end", redis::cmd("GET").arg(keys(store).count)).await?;
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
        self.server.append(store, &batch, Some(checkpoint)).await
    }

    async fn checkpoints(&self, store: &StoreRef) -> Result<Vec<(String, String)>> {
        self.ingest(store)?;
        let all = redis::cmd("HGETALL").arg(keys(store).checkpoints).clone();
        let checkpoints: std::collections::BTreeMap<String, String> =
            self.server.query(store, "get", &all).await?;
        Ok(checkpoints.into_iter().collect())
    }

    /// Reads the oldest entries a few at a time until one stays, then trims the stream up to
    /// it (`XTRIM MINID`): entries appended meanwhile are after it, and stay.
    async fn trim(&self, store: &StoreRef, trim: &Trim) -> Result<u64> {
        const PAGE: usize = 32;
        let end = self.end(store).await?;
        let stream = keys(store).stream;
        let mut from = "-".to_owned();
        let kept = 'scan: loop {
            let mut range = redis::cmd("XRANGE");
            range.arg(&stream).arg(&from).arg("+").arg("COUNT").arg(PAGE);
            let entries: Vec<Entry> = self.server.query(store, "trim", &range).await?;
            for entry in &entries {
                let records = records(entry)?;
                if !trim.drops(records.end(), end, super::trim::newest(&records.batch)) {
                    break 'scan Some(records.offset);
                }
            }
            match entries.last() {
                Some(last) if entries.len() == PAGE => from = format!("({}", last.0),
                _ => break None,
            }
        };
        let first = kept.unwrap_or(end);
        let mut xtrim = redis::cmd("XTRIM");
        xtrim.arg(&stream).arg("MINID").arg(format!("{}-0", first + 1));
        let _: u64 = self.server.query(store, "trim", &xtrim).await?;
        Ok(first)
    }

    async fn checkpoint(&self, store: &StoreRef, key: &str) -> Result<Option<String>> {
        self.ingest(store)?;
        let mut read = redis::cmd("HGET");
        read.arg(keys(store).checkpoints).arg(key);
        self.server.query(store, "checkpoint", &read).await
    }

    async fn tail(&self, store: &StoreRef, from: u64) -> Result<RecordStream> {
        self.ingest(store)?;
        let stream = keys(store).stream;
        // Blocking reads wait as long as they must: no response timeout on this connection.
        let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
        let server = &self.server;
        let mut conn = server.client.get_multiplexed_async_connection_with_config(&config).await?;
        // Start at the entry that holds `from`: the last one whose first offset is <= from.
        let start: Vec<Entry> = redis::cmd("XREVRANGE")
            .arg(&stream)
            .arg(format!("{}-0", from + 1))
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut conn)
            .await
            .map_err(|e| server.refusal(store, "tail")(e.into()))?;
        let cursor = start.first().map_or_else(|| "0-0".to_owned(), |(id, _)| before(id));
        let refused = server.refusal(store, "tail");
        let tail = TaskStream::spawn(READ_AHEAD, move |sender| async move {
            if let Err(e) = read_ahead(conn, stream, cursor, from, &sender).await {
                let _ = sender.send(Err(refused(e))).await;
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
