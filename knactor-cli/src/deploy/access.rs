//! Who may do what on which Object store: the rights each knactor and each Cast spec needs,
//! worked out from its manifest or its checked plan. Log stores are not on the apiserver, so
//! they need no rights here.

use std::collections::{BTreeMap, BTreeSet};

use data_exchange::StoreRef;
use integrators::cast::spec::OnDelete;
use integrators::cast::{CastPlan, checkpoint_name, checkpoint_store};
use knactor::manifest::{ExchangeKind, KnactorManifest};

/// A Kubernetes API verb a Role grants on a store's custom resources.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
}

impl Verb {
    /// The verb as RBAC names it.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
        }
    }
}

/// What reading a store takes: an object, the list (also how the exchange registers a
/// store), and the changes.
const READ: [Verb; 3] = [Verb::Get, Verb::List, Verb::Watch];
/// What writing a store takes on the apiserver exchange: it reads the object it merges into
/// and lists the store when registering it, then creates or replaces.
const WRITE: [Verb; 5] = [Verb::Get, Verb::List, Verb::Create, Verb::Update, Verb::Patch];
/// Everything a knactor does to its own stores.
const OWN: [Verb; 7] =
    [Verb::Get, Verb::List, Verb::Watch, Verb::Create, Verb::Update, Verb::Patch, Verb::Delete];

/// Verbs on a store, on all its objects or only on the named ones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Grant {
    /// The verbs.
    pub(super) verbs: BTreeSet<Verb>,
    /// The objects they apply to; empty: every object.
    pub(super) names: Vec<String>,
}

/// The rights of one principal: grants per store, in a stable order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Rights(pub(super) Vec<(StoreRef, Grant)>);

/// A knactor's rights: everything on its own Object stores, nothing else.
pub(super) fn of_knactor(knactor: &KnactorManifest) -> Rights {
    let name = &knactor.metadata.name;
    let objects = knactor.spec.stores.iter().filter(|s| s.exchange == ExchangeKind::Object);
    let grant = || Grant { verbs: OWN.into(), names: Vec::new() };
    Rights(objects.map(|s| (s.store_ref(name), grant())).collect())
}

/// A Cast spec's rights: to read the stores its edges read (their `from` and the collected
/// inputs their expressions use), to write the stores its edges write (and delete there when
/// an edge cascades deletions), and to keep its own checkpoint object.
pub(super) fn of_cast(plan: &CastPlan) -> Rights {
    let mut verbs: BTreeMap<StoreRef, BTreeSet<Verb>> = BTreeMap::new();
    for edge in &plan.edges {
        let read = edge.spec.from.iter().chain(&edge.reads);
        for input in read.filter_map(|alias| plan.inputs.get(alias)) {
            verbs.entry(input.store.clone()).or_default().extend(READ);
        }
        if let Some(target) = plan.inputs.get(&edge.spec.to) {
            let target = verbs.entry(target.store.clone()).or_default();
            target.extend(WRITE);
            if edge.spec.on_delete == OnDelete::Cascade {
                target.insert(Verb::Delete);
            }
        }
    }
    let mut rights: Vec<_> = verbs
        .into_iter()
        .map(|(store, verbs)| (store, Grant { verbs, names: Vec::new() }))
        .collect();
    // Creating cannot be limited to a name, and registering the store lists it; reading and
    // replacing the checkpoint can.
    let checkpoints = checkpoint_store();
    let any = Grant { verbs: [Verb::List, Verb::Create].into(), names: Vec::new() };
    let own = Grant {
        verbs: [Verb::Get, Verb::Update, Verb::Patch].into(),
        names: vec![checkpoint_name(&plan.name)],
    };
    rights.push((checkpoints.clone(), any));
    rights.push((checkpoints, own));
    Rights(rights)
}

#[cfg(test)]
mod tests {
    use super::*;
    use integrators::source::SpecFile;
    use std::path::Path;

    fn plan(text: &str) -> CastPlan {
        CastPlan::load(&SpecFile::from_text(Path::new("c.yaml"), text), None).unwrap().0
    }

    /// The stores on which `verb` is granted.
    fn with(rights: &Rights, verb: Verb) -> Vec<String> {
        let granted = rights.0.iter().filter(|(_, grant)| grant.verbs.contains(&verb));
        let stores: BTreeSet<String> = granted.map(|(store, _)| store.to_string()).collect();
        stores.into_iter().collect()
    }

    #[test]
    fn a_cast_reads_its_sources_and_writes_its_targets() {
        let plan = plan(
            "apiVersion: knactor.dev/v1\nkind: Cast\nmetadata: {name: c}\nspec:\n  inputs:\n    a: k/a\n    b: k/b\n    unused: k/u\n  edges:\n    - name: e\n      from: [a]\n      to: b\n      onDelete: cascade\n      set: {x: a.x}\n",
        );
        let rights = of_cast(&plan);
        assert_eq!(with(&rights, Verb::Watch), ["k/a"]);
        assert_eq!(with(&rights, Verb::Create), ["_knactor/checkpoints", "k/b"]);
        assert_eq!(with(&rights, Verb::Delete), ["k/b"]);
        let (_, own) = rights.0.iter().find(|(_, g)| !g.names.is_empty()).unwrap();
        assert_eq!(own.names, ["cast.c"]);
    }
}
