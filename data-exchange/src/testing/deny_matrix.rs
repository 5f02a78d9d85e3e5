//! A deny matrix: one principal's connection tried on every operation on every store, and on
//! every field of every store (read, and written), each cell checked against what the
//! enforcer in front of the data should allow. A cell that is not as expected fails the test,
//! naming it; the tally says how many cells were allowed and denied.
//!
//! Every write carries values the store's schema takes ([`Samples`]), so that a backend that
//! checks schemas itself (the apiserver) answers for the rights, not for the values.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Map, Value, json};

use crate::RedisExchange;
use crate::access::{Fields, Grant, Rights, ScopedExchange};
use crate::error::ExchangeError;
use crate::object::{ObjectExchange, Write};
use crate::redis::acl::Credential;
use crate::store::StoreRef;

/// Get, list, watch, a read of each field (`see`: whether a get shows it), and the writes: a
/// put and a patch per field, and a delete.
const OPERATIONS: [&str; 7] = ["get", "list", "watch", "see", "put", "patch", "delete"];

/// The object every cell works on, reset before each.
const OBJECT: &str = "probe";

/// How long an allowed watch may take to show a change.
const WATCH_DEADLINE: Duration = Duration::from_secs(10);

/// Whose rules the expectations follow.
#[derive(Clone, Copy, Debug)]
pub enum Enforcer<'a> {
    /// A server that sees keys only (Redis ACLs): a store is read, or read and written, whole,
    /// every field of it.
    Keys,
    /// A handle held to the whole rights (`ScopedExchange`): fields, deletes and objects too.
    Rights,
    /// The apiserver: the RBAC verbs the principal's Role grants on every object of each store
    /// (`get`, `list`, `watch`, `update`, `delete`...), and its admission policy, which holds
    /// its writes to the fields its rights write. It sees whole objects.
    Rbac(&'a BTreeMap<StoreRef, BTreeSet<String>>),
    /// A handle held to the rights in front of the apiserver: a cell works where both allow it.
    RightsOnRbac(&'a BTreeMap<StoreRef, BTreeSet<String>>),
}

/// Who a matrix probes: the principal's rights, and the name the server's denials give it.
#[derive(Clone, Copy, Debug)]
pub struct Principal<'a> {
    /// Its rights. A handle's denials name their principal.
    pub rights: &'a Rights,
    /// The name the server's denials give it: its Redis user, its ServiceAccount.
    pub named: &'a str,
}

/// How many cells were allowed and denied, all as expected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Cells that worked.
    pub allowed: usize,
    /// Cells refused with [`ExchangeError::Denied`] naming the principal, or fields left out
    /// of what a get showed.
    pub denied: usize,
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, other: Tally) {
        self.allowed += other.allowed;
        self.denied += other.denied;
    }
}

/// The values a matrix writes to one store: the object each cell starts from (every top-level
/// field of the schema set), and for each field another value the schema takes.
#[derive(Clone, Debug)]
pub struct Samples {
    start: Map<String, Value>,
    other: Map<String, Value>,
}

impl Samples {
    /// Values `schema` (a store's) takes: two for each top-level field, tried from candidates
    /// of its type (its `enum`, numbers from its minimum, a few strings, arrays of one item,
    /// objects with every property) and kept when the field's schema takes them.
    ///
    /// # Panics
    /// When a field has fewer than two such values, or the object they make breaks the
    /// schema: the matrix cannot probe that store.
    pub fn of(store: &StoreRef, schema: &Value) -> Self {
        let (mut start, mut other) = (Map::new(), Map::new());
        for (field, field_schema) in schema["properties"].as_object().into_iter().flatten() {
            let [first, second] = two_values(field_schema).unwrap_or_else(|| {
                panic!("{store} .{field}: no two values its schema takes ({field_schema})")
            });
            start.insert(field.clone(), first);
            other.insert(field.clone(), second);
        }
        let validator = jsonschema::validator_for(schema).expect("a store's schema compiles");
        for object in [&start, &other] {
            let object = Value::Object(object.clone());
            assert!(validator.is_valid(&object), "{store}: sampled {object} breaks its schema");
        }
        Samples { start, other }
    }

    /// The store's top-level fields.
    pub fn fields(&self) -> impl Iterator<Item = &String> {
        self.start.keys()
    }

    /// The object each cell starts from.
    pub fn start(&self) -> Value {
        Value::Object(self.start.clone())
    }

    /// The other value of `field`.
    ///
    /// # Panics
    /// When the store has no such field.
    pub fn other(&self, field: &str) -> &Value {
        &self.other[field]
    }

    /// The object with every field at its other value.
    fn changed(&self) -> Value {
        Value::Object(self.other.clone())
    }
}

/// Two distinct values `schema` takes, if it has them.
fn two_values(schema: &Value) -> Option<[Value; 2]> {
    let validator = jsonschema::validator_for(schema).ok()?;
    let mut taken = candidates(schema).into_iter().filter(|v| validator.is_valid(v));
    let first = taken.next()?;
    let second = taken.find(|v| *v != first)?;
    Some([first, second])
}

/// Values of the kinds `schema` describes, likely to meet it, in the order they are tried.
fn candidates(schema: &Value) -> Vec<Value> {
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        return options.clone();
    }
    let kinds: Vec<&str> = match schema.get("type") {
        Some(Value::String(kind)) => vec![kind],
        Some(Value::Array(kinds)) => kinds.iter().filter_map(Value::as_str).collect(),
        _ if schema.get("properties").is_some() => vec!["object"],
        _ => Vec::new(),
    };
    if kinds.is_empty() {
        return vec![json!(0), json!(1)];
    }
    kinds.into_iter().flat_map(|kind| of_kind(schema, kind)).collect()
}

/// Values of JSON type `kind` likely to meet `schema`.
fn of_kind(schema: &Value, kind: &str) -> Vec<Value> {
    match kind {
        "null" => vec![Value::Null],
        "boolean" => vec![json!(false), json!(true)],
        "integer" | "number" => {
            let bound = |key| schema.get(key).and_then(Value::as_f64);
            let base = match (bound("minimum"), bound("exclusiveMinimum")) {
                (Some(min), _) => min.ceil(),
                (None, Some(min)) => min.floor() + 1.0,
                (None, None) => 0.0,
            };
            // Whole numbers, written as integers: the apiserver gives `1.0` back as `1`.
            (0..4).map(|n| json!(base as i64 + n)).collect()
        }
        "string" => ["a", "b", "AA", "BB", "a@example.com", "b@example.com", "0", "1"]
            .map(|s| json!(s))
            .into(),
        "array" => {
            let items = schema.get("items").and_then(two_values);
            let items = items.map_or_else(|| vec![json!(0), json!(1)], Vec::from);
            let mut arrays: Vec<Value> = items.into_iter().map(|item| json!([item])).collect();
            arrays.push(json!([]));
            arrays
        }
        "object" => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let pairs: Vec<(&String, [Value; 2])> = properties
                .into_iter()
                .flatten()
                .filter_map(|(name, property)| Some((name, two_values(property)?)))
                .collect();
            let variant = |i: usize| {
                let fields =
                    pairs.iter().map(|(name, values)| ((*name).clone(), values[i].clone()));
                Value::Object(fields.collect())
            };
            vec![variant(0), variant(1), json!({}), json!({"x": 1})]
        }
        _ => Vec::new(),
    }
}

/// Tries every operation on `stores` through `exchange`, acting as `principal`, with `admin`
/// (which may do everything) resetting the object tried before each cell, and returns the
/// tally. `stores` must be registered on both with the schemas their samples came from.
pub async fn probe(
    exchange: &dyn ObjectExchange,
    admin: &dyn ObjectExchange,
    principal: Principal<'_>,
    stores: &BTreeMap<StoreRef, Samples>,
    enforcer: Enforcer<'_>,
) -> Tally {
    let mut tally = Tally::default();
    let rights = principal.rights;
    for (store, samples) in stores {
        let grant = rights.on(store);
        for operation in OPERATIONS {
            let touched: Vec<Option<&String>> = match operation {
                "see" | "put" | "patch" => samples.fields().map(Some).collect(),
                _ => vec![None],
            };
            for field in touched {
                admin.write(store, Write::put(OBJECT, samples.start())).await.unwrap();
                let cell = format!(
                    "{} {operation} {store}{}",
                    rights.principal(),
                    field.map(|f| format!(" .{f}")).unwrap_or_default()
                );
                let allowed = expected(enforcer, store, grant, operation, field);
                let outcome = match (operation, field) {
                    ("get", _) => exchange.get(store, OBJECT).await.map(drop),
                    ("see", Some(field)) => match exchange.get(store, OBJECT).await {
                        Ok(Some(object)) if object.data.get(field).is_some() => Ok(()),
                        Ok(shown) => {
                            // Left out: a denial of that field, which no error names.
                            assert!(shown.is_some() && !allowed, "{cell}: {shown:?}");
                            tally.denied += 1;
                            continue;
                        }
                        Err(e) => Err(e),
                    },
                    ("list", _) => exchange.list(store).await.map(drop),
                    ("watch", _) => watch(exchange, admin, store, samples, &cell).await,
                    ("put", Some(field)) => {
                        // The whole object as the principal sees it, with the field changed.
                        let seen = grant.and_then(|g| g.read.as_ref());
                        let handle =
                            matches!(enforcer, Enforcer::Rights | Enforcer::RightsOnRbac(_));
                        let sees = |f: &String| !handle || seen.is_some_and(|s| s.allows(f));
                        let mut data = samples.start.clone();
                        data.retain(|f, _| sees(f));
                        data.insert(field.clone(), samples.other[field].clone());
                        let write = Write::put(OBJECT, Value::Object(data));
                        exchange.write(store, write).await.map(drop)
                    }
                    ("patch", Some(field)) => {
                        let patch = json!({ field.as_str(): samples.other[field] });
                        exchange.write(store, Write::patch(OBJECT, patch)).await.map(drop)
                    }
                    _ => exchange.write(store, Write::delete(OBJECT)).await.map(drop),
                };
                match (outcome, allowed) {
                    (Ok(()), true) => tally.allowed += 1,
                    (Err(ExchangeError::Denied(denial)), false) => {
                        let named = denial.principal.as_deref();
                        let who = [Some(principal.named), Some(rights.principal())];
                        assert!(who.contains(&named), "{cell}: denied to {named:?}");
                        tally.denied += 1;
                    }
                    (outcome, allowed) => {
                        let expected = if allowed { "allowed" } else { "denied" };
                        panic!("{cell}: expected {expected}, got {outcome:?}")
                    }
                }
            }
        }
    }
    tally
}

/// Whether `enforcer` should let the principal holding `grant` on `store` do `operation` (to
/// `field`).
fn expected(
    enforcer: Enforcer,
    store: &StoreRef,
    grant: Option<&Grant>,
    operation: &str,
    field: Option<&String>,
) -> bool {
    if let Enforcer::RightsOnRbac(verbs) = enforcer {
        return [Enforcer::Rights, Enforcer::Rbac(verbs)]
            .into_iter()
            .all(|enforcer| expected(enforcer, store, grant, operation, field));
    }
    let reads = grant.is_some_and(Grant::reads);
    // A handle hides the objects its grant does not cover; keys and roles are whole stores.
    let covers = !matches!(enforcer, Enforcer::Rights | Enforcer::RightsOnRbac(_))
        || grant.is_some_and(|g| g.objects.as_ref().is_none_or(|o| o.contains(OBJECT)));
    // The fields a write may set, by the rights: all of them where no field is named.
    let writes_field = |g: &Grant| match &g.write {
        Some(Fields::Only(only)) => field.is_some_and(|f| only.contains(f)),
        Some(Fields::All) | None => true,
    };
    match enforcer {
        // A user that may write a store's keys may read them too.
        Enforcer::Keys => match operation {
            "get" | "list" | "watch" | "see" => {
                reads || grant.is_some_and(|g| g.write.is_some() || g.delete)
            }
            _ => grant.is_some_and(|g| g.write.is_some() || g.delete),
        },
        // The watch cell waits for a change of the probe object, which it sees only if covered.
        Enforcer::Rights => match operation {
            "list" => reads,
            "get" | "watch" => reads && covers,
            "see" => {
                let seen = grant.and_then(|g| g.read.as_ref());
                covers && seen.is_some_and(|s| field.is_some_and(|f| s.allows(f)))
            }
            "delete" => covers && grant.is_some_and(|g| g.delete),
            _ => covers && grant.is_some_and(|g| g.write.is_some() && writes_field(g)),
        },
        Enforcer::Rbac(verbs) | Enforcer::RightsOnRbac(verbs) => {
            let may = |wanted: &[&str]| {
                verbs.get(store).is_some_and(|v| wanted.iter().all(|w| v.contains(*w)))
            };
            match operation {
                "get" | "see" => may(&["get"]),
                "list" => may(&["list"]),
                "watch" => may(&["watch"]),
                // A delete reads, deletes, then lists for the store's version.
                "delete" => may(&["get", "delete", "list"]),
                // A write reads, then replaces; the admission policy checks its fields.
                _ => may(&["get", "update"]) && grant.is_none_or(writes_field),
            }
        }
    }
}

/// A watch of `store` from its version now, through `exchange`: allowed when it shows the
/// change `admin` then makes, denied when it is refused (at once, or as its first item).
async fn watch(
    exchange: &dyn ObjectExchange,
    admin: &dyn ObjectExchange,
    store: &StoreRef,
    samples: &Samples,
    cell: &str,
) -> Result<(), ExchangeError> {
    let from = admin.version(store).await.unwrap();
    let mut changes = exchange.watch(store, from).await?;
    admin.write(store, Write::put(OBJECT, samples.changed())).await.unwrap();
    match tokio::time::timeout(WATCH_DEADLINE, changes.next()).await {
        Ok(Some(change)) => change.map(drop),
        Ok(None) => panic!("{cell}: the watch ended without a change"),
        Err(_) => panic!("{cell}: no change and no refusal within {WATCH_DEADLINE:?}"),
    }
}

/// Probes each of `principals` on the Redis server at `url`, connected as an ACL user of its
/// own that `admin` creates (`stores` registered there with the schemas of their samples,
/// `schemas`): as that user alone ([`Enforcer::Keys`]), then behind a handle held to its rights
/// ([`Enforcer::Rights`]). Returns the two tallies, in that order.
pub async fn probe_redis_users(
    url: &str,
    admin: &RedisExchange,
    principals: &[Rights],
    schemas: &BTreeMap<StoreRef, Value>,
    stores: &BTreeMap<StoreRef, Samples>,
) -> (Tally, Tally) {
    let (mut by_redis, mut by_handle) = (Tally::default(), Tally::default());
    for rights in principals {
        let named = rights.principal();
        let credential = Credential { user: named.into(), password: format!("{named}!") };
        admin.set_user(&credential, rights).await.unwrap();
        let user = Arc::new(RedisExchange::connect_as(url, &credential).await.unwrap());
        for (store, schema) in schemas {
            user.register(store, schema).await.unwrap();
        }
        let principal = Principal { rights, named };
        by_redis += probe(&*user, admin, principal, stores, Enforcer::Keys).await;
        let handle = ScopedExchange::new(user, rights.clone());
        by_handle += probe(&handle, admin, principal, stores, Enforcer::Rights).await;
    }
    (by_redis, by_handle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_meet_the_schema_and_differ_field_by_field() {
        let schema = json!({
            "type": "object",
            "required": ["status", "address"],
            "properties": {
                "status": {"type": "string", "enum": ["placed", "completed"]},
                "perEur": {"type": "number", "exclusiveMinimum": 0},
                "qty": {"type": "integer", "minimum": 1, "maximum": 2},
                "address": {
                    "type": "object",
                    "required": ["country"],
                    "properties": {"country": {"type": "string", "pattern": "^[A-Z]{2}$"}},
                },
                "items": {"type": "array", "items": {"type": "boolean"}},
            },
        });
        let samples = Samples::of(&"k/s".parse().unwrap(), &schema);
        assert_eq!(samples.start["address"], json!({"country": "AA"}));
        assert_eq!(samples.other["address"], json!({"country": "BB"}));
        assert_eq!((&samples.start["qty"], &samples.other["qty"]), (&json!(1), &json!(2)));
        // Above an exclusive minimum of 0, written as integers.
        assert_eq!((&samples.start["perEur"], &samples.other["perEur"]), (&json!(1), &json!(2)));
        for field in samples.fields() {
            assert_ne!(samples.start[field], samples.other[field], "{field}");
        }
    }

    #[test]
    #[should_panic(expected = "no two values")]
    fn a_field_with_one_value_cannot_be_probed() {
        let schema = json!({"type": "object", "properties": {"kind": {"enum": ["only"]}}});
        Samples::of(&"k/s".parse().unwrap(), &schema);
    }
}
