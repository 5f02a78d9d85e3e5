//! What re-applying a spec changes: the edges (Cast) or flows (Sync) added, removed and
//! changed, matched by name.

use serde::Serialize;

/// What applying a plan over another changes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PlanDiff {
    /// Parts only in the new plan.
    pub added: Vec<String>,
    /// Parts only in the old plan.
    pub removed: Vec<String>,
    /// Parts in both, written differently.
    pub changed: Vec<String>,
}

impl PlanDiff {
    /// Compares the named parts of two plans; a part changed when its `T` differs.
    pub fn between<T: PartialEq>(old: &[(&str, T)], new: &[(&str, T)]) -> PlanDiff {
        let mut diff = PlanDiff::default();
        for (name, part) in new {
            match old.iter().find(|(o, _)| o == name) {
                None => diff.added.push((*name).to_owned()),
                Some((_, before)) if before != part => diff.changed.push((*name).to_owned()),
                Some(_) => {}
            }
        }
        for (name, _) in old {
            if !new.iter().any(|(n, _)| n == name) {
                diff.removed.push((*name).to_owned());
            }
        }
        diff
    }

    /// Everything in `names` added.
    pub fn all_added<'a>(names: impl IntoIterator<Item = &'a str>) -> PlanDiff {
        PlanDiff { added: names.into_iter().map(str::to_owned).collect(), ..PlanDiff::default() }
    }
}
