//! The Log exchange contract: append-only stores of structured records, held as Arrow record
//! batches, tailed from an offset and queried with SQL (DataFusion).
//!
//! - [`arrow_schema`]: a store's JSON Schema as an Arrow schema (objects → structs, arrays →
//!   lists; `ts` is a UTC millisecond timestamp).
//! - [`ingest`]: JSON records checked against the schema and decoded into one batch.
//! - [`embedded`]: the in-process backend, durable as append-only Arrow IPC frames.
//! - [`redis`]: a stream per store, one entry (an Arrow IPC batch) per append.
//! - [`query`]: SQL over the stores, each a table named by its quoted store ref.
//! - [`scoped`]: a handle held to one principal's rights.

pub mod arrow_schema;
#[cfg(feature = "redis")]
mod coalesce;
pub mod embedded;
pub mod ingest;
pub mod query;
#[cfg(feature = "redis")]
pub mod redis;
pub mod scoped;
pub mod trim;

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use futures::stream::BoxStream;
use serde_json::Value;

use crate::error::{ExchangeError, Result};
use crate::object::StoreRef;

pub use embedded::EmbeddedLog;
#[cfg(feature = "redis")]
pub use redis::RedisLog;
pub use scoped::ScopedLog;
pub use trim::Trim;

/// Records of one store: a batch and the offset of its first record.
#[derive(Clone, Debug)]
pub struct Records {
    /// The offset (position in the store, from 0) of the batch's first record.
    pub offset: u64,
    /// The records.
    pub batch: RecordBatch,
}

/// Batches as JSON lines, one record each.
pub fn json_lines(batches: &[RecordBatch]) -> Vec<u8> {
    let mut writer = arrow::json::LineDelimitedWriter::new(Vec::new());
    let refs: Vec<&RecordBatch> = batches.iter().collect();
    writer.write_batches(&refs).expect("Arrow batches render as JSON");
    writer.finish().expect("Arrow batches render as JSON");
    writer.into_inner()
}

impl Records {
    /// The offset just after the last record.
    pub fn end(&self) -> u64 {
        self.offset + self.batch.num_rows() as u64
    }

    /// The records from `offset` on (sliced, not copied); `None` when all are before it.
    pub fn from_offset(&self, offset: u64) -> Option<Records> {
        if self.end() <= offset {
            return None;
        }
        let skip = offset.saturating_sub(self.offset) as usize;
        let batch = self.batch.slice(skip, self.batch.num_rows() - skip);
        Some(Records { offset: self.offset + skip as u64, batch })
    }
}

/// How far a writer (a Sync flow) has read its sources, stored with the records it appended so
/// that the two are written together or not at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// Whose checkpoint: one writer's key within the store.
    pub key: String,
    /// The writer's progress, opaque to the exchange.
    pub value: String,
}

/// Records in offset order, as they are appended.
pub type RecordStream = BoxStream<'static, Result<Records>>;

/// A Log data exchange.
#[async_trait]
pub trait LogExchange: Send + Sync + fmt::Debug {
    /// Registers `store` with its JSON Schema; the schema must map to Arrow.
    async fn register(&self, store: &StoreRef, schema: &Value) -> Result<()>;

    /// The Arrow schema of `store`'s records.
    fn arrow_schema(&self, store: &StoreRef) -> Result<SchemaRef>;

    /// Appends JSON records, all or none: each is validated against the store's schema and
    /// gets a `ts` (now) when it has none. Returns the offset of the first.
    async fn append_json(&self, store: &StoreRef, records: &[Value]) -> Result<u64>;

    /// Appends a batch of the store's Arrow schema whose records conform to its JSON Schema
    /// (else nothing is appended). Returns the offset of its first record.
    async fn append(&self, store: &StoreRef, batch: RecordBatch) -> Result<u64>;

    /// Appends a batch (possibly empty) and records `checkpoint` in the same atomic write.
    /// Returns the offset of the batch's first record.
    async fn append_checkpointed(
        &self,
        store: &StoreRef,
        batch: RecordBatch,
        checkpoint: &Checkpoint,
    ) -> Result<u64>;

    /// The value of the last checkpoint written under `key` in `store`.
    async fn checkpoint(&self, store: &StoreRef, key: &str) -> Result<Option<String>>;

    /// Every checkpoint of `store`: (key, value), by key.
    async fn checkpoints(&self, store: &StoreRef) -> Result<Vec<(String, String)>>;

    /// Drops the oldest whole segments of `store` (each what one append added) that `trim`
    /// lets go, keeping every checkpoint; returns the offset of the first record kept (the
    /// store's end when none is). Offsets do not change; a tail from a dropped offset starts
    /// at the first record kept.
    async fn trim(&self, store: &StoreRef, trim: &Trim) -> Result<u64>;

    /// The offset the next appended record will get: how many records the store holds.
    async fn end(&self, store: &StoreRef) -> Result<u64>;

    /// Streams the records from offset `from` on: those already there, then new ones.
    async fn tail(&self, store: &StoreRef, from: u64) -> Result<RecordStream>;

    /// Runs a SQL query over every store (tables named by quoted store refs).
    async fn query(&self, sql: &str) -> Result<Vec<RecordBatch>>;
}

/// Opens the Log exchange named by `url`: `embedded` (in memory, or durable under `data_dir`)
/// or `redis://HOST:PORT[/DB]`.
pub async fn connect(url: &str, data_dir: Option<&Path>) -> Result<Arc<dyn LogExchange>> {
    match url {
        "embedded" => Ok(Arc::new(match data_dir {
            Some(dir) => EmbeddedLog::open(dir),
            None => EmbeddedLog::in_memory(),
        })),
        #[cfg(feature = "redis")]
        url if url.starts_with("redis://") => Ok(Arc::new(RedisLog::connect(url).await?)),
        #[cfg(not(feature = "redis"))]
        url if url.starts_with("redis://") => {
            Err(ExchangeError::NotBuilt { what: url.to_owned(), feature: "redis" })
        }
        url => Err(ExchangeError::UnsupportedUrl(url.to_owned())),
    }
}
