//! Shadow runs: a new version of a running spec, run beside the live one on the same live
//! changes, writing into copies of its targets that only it and [`Shadow::diff`] see; then
//! compared with what the live version wrote. A Cast shadow writes copies of its target
//! objects, compared field by field; a Sync shadow appends to copies of its destinations,
//! starting where the live flows last checkpointed, compared record by record.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use data_exchange::access::Rights;
use data_exchange::log::{LogExchange, json_lines};
use data_exchange::{EmbeddedExchange, EmbeddedLog, ExchangeError, ObjectExchange, StoreRef};
use futures::StreamExt;
use integrators::cast::{CastError, CastIntegrator, CastOptions, CastPlan, CastStats, Schemas};
use integrators::source::SpecFile;
use integrators::sync::{Matched, SyncError, SyncIntegrator, SyncOptions, SyncPlan};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// How many records of each side a Sync comparison shows.
const SAMPLES: usize = 10;

/// A shadow run of a spec.
#[derive(Debug)]
pub struct Shadow {
    integrator: Integrator,
    view: ShadowView,
    /// The file it was applied from, applied live when it is promoted.
    pub(crate) file: SpecFile,
}

#[derive(Debug)]
enum Integrator {
    Cast(CastIntegrator),
    Sync(SyncIntegrator),
}

/// What a shadow wrote, to compare with the live stores while it runs on.
#[derive(Clone, Debug)]
pub struct ShadowView {
    name: String,
    started: SystemTime,
    copies: Copies,
}

#[derive(Clone, Debug)]
enum Copies {
    /// A Cast shadow's targets.
    Objects {
        copies: Arc<EmbeddedExchange>,
        /// The field paths its edges set, by target store.
        fields: Arc<BTreeMap<StoreRef, BTreeSet<Vec<String>>>>,
        stats: Arc<CastStats>,
    },
    /// A Sync shadow's destinations.
    Records {
        copies: Arc<EmbeddedLog>,
        /// Per destination, where the live records match the copy's.
        from: BTreeMap<StoreRef, Matched>,
    },
}

/// Where a shadow's writes differ from the live ones (`knactor diff spec NAME`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShadowDiff {
    /// The spec's name.
    pub name: String,
    /// When the shadow started, as RFC 3339 (UTC, seconds): it handled the changes since.
    pub since: String,
    /// Target objects the shadow wrote, each compared with the live object of its name
    /// (Cast); records it appended (Sync).
    pub compared: u64,
    /// How many of the objects differ in a field the shadow set (Cast); records only one side
    /// appended (Sync).
    pub differing: u64,
    /// The edge evaluations of a Cast shadow that failed (their writes are missing).
    pub failures: u64,
    /// Per field, how many objects differ there (Cast).
    pub fields: Vec<FieldCount>,
    /// Each field that differs, by store, object and field (Cast).
    pub differences: Vec<Difference>,
    /// Per destination, the records of each side (Sync).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub records: Vec<RecordsDiff>,
}

/// The records a Sync shadow and the live flows appended to one destination from the same
/// point, compared as multisets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordsDiff {
    /// The destination store.
    pub store: String,
    /// Records the live flows appended.
    pub live: u64,
    /// Records the shadow appended.
    pub shadow: u64,
    /// Live records the shadow did not make.
    pub missing: u64,
    /// Records the shadow made that the live flows did not.
    pub extra: u64,
    /// The first missing records.
    pub only_live: Vec<Value>,
    /// The first extra records.
    pub only_shadow: Vec<Value>,
}

/// How many objects of a store differ in one field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldCount {
    /// The target store.
    pub store: String,
    /// The field, dotted.
    pub field: String,
    /// Objects whose field differs.
    pub differing: u64,
}

/// One field of one object where the shadow wrote another value than the live object holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Difference {
    /// The target store.
    pub store: String,
    /// The object.
    pub name: String,
    /// The field, dotted.
    pub field: String,
    /// The live object's value (which may be `null`); absent: the object or the field is
    /// missing.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    pub live: Option<Value>,
    /// The value the shadow wrote.
    pub shadow: Value,
}

impl Shadow {
    /// Starts the Cast `plan` (from `file`) as a shadow run reading through `exchange`
    /// (which must hold the plan's [`CastPlan::shadow_rights`]), writing into fresh copies of
    /// its targets.
    pub async fn cast(
        exchange: Arc<dyn ObjectExchange>,
        plan: CastPlan,
        file: SpecFile,
    ) -> Result<Self, CastError> {
        let mut fields: BTreeMap<StoreRef, BTreeSet<Vec<String>>> = BTreeMap::new();
        for edge in &plan.edges {
            let store = plan.inputs[&edge.spec.to].store.clone();
            fields.entry(store).or_default().extend(edge.set.iter().map(|(path, _)| path.clone()));
        }
        let copies = Arc::new(EmbeddedExchange::in_memory());
        // A copy holds only the fields the shadow set, so the target's schema (its required
        // fields) cannot hold there; the plan was checked against it.
        for store in fields.keys() {
            copies.register(store, &json!({"type": "object"})).await?;
        }
        let name = plan.name.clone();
        let options = CastOptions { shadow: Some(copies.clone()), ..CastOptions::default() };
        let integrator = CastIntegrator::start_with(exchange, plan, options).await?;
        let stats = integrator.stats().clone();
        let copies = Copies::Objects { copies, fields: Arc::new(fields), stats };
        Ok(Shadow::started(name, Integrator::Cast(integrator), copies, file))
    }

    /// Starts the Sync `plan` (from `file`) as a shadow run reading through `log` (which must
    /// hold the plan's [`SyncPlan::shadow_rights`]), appending into fresh copies of its
    /// destinations, whose schemas are in `schemas`.
    pub async fn sync(
        log: Arc<dyn LogExchange>,
        plan: SyncPlan,
        file: SpecFile,
        schemas: &Schemas,
    ) -> Result<Self, SyncError> {
        let copies = Arc::new(EmbeddedLog::in_memory());
        for store in plan.flows.iter().map(|f| &f.to).collect::<BTreeSet<_>>() {
            let schema =
                schemas.get(store).ok_or_else(|| ExchangeError::UnknownStore(store.clone()))?;
            copies.register(store, schema).await?;
        }
        let name = plan.name.clone();
        let (integrator, from) =
            SyncIntegrator::start_shadow(log, copies.clone(), plan, SyncOptions::default()).await?;
        let copies = Copies::Records { copies, from };
        Ok(Shadow::started(name, Integrator::Sync(integrator), copies, file))
    }

    fn started(name: String, integrator: Integrator, copies: Copies, file: SpecFile) -> Self {
        let view = ShadowView { name, started: SystemTime::now(), copies };
        Shadow { integrator, view, file }
    }

    /// When it started, as RFC 3339.
    pub fn since(&self) -> String {
        self.view.since()
    }

    /// What it wrote, to compare (see [`ShadowView::diff`]).
    pub fn view(&self) -> ShadowView {
        self.view.clone()
    }

    /// The rights it acts with.
    pub fn rights(&self) -> Arc<Rights> {
        match &self.integrator {
            Integrator::Cast(cast) => cast.exchange().rights(),
            Integrator::Sync(sync) => sync.log().rights(),
        }
    }

    /// Stops it; its copies are dropped with the last view.
    pub async fn stop(self) {
        match self.integrator {
            Integrator::Cast(cast) => cast.stop().await,
            Integrator::Sync(sync) => sync.stop().await,
        }
    }
}

impl ShadowView {
    /// When the shadow started, as RFC 3339.
    pub fn since(&self) -> String {
        humantime::format_rfc3339_seconds(self.started).to_string()
    }

    /// Compares what it wrote with the live stores: each target object with the live object
    /// of its name in `objects`, in every field its edges set (Cast); the records of each
    /// destination with those the live flows appended to `log` from the same point (Sync).
    pub async fn diff(
        &self,
        objects: &dyn ObjectExchange,
        log: &dyn LogExchange,
    ) -> Result<ShadowDiff, ExchangeError> {
        let mut diff = ShadowDiff {
            name: self.name.clone(),
            since: self.since(),
            compared: 0,
            differing: 0,
            failures: 0,
            fields: Vec::new(),
            differences: Vec::new(),
            records: Vec::new(),
        };
        match &self.copies {
            Copies::Objects { copies, fields, stats } => {
                diff.failures = stats.failures.load(Ordering::Relaxed);
                for (store, paths) in fields.iter() {
                    compare_objects(&mut diff, store, paths, &**copies, objects).await?;
                }
            }
            Copies::Records { copies, from } => {
                for (store, matched) in from {
                    let live = read(log, store, matched.from, matched.stamped).await?;
                    let shadow = read(&**copies, store, 0, matched.stamped).await?;
                    let compared = RecordsDiff::between(store, &live, &shadow);
                    diff.compared += compared.shadow;
                    diff.differing += compared.missing + compared.extra;
                    diff.records.push(compared);
                }
            }
        }
        Ok(diff)
    }
}

/// Adds to `diff` the comparison of each object of `store` in `copies` with the live one in
/// `live`, at `paths`.
async fn compare_objects(
    diff: &mut ShadowDiff,
    store: &StoreRef,
    paths: &BTreeSet<Vec<String>>,
    copies: &dyn ObjectExchange,
    live: &dyn ObjectExchange,
) -> Result<(), ExchangeError> {
    let live_objects: BTreeMap<String, Value> =
        live.list(store).await?.items.iter().map(|o| (o.name.clone(), o.data.clone())).collect();
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for copy in copies.list(store).await?.items {
        diff.compared += 1;
        let mut differs = false;
        for path in paths {
            let Some(shadow) = at(&copy.data, path) else { continue };
            let live = live_objects.get(&copy.name).and_then(|data| at(data, path));
            if live == Some(shadow) {
                continue;
            }
            differs = true;
            let field = path.join(".");
            *counts.entry(field.clone()).or_default() += 1;
            diff.differences.push(Difference {
                store: store.to_string(),
                name: copy.name.clone(),
                field,
                live: live.cloned(),
                shadow: shadow.clone(),
            });
        }
        diff.differing += u64::from(differs);
    }
    let store = store.to_string();
    diff.fields.extend(counts.into_iter().map(|(field, differing)| FieldCount {
        store: store.clone(),
        field,
        differing,
    }));
    Ok(())
}

/// The records of `store` from offset `from` to its end now, each as a JSON line; without
/// `ts` when it is `stamped` at the append (and so differs between two appends of a record).
async fn read(
    log: &dyn LogExchange,
    store: &StoreRef,
    from: u64,
    stamped: bool,
) -> Result<Vec<String>, ExchangeError> {
    let end = log.end(store).await?;
    let mut lines = Vec::new();
    if from >= end {
        return Ok(lines);
    }
    let mut tail = log.tail(store, from).await?;
    while let Some(records) = tail.next().await {
        let records = records?;
        let Some(records) = records.from_offset(from) else { continue };
        let kept = (end.saturating_sub(records.offset) as usize).min(records.batch.num_rows());
        let text = json_lines(&[records.batch.slice(0, kept)]);
        for line in String::from_utf8_lossy(&text).lines() {
            lines.push(match serde_json::from_str::<Value>(line) {
                Ok(Value::Object(mut record)) if stamped => {
                    record.remove(data_exchange::log::arrow_schema::TS);
                    Value::Object(record).to_string()
                }
                _ => line.to_owned(),
            });
        }
        if records.end() >= end {
            break;
        }
    }
    Ok(lines)
}

impl RecordsDiff {
    /// Compares the records `live` and `shadow` appended to `store`, as multisets.
    fn between(store: &StoreRef, live: &[String], shadow: &[String]) -> Self {
        let mut balance: HashMap<&str, i64> = HashMap::new();
        for record in live {
            *balance.entry(record).or_default() += 1;
        }
        for record in shadow {
            *balance.entry(record).or_default() -= 1;
        }
        let only = |records: &[String], sign: i64| -> (u64, Vec<Value>) {
            let mut left = balance.clone();
            let mut samples = Vec::new();
            let mut count = 0;
            for record in records {
                let n = left.get_mut(record.as_str()).expect("counted above");
                if *n * sign > 0 {
                    *n -= sign;
                    count += 1;
                    if samples.len() < SAMPLES {
                        samples.push(serde_json::from_str(record).unwrap_or(Value::Null));
                    }
                }
            }
            (count, samples)
        };
        let (missing, only_live) = only(live, 1);
        let (extra, only_shadow) = only(shadow, -1);
        RecordsDiff {
            store: store.to_string(),
            live: live.len() as u64,
            shadow: shadow.len() as u64,
            missing,
            extra,
            only_live,
            only_shadow,
        }
    }
}

/// A field that is there, `null` included (serde takes a `null` for `None` otherwise).
fn present<'de, D: serde::Deserializer<'de>>(value: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(value).map(Some)
}

/// The value at `path` in `data`, if there is one.
fn at<'a>(data: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(data, |node, key| node.get(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_reaches_nested_fields_and_misses_absent_ones() {
        let data = json!({"a": {"b": 1}, "c": null});
        let path = |p: &str| p.split('.').map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(at(&data, &path("a.b")), Some(&json!(1)));
        assert_eq!(at(&data, &path("c")), Some(&Value::Null));
        assert_eq!(at(&data, &path("a.x")), None);
        assert_eq!(at(&data, &path("c.d")), None);
    }

    #[test]
    fn a_live_null_is_told_apart_from_a_missing_field() {
        let difference = |live| Difference {
            store: "k/s".into(),
            name: "o".into(),
            field: "f".into(),
            live,
            shadow: json!(1),
        };
        for live in [Some(Value::Null), None] {
            let text = serde_json::to_string(&difference(live.clone())).unwrap();
            let back: Difference = serde_json::from_str(&text).unwrap();
            assert_eq!(back.live, live, "{text}");
        }
    }

    #[test]
    fn records_are_compared_as_multisets() {
        let store: StoreRef = "k/s".parse().unwrap();
        let lines = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let live = lines(&[r#"{"a":1}"#, r#"{"a":1}"#, r#"{"a":2}"#]);
        let shadow = lines(&[r#"{"a":1}"#, r#"{"a":3}"#]);
        let diff = RecordsDiff::between(&store, &live, &shadow);
        assert_eq!((diff.live, diff.shadow, diff.missing, diff.extra), (3, 2, 2, 1));
        assert_eq!(diff.only_live, [json!({"a": 1}), json!({"a": 2})]);
        assert_eq!(diff.only_shadow, [json!({"a": 3})]);
    }
}
