//! Field provenance (`knactor why`): from the origins the exchange keeps of each field (see
//! [`data_exchange::origin`]), the trail of writes that gave a field its value: the edge and
//! spec version that last wrote it, the expression, the objects it read at their versions, and
//! recursively where the fields it read came from, back to the writes of knactors or the
//! operator that started it.

use std::collections::BTreeSet;
use std::sync::Arc;

use data_exchange::{ExchangeError, ObjectExchange, Origin, Origins, Source, StoreRef};
use integrators::cast::expr::ValueExpr;
use serde::Serialize;
use serde_json::Value;

/// How many writes deep a trail is followed.
const MAX_DEPTH: usize = 8;

/// How many fields one answer traces at most.
const MAX_FIELDS: usize = 256;

/// Why a trail cannot start.
#[derive(Debug, thiserror::Error)]
pub enum WhyError {
    /// The exchange refused or failed.
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
    /// The object does not exist.
    #[error("{store} has no object `{name}`")]
    NoObject {
        /// The store.
        store: StoreRef,
        /// The object.
        name: String,
    },
    /// The object has no such field, and no write of it is on record.
    #[error(
        "{store}/{name} has no field `{field}`, and no write of it is on record; its fields: {fields}"
    )]
    NoField {
        /// The store.
        store: StoreRef,
        /// The object.
        name: String,
        /// The field asked for.
        field: String,
        /// The fields it has.
        fields: String,
    },
}

/// Where one field's value came from.
#[derive(Clone, Debug, Serialize)]
pub struct Trail {
    /// The object's store.
    pub store: String,
    /// The object.
    pub name: String,
    /// The field (dotted path).
    pub field: String,
    /// Its value now (`null` when absent).
    pub value: Value,
    /// The last write of the field; `None` when none is on record (see [`Trail::note`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub written: Option<Written>,
    /// Why the trail stops here, when it does before a write of a knactor or the operator.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The last write of a field.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Written {
    /// The object's version after that write.
    pub version: u64,
    /// The principal that wrote.
    pub writer: String,
    /// The edge that derived it, when one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edge: Option<EdgeStep>,
}

/// An edge's write of a field.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EdgeStep {
    /// The Cast spec.
    pub spec: String,
    /// Its version that ran the edge.
    pub spec_version: u64,
    /// The edge.
    pub edge: String,
    /// The expressions that set the field (one, unless it sets several paths inside it).
    pub set: Vec<(String, String)>,
    /// The objects the edge read, with the trails of the fields its expressions read there.
    pub sources: Vec<SourceStep>,
}

/// An object an edge read.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceStep {
    /// The alias the expressions name it by.
    pub alias: String,
    /// Its store.
    pub store: String,
    /// The object (`*` for a whole store an edge collects); not shown to a principal that may
    /// not read the store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Its version when the edge read it; not shown to a principal that may not read the store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// Where the fields the expressions read there came from.
    pub fields: Vec<Trail>,
    /// Why its fields are not traced, when they are not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// What a trail reads the exchange through: the handle of the principal asking, for each
/// store (an error when it may not read that store).
pub trait Reach: Send + Sync {
    /// The exchange to read `store` through.
    fn exchange(&self, store: &StoreRef) -> Result<Arc<dyn ObjectExchange>, String>;
}

/// Traces `field` of object `name` of `store` (every field it has, when `None`), read through
/// `exchange`, the asking principal's handle on `store`.
pub async fn trace(
    exchange: &dyn ObjectExchange,
    reach: &dyn Reach,
    store: &StoreRef,
    name: &str,
    field: Option<&str>,
) -> Result<Vec<Trail>, WhyError> {
    let (object, origins) = read(exchange, store, name).await?;
    let no_object = || WhyError::NoObject { store: store.clone(), name: name.to_owned() };
    let (Some(object), Some(origins)) = (object, origins) else { return Err(no_object()) };
    let fields: Vec<String> = match field {
        Some(field) => {
            if resolve(&object, field).1.is_none() {
                return Err(WhyError::NoField {
                    store: store.clone(),
                    name: name.to_owned(),
                    field: field.to_owned(),
                    fields: fields_of(&object).join(", "),
                });
            }
            vec![field.to_owned()]
        }
        None => fields_of(&object),
    };
    let mut tracer = Tracer { reach, seen: BTreeSet::new(), traced: 0 };
    let mut trails = Vec::with_capacity(fields.len());
    for field in fields {
        trails.push(tracer.trail(store, name, &field, (&object, &origins), (None, 0)).await);
    }
    Ok(trails)
}

/// The object's data and origins (`None` each when it does not exist).
async fn read(
    exchange: &dyn ObjectExchange,
    store: &StoreRef,
    name: &str,
) -> Result<(Option<Value>, Option<Origins>), ExchangeError> {
    let object = exchange.get(store, name).await?;
    let origins = exchange.origins(store, name).await?;
    Ok((object.map(|o| o.data.clone()), origins))
}

/// The top-level fields of `data`.
fn fields_of(data: &Value) -> Vec<String> {
    data.as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default()
}

/// The top-level field `path` names in `data`, and its value there (`None`: it names
/// nothing): a key of `data` as it is written, dots and all, else a dotted path.
fn resolve<'a>(data: &'a Value, path: &'a str) -> (&'a str, Option<&'a Value>) {
    if let Some(value) = data.get(path) {
        return (path, Some(value));
    }
    let top = path.split('.').next().unwrap_or(path);
    (top, path.split('.').try_fold(data, |node, part| node.get(part)))
}

/// Whether one of two dotted paths lies inside the other (or they are the same).
fn overlaps(a: &str, b: &str) -> bool {
    let inside = |inner: &str, outer: &str| {
        inner == outer || inner.strip_prefix(outer).is_some_and(|rest| rest.starts_with('.'))
    };
    inside(a, b) || inside(b, a)
}

/// Why an object an edge read is not followed.
enum Unfollowed {
    /// The principal may not read it: nothing of it is shown.
    Hidden(String),
    /// Anything else.
    Note(String),
}

/// Follows trails, each field once.
struct Tracer<'a> {
    reach: &'a dyn Reach,
    /// The fields traced, as `store/name.field`.
    seen: BTreeSet<String>,
    traced: usize,
}

impl Tracer<'_> {
    /// The trail of `field` of `name`, whose data and origins are given, read by an edge at
    /// version `read_at` (`None`: the field asked for). A write since that version is named,
    /// and the objects it read are not followed: the edge read what an older write left.
    async fn trail(
        &mut self,
        store: &StoreRef,
        name: &str,
        field: &str,
        (data, origins): (&Value, &Origins),
        (read_at, depth): (Option<u64>, usize),
    ) -> Trail {
        self.traced += 1;
        let (top, value) = resolve(data, field);
        let mut trail = Trail {
            store: store.to_string(),
            name: name.to_owned(),
            field: field.to_owned(),
            value: value.cloned().unwrap_or(Value::Null),
            written: None,
            note: None,
        };
        let Some(stamp) = origins.get(top) else {
            trail.note = Some(match value {
                None => "not set".into(),
                Some(_) => "no write of it is on record: one from before the exchange kept origins (the embedded exchange keeps them in memory), a pushed-down edge's or a migration's, or one by a process that did not say who it was".into(),
            });
            return trail;
        };
        let Origin { writer, edge } = &*stamp.origin;
        let mut written = Written { version: stamp.version, writer: writer.clone(), edge: None };
        let newer = read_at.filter(|&at| stamp.version > at);
        if let Some(at) = newer {
            trail.note = Some(format!(
                "written again at version {} since the edge read version {at}: what it read is not on record",
                stamp.version
            ));
        }
        if let Some(edge) = edge {
            let set: Vec<(String, String)> =
                edge.set.iter().filter(|(path, _)| overlaps(path, field)).cloned().collect();
            let mut sources = Vec::with_capacity(edge.sources.len());
            for source in edge.sources.iter().filter(|_| newer.is_none()) {
                sources.push(self.source(source, &set, depth).await);
            }
            written.edge = Some(EdgeStep {
                spec: edge.spec.clone(),
                spec_version: edge.spec_version,
                edge: edge.edge.clone(),
                set,
                sources,
            });
        }
        trail.written = Some(written);
        trail
    }

    /// What `source` says of the fields the expressions `set` read there.
    async fn source(
        &mut self,
        source: &Source,
        set: &[(String, String)],
        depth: usize,
    ) -> SourceStep {
        let mut step = SourceStep {
            alias: source.alias.clone(),
            store: source.store.clone(),
            name: Some(source.name.clone()),
            version: Some(source.version),
            fields: Vec::new(),
            note: None,
        };
        let mut wanted = BTreeSet::new();
        for (_, expr) in set {
            let Ok(compiled) = ValueExpr::compile(expr) else { continue };
            if compiled.reads_whole(&source.alias) {
                wanted.insert(None);
            }
            let fields = compiled.field_reads().into_iter();
            let fields = fields.filter(|(alias, _)| *alias == source.alias).map(|(_, f)| Some(f));
            wanted.extend(fields);
        }
        let (store, data, origins) = match self.open(source, depth).await {
            Ok(opened) => opened,
            Err(Unfollowed::Hidden(hidden)) => {
                // Not even which object, or at which version.
                (step.name, step.version) = (None, None);
                step.note = Some(hidden);
                return step;
            }
            Err(Unfollowed::Note(note)) => {
                step.note = Some(note);
                return step;
            }
        };
        if !wanted.is_empty() {
            let object = (&store, &data, &origins);
            (step.fields, step.note) = self.traced_fields(source, object, wanted, depth).await;
        }
        step
    }

    /// The store, data and origins of `source`'s object, or why they are not followed.
    async fn open(
        &self,
        source: &Source,
        depth: usize,
    ) -> Result<(StoreRef, Value, Origins), Unfollowed> {
        let store: StoreRef = source.store.parse().map_err(|e| Unfollowed::Note(format!("{e}")))?;
        let exchange = self.reach.exchange(&store).map_err(Unfollowed::Hidden)?;
        if source.name == "*" {
            let note = "a whole store, collected: its objects are not traced";
            return Err(Unfollowed::Note(note.into()));
        }
        let read = read(&*exchange, &store, &source.name).await;
        let denied = |e: ExchangeError| match e {
            ExchangeError::Denied(denial) => Unfollowed::Hidden(format!(
                "hidden: {} may not read {store}",
                denial.principal.unwrap_or_default()
            )),
            e => Unfollowed::Note(e.to_string()),
        };
        // Whether the principal may read it is known once read (its handle is held to its
        // rights).
        let (data, origins) = match read.map_err(denied)? {
            (Some(data), Some(origins)) => (data, origins),
            _ => return Err(Unfollowed::Note("deleted since".into())),
        };
        if depth + 1 >= MAX_DEPTH {
            return Err(Unfollowed::Note(format!("not followed: {MAX_DEPTH} writes deep already")));
        }
        Ok((store, data, origins))
    }

    /// The trails of the fields `wanted` (`None`: every field) of `source`'s object, and a
    /// note naming those left out (shown above, or past what one answer traces).
    async fn traced_fields(
        &mut self,
        source: &Source,
        (store, data, origins): (&StoreRef, &Value, &Origins),
        wanted: BTreeSet<Option<String>>,
        depth: usize,
    ) -> (Vec<Trail>, Option<String>) {
        let fields: Vec<String> = match wanted.contains(&None) {
            true => fields_of(data),
            false => wanted.into_iter().flatten().collect(),
        };
        let mut trails = Vec::with_capacity(fields.len());
        let mut left_out = Vec::new();
        for field in fields {
            let key = format!("{store}/{}.{field}", source.name);
            if self.traced >= MAX_FIELDS || !self.seen.insert(key) {
                left_out.push(field);
                continue;
            }
            let at = (Some(source.version), depth + 1);
            let trail = self.trail(store, &source.name, &field, (data, origins), at);
            trails.push(Box::pin(trail).await);
        }
        let note = (!left_out.is_empty()).then(|| {
            let left_out = left_out.join(", ");
            format!("not repeated: {left_out} (traced above, or past {MAX_FIELDS} fields)")
        });
        (trails, note)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_overlap_when_one_lies_inside_the_other() {
        assert!(overlaps("a", "a.b"));
        assert!(overlaps("a.b", "a"));
        assert!(overlaps("a", "a"));
        assert!(!overlaps("a", "ab"));
        assert!(!overlaps("a.b", "a.c"));
    }

    #[test]
    fn a_field_is_a_key_as_written_else_a_dotted_path() {
        let data = serde_json::json!({"a": {"b": 1}, "c.d": 2});
        assert_eq!(resolve(&data, "a.b"), ("a", Some(&serde_json::json!(1))));
        assert_eq!(resolve(&data, "a.c"), ("a", None));
        assert_eq!(resolve(&data, "c.d"), ("c.d", Some(&serde_json::json!(2))));
        assert_eq!(resolve(&data, "e"), ("e", None));
    }
}
