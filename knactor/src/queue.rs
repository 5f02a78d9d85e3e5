//! The work queue of a controller: each key is queued at most once, handed to one worker at a
//! time, and re-queued once if it changed while being worked on.

use std::collections::{HashSet, VecDeque};
use std::hash::Hash;
use std::sync::Mutex;

use tokio::sync::Notify;

/// A queue of keys to reconcile, with per-key mutual exclusion and coalescing.
#[derive(Debug)]
pub(crate) struct WorkQueue<K> {
    state: Mutex<State<K>>,
    ready: Notify,
}

#[derive(Debug)]
struct State<K> {
    /// Keys waiting for a worker, in arrival order.
    queue: VecDeque<K>,
    /// Keys in `queue`.
    queued: HashSet<K>,
    /// Keys a worker holds.
    active: HashSet<K>,
    /// Active keys that changed meanwhile: queued again when released.
    dirty: HashSet<K>,
}

impl<K: Clone + Eq + Hash> WorkQueue<K> {
    pub(crate) fn new() -> Self {
        let state = State {
            queue: VecDeque::new(),
            queued: HashSet::new(),
            active: HashSet::new(),
            dirty: HashSet::new(),
        };
        WorkQueue { state: Mutex::new(state), ready: Notify::new() }
    }

    /// How many keys wait for a worker.
    pub(crate) fn len(&self) -> usize {
        self.state.lock().expect("queue poisoned").queue.len()
    }

    /// Asks for `key` to be worked on; a no-op if it is already waiting.
    pub(crate) fn add(&self, key: K) {
        let mut state = self.state.lock().expect("queue poisoned");
        if state.active.contains(&key) {
            state.dirty.insert(key);
        } else if state.queued.insert(key.clone()) {
            state.queue.push_back(key);
            drop(state);
            self.ready.notify_one();
        }
    }

    /// Waits for a key no other worker holds, and hands it to the caller until [`Self::done`].
    pub(crate) async fn next(&self) -> K {
        loop {
            let notified = self.ready.notified();
            {
                let mut state = self.state.lock().expect("queue poisoned");
                if let Some(key) = state.queue.pop_front() {
                    state.queued.remove(&key);
                    state.active.insert(key.clone());
                    let more = !state.queue.is_empty();
                    drop(state);
                    if more {
                        self.ready.notify_one();
                    }
                    return key;
                }
            }
            notified.await;
        }
    }

    /// Releases `key`; if it changed while held, it is queued again.
    pub(crate) fn done(&self, key: &K) {
        let again = {
            let mut state = self.state.lock().expect("queue poisoned");
            state.active.remove(key);
            state.dirty.remove(key)
        };
        if again {
            self.add(key.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_is_queued_once_and_coalesced_while_active() {
        let queue = WorkQueue::new();
        queue.add("a");
        queue.add("a");
        queue.add("b");
        assert_eq!(queue.next().await, "a");
        queue.add("a");
        queue.add("a");
        assert_eq!(queue.next().await, "b", "a is held: not handed out twice");
        queue.done(&"a");
        assert_eq!(queue.next().await, "a", "one follow-up for the changes made meanwhile");
        queue.done(&"a");
        queue.done(&"b");
        let idle = tokio::time::timeout(std::time::Duration::from_millis(20), queue.next()).await;
        assert!(idle.is_err(), "nothing left");
    }
}
