//! The rights a Cast spec runs with (DESIGN §11), worked out from its plan: it reads the stores
//! its edges read and the targets they merge into; it writes only the top-level fields its
//! edges set, and only on their targets; it deletes only where an edge cascades deletions;
//! and it owns its own checkpoint object, nothing else of the checkpoint store.

use std::collections::BTreeSet;

use data_exchange::access::{Fields, Grant, Rights};

use super::plan::CastPlan;
use super::progress::{checkpoint_name, checkpoint_store};
use super::spec::OnDelete;

/// The principal a Cast spec named `name` acts as.
pub fn principal(name: &str) -> String {
    format!("integrator:{name}")
}

impl CastPlan {
    /// The rights its integrator acts with: exactly what its edges need.
    pub fn rights(&self) -> Rights {
        let mut rights = Rights::new(principal(&self.name));
        let store_of = |alias: &String| self.inputs.get(alias).map(|i| i.store.clone());
        let filled = self.filled();
        for edge in &self.edges {
            for store in edge.spec.from.iter().chain(&edge.reads).filter_map(store_of) {
                rights.grant(store, Grant::read());
            }
            let Some(target) = store_of(&edge.spec.to) else { continue };
            let fields: BTreeSet<String> =
                filled.iter().filter(|(s, _)| *s == target).map(|(_, f)| f.clone()).collect();
            let delete = edge.spec.on_delete == OnDelete::Cascade;
            let writes = Grant { write: Some(Fields::Only(fields)), delete, ..Grant::read() };
            rights.grant(target, writes);
        }
        let own = [checkpoint_name(&self.name)].into();
        rights.grant(checkpoint_store(), Grant { objects: Some(own), ..Grant::owner() });
        rights
    }
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
        for read_only in ["k/a", "k/c", "k/e"] {
            assert_eq!(on(&rights, read_only), Some(&Grant::read()), "{read_only}");
        }
        let b = on(&rights, "k/b").unwrap();
        assert_eq!((b.read, b.delete, &b.write), (true, true, &only(&["w", "x", "y"])));
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
}
