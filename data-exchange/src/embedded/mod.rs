//! The embedded Object exchange: stores in this process's memory, optionally made durable by a
//! journal under a data directory (feature `durable`).
//!
//! Readers get `Arc`s of the stored objects: a get, a list or a watch event never copies data.

#[cfg(feature = "durable")]
mod journal;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::broadcast;

use crate::error::{ExchangeError, Result};
use crate::object::{
    Migration, Object, ObjectExchange, ObjectList, Sequencer, StoreRef, WatchEvent, WatchStream,
    Write, is_valid_name, sequenced,
};
use crate::origin::{Changed, Origins, Stamp};
use crate::schema::{StoreSchema, next_state};
use crate::trace::TraceParent;
#[cfg(feature = "durable")]
use journal::Journal;

/// Changes each store keeps for watchers that resume from an older version.
pub const DEFAULT_HISTORY: usize = 4096;

/// Changes a live watcher may fall behind before it catches up from the history instead:
/// the broadcast buffer is allocated whole for every store (64 slots, 2.5 KB; 256 made 10 KB
/// of the memory per store of `bench scale`, and no more throughput), the history only as
/// it fills.
const LIVE_BUFFER: usize = 64;

/// The in-process Object exchange.
#[derive(Debug)]
pub struct EmbeddedExchange {
    stores: RwLock<HashMap<StoreRef, Arc<Store>>>,
    #[cfg(feature = "durable")]
    journal: Option<Journal>,
    history: usize,
}

#[derive(Debug)]
struct Store {
    state: Mutex<State>,
    events: broadcast::Sender<WatchEvent>,
}

#[derive(Debug)]
struct State {
    schema: Arc<StoreSchema>,
    objects: BTreeMap<String, Arc<Object>>,
    version: u64,
    /// The latest changes, oldest first; every change after `floor` is here.
    history: VecDeque<WatchEvent>,
    floor: u64,
    /// Who last wrote each field of each object, for the objects written since the exchange
    /// was opened (origins are not journaled).
    origins: HashMap<String, Origins>,
}

impl EmbeddedExchange {
    /// An exchange that keeps everything in memory.
    pub fn in_memory() -> Self {
        EmbeddedExchange {
            stores: RwLock::default(),
            #[cfg(feature = "durable")]
            journal: None,
            history: DEFAULT_HISTORY,
        }
    }

    /// A durable exchange journaled under `dir`: every acknowledged write survives a crash.
    #[cfg(feature = "durable")]
    pub fn open(dir: &Path) -> Result<Self> {
        let journal = Journal::open(&dir.join("objects.redb"))?;
        Ok(EmbeddedExchange { journal: Some(journal), ..Self::in_memory() })
    }

    /// A durable exchange needs the `durable` feature, left out of this build.
    #[cfg(not(feature = "durable"))]
    pub fn open(dir: &Path) -> Result<Self> {
        let what = format!("a durable embedded exchange (in {})", dir.display());
        Err(ExchangeError::NotBuilt { what, feature: "durable" })
    }

    /// What is journaled of `store` (nothing when not durable).
    fn recover(&self, store: &StoreRef) -> Result<Recovered> {
        #[cfg(feature = "durable")]
        if let Some(journal) = &self.journal {
            return journal.load(store);
        }
        let _ = store;
        Ok(Recovered::default())
    }

    /// Journals `held` as the schema of `store`, when durable.
    fn hold(&self, store: &StoreRef, held: &Held) -> Result<()> {
        #[cfg(feature = "durable")]
        if let Some(journal) = &self.journal {
            return journal.hold(store, held);
        }
        let _ = (store, held);
        Ok(())
    }

    /// Journals `event` of `store`, when durable: the write is acknowledged once the receiver
    /// answers.
    fn journal(
        &self,
        store: &StoreRef,
        event: &WatchEvent,
    ) -> Option<tokio::sync::oneshot::Receiver<Result<()>>> {
        #[cfg(feature = "durable")]
        return self.journal.as_ref().map(|journal| journal.submit(store, event));
        #[cfg(not(feature = "durable"))]
        {
            let _ = (store, event);
            None
        }
    }

    /// Journals the evolution of `store` (its migrated objects' changes, then the schema it
    /// holds), when durable: as [`journal`](Self::journal).
    fn journal_evolve(
        &self,
        store: &StoreRef,
        migrated: &[WatchEvent],
        held: &Held,
    ) -> Option<tokio::sync::oneshot::Receiver<Result<()>>> {
        #[cfg(feature = "durable")]
        return self.journal.as_ref().map(|journal| journal.submit_evolve(store, migrated, held));
        #[cfg(not(feature = "durable"))]
        {
            let _ = (store, migrated, held);
            None
        }
    }

    /// Keeps `history` changes per store for resuming watchers (default [`DEFAULT_HISTORY`]).
    pub fn with_history(mut self, history: usize) -> Self {
        self.history = history.max(1);
        self
    }

    fn store(&self, store: &StoreRef) -> Result<Arc<Store>> {
        let stores = self.stores.read().expect("store map poisoned");
        stores.get(store).cloned().ok_or_else(|| ExchangeError::UnknownStore(store.clone()))
    }

    /// `store`, opened in this process with what the journal holds of it on first use; a store
    /// new to the exchange starts holding `schema` (which must compile either way).
    fn open_store(&self, store: &StoreRef, schema: &Value) -> Result<Arc<Store>> {
        let given = StoreSchema::compile(store, schema)?;
        if let Ok(opened) = self.store(store) {
            return Ok(opened);
        }
        let recovered = self.recover(store)?;
        let schema = match recovered.schema {
            Some(held) => StoreSchema::compile(store, &held.schema)?.at_version(held.version),
            None => {
                self.hold(store, &Held { version: 1, schema: schema.clone() })?;
                given.at_version(1)
            }
        };
        let objects = recovered.objects.into_iter().map(|o| (o.name.clone(), Arc::new(o)));
        let version = recovered.version;
        let state = State {
            schema: Arc::new(schema),
            objects: objects.collect(),
            version,
            history: VecDeque::new(),
            floor: version,
            origins: HashMap::new(),
        };
        let (events, _) = broadcast::channel(LIVE_BUFFER.min(self.history).max(1));
        let mut stores = self.stores.write().expect("store map poisoned");
        let entry = stores.entry(store.clone());
        Ok(entry.or_insert_with(|| Arc::new(Store { state: Mutex::new(state), events })).clone())
    }
}

/// A store as the journal has it: its objects, its version and the schema it holds.
#[derive(Debug, Default)]
struct Recovered {
    objects: Vec<Object>,
    version: u64,
    schema: Option<Held>,
}

/// A schema the exchange holds, with its version.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Held {
    version: u64,
    schema: Value,
}

#[async_trait]
impl ObjectExchange for EmbeddedExchange {
    async fn register(&self, store: &StoreRef, schema: &Value) -> Result<()> {
        let opened = self.open_store(store, schema)?;
        let state = opened.state.lock().expect("store poisoned");
        if state.schema.source() != schema {
            let version = state.schema.version();
            return Err(ExchangeError::SchemaDiffers { store: store.clone(), version });
        }
        Ok(())
    }

    async fn evolve(
        &self,
        store: &StoreRef,
        schema: &Value,
        migration: Option<&Migration>,
    ) -> Result<u64> {
        let opened = self.open_store(store, schema)?;
        let (version, durable) = {
            let mut state = opened.state.lock().expect("store poisoned");
            if state.schema.source() == schema {
                return Ok(state.schema.version());
            }
            let next = StoreSchema::compile(store, schema)?;
            let stored = state.objects.values().map(|o| (o.name.as_str(), &o.data));
            let migrated = next.fit(store, stored, migration)?;
            let version = state.schema.version() + 1;
            let events: Vec<WatchEvent> = migrated
                .into_iter()
                .map(|(name, data)| {
                    let before = state.objects.get(&name).cloned();
                    let event = state.apply(name, Some(data), None);
                    // Who wrote the fields a migration changes is no longer known.
                    state.stamp(event.object(), before.as_deref(), None);
                    event
                })
                .collect();
            let held = Held { version, schema: schema.clone() };
            let durable = self.journal_evolve(store, &events, &held);
            for event in events {
                state.publish(&opened, event, self.history);
            }
            state.schema = Arc::new(next.at_version(version));
            (version, durable)
        };
        if let Some(durable) = durable {
            durable.await.map_err(|_| ExchangeError::Storage("journal stopped".into()))??;
        }
        Ok(version)
    }

    async fn get(&self, store: &StoreRef, name: &str) -> Result<Option<Arc<Object>>> {
        let store = self.store(store)?;
        let state = store.state.lock().expect("store poisoned");
        Ok(state.objects.get(name).cloned())
    }

    async fn list(&self, store: &StoreRef) -> Result<ObjectList> {
        let store = self.store(store)?;
        let state = store.state.lock().expect("store poisoned");
        Ok(ObjectList { version: state.version, items: state.objects.values().cloned().collect() })
    }

    async fn count(&self, store: &StoreRef) -> Result<Option<u64>> {
        let store = self.store(store)?;
        let objects = store.state.lock().expect("store poisoned").objects.len();
        Ok(Some(objects as u64))
    }

    async fn write(&self, store_ref: &StoreRef, write: Write) -> Result<Arc<Object>> {
        if !is_valid_name(&write.name) {
            return Err(ExchangeError::InvalidName(write.name));
        }
        let store = self.store(store_ref)?;
        let (object, durable) = {
            let mut state = store.state.lock().expect("store poisoned");
            let current = state.objects.get(&write.name);
            write.check(store_ref, current.map(|o| o.version))?;
            let next = next_state(
                &state.schema,
                store_ref,
                &write.name,
                current.map(|o| &o.data),
                &write.op,
            )?;
            if let (Some(current), Some(next)) = (current, &next)
                && current.data == *next
            {
                return Ok(current.clone());
            }
            let before = current.cloned();
            let event = state.apply(write.name, next, crate::trace::current());
            let stamp = write.origin.map(|origin| Stamp { version: event.version(), origin });
            match &event {
                WatchEvent::Deleted(gone) => state.forget(&gone.name),
                _ => state.stamp(event.object(), before.as_deref(), stamp.as_ref()),
            }
            let durable = self.journal(store_ref, &event);
            let object = event.object().clone();
            state.publish(&store, event, self.history);
            (object, durable)
        };
        if let Some(durable) = durable {
            durable.await.map_err(|_| ExchangeError::Storage("journal stopped".into()))??;
        }
        Ok(object)
    }

    async fn origins(&self, store: &StoreRef, name: &str) -> Result<Option<Origins>> {
        let store = self.store(store)?;
        let state = store.state.lock().expect("store poisoned");
        if !state.objects.contains_key(name) {
            return Ok(None);
        }
        Ok(Some(state.origins.get(name).cloned().unwrap_or_default()))
    }

    async fn watch(&self, store_ref: &StoreRef, from: u64) -> Result<WatchStream> {
        let store = self.store(store_ref)?;
        let sequencer = Sequencer::new(store_ref.clone(), from);
        let (replay, live) = {
            let state = store.state.lock().expect("store poisoned");
            if from < state.floor || from > state.version {
                return Err(sequencer.expired(false));
            }
            let replay: VecDeque<WatchEvent> =
                state.history.iter().filter(|e| e.version() > from).cloned().collect();
            (replay, store.events.subscribe())
        };
        let events = futures::stream::unfold(
            (store, live, replay),
            |(store, mut live, mut ready)| async move {
                loop {
                    if let Some(event) = ready.pop_front() {
                        return Some((Ok(event), (store, live, ready)));
                    }
                    match live.recv().await {
                        Ok(event) => return Some((Ok(event), (store, live, ready))),
                        // Fallen behind the live buffer: catch up from the history (events already
                        // delivered are dropped by the sequencer; a gap ends the watch as expired).
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            let state = store.state.lock().expect("store poisoned");
                            ready = state.history.iter().cloned().collect();
                            live = store.events.subscribe();
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            },
        );
        Ok(sequenced(events, sequencer))
    }
}

impl State {
    /// Makes `next` the state of object `name` (`None`: deletes it, which must exist), at the
    /// store's next version, written in trace `trace`: the change's event.
    fn apply(
        &mut self,
        name: String,
        next: Option<Value>,
        trace: Option<TraceParent>,
    ) -> WatchEvent {
        let version = self.version + 1;
        self.version = version;
        match next {
            Some(data) => {
                let object = Arc::new(Object { name, version, data, trace });
                match self.objects.insert(object.name.clone(), object.clone()) {
                    Some(_) => WatchEvent::Modified(object),
                    None => WatchEvent::Added(object),
                }
            }
            None => {
                let removed = self.objects.remove(&name).expect("checked present");
                let data = removed.data.clone();
                WatchEvent::Deleted(Arc::new(Object { name, version, data, trace }))
            }
        }
    }

    /// Records who made the changes from `before` (`None`: it is new) to `after`, stamped
    /// `stamp` (`None`: no origin, and the fields it changed have none).
    fn stamp(&mut self, after: &Object, before: Option<&Object>, stamp: Option<&Stamp>) {
        let held = self.origins.get_mut(&after.name);
        if held.is_none() && stamp.is_none() {
            return; // Nothing held, nothing to hold: spare the comparison.
        }
        let changed = Changed::between(before.map(|o| &o.data), &after.data);
        match held {
            Some(origins) => changed.apply(origins, stamp),
            None => {
                let mut origins = Origins::new();
                changed.apply(&mut origins, stamp);
                self.origins.insert(after.name.clone(), origins);
            }
        }
    }

    /// Forgets the origins of object `name`, deleted.
    fn forget(&mut self, name: &str) {
        self.origins.remove(name);
    }

    /// Keeps `event` in the history and sends it to the store's watchers.
    fn publish(&mut self, store: &Store, event: WatchEvent, capacity: usize) {
        self.remember(event.clone(), capacity);
        let _ = store.events.send(event);
    }

    fn remember(&mut self, event: WatchEvent, capacity: usize) {
        self.history.push_back(event);
        while self.history.len() > capacity {
            let dropped = self.history.pop_front().expect("non-empty");
            self.floor = dropped.version();
        }
    }
}
