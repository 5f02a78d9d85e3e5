//! Target writes: merging an edge's fields into its target, written only when that changes
//! something, as a patch conditional on the version merged over (or a create). The state last written to each recent
//! target is cached, so writing it again needs no read first.

use std::collections::BTreeSet;
use std::num::NonZeroUsize;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};

use data_exchange::merge::{Known, Merged, merge_write};
use data_exchange::{
    ExchangeError, Expect, Object, ObjectExchange, Origin, StoreRef, Write, WriteOp,
};
use lru::LruCache;
use serde_json::{Value, json};

use super::stats::CastStats;

/// Conflicts in a row (the target changing between read and write) at which a write gives up.
const WRITE_ATTEMPTS: usize = 16;

/// Why a target write failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum TargetError {
    /// The exchange refused or failed.
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
    /// Others kept writing the target between each read and write.
    #[error("{store}/{name} kept changing; gave up after {WRITE_ATTEMPTS} attempts")]
    KeptChanging {
        /// The target's store.
        store: StoreRef,
        /// The target.
        name: String,
    },
}

/// The writer of an integrator's targets, with its cache.
#[derive(Debug)]
pub(super) struct Targets {
    exchange: Arc<dyn ObjectExchange>,
    /// The last known state of the targets written most recently.
    cache: Mutex<LruCache<(StoreRef, String), Arc<Object>>>,
    /// How many targets `cache` keeps. It grows to that as targets are written, rather than
    /// being sized for it up front: a table for 65,536 targets is 2 MiB, which an allocator
    /// backing it with huge pages made resident for each integrator, however few it wrote.
    capacity: NonZeroUsize,
    /// Target stores where the last target missing from the cache was missing from the store
    /// too: the next one is created without reading first.
    absent_on_miss: Mutex<BTreeSet<StoreRef>>,
    stats: Arc<CastStats>,
}

impl Targets {
    /// Keeps the last state of up to `capacity` targets.
    pub(super) fn new(
        exchange: Arc<dyn ObjectExchange>,
        capacity: NonZeroUsize,
        stats: Arc<CastStats>,
    ) -> Self {
        let cache = Mutex::new(LruCache::unbounded());
        Targets { exchange, cache, capacity, absent_on_miss: Mutex::default(), stats }
    }

    /// Deletes `name` of `store`, if it exists; whether it did.
    pub(super) async fn delete(&self, store: &StoreRef, name: &str) -> Result<bool, ExchangeError> {
        self.cache().pop(&(store.clone(), name.to_owned()));
        match self.exchange.write(store, Write::delete(name)).await {
            Ok(_) => Ok(true),
            Err(ExchangeError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Merges `patch` into `name` of `store` and writes the result conditionally on the
    /// version it was merged over; writes nothing when that changes nothing. The state last
    /// written is tried first, saving a read; so is creating the target when the store's last
    /// uncached target was new. A conflict falls back to reading. Without `creates`, an
    /// absent target stays absent. The write is stamped with what `origin` makes, when given.
    /// Whether it wrote.
    pub(super) async fn merge(
        &self,
        store: &StoreRef,
        (name, patch): (&str, &Value),
        origin: Option<&(dyn Fn() -> Arc<Origin> + Sync)>,
        creates: bool,
    ) -> Result<bool, TargetError> {
        // Made once, and only when something is written: most evaluations change nothing.
        let stamp = OnceLock::new();
        let key = (store.clone(), name.to_owned());
        let cached = self.cache().get(&key).cloned();
        let known = match cached {
            Some(object) => Known::Cached(object),
            // A miss where misses were new targets: take it as absent, as if read.
            None if creates && self.misses_are_new(store) => Known::Absent,
            None => Known::Nothing,
        };
        let absent = || ExchangeError::NotFound { store: store.clone(), name: name.to_owned() };
        let read = || async {
            let found = self.exchange.get(store, name).await?;
            self.stats.target_reads.fetch_add(1, Ordering::Relaxed);
            self.remember_miss(store, found.is_none());
            Ok(found)
        };
        let merge = |current: Option<&Object>| {
            if current.is_none() && !creates {
                return Err(absent());
            }
            let mut merged = current.map_or_else(|| json!({}), |o| o.data.clone());
            json_patch::merge(&mut merged, patch);
            Ok(merged)
        };
        // An object there is patched, at the version merged over: the patch names exactly the
        // fields the edge sets, which is all its rights need to check, and it keeps the fields
        // the integrator may not see.
        let write = |data, expect| {
            let op = match expect {
                Expect::Version(_) => WriteOp::Patch(patch.clone()),
                _ => WriteOp::Put(data),
            };
            let origin = origin.map(|make| stamp.get_or_init(make).clone());
            self.exchange.write(store, Write { name: name.to_owned(), op, expect, origin })
        };
        match merge_write(known, WRITE_ATTEMPTS, read, merge, write).await {
            Ok(Merged::Written(written)) => {
                self.stats.writes.fetch_add(1, Ordering::Relaxed);
                let mut cache = self.cache();
                cache.put(key, written);
                while cache.len() > self.capacity.get() {
                    cache.pop_lru();
                }
                Ok(true)
            }
            Ok(Merged::Unchanged(_)) => Ok(false),
            Err(ExchangeError::NotFound { .. }) if !creates => Ok(false),
            Err(ExchangeError::Conflict { .. } | ExchangeError::AlreadyExists { .. }) => {
                Err(TargetError::KeptChanging { store: store.clone(), name: name.to_owned() })
            }
            Err(e) => Err(e.into()),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, LruCache<(StoreRef, String), Arc<Object>>> {
        self.cache.lock().expect("target cache poisoned")
    }

    /// Whether the last target of `store` missing from the cache was new (not in the store).
    fn misses_are_new(&self, store: &StoreRef) -> bool {
        self.absent_on_miss.lock().expect("absent set poisoned").contains(store)
    }

    /// Records whether a target of `store` missing from the cache was new.
    fn remember_miss(&self, store: &StoreRef, new: bool) {
        let mut stores = self.absent_on_miss.lock().expect("absent set poisoned");
        if new {
            stores.insert(store.clone());
        } else {
            stores.remove(store);
        }
    }
}
