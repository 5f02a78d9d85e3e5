//! The rights a Cast spec runs with (DESIGN §11), worked out from its plan: it reads the stores
//! its edges read, seeing only the top-level fields their expressions reference (every field
//! of an input an expression takes whole); it writes only the top-level fields its edges set,
//! and only on their targets, where it sees those fields too; it deletes only where an edge
//! cascades deletions; and it owns its own checkpoint object, nothing else of the checkpoint
//! store.

use std::collections::BTreeSet;

use data_exchange::access::{Fields, Grant, Rights};

use super::plan::{CastPlan, EdgePlan};
use super::progress::{checkpoint_name, checkpoint_store};
use super::spec::OnDelete;

/// The principal a Cast spec named `name` acts as.
pub fn principal(name: &str) -> String {
    format!("integrator:{name}")
}

/// The principal the shadow run of the Cast spec `name` acts as.
pub fn shadow_principal(name: &str) -> String {
    format!("shadow:{name}")
}

impl CastPlan {
    /// The rights its shadow run acts with (see [`super::CastOptions::shadow`]): it reads what
    /// its edges read, and nothing else: its targets are copies of its own, and it keeps no
    /// checkpoint.
    pub fn shadow_rights(&self) -> Rights {
        let mut rights = Rights::new(shadow_principal(&self.name));
        self.grant_reads(&mut rights);
        rights
    }

    /// Grants `rights` the reads of its edges: their sources, and the inputs their
    /// expressions read, seeing the fields they read.
    fn grant_reads(&self, rights: &mut Rights) {
        for edge in &self.edges {
            for alias in edge.spec.from.iter().chain(&edge.reads) {
                if let Some(input) = self.inputs.get(alias) {
                    rights.grant(input.store.clone(), Grant::read_only(fields_read(edge, alias)));
                }
            }
        }
    }

    /// The rights its integrator acts with: exactly what its edges need, and what is declared
    /// for it.
    pub fn rights(&self) -> Rights {
        let mut rights = Rights::new(principal(&self.name));
        self.grant_reads(&mut rights);
        let store_of = |alias: &String| self.inputs.get(alias).map(|i| i.store.clone());
        let filled = self.filled();
        for edge in &self.edges {
            let Some(target) = store_of(&edge.spec.to) else { continue };
            let fields: BTreeSet<String> =
                filled.iter().filter(|(s, _)| *s == target).map(|(_, f)| f.clone()).collect();
            let delete = edge.spec.on_delete == OnDelete::Cascade;
            // It sees the fields it sets, to tell whether a write would change anything.
            let read = Some(Fields::Only(fields.clone()));
            let writes = Grant { read, write: Some(Fields::Only(fields)), delete, objects: None };
            rights.grant(target, writes);
        }
        let own = [checkpoint_name(&self.name)].into();
        rights.grant(checkpoint_store(), Grant { objects: Some(own), ..Grant::owner() });
        rights.extend(&self.declared);
        rights
    }
}

/// The top-level fields of `alias`'s objects that `edge` reads: those its expressions name,
/// or every field when one of them takes the alias whole (none when it only triggers the
/// edge).
fn fields_read(edge: &EdgePlan, alias: &str) -> Fields {
    let conditions = edge.when.iter().chain(&edge.key);
    let values = edge.set.iter().map(|(_, value)| value);
    let whole = conditions.clone().any(|c| c.whole_reads().contains(alias))
        || values.clone().any(|v| v.reads_whole(alias));
    if whole {
        return Fields::All;
    }
    let named =
        conditions.flat_map(|c| c.field_reads()).chain(values.flat_map(|v| v.field_reads()));
    Fields::Only(named.filter(|(a, _)| a == alias).map(|(_, field)| field).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SpecFile;
    use data_exchange::StoreRef;
    use std::path::Path;

    fn plan(edges: &str) -> CastPlan {
        let text = format!(
            "apiVersion: knactor.dev/v1\nkind: Cast\nmetadata: {{name: c}}\nspec:\n  inputs:\n    a: k/a\n    b: k/b\n    c: k/c\n    all: {{store: k/e, collect: true}}\n    unused: k/u\n  edges:\n{edges}"
        );
        CastPlan::load(&SpecFile::from_text(Path::new("c.yaml"), &text), None).unwrap().0
    }

    fn on<'a>(rights: &'a Rights, store: &str) -> Option<&'a Grant> {
        rights.on(&store.parse::<StoreRef>().unwrap())
    }

    fn only(fields: &[&str]) -> Option<Fields> {
        Some(Fields::Only(fields.iter().map(|f| (*f).to_owned()).collect()))
    }

    #[test]
    fn a_cast_reads_what_its_edges_read_and_writes_the_fields_they_set() {
        let rights = plan(
            "    - name: one\n      from: [a]\n      to: b\n      set: {x: a.x, y.z: 'count(all)'}\n    - name: two\n      from: [c]\n      to: b\n      onDelete: cascade\n      set: {w: c.w}\n",
        );
        let rights = rights.rights();
        assert_eq!(rights.principal(), "integrator:c");
        let sees = |fields| Some(Grant { read: only(fields), ..Grant::read() });
        assert_eq!(on(&rights, "k/a").cloned(), sees(&["x"]));
        assert_eq!(on(&rights, "k/c").cloned(), sees(&["w"]));
        assert_eq!(on(&rights, "k/e"), Some(&Grant::read()), "`count(all)` takes it whole");
        let b = on(&rights, "k/b").unwrap();
        let fields = only(&["w", "x", "y"]);
        assert_eq!((&b.read, b.delete, &b.write), (&fields, true, &fields));
        assert_eq!(on(&rights, "k/u"), None, "an input no edge uses grants nothing");
        let checkpoints = rights.on(&checkpoint_store()).unwrap();
        assert_eq!(checkpoints.objects, Some(["cast.c".to_owned()].into()));
        assert_eq!(rights.grants().count(), 5);
    }

    #[test]
    fn a_target_written_without_cascade_cannot_be_deleted_from() {
        let rights = plan("    - name: one\n      from: [a]\n      to: b\n      set: {x: a.x}\n");
        let b = on(&rights.rights(), "k/b").cloned().unwrap();
        assert!(!b.delete);
        assert_eq!(b.write, only(&["x"]));
    }

    #[test]
    fn an_input_taken_whole_is_seen_whole_and_one_that_only_triggers_shows_no_field() {
        let rights = plan(
            "    - name: one\n      from: [a, c]\n      to: b\n      set: {x: '$.a'}\n    - name: two\n      from: [b]\n      to: c\n      when: 'size(b) > 0'\n      set: {v: 1}\n",
        )
        .rights();
        assert_eq!(on(&rights, "k/a").unwrap().read, Some(Fields::All), "`$.a`");
        assert_eq!(on(&rights, "k/b").unwrap().read, Some(Fields::All), "`size(b)`");
        assert_eq!(on(&rights, "k/c").unwrap().read, only(&["v"]), "it sets v, and reads no field");
    }
}
