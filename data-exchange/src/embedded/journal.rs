//! Durability for the embedded exchange: every change is committed to a redb database before
//! the write is acknowledged. Changes are group-committed by one thread, so concurrent writers
//! share an fsync while a lone writer pays exactly one.

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;

use redb::{Database, ReadableDatabase, TableDefinition};
use tokio::sync::oneshot;

use super::{Held, Recovered};
use crate::error::{ExchangeError, Result};
use crate::object::{StoreRef, WatchEvent};

/// Object key `"<store ref>\0<name>"` -> the object as JSON.
const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");
/// Store ref -> the store's version, which must keep increasing across restarts.
const VERSIONS: TableDefinition<&str, u64> = TableDefinition::new("versions");
/// Store ref -> the schema it holds, as JSON `{"version": N, "schema": ...}`.
const SCHEMAS: TableDefinition<&str, &[u8]> = TableDefinition::new("schemas");

/// Changes of one store waiting for their commit, which are committed in one transaction, and
/// who to tell when they are durable.
#[derive(Debug)]
struct Pending {
    store: String,
    objects: Vec<ObjectChange>,
    /// The schema it holds from now on, as [`SCHEMAS`] keeps it.
    schema: Option<Vec<u8>>,
    done: oneshot::Sender<Result<()>>,
}

/// One object's change.
#[derive(Debug)]
struct ObjectChange {
    name: String,
    version: u64,
    /// The object's JSON; `None` for a deletion.
    object: Option<Vec<u8>>,
}

impl ObjectChange {
    fn of(event: &WatchEvent) -> Self {
        let object = event.object();
        ObjectChange {
            name: object.name.clone(),
            version: object.version,
            object: match event {
                WatchEvent::Deleted(_) => None,
                _ => Some(serde_json::to_vec(&**object).expect("JSON values serialize")),
            },
        }
    }
}

/// The durable log of an embedded exchange; dropping it commits what is queued and stops.
#[derive(Debug)]
pub(super) struct Journal {
    db: Arc<Database>,
    queue: Option<mpsc::Sender<Pending>>,
    committer: Option<thread::JoinHandle<()>>,
    /// The file naming this process as the database's holder, removed when it closes.
    holder: std::path::PathBuf,
}

/// Where the process holding the database at `path` writes its id.
fn holder_file(path: &Path) -> std::path::PathBuf {
    path.with_extension("pid")
}

/// The error of opening the database at `path` that another process holds.
fn in_use(path: &Path) -> ExchangeError {
    let dir = path.parent().unwrap_or(path).display();
    let pid = std::fs::read_to_string(holder_file(path)).unwrap_or_default();
    let pid = pid.trim();
    // A holder that died without removing its file says nothing of the one holding it now.
    let alive = !pid.is_empty() && Path::new("/proc").join(pid).exists();
    let holder = if alive { format!("process {pid}") } else { "another process".to_owned() };
    ExchangeError::Storage(format!(
        "the data directory {dir} is in use by {holder} (one `knactor up` per data directory)"
    ))
}

impl Journal {
    /// Opens (or creates) the database at `path`.
    pub(super) fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let db = match Database::create(path) {
            Ok(db) => Arc::new(db),
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => return Err(in_use(path)),
            Err(e) => return Err(e.into()),
        };
        // Says which process holds it, to the next one that tries.
        std::fs::write(holder_file(path), std::process::id().to_string())?;
        let txn = db.begin_write()?;
        txn.open_table(OBJECTS)?;
        txn.open_table(VERSIONS)?;
        txn.open_table(SCHEMAS)?;
        txn.commit()?;
        let (queue, pending) = mpsc::channel();
        let committer = thread::Builder::new()
            .name("knactor-journal".into())
            .spawn({
                let db = db.clone();
                move || commit_loop(&db, &pending)
            })
            .map_err(ExchangeError::from)?;
        let holder = holder_file(path);
        Ok(Journal { db, queue: Some(queue), committer: Some(committer), holder })
    }

    /// What is stored of `store`.
    pub(super) fn load(&self, store: &StoreRef) -> Result<Recovered> {
        let corrupt = |e: serde_json::Error| ExchangeError::Corrupt(format!("{store}: {e}"));
        let key = store.to_string();
        let txn = self.db.begin_read()?;
        let version = txn.open_table(VERSIONS)?.get(key.as_str())?.map_or(0, |v| v.value());
        let schemas = txn.open_table(SCHEMAS)?;
        let schema = match schemas.get(key.as_str())? {
            Some(bytes) => Some(serde_json::from_slice(bytes.value()).map_err(corrupt)?),
            None => None,
        };
        let objects = txn.open_table(OBJECTS)?;
        let (start, end) = (format!("{store}\0"), format!("{store}\u{1}"));
        let mut loaded = Vec::new();
        for entry in objects.range(start.as_str()..end.as_str())? {
            let (_, bytes) = entry?;
            loaded.push(serde_json::from_slice(bytes.value()).map_err(corrupt)?);
        }
        Ok(Recovered { objects: loaded, version, schema })
    }

    /// Makes `held` the schema of `store`, durably, before it returns.
    pub(super) fn hold(&self, store: &StoreRef, held: &Held) -> Result<()> {
        let bytes = serde_json::to_vec(held).expect("JSON values serialize");
        let txn = self.db.begin_write()?;
        txn.open_table(SCHEMAS)?.insert(store.to_string().as_str(), bytes.as_slice())?;
        txn.commit()?;
        Ok(())
    }

    /// Queues `event` for commit; the receiver resolves once it is durable. Call it in the
    /// order the store applies changes: the journal commits in queue order.
    pub(super) fn submit(
        &self,
        store: &StoreRef,
        event: &WatchEvent,
    ) -> oneshot::Receiver<Result<()>> {
        self.queue(store, vec![ObjectChange::of(event)], None)
    }

    /// Queues the evolution of `store` for commit, in one transaction: the changes of its
    /// migrated objects, then the schema it holds. As [`submit`](Self::submit).
    pub(super) fn submit_evolve(
        &self,
        store: &StoreRef,
        migrated: &[WatchEvent],
        held: &Held,
    ) -> oneshot::Receiver<Result<()>> {
        let schema = serde_json::to_vec(held).expect("JSON values serialize");
        self.queue(store, migrated.iter().map(ObjectChange::of).collect(), Some(schema))
    }

    fn queue(
        &self,
        store: &StoreRef,
        objects: Vec<ObjectChange>,
        schema: Option<Vec<u8>>,
    ) -> oneshot::Receiver<Result<()>> {
        let (done, durable) = oneshot::channel();
        let pending = Pending { store: store.to_string(), objects, schema, done };
        if let Some(queue) = &self.queue {
            // If the committer is gone, dropping `pending` makes the receiver report it.
            let _ = queue.send(pending);
        }
        durable
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.queue.take();
        if let Some(committer) = self.committer.take() {
            let _ = committer.join();
        }
        let _ = std::fs::remove_file(&self.holder);
    }
}

/// Commits queued changes until the queue closes: one transaction for all that is waiting.
fn commit_loop(db: &Database, queue: &mpsc::Receiver<Pending>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        batch.extend(queue.try_iter());
        let outcome = commit(db, &batch);
        if let Err(e) = &outcome {
            tracing::error!(error = %e, changes = batch.len(), "journal commit failed");
        }
        for pending in batch {
            let reply = match &outcome {
                Ok(()) => Ok(()),
                Err(e) => Err(ExchangeError::Storage(e.to_string())),
            };
            let _ = pending.done.send(reply);
        }
    }
}

fn commit(db: &Database, batch: &[Pending]) -> Result<()> {
    let txn = db.begin_write()?;
    {
        let mut objects = txn.open_table(OBJECTS)?;
        let mut versions = txn.open_table(VERSIONS)?;
        let mut schemas = txn.open_table(SCHEMAS)?;
        for pending in batch {
            let store = pending.store.as_str();
            for change in &pending.objects {
                let key = format!("{store}\0{}", change.name);
                match &change.object {
                    Some(bytes) => objects.insert(key.as_str(), bytes.as_slice())?,
                    None => objects.remove(key.as_str())?,
                };
                versions.insert(store, change.version)?;
            }
            if let Some(schema) = &pending.schema {
                schemas.insert(store, schema.as_slice())?;
            }
        }
    }
    txn.commit()?;
    Ok(())
}
