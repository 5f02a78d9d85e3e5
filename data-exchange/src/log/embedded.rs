//! The embedded Log exchange: each store's batches in memory, shared (never copied) with
//! tails and queries; durable with a data directory, where every append is one frame of an
//! append-only file, written before the append is acknowledged. A trim drops whole batches and
//! rewrites the file (the offset it starts at, the checkpoints, the batches kept), replacing
//! the old one in one rename.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use async_trait::async_trait;
use futures::StreamExt;
use serde_json::Value;
use tokio::sync::watch;

use super::ingest::Ingest;
use super::query;
use super::{Checkpoint, LogExchange, RecordStream, Records, Trim};
use crate::error::{ExchangeError, Result};
use crate::object::StoreRef;

/// The in-process Log exchange.
#[derive(Debug, Default)]
pub struct EmbeddedLog {
    stores: RwLock<HashMap<StoreRef, Arc<LogStore>>>,
    dir: Option<PathBuf>,
}

#[derive(Debug)]
struct LogStore {
    ingest: Ingest,
    state: Mutex<LogState>,
    /// The offset the next record gets; tails wait on it.
    end: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct LogState {
    batches: Vec<Records>,
    checkpoints: HashMap<String, String>,
    file: Option<LogFile>,
}

/// A durable store's append-only file and the length of its whole frames.
#[derive(Debug)]
struct LogFile {
    path: PathBuf,
    file: File,
    len: u64,
}

impl EmbeddedLog {
    /// A log kept in memory.
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// A durable log under `dir` (`dir/logs/<knactor>/<store>.arrows`), recovered on open.
    pub fn open(dir: &Path) -> Self {
        EmbeddedLog { stores: RwLock::default(), dir: Some(dir.join("logs")) }
    }

    fn store(&self, store: &StoreRef) -> Result<Arc<LogStore>> {
        let stores = self.stores.read().expect("log store map poisoned");
        stores.get(store).cloned().ok_or_else(|| ExchangeError::UnknownStore(store.clone()))
    }

    /// Every store's batches, for a query.
    fn snapshot(&self) -> Vec<(StoreRef, SchemaRef, Vec<RecordBatch>)> {
        let stores = self.stores.read().expect("log store map poisoned");
        stores
            .iter()
            .map(|(name, store)| {
                let state = store.state.lock().expect("log store poisoned");
                let batches = state.batches.iter().map(|r| r.batch.clone()).collect();
                (name.clone(), store.ingest.arrow_schema().clone(), batches)
            })
            .collect()
    }
}

/// The schema metadata keys that carry a frame's checkpoint.
const CHECKPOINT_KEY: &str = "knactor.checkpoint.key";
const CHECKPOINT_VALUE: &str = "knactor.checkpoint.value";
/// The schema metadata key of the offset a file's records start at (after a trim).
const OFFSET_KEY: &str = "knactor.offset";

impl LogFile {
    /// Appends the frame of `batch` and `checkpoint`; a write that fails is cut off, so that
    /// later frames stay readable.
    fn append(&mut self, batch: &RecordBatch, checkpoint: Option<&Checkpoint>) -> Result<()> {
        let frame = frame(batch, checkpoint, None)?;
        if let Err(e) = self.file.write_all(&frame) {
            let _ = self.file.set_len(self.len);
            return Err(e.into());
        }
        self.len += frame.len() as u64;
        Ok(())
    }

    /// Replaces the file with one holding only `kept` (from offset `first`) and
    /// `checkpoints`: written aside, then renamed over it.
    fn rewrite(
        &mut self,
        schema: &SchemaRef,
        first: u64,
        checkpoints: &HashMap<String, String>,
        kept: &[Records],
    ) -> Result<()> {
        let aside = self.path.with_extension("arrows.trim");
        let mut file = File::create(&aside)?;
        let empty = RecordBatch::new_empty(schema.clone());
        let mut frames = vec![frame(&empty, None, Some(first))?];
        for (key, value) in checkpoints {
            let checkpoint = Checkpoint { key: key.clone(), value: value.clone() };
            frames.push(frame(&empty, Some(&checkpoint), None)?);
        }
        for records in kept {
            frames.push(frame(&records.batch, None, None)?);
        }
        let mut len = 0;
        for bytes in frames {
            file.write_all(&bytes)?;
            len += bytes.len() as u64;
        }
        file.sync_all()?;
        std::fs::rename(&aside, &self.path)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        // The handle written goes on appending to the file, now under its name.
        self.file = file;
        self.len = len;
        Ok(())
    }
}

/// Frames are `[u32 little-endian length][an Arrow IPC stream holding one batch]`; a
/// checkpoint rides in the frame's schema metadata, so it is written with the batch or not at
/// all; so does the offset a trimmed file's records start at.
fn frame(
    batch: &RecordBatch,
    checkpoint: Option<&Checkpoint>,
    offset: Option<u64>,
) -> Result<Vec<u8>> {
    let mut schema = batch.schema().as_ref().clone();
    if let Some(checkpoint) = checkpoint {
        schema.metadata.insert(CHECKPOINT_KEY.into(), checkpoint.key.clone());
        schema.metadata.insert(CHECKPOINT_VALUE.into(), checkpoint.value.clone());
    }
    if let Some(offset) = offset {
        schema.metadata.insert(OFFSET_KEY.into(), offset.to_string());
    }
    let mut bytes = Vec::new();
    {
        let mut writer = StreamWriter::try_new(&mut bytes, &schema)?;
        writer.write(batch)?;
        writer.finish()?;
    }
    let mut frame = (bytes.len() as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(&bytes);
    Ok(frame)
}

/// A frame read back: its batch (with the store's schema), its checkpoint, and the offset
/// its records start at when it says so.
struct Frame {
    batch: RecordBatch,
    checkpoint: Option<Checkpoint>,
    offset: Option<u64>,
}

/// Reads every whole frame of `path`; a torn last frame (a crash mid-write, before the
/// append was acknowledged) is cut off.
fn recover(path: &Path, store: &StoreRef, schema: &SchemaRef) -> Result<(Vec<Frame>, LogFile)> {
    let mut file = OpenOptions::new().create(true).read(true).append(true).open(path)?;
    let mut reader = BufReader::new(&mut file);
    let (mut frames, mut good) = (Vec::new(), 0u64);
    loop {
        let mut len = [0u8; 4];
        if reader.read_exact(&mut len).is_err() {
            break;
        }
        let mut bytes = vec![0u8; u32::from_le_bytes(len) as usize];
        if reader.read_exact(&mut bytes).is_err() {
            break;
        }
        let Ok(mut stream) = StreamReader::try_new(bytes.as_slice(), None) else { break };
        let Some(Ok(batch)) = stream.next() else { break };
        if batch.schema().fields() != schema.fields() {
            return Err(ExchangeError::LogSchemaDiffers { store: store.clone() });
        }
        let metadata = &batch.schema().metadata;
        let checkpoint = metadata
            .get(CHECKPOINT_KEY)
            .zip(metadata.get(CHECKPOINT_VALUE))
            .map(|(key, value)| Checkpoint { key: key.clone(), value: value.clone() });
        let offset = metadata.get(OFFSET_KEY).and_then(|o| o.parse().ok());
        let batch = RecordBatch::try_new(schema.clone(), batch.columns().to_vec())?;
        frames.push(Frame { batch, checkpoint, offset });
        good += 4 + bytes.len() as u64;
    }
    drop(reader);
    file.set_len(good)?;
    Ok((frames, LogFile { path: path.to_owned(), file, len: good }))
}

#[async_trait]
impl LogExchange for EmbeddedLog {
    async fn register(&self, store: &StoreRef, schema: &Value) -> Result<()> {
        let ingest = Ingest::new(store, schema)?;
        if self.store(store).is_ok() {
            return Ok(());
        }
        let mut state = LogState::default();
        let mut end = 0;
        if let Some(dir) = &self.dir {
            let dir = dir.join(store.knactor());
            std::fs::create_dir_all(&dir)?;
            let path = dir.join(format!("{}.arrows", store.store()));
            let (frames, file) = recover(&path, store, ingest.arrow_schema())?;
            for Frame { batch, checkpoint, offset } in frames {
                end = offset.unwrap_or(end);
                if let Some(Checkpoint { key, value }) = checkpoint {
                    state.checkpoints.insert(key, value);
                }
                let rows = batch.num_rows() as u64;
                if rows > 0 {
                    state.batches.push(Records { offset: end, batch });
                    end += rows;
                }
            }
            state.file = Some(file);
        }
        let log = LogStore { ingest, state: Mutex::new(state), end: watch::Sender::new(end) };
        let mut stores = self.stores.write().expect("log store map poisoned");
        stores.entry(store.clone()).or_insert_with(|| Arc::new(log));
        Ok(())
    }

    fn arrow_schema(&self, store: &StoreRef) -> Result<SchemaRef> {
        Ok(self.store(store)?.ingest.arrow_schema().clone())
    }

    async fn end(&self, store: &StoreRef) -> Result<u64> {
        Ok(*self.store(store)?.end.borrow())
    }

    async fn append_json(&self, store: &StoreRef, records: &[Value]) -> Result<u64> {
        let log = self.store(store)?;
        let batch = log.ingest.decode(records)?;
        log.append(batch, None)
    }

    async fn append(&self, store: &StoreRef, batch: RecordBatch) -> Result<u64> {
        let log = self.store(store)?;
        log.ingest.check_batch(&batch)?;
        log.append(batch, None)
    }

    async fn append_checkpointed(
        &self,
        store: &StoreRef,
        batch: RecordBatch,
        checkpoint: &Checkpoint,
    ) -> Result<u64> {
        let log = self.store(store)?;
        log.ingest.check_batch(&batch)?;
        log.append(batch, Some(checkpoint))
    }

    async fn checkpoint(&self, store: &StoreRef, key: &str) -> Result<Option<String>> {
        let log = self.store(store)?;
        let state = log.state.lock().expect("log store poisoned");
        Ok(state.checkpoints.get(key).cloned())
    }

    async fn checkpoints(&self, store: &StoreRef) -> Result<Vec<(String, String)>> {
        let log = self.store(store)?;
        let state = log.state.lock().expect("log store poisoned");
        let mut checkpoints: Vec<_> =
            state.checkpoints.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        checkpoints.sort();
        Ok(checkpoints)
    }

    async fn trim(&self, store: &StoreRef, trim: &Trim) -> Result<u64> {
        self.store(store)?.trim(trim)
    }

    async fn tail(&self, store: &StoreRef, from: u64) -> Result<RecordStream> {
        let log = self.store(store)?;
        let ends = log.end.subscribe();
        let stream =
            futures::stream::unfold((log, ends, from), |(log, mut ends, next)| async move {
                loop {
                    if let Some(records) = log.read_from(next) {
                        let after = records.end();
                        return Some((Ok(records), (log, ends, after)));
                    }
                    ends.wait_for(|end| *end > next).await.ok()?;
                }
            });
        Ok(stream.boxed())
    }

    async fn query(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        query::run(self.snapshot(), sql).await
    }
}

impl LogStore {
    /// Appends `batch` and `checkpoint` (writing their frame first when durable) and wakes
    /// the tails.
    fn append(&self, batch: RecordBatch, checkpoint: Option<&Checkpoint>) -> Result<u64> {
        let mut state = self.state.lock().expect("log store poisoned");
        if let Some(file) = &mut state.file {
            file.append(&batch, checkpoint)?;
        }
        if let Some(Checkpoint { key, value }) = checkpoint {
            state.checkpoints.insert(key.clone(), value.clone());
        }
        let offset = *self.end.borrow();
        let rows = batch.num_rows() as u64;
        if rows > 0 {
            state.batches.push(Records { offset, batch });
            self.end.send_replace(offset + rows);
        }
        Ok(offset)
    }

    /// Drops the batches `trim` lets go (see [`LogExchange::trim`]).
    fn trim(&self, trim: &Trim) -> Result<u64> {
        let mut state = self.state.lock().expect("log store poisoned");
        let end = *self.end.borrow();
        let dropped = state
            .batches
            .iter()
            .take_while(|r| trim.drops(r.end(), end, super::trim::newest(&r.batch)))
            .count();
        let first = state.batches.get(dropped).map_or(end, |r| r.offset);
        if dropped == 0 {
            return Ok(first);
        }
        let LogState { batches, checkpoints, file } = &mut *state;
        if let Some(file) = file {
            file.rewrite(self.ingest.arrow_schema(), first, checkpoints, &batches[dropped..])?;
        }
        batches.drain(..dropped);
        Ok(first)
    }

    /// The records from `offset` in the batch that holds it (sliced, not copied).
    fn read_from(&self, offset: u64) -> Option<Records> {
        let state = self.state.lock().expect("log store poisoned");
        let i = state.batches.partition_point(|r| r.end() <= offset);
        state.batches.get(i)?.from_offset(offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn readings() -> (StoreRef, Value) {
        let schema = json!({"type": "object", "properties": {
            "room": {"type": "string"}, "triggered": {"type": "boolean"}
        }});
        ("motion/readings".parse().unwrap(), schema)
    }

    /// A durable log in `dir` with `records` readings (`r0`...), then the checkpoint `flow` at
    /// the last one's offset, appended alone.
    async fn durable_with_checkpoint(dir: &std::path::Path, records: u64) -> EmbeddedLog {
        let (store, schema) = readings();
        let log = EmbeddedLog::open(dir);
        log.register(&store, &schema).await.unwrap();
        for i in 0..records {
            log.append_json(&store, &[json!({"room": format!("r{i}")})]).await.unwrap();
        }
        let empty = RecordBatch::new_empty(log.arrow_schema(&store).unwrap());
        let checkpoint = Checkpoint { key: "flow".into(), value: (records - 1).to_string() };
        log.append_checkpointed(&store, empty, &checkpoint).await.unwrap();
        log
    }

    #[tokio::test]
    async fn tail_replays_then_follows_without_copying() {
        let (store, schema) = readings();
        let log = EmbeddedLog::in_memory();
        log.register(&store, &schema).await.unwrap();
        let first =
            log.append_json(&store, &[json!({"room": "a"}), json!({"room": "b"})]).await.unwrap();
        assert_eq!(first, 0);
        let mut tail = log.tail(&store, 1).await.unwrap();
        let records = tail.next().await.unwrap().unwrap();
        assert_eq!((records.offset, records.batch.num_rows()), (1, 1));
        let next = log.append_json(&store, &[json!({"room": "c"})]).await.unwrap();
        assert_eq!(next, 2);
        let records = tail.next().await.unwrap().unwrap();
        assert_eq!((records.offset, records.batch.num_rows()), (2, 1));
    }

    #[tokio::test]
    async fn a_durable_log_recovers_checkpoints_and_cuts_a_torn_frame() {
        let dir = tempfile::tempdir().unwrap();
        let (store, schema) = readings();
        durable_with_checkpoint(dir.path(), 5).await;
        // A crash in the middle of writing a sixth frame.
        let path = dir.path().join("logs/motion/readings.arrows");
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&[200, 0, 0, 0, 1, 2, 3]).unwrap();
        drop(file);
        let log = EmbeddedLog::open(dir.path());
        log.register(&store, &schema).await.unwrap();
        assert_eq!(log.checkpoint(&store, "flow").await.unwrap().as_deref(), Some("4"));
        assert_eq!(log.append_json(&store, &[json!({"room": "after"})]).await.unwrap(), 5);
        let rows =
            log.query(r#"SELECT room FROM "motion/readings" ORDER BY ts, room"#).await.unwrap();
        assert_eq!(rows.iter().map(|b| b.num_rows()).sum::<usize>(), 6);
    }

    #[tokio::test]
    async fn a_trimmed_durable_log_reopens_at_the_same_offsets_with_its_checkpoints() {
        let dir = tempfile::tempdir().unwrap();
        let (store, schema) = readings();
        {
            let log = durable_with_checkpoint(dir.path(), 4).await;
            let trim = Trim { max_records: Some(2), max_age: None, hold: u64::MAX };
            assert_eq!(log.trim(&store, &trim).await.unwrap(), 2);
            log.append_json(&store, &[json!({"room": "after-trim"})]).await.unwrap();
        }
        let log = EmbeddedLog::open(dir.path());
        log.register(&store, &schema).await.unwrap();
        assert_eq!(log.end(&store).await.unwrap(), 5);
        assert_eq!(log.checkpoint(&store, "flow").await.unwrap().as_deref(), Some("3"));
        let mut tail = log.tail(&store, 0).await.unwrap();
        let first = tail.next().await.unwrap().unwrap();
        assert_eq!((first.offset, first.batch.num_rows()), (2, 1));
        let rows = log.query(r#"SELECT room FROM "motion/readings""#).await.unwrap();
        assert_eq!(rows.iter().map(|b| b.num_rows()).sum::<usize>(), 3, "r2, r3, after-trim");
    }
}
