//! Which changes of its stores a reconciler has handled, as one position per store: every
//! change up to it was handled (the reconciler returned for it), so the state retention may
//! collect what lies below it (see [`crate::retention`]).
//!
//! Reconciles run in any order, several at once, and a failing one is retried; so the
//! position is the last version seen, held back below the oldest change of any object still
//! waiting for (or in) a reconcile that has not succeeded since.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

/// The handled changes of one reconciler's stores, by store name.
#[derive(Debug, Default)]
pub struct Handled {
    stores: Mutex<HashMap<String, Marks>>,
}

/// One store's marks.
#[derive(Debug, Default)]
struct Marks {
    /// The last store version seen (listed or watched).
    seen: u64,
    /// The objects with changes not handled yet: the oldest such change and the latest.
    pending: HashMap<String, Pending>,
    /// `(oldest unhandled version, name)` of each pending object, for the lowest.
    oldest: BTreeSet<(u64, String)>,
}

impl Marks {
    /// Marks the change of `name` at `version` pending.
    fn pend(&mut self, name: &str, version: u64) {
        match self.pending.get_mut(name) {
            Some(pending) => pending.latest = pending.latest.max(version),
            None => {
                self.pending.insert(name.to_owned(), Pending { since: version, latest: version });
                self.oldest.insert((version, name.to_owned()));
            }
        }
    }

    fn position(&self) -> u64 {
        match self.oldest.first() {
            Some((since, _)) => since.saturating_sub(1).min(self.seen),
            None => self.seen,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Pending {
    since: u64,
    latest: u64,
}

impl Handled {
    /// The store was listed at `version`, and `touched` (name, version) are the objects that
    /// changed since it was last followed (call before they are queued for a reconcile). In
    /// one step, so that the position never passes an object not marked pending yet.
    pub fn listed(&self, store: &str, version: u64, touched: &[(String, u64)]) {
        let mut stores = self.lock();
        let marks = stores.entry(store.to_owned()).or_default();
        for (name, changed) in touched {
            marks.pend(name, *changed);
        }
        marks.seen = marks.seen.max(version);
    }

    /// `name` of `store` changed at `version` (call before it is queued for a reconcile).
    pub fn changed(&self, store: &str, name: &str, version: u64) {
        let mut stores = self.lock();
        let marks = stores.entry(store.to_owned()).or_default();
        marks.pend(name, version);
        marks.seen = marks.seen.max(version);
    }

    /// The latest change of `name` a reconcile starting now handles (call before reading the
    /// object it reconciles); `None` when none is pending.
    pub fn taking(&self, store: &str, name: &str) -> Option<u64> {
        let stores = self.lock();
        stores.get(store)?.pending.get(name).map(|pending| pending.latest)
    }

    /// The reconcile of `name` that started with [`taking`](Self::taking) returning `upto`
    /// succeeded: its changes up to `upto` are handled.
    pub fn done(&self, store: &str, name: &str, upto: u64) {
        let mut stores = self.lock();
        let Some(marks) = stores.get_mut(store) else { return };
        let Some(pending) = marks.pending.get_mut(name) else { return };
        let since = pending.since;
        marks.oldest.remove(&(since, name.to_owned()));
        if pending.latest <= upto {
            marks.pending.remove(name);
        } else {
            // Changed during the reconcile: what came after `upto` waits for the next one.
            pending.since = upto + 1;
            marks.oldest.insert((upto + 1, name.to_owned()));
        }
    }

    /// The last version of `store` up to which every change was handled (0: none yet).
    pub fn position(&self, store: &str) -> u64 {
        self.lock().get(store).map_or(0, Marks::position)
    }

    /// The position of each store seen so far.
    pub fn positions(&self) -> Vec<(String, u64)> {
        self.lock().iter().map(|(store, marks)| (store.clone(), marks.position())).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Marks>> {
        self.stores.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_position_stays_below_the_oldest_change_not_handled() {
        let handled = Handled::default();
        assert_eq!(handled.position("orders"), 0);
        handled.listed("orders", 10, &[]);
        assert_eq!(handled.position("orders"), 10, "nothing pending: all seen is handled");
        handled.changed("orders", "o1", 11);
        handled.changed("orders", "o2", 12);
        assert_eq!(handled.position("orders"), 10);
        let upto = handled.taking("orders", "o2").unwrap();
        handled.done("orders", "o2", upto);
        assert_eq!(handled.position("orders"), 10, "o1 is still pending");
        let upto = handled.taking("orders", "o1").unwrap();
        handled.done("orders", "o1", upto);
        assert_eq!(handled.position("orders"), 12);
    }

    #[test]
    fn a_change_during_a_reconcile_waits_for_the_next_one() {
        let handled = Handled::default();
        handled.changed("orders", "o1", 1);
        let upto = handled.taking("orders", "o1").unwrap();
        handled.changed("orders", "o1", 2);
        handled.changed("orders", "o2", 3);
        handled.done("orders", "o1", upto);
        assert_eq!(handled.position("orders"), 1, "o1's change 2 is not handled yet");
        let upto = handled.taking("orders", "o1").unwrap();
        handled.done("orders", "o1", upto);
        assert_eq!(handled.position("orders"), 2, "o2's change 3 is not handled yet");
    }

    #[test]
    fn a_failed_reconcile_holds_the_position_until_a_retry_succeeds() {
        let handled = Handled::default();
        handled.changed("orders", "o1", 1);
        handled.changed("orders", "o2", 2);
        let _failed = handled.taking("orders", "o1").unwrap();
        handled.done("orders", "o2", handled.taking("orders", "o2").unwrap());
        assert_eq!(handled.position("orders"), 0);
        handled.done("orders", "o1", handled.taking("orders", "o1").unwrap());
        assert_eq!(handled.position("orders"), 2);
        assert_eq!(handled.positions(), [("orders".to_owned(), 2)]);
    }

    #[test]
    fn a_relist_marks_what_changed_before_the_position_moves() {
        let handled = Handled::default();
        handled.listed("orders", 20, &[("o1".to_owned(), 5), ("o2".to_owned(), 18)]);
        assert_eq!(handled.position("orders"), 4);
    }
}
