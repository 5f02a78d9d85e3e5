//! The Object exchange contract: named JSON documents in stores, versioned writes, and watch.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::{BoxStream, Stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::edge::EdgeRunner;
use crate::error::{ExchangeError, Result};
use crate::origin::{Origin, Origins};
pub use crate::store::{StoreRef, is_valid_name};
use crate::trace::TraceParent;

/// A document in an Object store.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Object {
    /// Unique within its store; the key that correlates objects across stores.
    pub name: String,
    /// The store version of the write that produced this state.
    pub version: u64,
    /// The state, valid against the store's schema.
    pub data: Value,
    /// The trace context of the write that made this state, on the watch event of that write
    /// when it was traced (see [`crate::trace`]). Not part of the state: not serialized, not
    /// compared, and to be read on watch events only (what a get or a list gives may carry an
    /// old write's, or none, depending on the backend).
    #[serde(skip)]
    pub trace: Option<TraceParent>,
}

impl PartialEq for Object {
    fn eq(&self, other: &Self) -> bool {
        (&self.name, self.version, &self.data) == (&other.name, other.version, &other.data)
    }
}

impl Object {
    /// `object` as a state read, not a change: without a trace context (a copy only when it
    /// had one).
    pub fn untraced(object: Arc<Object>) -> Arc<Object> {
        match object.trace {
            None => object,
            Some(_) => Arc::new(Object { trace: None, ..Object::clone(&object) }),
        }
    }
}

/// A store's objects and the store version they reflect: watch from `version` to follow on.
#[derive(Clone, Debug, Default)]
pub struct ObjectList {
    /// The store version this list reflects.
    pub version: u64,
    /// The objects, ordered by name.
    pub items: Vec<Arc<Object>>,
}

/// What a write does to the named object.
#[derive(Clone, Debug, PartialEq)]
pub enum WriteOp {
    /// Store this data as the object's whole state.
    Put(Value),
    /// Apply an RFC 7386 JSON merge patch (to `{}` when the object is absent).
    Patch(Value),
    /// Remove the object.
    Delete,
}

/// The precondition a write checks before it changes anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// No precondition: create or update.
    Any,
    /// The object must not exist (create).
    Absent,
    /// The object must exist (replace, patch, delete).
    Present,
    /// The object must exist at exactly this version (optimistic concurrency).
    Version(u64),
}

/// One write to one object of a store.
#[derive(Clone, Debug, PartialEq)]
pub struct Write {
    /// The object written.
    pub name: String,
    /// What the write does.
    pub op: WriteOp,
    /// What must hold for the write to happen.
    pub expect: Expect,
    /// Who makes it, and from what: kept for the fields it changes (see [`crate::origin`]).
    pub origin: Option<Arc<Origin>>,
}

impl Write {
    fn new(name: impl Into<String>, op: WriteOp, expect: Expect) -> Self {
        Write { name: name.into(), op, expect, origin: None }
    }

    /// Creates `name`; fails if it exists.
    pub fn create(name: impl Into<String>, data: Value) -> Self {
        Write::new(name, WriteOp::Put(data), Expect::Absent)
    }

    /// Replaces the state of an existing `name`.
    pub fn replace(name: impl Into<String>, data: Value) -> Self {
        Write::new(name, WriteOp::Put(data), Expect::Present)
    }

    /// Creates `name` or replaces its state.
    pub fn put(name: impl Into<String>, data: Value) -> Self {
        Write::new(name, WriteOp::Put(data), Expect::Any)
    }

    /// Merge-patches an existing `name`.
    pub fn patch(name: impl Into<String>, patch: Value) -> Self {
        Write::new(name, WriteOp::Patch(patch), Expect::Present)
    }

    /// Deletes an existing `name`.
    pub fn delete(name: impl Into<String>) -> Self {
        Write::new(name, WriteOp::Delete, Expect::Present)
    }

    /// Makes the write conditional on the object being at `version`.
    pub fn if_version(mut self, version: u64) -> Self {
        self.expect = Expect::Version(version);
        self
    }

    /// Makes the write create-or-update, whatever the object's presence.
    pub fn or_create(mut self) -> Self {
        self.expect = Expect::Any;
        self
    }

    /// Says who makes the write, and from what.
    pub fn by(mut self, origin: Arc<Origin>) -> Self {
        self.origin = Some(origin);
        self
    }

    /// Checks the precondition against the object's current version (`None`: absent).
    pub(crate) fn check(&self, store: &StoreRef, current: Option<u64>) -> Result<()> {
        let ok = match (self.expect, current) {
            // Only what exists can be deleted, whatever else the write expects.
            (_, None) if self.op == WriteOp::Delete => false,
            (Expect::Any, _) => true,
            (Expect::Absent, current) => current.is_none(),
            (Expect::Present, current) => current.is_some(),
            (Expect::Version(want), current) => current == Some(want),
        };
        if ok {
            return Ok(());
        }
        Err(match (self.expect, current) {
            (Expect::Absent, Some(_)) => {
                ExchangeError::AlreadyExists { store: store.clone(), name: self.name.clone() }
            }
            (Expect::Version(expected), actual) => ExchangeError::Conflict {
                store: store.clone(),
                name: self.name.clone(),
                expected,
                actual,
            },
            _ => ExchangeError::NotFound { store: store.clone(), name: self.name.clone() },
        })
    }
}

/// A change to a store, carrying the object's state after it (before it, for `Deleted`).
#[derive(Clone, Debug, PartialEq)]
pub enum WatchEvent {
    /// The object was created.
    Added(Arc<Object>),
    /// The object's state changed.
    Modified(Arc<Object>),
    /// The object was removed; `version` is the deletion's store version.
    Deleted(Arc<Object>),
}

impl WatchEvent {
    /// The object the event is about.
    pub fn object(&self) -> &Arc<Object> {
        match self {
            WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) => o,
        }
    }

    /// The same event about `f(object)`.
    pub fn map(self, f: impl FnOnce(Arc<Object>) -> Arc<Object>) -> WatchEvent {
        match self {
            WatchEvent::Added(o) => WatchEvent::Added(f(o)),
            WatchEvent::Modified(o) => WatchEvent::Modified(f(o)),
            WatchEvent::Deleted(o) => WatchEvent::Deleted(f(o)),
        }
    }

    /// The store version of the change.
    pub fn version(&self) -> u64 {
        self.object().version
    }

    /// The event's kind, as the HTTP API and CLI print it.
    pub fn kind(&self) -> &'static str {
        match self {
            WatchEvent::Added(_) => "Added",
            WatchEvent::Modified(_) => "Modified",
            WatchEvent::Deleted(_) => "Deleted",
        }
    }
}

/// The changes of one store, in version order. It ends with [`ExchangeError::Expired`] when
/// the exchange no longer holds the changes since the requested version: re-list and watch
/// again from the list's version.
pub type WatchStream = BoxStream<'static, Result<WatchEvent>>;

/// How each stored object takes a new schema's shape (see [`ObjectExchange::evolve`]): its
/// new data, from its name and data, or why it cannot.
pub type Migration = dyn Fn(&str, &Value) -> std::result::Result<Value, String> + Send + Sync;

/// An Object data exchange: stores of named JSON documents with versioned writes and watch.
///
/// Every store is registered with a JSON Schema first; every write is validated against it and
/// rejected, changing nothing, when it does not conform. A write that would not change the
/// object's data is not made: it returns the object as it is and emits no event.
///
/// The exchange holds each store's schema, with a version, so that every process validates a
/// store against the same one: the first registration stores it (version 1), and only
/// [`evolve`](Self::evolve) changes it.
#[async_trait]
pub trait ObjectExchange: Send + Sync + fmt::Debug {
    /// Registers `store` with its JSON Schema (draft 2020-12). When the exchange already holds
    /// another schema for it, the registration is refused with
    /// [`ExchangeError::SchemaDiffers`]: change a schema with [`evolve`](Self::evolve).
    async fn register(&self, store: &StoreRef, schema: &Value) -> Result<()>;

    /// Makes `schema` the one the exchange holds for `store` (registering the store when it
    /// is new), once every object stored conforms to it, after `migration` (when given)
    /// rewrote it: else [`ExchangeError::SchemaBreaks`] or [`ExchangeError::Migration`],
    /// changing nothing. The migrated objects are written (watchers see them modified) and the
    /// schema changed in one atomic step with writes: each write is validated against the old
    /// schema or the new one, and one validated against the old one is stored before the
    /// switch, where it was migrated and checked. Returns the schema's version: one more after
    /// a change, the same when `schema` is the one held (then nothing is migrated).
    async fn evolve(
        &self,
        store: &StoreRef,
        schema: &Value,
        migration: Option<&Migration>,
    ) -> Result<u64>;

    /// The object named `name`, if it exists.
    async fn get(&self, store: &StoreRef, name: &str) -> Result<Option<Arc<Object>>>;

    /// All objects of `store` and the store version they reflect.
    async fn list(&self, store: &StoreRef) -> Result<ObjectList>;

    /// Applies one write atomically and returns the object's resulting state (for a delete,
    /// its last state stamped with the deletion's version).
    async fn write(&self, store: &StoreRef, write: Write) -> Result<Arc<Object>>;

    /// Streams the changes of `store` with versions greater than `from`.
    async fn watch(&self, store: &StoreRef, from: u64) -> Result<WatchStream>;

    /// The store's version: that of its last change.
    async fn version(&self, store: &StoreRef) -> Result<u64> {
        Ok(self.list(store).await?.version)
    }

    /// How many objects `store` holds, where the exchange can tell without reading them;
    /// `None` (this default) where it cannot (Kubernetes would have to list them).
    async fn count(&self, store: &StoreRef) -> Result<Option<u64>> {
        let _ = store;
        Ok(None)
    }

    /// Who last wrote each top-level field of `name` (see [`crate::origin`]); `None` when the
    /// object does not exist. Refused with [`ExchangeError::NoProvenance`] by an exchange that
    /// keeps no origins (this default).
    async fn origins(&self, store: &StoreRef, name: &str) -> Result<Option<Origins>> {
        let _ = (store, name);
        Err(ExchangeError::NoProvenance)
    }

    /// Whether the exchange lost its data since it was opened, or since this last said so (a
    /// Redis server restarted without persistence): its stores then start again empty, their
    /// schemas and seeds gone, and every watch resumed on it expires. Never, by default.
    async fn lost_data(&self) -> Result<bool> {
        Ok(false)
    }

    /// Whether a store's version counts that store's changes only (this default); not on
    /// Kubernetes, where it is the apiserver's resource version, which every store shares.
    fn versions_per_store(&self) -> bool {
        true
    }

    /// The exchange's [`EdgeRunner`], when it can run edges inside the writes of their
    /// sources; `None` (this default) when it cannot.
    fn edge_runner(&self) -> Option<&dyn EdgeRunner> {
        None
    }
}

/// Keeps a watch gap-free: passes each version once, in order, and reports a gap as expiry.
#[derive(Debug)]
pub(crate) struct Sequencer {
    store: StoreRef,
    from: u64,
    last: u64,
}

impl Sequencer {
    /// Starts after version `from`.
    pub(crate) fn new(store: StoreRef, from: u64) -> Self {
        Sequencer { store, from, last: from }
    }

    /// `Ok(true)`: deliver the event; `Ok(false)`: already delivered; `Err`: versions were lost.
    pub(crate) fn admit(&mut self, version: u64) -> Result<bool> {
        if version <= self.last {
            Ok(false)
        } else if version == self.last + 1 {
            self.last = version;
            Ok(true)
        } else {
            Err(self.expired(false))
        }
    }

    /// The error that ends a watch that can no longer be resumed (`lost`: with the data it
    /// followed).
    pub(crate) fn expired(&self, lost: bool) -> ExchangeError {
        let from = self.from.max(self.last);
        ExchangeError::Expired { store: self.store.clone(), from, lost }
    }
}

/// Wraps a backend's raw change stream into a [`WatchStream`]: duplicates are dropped, a gap
/// or a backend error ends the stream with that error.
pub(crate) fn sequenced<S>(events: S, sequencer: Sequencer) -> WatchStream
where
    S: Stream<Item = Result<WatchEvent>> + Send + 'static,
{
    let state = Some((Box::pin(events), sequencer));
    futures::stream::unfold(state, |state| async move {
        let (mut events, mut sequencer) = state?;
        loop {
            let admitted = match events.next().await? {
                Ok(event) => sequencer.admit(event.version()).map(|fresh| fresh.then_some(event)),
                Err(ExchangeError::Expired { lost, .. }) => Err(sequencer.expired(lost)),
                Err(e) => Err(e),
            };
            match admitted {
                Ok(Some(event)) => return Some((Ok(event), Some((events, sequencer)))),
                Ok(None) => continue,
                Err(e) => return Some((Err(e), None)),
            }
        }
    })
    .boxed()
}
