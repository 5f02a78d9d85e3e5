//! Rights (DESIGN §11): what one principal may do to which stores, down to the top-level
//! fields of `.data` it may see and change and the objects it may touch, and
//! [`ScopedExchange`], an Object exchange handle that holds a principal to its rights. Default
//! deny: a store the rights do not name cannot be reached at all, and a field it may not read
//! is not in the objects it gets.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use futures::StreamExt;
use serde_json::{Map, Value};

use crate::edge::{Edge, EdgeRunner, EdgesRun};
use crate::error::{Denial, ExchangeError, Result};
use crate::object::{
    Expect, Migration, Object, ObjectExchange, ObjectList, WatchStream, Write, WriteOp,
};
use crate::origin::{Origin, Origins};
use crate::store::StoreRef;

/// How often a write whose precondition the handle sets itself is tried again when another
/// write gets in between.
const RACED_WRITES: usize = 8;

/// The top-level fields of `.data` a principal may see, or change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fields {
    /// Every field.
    All,
    /// These fields only.
    Only(BTreeSet<String>),
}

impl Fields {
    /// These fields.
    pub fn only<S: Into<String>>(fields: impl IntoIterator<Item = S>) -> Self {
        Fields::Only(fields.into_iter().map(Into::into).collect())
    }

    /// Whether `field` is one of them.
    pub fn allows(&self, field: &str) -> bool {
        match self {
            Fields::All => true,
            Fields::Only(fields) => fields.contains(field),
        }
    }

    /// Both sets of fields.
    fn union(mine: Option<Fields>, theirs: Option<Fields>) -> Option<Fields> {
        match (mine, theirs) {
            (Some(Fields::Only(mut mine)), Some(Fields::Only(theirs))) => {
                mine.extend(theirs);
                Some(Fields::Only(mine))
            }
            (Some(Fields::All), _) | (_, Some(Fields::All)) => Some(Fields::All),
            (mine, theirs) => mine.or(theirs),
        }
    }

    /// `object` as one who sees these fields only sees it: the others of its `.data` left out.
    fn show(&self, object: Arc<Object>) -> Arc<Object> {
        let Fields::Only(fields) = self else { return object };
        let data = match &object.data {
            Value::Object(all) => {
                let seen = all.iter().filter(|(field, _)| fields.contains(*field));
                Value::Object(seen.map(|(k, v)| (k.clone(), v.clone())).collect())
            }
            _ => Value::Object(Map::new()),
        };
        Arc::new(Object {
            name: object.name.clone(),
            version: object.version,
            data,
            trace: object.trace,
        })
    }
}

/// What a principal may do to one store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// Get, list and watch, seeing these fields only; `None`: no read.
    pub read: Option<Fields>,
    /// Create and change objects, changing these fields only; `None`: no write.
    pub write: Option<Fields>,
    /// Delete objects.
    pub delete: bool,
    /// The objects the grant covers; `None`: every object.
    pub objects: Option<BTreeSet<String>>,
}

impl Grant {
    /// Everything, as a store's owner has it.
    pub fn owner() -> Self {
        Grant { read: Some(Fields::All), write: Some(Fields::All), delete: true, objects: None }
    }

    /// Get, list and watch only, seeing every field.
    pub fn read() -> Self {
        Grant { read: Some(Fields::All), write: None, delete: false, objects: None }
    }

    /// Get, list and watch only, seeing `fields` only.
    pub fn read_only(fields: Fields) -> Self {
        Grant { read: Some(fields), write: None, delete: false, objects: None }
    }

    /// Whether it lets its holder get, list and watch (some fields, at least).
    pub fn reads(&self) -> bool {
        self.read.is_some()
    }

    /// Adds `other`'s rights to these. Object scopes are joined when both have one; when only
    /// one has, it is kept for the whole grant, so that rights meant for some objects never
    /// reach every object (default deny: grant a store's other objects apart).
    fn widen(&mut self, other: Grant) {
        self.read = Fields::union(self.read.take(), other.read);
        self.delete |= other.delete;
        self.write = Fields::union(self.write.take(), other.write);
        self.objects = match (self.objects.take(), other.objects) {
            (Some(mut mine), Some(theirs)) => {
                mine.extend(theirs);
                Some(mine)
            }
            (Some(some), None) | (None, Some(some)) => Some(some),
            (None, None) => None,
        };
    }

    fn covers(&self, name: &str) -> bool {
        self.objects.as_ref().is_none_or(|objects| objects.contains(name))
    }

    /// `object` as its holder may see it: none of its fields without a read.
    fn show(&self, object: Arc<Object>) -> Arc<Object> {
        match &self.read {
            Some(fields) => fields.show(object),
            None => Fields::Only(BTreeSet::new()).show(object),
        }
    }
}

/// A principal's rights: a grant per store it may reach, nothing on the others.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rights {
    principal: String,
    grants: BTreeMap<StoreRef, Grant>,
}

impl Rights {
    /// No rights yet, for `principal` (e.g. `integrator:place-order`).
    pub fn new(principal: impl Into<String>) -> Self {
        Rights { principal: principal.into(), grants: BTreeMap::new() }
    }

    /// Adds `grant` on `store` (to what was granted there before).
    pub fn grant(&mut self, store: StoreRef, grant: Grant) -> &mut Self {
        match self.grants.get_mut(&store) {
            Some(granted) => granted.widen(grant),
            None => {
                self.grants.insert(store, grant);
            }
        }
        self
    }

    /// Adds every grant of `other` to these.
    pub fn extend(&mut self, other: &Rights) {
        for (store, grant) in &other.grants {
            self.grant(store.clone(), grant.clone());
        }
    }

    /// Keeps only the grants on the stores `keep` accepts.
    pub fn retain(&mut self, keep: impl Fn(&StoreRef) -> bool) {
        self.grants.retain(|store, _| keep(store));
    }

    /// Who holds them.
    pub fn principal(&self) -> &str {
        &self.principal
    }

    /// The grant on `store`, if any.
    pub fn on(&self, store: &StoreRef) -> Option<&Grant> {
        self.grants.get(store)
    }

    /// The grants, by store.
    pub fn grants(&self) -> impl Iterator<Item = (&StoreRef, &Grant)> {
        self.grants.iter()
    }

    /// The refusal of `operation` (of `field`, when a field is what is refused) on `store`.
    pub(crate) fn denied(
        &self,
        store: &StoreRef,
        operation: &'static str,
        field: Option<&str>,
        reason: String,
    ) -> ExchangeError {
        Denial {
            store: store.clone(),
            operation,
            field: field.map(str::to_owned),
            principal: Some(self.principal.clone()),
            reason,
        }
        .into()
    }

    /// The grant on `store` if it allows `operation` on the object `name` (any object when
    /// `None`), by `allowed`; else the refusal.
    pub(crate) fn check(
        &self,
        store: &StoreRef,
        operation: &'static str,
        name: Option<&str>,
        allowed: impl Fn(&Grant) -> bool,
    ) -> Result<&Grant> {
        let Some(grant) = self.grants.get(store) else {
            return Err(self.denied(
                store,
                operation,
                None,
                "it has no rights on this store".into(),
            ));
        };
        if !allowed(grant) {
            return Err(self.denied(
                store,
                operation,
                None,
                format!("it may not {operation} here"),
            ));
        }
        match name {
            Some(name) if !grant.covers(name) => Err(self.denied(
                store,
                operation,
                None,
                format!("object `{name}` is not one of those it may reach"),
            )),
            _ => Ok(grant),
        }
    }

    /// Checks that a write turning `old` (`None`: absent) into `new` changes only fields
    /// `fields` allows.
    fn check_change(
        &self,
        store: &StoreRef,
        operation: &'static str,
        fields: &Fields,
        old: Option<&Value>,
        new: &Value,
    ) -> Result<()> {
        let empty = Map::new();
        let (old, new) = (fields_of(old, &empty), fields_of(Some(new), &empty));
        let mut changed = old.keys().chain(new.keys()).filter(|k| old.get(*k) != new.get(*k));
        match changed.find(|field| !fields.allows(field)) {
            Some(field) => {
                Err(self.denied(store, operation, Some(field), "not a field it may write".into()))
            }
            None => Ok(()),
        }
    }
}

/// The top-level fields of `data` (none when absent or not an object).
fn fields_of<'a>(data: Option<&'a Value>, empty: &'a Map<String, Value>) -> &'a Map<String, Value> {
    data.and_then(Value::as_object).unwrap_or(empty)
}

/// Rights that can be replaced while handles use them: each operation reads them once, at
/// its start.
#[derive(Debug)]
pub(crate) struct RightsCell(RwLock<Arc<Rights>>);

impl RightsCell {
    pub(crate) fn new(rights: Rights) -> Self {
        RightsCell(RwLock::new(Arc::new(rights)))
    }

    pub(crate) fn get(&self) -> Arc<Rights> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn set(&self, rights: Rights) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(rights);
    }
}

/// An Object exchange handle held to one principal's [`Rights`]: every operation on a store
/// they do not allow is refused with [`ExchangeError::Denied`], naming the principal, store,
/// operation and field, and changes nothing. The rights can be replaced while it is in use
/// (an integrator's, when its spec is re-applied); each operation is checked against the
/// rights at its start.
pub struct ScopedExchange {
    inner: Arc<dyn ObjectExchange>,
    /// Shared with its open watches, which show each change as the rights at its time allow.
    rights: Arc<RightsCell>,
}

impl fmt::Debug for ScopedExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopedExchange").field("principal", &self.rights().principal).finish()
    }
}

impl ScopedExchange {
    /// `inner`, reachable only as `rights` allow.
    pub fn new(inner: Arc<dyn ObjectExchange>, rights: Rights) -> Self {
        ScopedExchange { inner, rights: Arc::new(RightsCell::new(rights)) }
    }

    /// The rights it holds to now.
    pub fn rights(&self) -> Arc<Rights> {
        self.rights.get()
    }

    /// Holds it to `rights` from now on.
    pub fn set_rights(&self, rights: Rights) {
        self.rights.set(rights);
    }

    /// A write of whole data by a principal that may change `fields` and see `seen`: the
    /// fields it cannot see are kept as they are (it replaces what it sees), and the result is
    /// checked against the object's state it replaces, which the write is then made
    /// conditional on.
    async fn put(
        &self,
        rights: &Rights,
        store: &StoreRef,
        (fields, seen): (&Fields, Option<&Fields>),
        write: Write,
    ) -> Result<Arc<Object>> {
        let WriteOp::Put(given) = &write.op else { unreachable!("put is called with puts only") };
        // A field it may neither see nor write is refused whatever its value, so that a write
        // cannot tell whether a guess of that value was right.
        let empty = Map::new();
        let blind =
            |field: &&String| !fields.allows(field) && !seen.is_some_and(|s| s.allows(field));
        if let Some(field) = fields_of(Some(given), &empty).keys().find(blind) {
            let reason = "not a field it may see or write".to_owned();
            return Err(rights.denied(store, "put", Some(field), reason));
        }
        if write.expect == Expect::Absent {
            rights.check_change(store, "put", fields, None, given)?;
            return self.inner.write(store, write).await;
        }
        let mut raced = 0;
        loop {
            let current = self.inner.get(store, &write.name).await?;
            let expect = match (write.expect, &current) {
                (Expect::Version(want), current) => {
                    if current.as_ref().map(|o| o.version) != Some(want) {
                        // Refused here: a later write could take the object to that version.
                        return Err(write_check(
                            &write,
                            store,
                            current.as_ref().map(|o| o.version),
                        ));
                    }
                    Expect::Version(want)
                }
                (Expect::Present, None) => return Err(write_check(&write, store, None)),
                (_, Some(object)) => Expect::Version(object.version),
                (_, None) => Expect::Absent,
            };
            let data = keep_unseen(given, current.as_deref(), seen);
            rights.check_change(store, "put", fields, current.as_ref().map(|o| &o.data), &data)?;
            let conditional = Write {
                name: write.name.clone(),
                op: WriteOp::Put(data),
                expect,
                origin: write.origin.clone(),
            };
            match self.inner.write(store, conditional).await {
                Err(ExchangeError::Conflict { .. } | ExchangeError::AlreadyExists { .. })
                    if write.expect != expect && raced + 1 < RACED_WRITES =>
                {
                    raced += 1;
                }
                outcome => return outcome,
            }
        }
    }

    /// `write`, if `rights` allow it.
    async fn checked_write(
        &self,
        rights: &Rights,
        store: &StoreRef,
        write: Write,
    ) -> Result<Arc<Object>> {
        let name = Some(write.name.as_str());
        match &write.op {
            WriteOp::Delete => {
                rights.check(store, "delete", name, |g| g.delete)?;
                self.inner.write(store, write).await
            }
            WriteOp::Patch(patch) => {
                let grant = rights.check(store, "patch", name, |g| g.write.is_some())?;
                let writable = grant.write.as_ref().expect("checked above");
                let patched = patch.as_object().into_iter().flat_map(|p| p.keys());
                if let Some(field) = patched.into_iter().find(|f| !writable.allows(f)) {
                    let reason = "not a field it may write".to_owned();
                    return Err(rights.denied(store, "patch", Some(field), reason));
                }
                self.inner.write(store, write).await
            }
            WriteOp::Put(_) => {
                let grant = rights.check(store, "put", name, |g| g.write.is_some())?;
                let fields = grant.write.as_ref().expect("checked above");
                match (fields, &grant.read) {
                    (Fields::All, Some(Fields::All)) => self.inner.write(store, write).await,
                    (fields, seen) => self.put(rights, store, (fields, seen.as_ref()), write).await,
                }
            }
        }
    }
}

/// `data` with the fields of `current` that one seeing `seen` (`None`: nothing) cannot see and
/// `data` does not name.
fn keep_unseen(data: &Value, current: Option<&Object>, seen: Option<&Fields>) -> Value {
    let (Some(current), Value::Object(given)) = (current, data) else { return data.clone() };
    let mut kept = given.clone();
    for (field, value) in fields_of(Some(&current.data), &Map::new()) {
        if !seen.is_some_and(|s| s.allows(field)) && !kept.contains_key(field) {
            kept.insert(field.clone(), value.clone());
        }
    }
    Value::Object(kept)
}

/// The error `write` fails with when the object is at `current` (`None`: absent).
fn write_check(write: &Write, store: &StoreRef, current: Option<u64>) -> ExchangeError {
    match write.check(store, current) {
        Err(e) => e,
        Ok(()) => unreachable!("called only for a precondition that does not hold"),
    }
}

#[async_trait]
impl ObjectExchange for ScopedExchange {
    /// Only a store's owner (every right on every object) may register it.
    async fn register(&self, store: &StoreRef, schema: &Value) -> Result<()> {
        self.rights().check(store, "register", None, |g| *g == Grant::owner())?;
        self.inner.register(store, schema).await
    }

    /// Only a store's owner may change its schema.
    async fn evolve(
        &self,
        store: &StoreRef,
        schema: &Value,
        migration: Option<&Migration>,
    ) -> Result<u64> {
        self.rights().check(store, "evolve", None, |g| *g == Grant::owner())?;
        self.inner.evolve(store, schema, migration).await
    }

    async fn get(&self, store: &StoreRef, name: &str) -> Result<Option<Arc<Object>>> {
        let rights = self.rights();
        let grant = rights.check(store, "get", Some(name), Grant::reads)?;
        Ok(self.inner.get(store, name).await?.map(|object| grant.show(object)))
    }

    async fn list(&self, store: &StoreRef) -> Result<ObjectList> {
        let rights = self.rights();
        let grant = rights.check(store, "list", None, Grant::reads)?;
        let mut list = self.inner.list(store).await?;
        if grant.objects.is_some() {
            list.items.retain(|o| grant.covers(&o.name));
        }
        if grant.read != Some(Fields::All) {
            list.items = list.items.into_iter().map(|object| grant.show(object)).collect();
        }
        Ok(list)
    }

    /// The object written, as the principal may see it. The write is the principal's: an
    /// origin it may not claim is replaced by theirs.
    async fn write(&self, store: &StoreRef, mut write: Write) -> Result<Arc<Object>> {
        let rights = self.rights();
        let principal = rights.principal();
        if write.origin.as_ref().is_none_or(|origin| !origin.may_be_claimed_by(principal)) {
            write.origin = Some(Arc::new(Origin::by(principal)));
        }
        let written = self.checked_write(&rights, store, write).await?;
        Ok(match rights.on(store) {
            Some(grant) => grant.show(written),
            None => written,
        })
    }

    /// Only where it may read, and only of the fields it may see.
    async fn origins(&self, store: &StoreRef, name: &str) -> Result<Option<Origins>> {
        let rights = self.rights();
        let grant = rights.check(store, "get", Some(name), Grant::reads)?;
        let mut origins = self.inner.origins(store, name).await?;
        if let (Some(origins), Some(fields)) = (&mut origins, &grant.read) {
            origins.retain(|field, _| fields.allows(field));
        }
        Ok(origins)
    }

    /// Each change is shown as the rights at its time allow: a re-apply that changes them
    /// changes what an open watch shows, and one that takes the read away ends it, with the
    /// denial.
    async fn watch(&self, store: &StoreRef, from: u64) -> Result<WatchStream> {
        self.rights().check(store, "watch", None, Grant::reads)?;
        let watch = self.inner.watch(store, from).await?;
        let open = Some((watch, self.rights.clone(), store.clone()));
        let shown = futures::stream::unfold(open, |open| async move {
            let (mut watch, cell, store) = open?;
            loop {
                let event = match watch.next().await? {
                    Ok(event) => event,
                    Err(e) => return Some((Err(e), Some((watch, cell, store)))),
                };
                let rights = cell.get();
                match rights.check(&store, "watch", None, Grant::reads) {
                    Err(denied) => return Some((Err(denied), None)),
                    Ok(grant) if !grant.covers(&event.object().name) => continue,
                    Ok(grant) => {
                        let event = event.map(|object| grant.show(object));
                        return Some((Ok(event), Some((watch, cell, store))));
                    }
                }
            }
        });
        Ok(shown.boxed())
    }

    async fn version(&self, store: &StoreRef) -> Result<u64> {
        self.rights().check(store, "list", None, |g| g.reads())?;
        self.inner.version(store).await
    }

    async fn count(&self, store: &StoreRef) -> Result<Option<u64>> {
        self.rights().check(store, "list", None, |g| g.reads())?;
        self.inner.count(store).await
    }

    fn edge_runner(&self) -> Option<&dyn EdgeRunner> {
        self.inner.edge_runner().map(|_| self as &dyn EdgeRunner)
    }

    fn versions_per_store(&self) -> bool {
        self.inner.versions_per_store()
    }
}

/// Edges handed to the exchange run there with the rights of the principal that hands them
/// over, not more: an edge that reads, writes a field or deletes beyond them is refused.
#[async_trait]
impl EdgeRunner for ScopedExchange {
    async fn run_edges(&self, owner: &str, edges: &[Edge]) -> Result<EdgesRun> {
        let runner = self.inner.edge_runner().expect("offered only over a runner");
        let rights = self.rights();
        let (mut within, mut refused) = (Vec::new(), Vec::new());
        for edge in edges {
            match beyond(&rights, edge) {
                None => within.push(edge.clone()),
                Some(why) => refused.push((edge.name().to_owned(), why)),
            }
        }
        let mut run = runner.run_edges(owner, &within).await?;
        run.refused.extend(refused);
        Ok(run)
    }
}

/// Why `edge` goes beyond `rights`, if it does.
fn beyond(rights: &Rights, edge: &Edge) -> Option<String> {
    let principal = rights.principal();
    if let Some((_, store)) =
        edge.sources().iter().find(|(_, s)| !rights.on(s).is_some_and(|g| g.reads()))
    {
        return Some(format!("{principal} may not read {store}"));
    }
    let target = edge.target();
    let grant = rights.on(target).filter(|g| g.objects.is_none());
    let Some(fields) = grant.and_then(|g| g.write.as_ref()) else {
        return Some(format!("{principal} may not write {target}"));
    };
    if let Some(field) = edge.fields().into_iter().find(|f| !fields.allows(f)) {
        return Some(format!("{principal} may not write field `{field}` of {target}"));
    }
    (edge.cascade() && !grant.is_some_and(|g| g.delete))
        .then(|| format!("{principal} may not delete from {target}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EmbeddedExchange;
    use serde_json::json;

    fn store(s: &str) -> StoreRef {
        s.parse().unwrap()
    }

    /// An embedded exchange with `k/a` and `k/b` (each holding `o1`), and a handle on it for
    /// `rights`.
    async fn scoped(rights: Rights) -> (Arc<dyn ObjectExchange>, ScopedExchange) {
        let inner: Arc<dyn ObjectExchange> = Arc::new(EmbeddedExchange::in_memory());
        for s in ["k/a", "k/b"] {
            inner.register(&store(s), &json!({"type": "object"})).await.unwrap();
            inner.write(&store(s), Write::create("o1", json!({"x": 1, "y": 1}))).await.unwrap();
        }
        (inner.clone(), ScopedExchange::new(inner, rights))
    }

    fn writer_of(fields: &[&str]) -> Rights {
        let fields = Fields::Only(fields.iter().map(|f| (*f).to_owned()).collect());
        let mut rights = Rights::new("integrator:c");
        let grant = Grant { write: Some(fields), ..Grant::read() };
        rights.grant(store("k/a"), grant);
        rights
    }

    fn denial(e: ExchangeError) -> (&'static str, Option<String>) {
        match e {
            ExchangeError::Denied(denial) => {
                let Denial { operation, field, principal, .. } = *denial;
                assert_eq!(principal.as_deref(), Some("integrator:c"));
                (operation, field)
            }
            other => panic!("expected a denial, got {other}"),
        }
    }

    #[tokio::test]
    async fn a_store_without_a_grant_cannot_be_reached_at_all() {
        let (_, scoped) = scoped(writer_of(&["x"])).await;
        let b = store("k/b");
        assert_eq!(denial(scoped.get(&b, "o1").await.unwrap_err()).0, "get");
        assert_eq!(denial(scoped.list(&b).await.unwrap_err()).0, "list");
        assert_eq!(denial(scoped.watch(&b, 0).await.err().unwrap()).0, "watch");
        assert_eq!(denial(scoped.version(&b).await.unwrap_err()).0, "list");
        let put = scoped.write(&b, Write::put("o2", json!({}))).await.unwrap_err();
        assert_eq!(denial(put).0, "put");
        let register = scoped.register(&b, &json!({})).await.unwrap_err();
        assert_eq!(denial(register).0, "register");
    }

    #[tokio::test]
    async fn a_write_may_change_the_granted_fields_only_and_a_denied_one_changes_nothing() {
        let (inner, scoped) = scoped(writer_of(&["x"])).await;
        let a = store("k/a");
        scoped.write(&a, Write::patch("o1", json!({"x": 2}))).await.unwrap();
        let patch = scoped.write(&a, Write::patch("o1", json!({"x": 3, "y": 3}))).await;
        assert_eq!(denial(patch.unwrap_err()), ("patch", Some("y".into())));
        // A whole-data write is compared with the state it replaces: `y` kept is no change.
        let v = inner.get(&a, "o1").await.unwrap().unwrap().version;
        let keep_y = Write::replace("o1", json!({"x": 4, "y": 1})).if_version(v);
        let written = scoped.write(&a, keep_y).await.unwrap();
        let drop_y = Write::put("o1", json!({"x": 5}));
        assert_eq!(denial(scoped.write(&a, drop_y).await.unwrap_err()), ("put", Some("y".into())));
        let create = Write::create("o2", json!({"x": 1, "z": 1}));
        assert_eq!(denial(scoped.write(&a, create).await.unwrap_err()), ("put", Some("z".into())));
        let delete = scoped.write(&a, Write::delete("o1")).await.unwrap_err();
        assert_eq!(denial(delete), ("delete", None));
        assert_eq!(inner.get(&a, "o1").await.unwrap(), Some(written));
        assert_eq!(inner.list(&a).await.unwrap().items.len(), 1);
    }

    #[tokio::test]
    async fn a_writes_origin_is_its_principals_and_covers_only_the_fields_it_changed() {
        let mut rights = Rights::new("knactor:k");
        let only_x =
            Grant { write: Some(Fields::only(["x"])), ..Grant::read_only(Fields::only(["x"])) };
        rights.grant(store("k/a"), only_x);
        let (inner, scoped) = scoped(rights).await;
        let a = store("k/a");
        let owner = Arc::new(Origin::by("knactor:owner"));
        inner.write(&a, Write::patch("o1", json!({"y": 2})).by(owner.clone())).await.unwrap();
        // It claims to be someone else, and puts what it sees: `y`, kept as it was, is not its.
        let claimed = Write::put("o1", json!({"x": 5})).by(Arc::new(Origin::by("operator")));
        scoped.write(&a, claimed).await.unwrap();
        let origins = inner.origins(&a, "o1").await.unwrap().unwrap();
        let writers: Vec<(&str, &str)> =
            origins.iter().map(|(f, s)| (f.as_str(), s.origin.writer.as_str())).collect();
        assert_eq!(writers, [("x", "knactor:k"), ("y", "knactor:owner")]);
        let seen = scoped.origins(&a, "o1").await.unwrap().unwrap();
        assert_eq!(seen.keys().collect::<Vec<_>>(), ["x"], "it sees the origins of `x` only");
        let hidden = scoped.origins(&store("k/b"), "o1").await.unwrap_err();
        assert!(matches!(hidden, ExchangeError::Denied(_)), "{hidden}");
    }

    #[tokio::test]
    async fn a_conditional_put_at_another_version_is_refused_before_it_is_checked() {
        let (_, scoped) = scoped(writer_of(&["x"])).await;
        let a = store("k/a");
        // Version 100 is not the object's now but could become it: not written, a conflict.
        let later = Write::replace("o1", json!({"x": 1})).if_version(100);
        let err = scoped.write(&a, later).await.unwrap_err();
        assert!(matches!(err, ExchangeError::Conflict { expected: 100, .. }), "{err}");
    }

    #[tokio::test]
    async fn a_grant_on_some_objects_hides_the_others() {
        let mut rights = Rights::new("integrator:c");
        let only_o2 = Grant { objects: Some(["o2".to_owned()].into()), ..Grant::owner() };
        rights.grant(store("k/a"), only_o2);
        let (inner, scoped) = scoped(rights).await;
        let a = store("k/a");
        assert_eq!(denial(scoped.get(&a, "o1").await.unwrap_err()).0, "get");
        scoped.write(&a, Write::create("o2", json!({"y": 2}))).await.unwrap();
        let listed: Vec<_> = scoped.list(&a).await.unwrap().items;
        assert_eq!(listed.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(), ["o2"]);
        let mut watch = scoped.watch(&a, 0).await.unwrap();
        inner.write(&a, Write::patch("o1", json!({"y": 9}))).await.unwrap();
        inner.write(&a, Write::patch("o2", json!({"y": 9}))).await.unwrap();
        let seen = tokio::time::timeout(std::time::Duration::from_secs(5), watch.next()).await;
        let seen = seen.expect("no change of o2 within 5 s").unwrap().unwrap();
        assert_eq!(seen.object().name, "o2");
        assert_eq!(seen.object().data, json!({"y": 2}));
    }

    #[tokio::test]
    async fn a_field_it_may_not_read_is_in_none_of_the_objects_it_gets() {
        let mut rights = Rights::new("integrator:c");
        let grant =
            Grant { write: Some(Fields::only(["y"])), ..Grant::read_only(Fields::only(["x"])) };
        rights.grant(store("k/a"), grant);
        rights.grant(store("k/b"), Grant { write: Some(Fields::All), ..Grant::owner() });
        let (inner, scoped) = scoped(rights).await;
        let a = store("k/a");
        let mut watch = scoped.watch(&a, 0).await.unwrap();
        let got = scoped.get(&a, "o1").await.unwrap().unwrap();
        assert_eq!(got.data, json!({"x": 1}));
        assert_eq!(scoped.list(&a).await.unwrap().items, vec![got]);
        let seen = tokio::time::timeout(std::time::Duration::from_secs(5), watch.next()).await;
        let seen = seen.expect("no event within 5 s").unwrap().unwrap();
        assert_eq!(seen.object().data, json!({"x": 1}), "a watch shows what a get shows");
        // What it writes comes back as it may see it; the stored object keeps every field.
        let written = scoped.write(&a, Write::patch("o1", json!({"y": 2}))).await.unwrap();
        assert_eq!(written.data, json!({"x": 1}));
        assert_eq!(inner.get(&a, "o1").await.unwrap().unwrap().data, json!({"x": 1, "y": 2}));
        let b = store("k/b");
        assert_eq!(scoped.get(&b, "o1").await.unwrap().unwrap().data, json!({"x": 1, "y": 1}));
    }

    #[tokio::test]
    async fn a_whole_object_write_replaces_what_its_writer_sees_and_keeps_the_rest() {
        let mut rights = Rights::new("integrator:c");
        let grant = Grant { write: Some(Fields::All), ..Grant::read_only(Fields::only(["x"])) };
        rights.grant(store("k/a"), grant);
        let (inner, scoped) = scoped(rights).await;
        let a = store("k/a");
        let written = scoped.write(&a, Write::put("o1", json!({"x": 9}))).await.unwrap();
        assert_eq!(written.data, json!({"x": 9}));
        assert_eq!(inner.get(&a, "o1").await.unwrap().unwrap().data, json!({"x": 9, "y": 1}));
    }

    #[tokio::test]
    async fn a_whole_object_write_naming_a_field_it_cannot_see_is_refused_even_when_right() {
        let mut rights = Rights::new("integrator:c");
        let grant =
            Grant { write: Some(Fields::only(["x"])), ..Grant::read_only(Fields::only(["x"])) };
        rights.grant(store("k/a"), grant);
        let (_, scoped) = scoped(rights).await;
        let a = store("k/a");
        for guess in [1, 2] {
            let write = Write::put("o1", json!({"x": 5, "y": guess}));
            let refused = scoped.write(&a, write).await.unwrap_err();
            assert_eq!(denial(refused), ("put", Some("y".into())), "guess {guess}");
        }
    }

    #[tokio::test]
    async fn an_open_watch_shows_each_change_as_the_rights_at_its_time_allow() {
        let reader = |fields: Fields| {
            let mut rights = Rights::new("integrator:c");
            rights.grant(store("k/a"), Grant::read_only(fields));
            rights
        };
        let (inner, scoped) = scoped(reader(Fields::only(["x"]))).await;
        let a = store("k/a");
        let version = inner.version(&a).await.unwrap();
        let mut watch = scoped.watch(&a, version).await.unwrap();
        let mut next = async || {
            let next = tokio::time::timeout(std::time::Duration::from_secs(5), watch.next());
            next.await.expect("no event within 5 s")
        };
        inner.write(&a, Write::patch("o1", json!({"x": 2}))).await.unwrap();
        assert_eq!(next().await.unwrap().unwrap().object().data, json!({"x": 2}));
        scoped.set_rights(reader(Fields::All));
        inner.write(&a, Write::patch("o1", json!({"x": 3}))).await.unwrap();
        assert_eq!(next().await.unwrap().unwrap().object().data, json!({"x": 3, "y": 1}));
        scoped.set_rights(Rights::new("integrator:c"));
        inner.write(&a, Write::patch("o1", json!({"x": 4}))).await.unwrap();
        assert_eq!(denial(next().await.unwrap().unwrap_err()).0, "watch");
        assert!(next().await.is_none(), "a watch whose read is taken away ends");
    }

    #[tokio::test]
    async fn new_rights_hold_from_the_next_operation() {
        let (_, scoped) = scoped(writer_of(&["x", "y"])).await;
        let a = store("k/a");
        scoped.write(&a, Write::patch("o1", json!({"y": 2}))).await.unwrap();
        scoped.set_rights(writer_of(&["x"]));
        let patch = scoped.write(&a, Write::patch("o1", json!({"y": 3}))).await;
        assert_eq!(denial(patch.unwrap_err()), ("patch", Some("y".into())));
    }

    #[test]
    fn rights_on_some_objects_never_widen_to_every_object() {
        let mut rights = Rights::new("integrator:c");
        rights.grant(store("k/a"), Grant::read());
        let own = Grant { objects: Some(["mine".to_owned()].into()), ..Grant::owner() };
        rights.grant(store("k/a"), own);
        let grant = rights.on(&store("k/a")).unwrap();
        assert_eq!(grant.objects, Some(["mine".to_owned()].into()));
    }

    #[test]
    fn grants_on_one_store_add_up() {
        let mut rights = writer_of(&["x"]);
        let more = Grant { delete: true, ..writer_of(&["y"]).on(&store("k/a")).unwrap().clone() };
        rights.grant(store("k/a"), more);
        let grant = rights.on(&store("k/a")).unwrap();
        assert_eq!(grant.write, Some(Fields::Only(["x".to_owned(), "y".to_owned()].into())));
        assert!(grant.reads() && grant.delete && grant.objects.is_none());
    }
}
