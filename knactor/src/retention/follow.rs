//! What a collector keeps of the stores it follows (list, then watch; again on expiry): the
//! finished objects of a store it collects from ([`Candidates`]), and the names present in
//! a store that feeds one ([`Names`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use data_exchange::{Object, WatchEvent};

use super::Finished;
use crate::follow::Mirror;
use crate::metrics::RetentionSeries;

/// The finished objects of a store collected from, by version.
#[derive(Debug)]
pub(super) struct Candidates {
    finished: Finished,
    series: RetentionSeries,
    state: Mutex<Finishing>,
}

#[derive(Debug, Default)]
struct Finishing {
    /// Finished objects by (version, name), with when their version was seen: in version
    /// order, they were seen in time order too (a re-list starts afresh).
    by_version: BTreeMap<(u64, String), (Arc<Object>, Instant)>,
    /// The version of each finished object.
    versions: HashMap<String, u64>,
    /// How many objects the store holds.
    objects: i64,
}

impl Candidates {
    /// None yet, of a store whose objects `finished` tells finished.
    pub(super) fn new(finished: Finished, series: RetentionSeries) -> Self {
        Candidates { finished, series, state: Mutex::default() }
    }

    /// The finished objects at or below `position`, seen at least `ttl` ago, in version order;
    /// and how many finished objects there are.
    pub(super) fn due(&self, position: u64, ttl: Duration) -> (Vec<Arc<Object>>, usize) {
        let now = Instant::now();
        let state = self.lock();
        let due = state
            .by_version
            .range(..(position.saturating_add(1), String::new()))
            .take_while(|(_, (_, seen))| now.duration_since(*seen) >= ttl)
            .map(|(_, (object, _))| object.clone())
            .collect();
        (due, state.by_version.len())
    }

    /// Whether `name` is a finished object at `version`.
    pub(super) fn has(&self, name: &str, version: u64) -> bool {
        self.lock().versions.get(name) == Some(&version)
    }

    /// Forgets `object` (at its version): collected, or changed since.
    pub(super) fn forget(&self, object: &Object) {
        let mut state = self.lock();
        if state.versions.get(&object.name) == Some(&object.version) {
            state.forget(&object.name);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Finishing> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Finishing {
    fn forget(&mut self, name: &str) {
        if let Some(version) = self.versions.remove(name) {
            self.by_version.remove(&(version, name.to_owned()));
        }
    }

    fn seen(&mut self, object: Arc<Object>, finished: bool) {
        self.forget(&object.name);
        if finished {
            self.versions.insert(object.name.clone(), object.version);
            let key = (object.version, object.name.clone());
            self.by_version.insert(key, (object, Instant::now()));
        }
    }
}

impl Mirror for Candidates {
    fn listed(&self, objects: Vec<Arc<Object>>, _version: u64) {
        let mut fresh = Finishing { objects: objects.len() as i64, ..Finishing::default() };
        for object in objects {
            let finished = self.finished.holds(&object);
            fresh.seen(object, finished);
        }
        self.series.objects.set(fresh.objects);
        *self.lock() = fresh;
    }

    fn changed(&self, event: WatchEvent) {
        let finished =
            !matches!(event, WatchEvent::Deleted(_)) && self.finished.holds(event.object());
        let mut state = self.lock();
        match event {
            WatchEvent::Deleted(object) => {
                state.objects -= 1;
                state.forget(&object.name);
            }
            WatchEvent::Added(object) => {
                state.objects += 1;
                state.seen(object, finished);
            }
            WatchEvent::Modified(object) => state.seen(object, finished),
        }
        self.series.objects.set(state.objects);
    }
}

/// The names present in a store that feeds one collected from, and those deleted recently.
#[derive(Debug, Default)]
pub(super) struct Names {
    state: Mutex<Present>,
}

#[derive(Debug, Default)]
struct Present {
    /// Whether the store was listed.
    listed: bool,
    /// The store version the names reflect.
    seen: u64,
    names: HashSet<String>,
    /// Names deleted, with the deletion's version, until every consumer has handled it.
    gone: HashMap<String, u64>,
}

/// Whether a name is present in a feeding store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Presence {
    /// Not known yet: the names do not reflect the version asked about yet.
    Unknown,
    /// It is there.
    Present,
    /// It was deleted at this version.
    Gone(u64),
    /// Neither there nor deleted lately.
    Absent,
}

impl Names {
    /// Whether `name` is present, as of the store's version `at` (or later).
    pub(super) fn presence(&self, name: &str, at: u64) -> Presence {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !state.listed || state.seen < at {
            Presence::Unknown
        } else if state.names.contains(name) {
            Presence::Present
        } else {
            state.gone.get(name).map_or(Presence::Absent, |&at| Presence::Gone(at))
        }
    }

    /// Forgets the deletions up to `version`: every consumer has handled them.
    pub(super) fn handled(&self, version: u64) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.gone.retain(|_, at| *at > version);
    }
}

impl Mirror for Names {
    fn listed(&self, objects: Vec<Arc<Object>>, version: u64) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if version < state.seen {
            // The store's versions went back: the exchange lost its data, and what was seen
            // of it says nothing of the versions to come.
            state.gone.clear();
            state.seen = 0;
        }
        let names: HashSet<String> = objects.iter().map(|o| o.name.clone()).collect();
        // Gone while not watched: deleted at the list's version at the latest.
        let gone: Vec<String> = state.names.difference(&names).cloned().collect();
        for name in gone {
            state.gone.insert(name, version);
        }
        state.names = names;
        state.listed = true;
        state.seen = state.seen.max(version);
    }

    fn changed(&self, event: WatchEvent) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let object = event.object();
        state.seen = state.seen.max(event.version());
        match event {
            WatchEvent::Deleted(_) => {
                state.names.remove(&object.name);
                state.gone.insert(object.name.clone(), object.version);
            }
            _ => {
                state.gone.remove(&object.name);
                state.names.insert(object.name.clone());
            }
        }
    }
}
