//! Who may do what on which Object store: the rights each knactor and each Cast spec needs,
//! worked out from its manifest or its checked plan, and the fields of each store a Cast spec
//! may write. Log stores are not on the apiserver, so they need no rights here.

use std::collections::{BTreeMap, BTreeSet};

use data_exchange::StoreRef;
use data_exchange::access::Fields;
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
            Verb::Delete => "delete",
        }
    }
}

// The requests each operation of the apiserver exchange (`data_exchange::KubeExchange`) makes,
// as RBAC verbs. It never sends a PATCH: a merge patch is read, merged and replaced.

/// `get` of one object.
const GET: &[Verb] = &[Verb::Get];
/// `list`, `version` (a list of at most one item), and a watch from version 0 (which lists
/// first).
const LIST: &[Verb] = &[Verb::List];
/// A watch from a version.
const WATCH: &[Verb] = &[Verb::Watch];
/// A write that needs the current object (a merge patch, or a put without a version): a read,
/// then a create (POST) or a replace conditional on the version read (PUT); again after a
/// conflict.
const MERGE: &[Verb] = &[Verb::Get, Verb::Create, Verb::Update];
/// A delete: a read, the deletion conditional on the version read, then a list of at most one
/// item for the store's version after it (the apiserver answers a deletion without one).
const DELETE: &[Verb] = &[Verb::Get, Verb::Delete, Verb::List];
/// Everything a knactor may do to its own stores: its reconciler reads, writes and deletes its
/// objects, its controller lists and watches them.
const OWN: &[Verb] =
    &[Verb::Get, Verb::List, Verb::Watch, Verb::Create, Verb::Update, Verb::Delete];

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
    let grant = || Grant { verbs: OWN.iter().copied().collect(), names: Vec::new() };
    Rights(objects.map(|s| (s.store_ref(name), grant())).collect())
}

/// A Cast spec's rights, as its integrator uses the exchange: per edge, to list (catching up)
/// and watch the stores in its `from`, to get the other `from` objects a change loads by its
/// name, to list the collected inputs it reads, and to merge into its target (and delete
/// there when it cascades deletions); and to read, create and replace its own checkpoint.
pub(super) fn of_cast(plan: &CastPlan) -> Rights {
    let mut verbs: BTreeMap<StoreRef, BTreeSet<Verb>> = BTreeMap::new();
    let mut grant = |alias: &str, granted: &[Verb]| {
        if let Some(input) = plan.inputs.get(alias) {
            verbs.entry(input.store.clone()).or_default().extend(granted);
        }
    };
    for edge in &plan.edges {
        let from: BTreeSet<&String> = edge.spec.from.iter().collect();
        for alias in &from {
            grant(alias, LIST);
            grant(alias, WATCH);
        }
        let collected = |alias: &&String| plan.inputs.get(*alias).is_some_and(|i| i.collect);
        // A change of one `from` object loads the others by its name.
        if from.len() > 1 {
            for alias in from.iter().filter(|a| !collected(a)) {
                grant(alias, GET);
            }
        }
        for alias in edge.reads.iter().chain(&edge.spec.from).filter(collected) {
            grant(alias, LIST);
        }
        grant(&edge.spec.to, MERGE);
        if edge.spec.on_delete == OnDelete::Cascade {
            grant(&edge.spec.to, DELETE);
        }
    }
    let mut rights: Vec<_> = verbs
        .into_iter()
        .map(|(store, verbs)| (store, Grant { verbs, names: Vec::new() }))
        .collect();
    // Its checkpoint is a merge into one object (a read, then a create or a replace): reading
    // and replacing it can be limited to its name, creating it cannot (RBAC decides before
    // the name, in the request's body, is known).
    let checkpoints = checkpoint_store();
    let any = Grant { verbs: [Verb::Create].into(), names: Vec::new() };
    let own =
        Grant { verbs: [Verb::Get, Verb::Update].into(), names: vec![checkpoint_name(&plan.name)] };
    rights.push((checkpoints.clone(), any));
    rights.push((checkpoints, own));
    Rights(rights)
}

/// The verbs of what policies declare for a principal (`declared`, whole stores), on the
/// Object stores among them (`objects`): get, list and watch to read, a merge to write, a
/// delete to delete. RBAC sees no fields: a write's are held by the admission policy, and a
/// read shows every field.
pub(super) fn of_declared(
    declared: &data_exchange::access::Rights,
    objects: &BTreeMap<StoreRef, serde_json::Value>,
) -> Rights {
    let mut rights = Vec::new();
    for (store, grant) in declared.grants().filter(|(store, _)| objects.contains_key(store)) {
        let mut verbs = BTreeSet::new();
        if grant.reads() {
            verbs.extend(GET.iter().chain(LIST).chain(WATCH));
        }
        if grant.write.is_some() {
            verbs.extend(MERGE);
        }
        if grant.delete {
            verbs.extend(DELETE);
        }
        rights.push((store.clone(), Grant { verbs, names: Vec::new() }));
    }
    Rights(rights)
}

/// The top-level fields of `.data` a principal may write, per store where it may write some
/// fields only, as its rights in process have them.
pub(super) fn limited_writes(
    rights: &data_exchange::access::Rights,
) -> BTreeMap<StoreRef, BTreeSet<String>> {
    let limited = rights.grants().filter_map(|(store, grant)| match &grant.write {
        Some(Fields::Only(fields)) if !fields.is_empty() => Some((store.clone(), fields.clone())),
        _ => None,
    });
    limited.collect()
}

/// The top-level fields of `.data` a Cast spec may write, per store its edges write: the
/// fields their `set` names (`order.status` sets `order`), as its rights in process have them
/// ([`CastPlan::rights`]). An edge creating its target creates it with these fields only.
pub(super) fn fields_of_cast(plan: &CastPlan) -> BTreeMap<StoreRef, BTreeSet<String>> {
    limited_writes(&plan.rights())
}

#[cfg(test)]
mod tests {
    use super::*;
    use integrators::source::SpecFile;
    use std::path::Path;

    fn plan(text: &str) -> CastPlan {
        CastPlan::load(&SpecFile::from_text(Path::new("c.yaml"), text), None).unwrap().0
    }

    /// The verbs granted on every object of each store, as RBAC names them.
    fn on_all(rights: &Rights) -> BTreeMap<String, Vec<&'static str>> {
        let all = rights.0.iter().filter(|(_, grant)| grant.names.is_empty());
        all.map(|(store, g)| (store.to_string(), g.verbs.iter().map(|v| v.as_str()).collect()))
            .collect()
    }

    #[test]
    fn a_cast_gets_the_verbs_its_integrator_sends_and_no_more() {
        let plan = plan(
            "apiVersion: knactor.dev/v1\nkind: Cast\nmetadata: {name: c}\nspec:\n  inputs:\n    a: k/a\n    b: k/b\n    c: k/c\n    d: k/d\n    all: {store: k/e, collect: true}\n    unused: k/u\n  edges:\n    - name: copy\n      from: [a]\n      to: b\n      set: {x: a.x}\n    - name: join\n      from: [a, c]\n      to: d\n      onDelete: cascade\n      set: {x: c.x, n: 'count(all)'}\n",
        );
        let rights = of_cast(&plan);
        let expected: BTreeMap<String, Vec<&str>> = [
            ("_knactor/checkpoints", vec!["create"]),
            // Watched, listed to catch up, and loaded by name when `c` changes.
            ("k/a", vec!["get", "list", "watch"]),
            // Only written: read to merge into, then created or replaced.
            ("k/b", vec!["get", "create", "update"]),
            ("k/c", vec!["get", "list", "watch"]),
            // Written and deleted: a deletion lists for the store's version after it.
            ("k/d", vec!["get", "list", "create", "update", "delete"]),
            // Collected: listed.
            ("k/e", vec!["list"]),
        ]
        .into_iter()
        .map(|(store, verbs)| (store.to_owned(), verbs))
        .collect();
        assert_eq!(on_all(&rights), expected);
        let named: Vec<_> = rights.0.iter().filter(|(_, g)| !g.names.is_empty()).collect();
        assert_eq!(named.len(), 1);
        let (store, own) = named[0];
        assert_eq!(*store, checkpoint_store());
        assert_eq!(own.names, ["cast.c"]);
        assert_eq!(own.verbs, [Verb::Get, Verb::Update].into());
    }

    #[test]
    fn a_source_of_single_source_edges_is_listed_and_watched_only() {
        let plan = plan(
            "apiVersion: knactor.dev/v1\nkind: Cast\nmetadata: {name: c}\nspec:\n  inputs:\n    a: k/a\n    b: k/b\n  edges:\n    - name: e\n      from: [a]\n      to: b\n      set: {x: a.x}\n",
        );
        assert_eq!(on_all(&of_cast(&plan))["k/a"], ["list", "watch"]);
    }

    #[test]
    fn a_cast_may_write_the_top_level_fields_its_edges_set() {
        let plan = plan(
            "apiVersion: knactor.dev/v1\nkind: Cast\nmetadata: {name: c}\nspec:\n  inputs:\n    a: k/a\n    b: k/b\n    c: k/c\n  edges:\n    - name: one\n      from: [a]\n      to: b\n      set: {x: a.x, y.z: a.x}\n    - name: two\n      from: [c]\n      to: b\n      set: {w: c.w}\n    - name: three\n      from: [b]\n      to: c\n      set: {v: b.x}\n",
        );
        let fields = fields_of_cast(&plan);
        let of = |store: &str| -> Vec<&str> {
            fields[&store.parse::<StoreRef>().unwrap()].iter().map(String::as_str).collect()
        };
        assert_eq!(fields.len(), 2, "{fields:?}");
        assert_eq!(of("k/b"), ["w", "x", "y"]);
        assert_eq!(of("k/c"), ["v"]);
    }

    #[test]
    fn declared_grants_become_verbs_on_object_stores_and_limited_writes_become_fields() {
        use data_exchange::access::{Grant, Rights as Declared};
        let mut declared = Declared::new("knactor:r");
        let store = |s: &str| s.parse::<StoreRef>().unwrap();
        declared.grant(store("k/read"), Grant::read_only(Fields::only(["x"])));
        let writes = Grant { write: Some(Fields::only(["y"])), ..Grant::read() };
        declared.grant(store("k/write"), writes);
        declared.grant(store("k/gone"), Grant { delete: true, ..Grant::read() });
        declared.grant(store("k/log"), Grant::owner());
        let objects = ["k/read", "k/write", "k/gone"].map(|s| (store(s), serde_json::json!({})));
        let rights = of_declared(&declared, &objects.into());
        let expected: BTreeMap<String, Vec<&str>> = [
            ("k/gone", vec!["get", "list", "watch", "delete"]),
            ("k/read", vec!["get", "list", "watch"]),
            ("k/write", vec!["get", "list", "watch", "create", "update"]),
        ]
        .into_iter()
        .map(|(store, verbs)| (store.to_owned(), verbs))
        .collect();
        assert_eq!(on_all(&rights), expected, "the Log store is not on the apiserver");
        let fields = limited_writes(&declared);
        assert_eq!(fields.keys().map(ToString::to_string).collect::<Vec<_>>(), ["k/write"]);
    }
}
