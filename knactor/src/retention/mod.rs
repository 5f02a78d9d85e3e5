//! State retention: an Object store's objects are kept until every consumer is done with
//! them, then collected, as the store's `retention:` policy says.
//!
//! The consumers of a store are its owner's reconciler and every running Cast spec that
//! watches it. Each says how far it got as one position per store, in the checkpoint store
//! (`_knactor/checkpoints`): a Cast spec's checkpoint (`cast.NAME`, its `consumed` versions),
//! and the reconciler's (`reconciler.KNACTOR`, published here from what its controller
//! handled, see [`Handled`]). An object at version `v` is consumed once every consumer's
//! position for its store is at `v` or past it; a deleted spec marks its checkpoint `retired`
//! and consumes nothing more. A consumer that crashes keeps its last position, so nothing it
//! has not handled is collected; restarted, it resumes from there and finds it all.
//!
//! A collected object must not come back: a Cast edge that creates objects in the store (one
//! whose `from` does not read its target) would create it again on the next change of its
//! source. So an object is also held while an object of the same name exists in a store such
//! an edge creates it from, and until that edge has handled the source's deletion (Cast specs
//! say which edges create where in their checkpoints' `creates`). Derived objects thus go
//! after their sources, as Kubernetes' dependents go after their owners.
//!
//! A Log store's retention (`maxAge`, `maxRecords`) drops its oldest segments, but never what
//! a Sync flow has not read: see [`Trimmer`].
//!
//! A knactor's [`Collector`] runs where its reconciler runs: it follows its stores, keeps the
//! objects that are finished (the policy's `when` holds for them), and every
//! [`COLLECT_EVERY`] deletes those consumed, no longer fed and (with a `ttl`) unchanged for
//! that long, each only if still at the version found consumed, after appending them to the
//! store's `archive` (a Log store) when it has one. The deletes are ordinary watched deletes.

mod collector;
mod follow;
mod trimmer;

pub use collector::{Collected, Collector};
pub use trimmer::{TRIM_EVERY, TrimOutcome, Trimmed, Trimmer, needed};

use std::collections::HashMap;
use std::time::Duration;

use data_exchange::{ExchangeError, Object, ObjectExchange, StoreRef};
use integrators::cast::checkpoint_store;
use integrators::cast::expr::{CelContext, CelExpr, base_context, json_to_cel};
use serde_json::Value;

/// How often collectors publish their reconciler's position and collect.
pub const COLLECT_EVERY: Duration = Duration::from_millis(200);

/// The variables a `when` condition reads: the object's data, and its name.
const WHEN_READS: [&str; 2] = ["data", "name"];

/// A store's retention policy (`retention:` of a store in its Knactor manifest).
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Retention {
    /// Every object is kept (the default).
    #[default]
    Keep,
    /// Objects are collected once consumed (`after: consumed`), finished (`when`, a CEL
    /// condition over `data` and `name`; always when absent), and unchanged for `ttl`.
    Collect {
        /// The condition that marks an object finished.
        when: Option<String>,
        /// How long a consumed, finished object is kept unchanged before it is collected.
        ttl: Duration,
    },
    /// A Log store's oldest segments go by age or count (see [`data_exchange::log::Trim`]),
    /// but what a running Sync flow has not read.
    Trim {
        /// Segments whose records are all older than this go.
        max_age: Option<Duration>,
        /// Segments older than the store's last this many records go.
        max_records: Option<u64>,
    },
}

impl Retention {
    /// Reads the `retention:` of an Object store (`log: false`): `keep`, or a map of `after:
    /// consumed`, `when` and `ttl` (`{ttl: 24h}` alone collects what is consumed and a day
    /// old); of a Log store: `keep`, or a map of `maxAge` and `maxRecords`. Else the key that is
    /// wrong (`None`: the value as a whole), and why.
    pub fn parse(value: &Value, log: bool) -> Result<Self, (Option<String>, String)> {
        let keys: &[&str] = if log { &["maxAge", "maxRecords"] } else { &["after", "when", "ttl"] };
        let rules = match value {
            Value::String(word) if word == "keep" => return Ok(Retention::Keep),
            Value::Object(rules) => rules,
            _ => {
                let message = format!("`retention` is `keep` or a map of `{}`", keys.join("`, `"));
                return Err((None, message));
            }
        };
        let wrong = |key: &str, message: String| (Some(key.to_owned()), message);
        let text = |key: &str| match rules.get(key) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(_) => Err((Some(key.to_owned()), format!("`{key}` takes a string"))),
        };
        let duration = |key: &str| match text(key)? {
            Some(text) => match humantime::parse_duration(&text) {
                Ok(duration) => Ok(Some(duration)),
                Err(e) => {
                    Err(wrong(key, format!("`{key}: {text}`: {e} (write e.g. `30s`, `24h`, `7d`)")))
                }
            },
            None => Ok(None),
        };
        if let Some(key) = rules.keys().find(|k| !keys.contains(&k.as_str())) {
            let (kind, other) = if log {
                ("a Log", "`after`, `when` and `ttl` are for Object stores")
            } else {
                ("an Object", "`maxAge` and `maxRecords` are for Log stores")
            };
            let message = format!(
                "unknown key `{key}`: {kind} store's retention takes `{}` ({other})",
                keys.join("`, `")
            );
            return Err(wrong(key, message));
        }
        if log {
            let max_records = match rules.get("maxRecords") {
                None => None,
                Some(n) => match n.as_u64().filter(|n| *n > 0) {
                    Some(n) => Some(n),
                    None => {
                        return Err(wrong(
                            "maxRecords",
                            "`maxRecords` takes a count above 0".to_owned(),
                        ));
                    }
                },
            };
            let max_age = duration("maxAge")?;
            if max_age.is_none() && max_records.is_none() {
                return Err((
                    None,
                    "say what goes: `maxAge`, `maxRecords`, or both (or `retention: keep`)"
                        .to_owned(),
                ));
            }
            return Ok(Retention::Trim { max_age, max_records });
        }
        let after = text("after")?;
        if let Some(after) = after.as_deref().filter(|a| *a != "consumed") {
            return Err(wrong(
                "after",
                format!("`after: {after}`: the only one is `after: consumed`"),
            ));
        }
        let ttl = duration("ttl")?;
        if after.is_none() && ttl.is_none() {
            let message =
                "say when objects go: `after: consumed`, a `ttl`, or both (or `retention: keep`)";
            return Err((None, message.to_owned()));
        }
        let when = text("when")?;
        if let Some(when) = &when {
            Finished::compile(when).map_err(|message| (Some("when".to_owned()), message))?;
        }
        Ok(Retention::Collect { when, ttl: ttl.unwrap_or_default() })
    }
}

impl Retention {
    /// What marks an object finished, when the policy collects objects.
    pub fn finished(&self) -> Option<Finished> {
        let Retention::Collect { when, .. } = self else { return None };
        Some(match when {
            Some(when) => Finished::compile(when).expect("checked at load"),
            None => Finished::always(),
        })
    }

    /// The policy as a manifest writes it.
    pub fn to_json(&self) -> Value {
        match self {
            Retention::Keep => Value::from("keep"),
            Retention::Collect { when, ttl } => {
                let mut policy = serde_json::json!({ "after": "consumed" });
                if let Some(when) = when {
                    policy["when"] = when.as_str().into();
                }
                if !ttl.is_zero() {
                    policy["ttl"] = humantime::format_duration(*ttl).to_string().into();
                }
                policy
            }
            Retention::Trim { max_age, max_records } => {
                let mut policy = serde_json::json!({});
                if let Some(age) = max_age {
                    policy["maxAge"] = humantime::format_duration(*age).to_string().into();
                }
                if let Some(records) = max_records {
                    policy["maxRecords"] = (*records).into();
                }
                policy
            }
        }
    }
}

/// The condition that marks an object finished, with the CEL context it runs in (made once:
/// making one registers every function CEL has), and the fields of `data` it reads, when it
/// reads `data` by its fields only (only those are handed to CEL).
pub struct Finished(Option<When>);

struct When {
    expr: CelExpr,
    context: CelContext,
    fields: Option<Vec<String>>,
}

impl std::fmt::Debug for Finished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Finished").field(&self.0.as_ref().map(|when| when.expr.source())).finish()
    }
}

impl Finished {
    /// Compiles `when`: a CEL condition reading `data` and `name` only.
    pub fn compile(when: &str) -> Result<Self, String> {
        let expr = CelExpr::compile(when).map_err(|e| e.to_string())?;
        if let Some(other) =
            expr.identifiers().into_iter().find(|i| !WHEN_READS.contains(&i.as_str()))
        {
            return Err(format!(
                "`when` reads `{other}`: it reads only `data` (the object's data) and `name`"
            ));
        }
        let fields = (!expr.whole_reads().contains("data")).then(|| {
            let reads = expr.field_reads().into_iter();
            reads.filter(|(of, _)| of == "data").map(|(_, field)| field).collect()
        });
        Ok(Finished(Some(When { expr, context: base_context(), fields })))
    }

    /// Every object is finished.
    pub fn always() -> Self {
        Finished(None)
    }

    /// Whether `object` is finished: the condition gives `true` (an error or another value
    /// is not finished).
    pub fn holds(&self, object: &Object) -> bool {
        let Some(when) = &self.0 else { return true };
        let mut scope = when.context.new_inner_scope();
        let data = match (&when.fields, object.data.as_object()) {
            (Some(fields), Some(data)) => {
                let read = fields.iter().filter_map(|f| Some((f.clone(), data.get(f)?.clone())));
                json_to_cel(&Value::Object(read.collect()))
            }
            _ => json_to_cel(&object.data),
        };
        scope.add_variable_from_value("data", data);
        scope.add_variable_from_value("name", object.name.clone());
        when.expr.eval(&scope).is_ok_and(|value| value == Value::Bool(true))
    }
}

/// The name of the checkpoint in which `knactor`'s reconciler says what it handled.
pub fn reconciler_checkpoint(knactor: &str) -> String {
    format!("reconciler.{knactor}")
}

/// What each running consumer has handled, and where Cast edges create objects from, as
/// their checkpoints say.
#[derive(Debug, Default)]
pub struct Consumers {
    /// Per store ref, each consumer's position: (checkpoint name, version).
    positions: HashMap<String, Vec<(String, u64)>>,
    /// Per store ref, the stores (refs, or `*`) edges create its objects from, with the
    /// checkpoint of the spec they belong to.
    feeders: HashMap<String, Vec<(String, String)>>,
}

/// A store whose objects create those of another, by a spec's edge.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Feeder {
    /// The checkpoint of the spec whose edge creates them.
    pub checkpoint: String,
    /// The store they are created from; `None` when the edge names its targets with a `key`.
    pub store: Option<StoreRef>,
}

impl Consumers {
    /// Reads the checkpoints in `exchange` (none yet: no consumer).
    pub async fn read(exchange: &dyn ObjectExchange) -> Result<Self, ExchangeError> {
        let list = match exchange.list(&checkpoint_store()).await {
            Ok(list) => list,
            Err(ExchangeError::UnknownStore(_)) => return Ok(Consumers::default()),
            Err(e) => return Err(e),
        };
        let mut positions: HashMap<String, Vec<(String, u64)>> = HashMap::new();
        let mut feeders: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for checkpoint in &list.items {
            let data = &checkpoint.data;
            if data["retired"] == Value::Bool(true) {
                continue;
            }
            // Checkpoints from before `consumed` was written say it as `positions`.
            let consumed = data.get("consumed").or_else(|| data.get("positions"));
            for (store, version) in consumed.and_then(Value::as_object).into_iter().flatten() {
                let version = version.as_u64().unwrap_or(0);
                positions
                    .entry(store.clone())
                    .or_default()
                    .push((checkpoint.name.clone(), version));
            }
            for (store, from) in data["creates"].as_object().into_iter().flatten() {
                for from in from.as_array().into_iter().flatten().filter_map(Value::as_str) {
                    let feeder = (checkpoint.name.clone(), from.to_owned());
                    feeders.entry(store.clone()).or_default().push(feeder);
                }
            }
        }
        Ok(Consumers { positions, feeders })
    }

    /// The stores whose objects edges create those of `store` from.
    pub fn feeders(&self, store: &StoreRef) -> Vec<Feeder> {
        let feeders = self.feeders.get(&store.to_string()).into_iter().flatten();
        let feeder = |(checkpoint, from): &(String, String)| Feeder {
            checkpoint: checkpoint.clone(),
            store: from.parse().ok(),
        };
        feeders.map(feeder).collect()
    }

    /// The version of `store` the consumer with checkpoint `checkpoint` has handled (0: none).
    pub fn position_of(&self, checkpoint: &str, store: &StoreRef) -> u64 {
        let consumers = self.positions.get(&store.to_string()).into_iter().flatten();
        consumers.filter(|(name, _)| name == checkpoint).map(|(_, at)| *at).min().unwrap_or(0)
    }

    /// The consumers of `store` that have not handled its version `version`.
    pub fn holding(&self, store: &StoreRef, version: u64) -> Vec<String> {
        let consumers = self.positions.get(&store.to_string()).into_iter().flatten();
        consumers.filter(|(_, at)| *at < version).map(|(name, _)| consumer_name(name)).collect()
    }

    /// The version of `store` up to which every consumer but `except` has handled every change.
    pub fn position(&self, store: &StoreRef, except: &str) -> u64 {
        let consumers = self.positions.get(&store.to_string()).into_iter().flatten();
        consumers.filter(|(name, _)| name != except).map(|(_, at)| *at).min().unwrap_or(u64::MAX)
    }
}

/// A consumer as users name it, from its checkpoint's name: `cast/NAME`, `reconciler/KNACTOR`.
pub fn consumer_name(checkpoint: &str) -> String {
    checkpoint.replacen('.', "/", 1)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(data: Value) -> Object {
        Object { name: "o1".to_owned(), version: 1, data, trace: None }
    }

    #[test]
    fn when_reads_the_fields_it_names_or_else_the_whole_data() {
        let done = Finished::compile("has(data.status) && data.status in ['completed']").unwrap();
        assert!(done.holds(&object(json!({"status": "completed", "items": [1, 2]}))));
        assert!(!done.holds(&object(json!({"status": "placed"}))));
        assert!(!done.holds(&object(json!({"items": [1]}))));
        let whole = Finished::compile("size(data) == 2 && name == 'o1'").unwrap();
        assert!(whole.holds(&object(json!({"a": 1, "b": 2}))));
        assert!(!whole.holds(&object(json!({"a": 1}))));
        assert!(Finished::always().holds(&object(json!({}))));
    }
}
