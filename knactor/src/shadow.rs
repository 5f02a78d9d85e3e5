//! Shadow runs: a new version of a running Cast spec, run beside the live one on the same live
//! changes, writing into copies of its targets that only it and [`Shadow::diff`] see; then
//! compared with what the live version wrote, field by field.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use data_exchange::{EmbeddedExchange, ExchangeError, ObjectExchange, StoreRef};
use integrators::cast::{CastError, CastIntegrator, CastOptions, CastPlan};
use integrators::source::SpecFile;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A shadow run of a Cast spec.
#[derive(Debug)]
pub struct Shadow {
    integrator: CastIntegrator,
    /// The copies of its targets: what it wrote.
    copies: Arc<EmbeddedExchange>,
    /// The field paths its edges set, by target store.
    fields: BTreeMap<StoreRef, BTreeSet<Vec<String>>>,
    /// The file it was applied from, applied live when it is promoted.
    pub(crate) file: SpecFile,
    started: SystemTime,
}

/// Where a shadow's writes differ from the live ones (`knactor diff spec NAME`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShadowDiff {
    /// The spec's name.
    pub name: String,
    /// When the shadow started, as RFC 3339 (UTC, seconds): it handled the changes since.
    pub since: String,
    /// Target objects the shadow wrote, each compared with the live object of its name.
    pub compared: u64,
    /// How many of them differ in a field the shadow set.
    pub differing: u64,
    /// The edge evaluations of the shadow that failed (their writes are missing).
    pub failures: u64,
    /// Per field, how many objects differ there.
    pub fields: Vec<FieldCount>,
    /// Each field that differs, by store, object and field.
    pub differences: Vec<Difference>,
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
    /// The live object's value; `None`: the object or the field is missing.
    pub live: Option<Value>,
    /// The value the shadow wrote.
    pub shadow: Value,
}

impl Shadow {
    /// Starts `plan` (from `file`) as a shadow run reading through `exchange` (which must hold
    /// the plan's [`CastPlan::shadow_rights`]), writing into fresh copies of its targets.
    pub async fn start(
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
        let options = CastOptions { shadow: Some(copies.clone()), ..CastOptions::default() };
        let integrator = CastIntegrator::start_with(exchange, plan, options).await?;
        Ok(Shadow { integrator, copies, fields, file, started: SystemTime::now() })
    }

    /// When it started, as RFC 3339.
    pub fn since(&self) -> String {
        humantime::format_rfc3339_seconds(self.started).to_string()
    }

    /// Compares each target object it wrote with the live object of that name in `live`, in
    /// every field its edges set.
    pub async fn diff(&self, live: &dyn ObjectExchange) -> Result<ShadowDiff, ExchangeError> {
        let name = self.integrator.name().to_owned();
        let failures = self.integrator.stats().failures.load(Ordering::Relaxed);
        let mut diff = ShadowDiff {
            name,
            since: self.since(),
            compared: 0,
            differing: 0,
            failures,
            fields: Vec::new(),
            differences: Vec::new(),
        };
        for (store, paths) in &self.fields {
            let live_objects: BTreeMap<String, Value> = live
                .list(store)
                .await?
                .items
                .iter()
                .map(|o| (o.name.clone(), o.data.clone()))
                .collect();
            let mut counts: BTreeMap<String, u64> = BTreeMap::new();
            for copy in self.copies.list(store).await?.items {
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
        }
        Ok(diff)
    }

    /// Stops it; its copies are dropped.
    pub async fn stop(self) {
        self.integrator.stop().await;
    }
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
}
