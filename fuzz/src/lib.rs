//! What the fuzz targets share: the apps' store schemas, JSON documents built from fuzz input,
//! a reference merge patch, and a runtime for the async exchanges.
//!
//! Each target in `fuzz_targets/` feeds one part of Knactor with hostile input and asserts
//! that it neither panics nor hangs, and, where two implementations must agree (Redis's Lua
//! against Rust), that they agree. `scripts/fuzz` runs them; docs/GUARANTEES.md has the figures.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use data_exchange::StoreRef;
use serde_json::{Map, Number, Value};

/// The repository's root, where the apps and specs are.
pub fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A current-thread runtime for the async exchanges, one per process.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime")
    })
}

/// The schemas of every store the example apps declare, by store, split by kind.
#[derive(Debug, Default)]
pub struct AppSchemas {
    /// Object stores.
    pub objects: BTreeMap<StoreRef, Value>,
    /// Log stores.
    pub logs: BTreeMap<StoreRef, Value>,
}

/// The stores of the knactor manifests under `apps/*/knactors/`, read once.
pub fn app_schemas() -> &'static AppSchemas {
    static SCHEMAS: OnceLock<AppSchemas> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        let mut schemas = AppSchemas::default();
        for app in ["retail", "smart-home"] {
            let dir = repository().join("apps").join(app).join("knactors");
            for entry in std::fs::read_dir(&dir).expect("the apps' knactors") {
                let text = std::fs::read_to_string(entry.expect("a manifest").path()).unwrap();
                let manifest: Value = serde_yaml::from_str(&text).expect("a manifest");
                let knactor = manifest["metadata"]["name"].as_str().expect("a name");
                for store in manifest["spec"]["stores"].as_array().into_iter().flatten() {
                    let name = format!("{knactor}/{}", store["name"].as_str().expect("a name"));
                    let kinds = match store["exchange"].as_str() {
                        Some("log") => &mut schemas.logs,
                        _ => &mut schemas.objects,
                    };
                    kinds.insert(name.parse().expect("a store"), store["schema"].clone());
                }
            }
        }
        schemas
    })
}

/// A JSON document as fuzz input describes it. Object keys are mostly picked from a list the
/// target gives (the fields its schemas name), so that the fuzzer reaches the checks behind
/// them; numbers lean to the small and the edge cases.
#[derive(Clone, Debug, Arbitrary)]
pub enum Doc {
    /// `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// A small integer.
    Small(i8),
    /// Any integer.
    Int(i64),
    /// Any double (non-finite ones become `null`).
    Float(f64),
    /// A string.
    Text(Text),
    /// A list.
    List(Vec<Doc>),
    /// An object.
    Object(Vec<(Key, Doc)>),
}

/// A string, often one of a few that schemas and expressions name.
#[derive(Clone, Debug, Arbitrary)]
pub enum Text {
    /// One of [`WORDS`].
    Word(u8),
    /// Anything.
    Any(String),
}

/// An object key, usually one of the target's fields.
#[derive(Clone, Debug, Arbitrary)]
pub enum Key {
    /// The field at this index (modulo) of the target's list.
    Field(u8),
    /// Anything.
    Any(String),
}

/// Strings that schemas and expressions of the targets compare against.
pub const WORDS: &[&str] =
    &["", "ground", "air", "high", "low", "a", "sku-1", "é", "abcdefghijklmnopqrstuvwxyz"];

impl Doc {
    /// The document, with keys picked from `fields`.
    pub fn to_json(&self, fields: &[&str]) -> Value {
        match self {
            Doc::Null => Value::Null,
            Doc::Bool(b) => Value::Bool(*b),
            Doc::Small(i) => Value::from(*i),
            Doc::Int(i) => Value::from(*i),
            Doc::Float(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Doc::Text(Text::Word(i)) => Value::from(WORDS[usize::from(*i) % WORDS.len()]),
            Doc::Text(Text::Any(s)) => Value::from(s.as_str()),
            Doc::List(items) => Value::Array(items.iter().map(|d| d.to_json(fields)).collect()),
            Doc::Object(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(key, doc)| {
                        let key = match key {
                            Key::Field(i) if !fields.is_empty() => {
                                fields[usize::from(*i) % fields.len()].to_owned()
                            }
                            Key::Field(i) => i.to_string(),
                            Key::Any(s) => s.clone(),
                        };
                        (key, doc.to_json(fields))
                    })
                    .collect(),
            ),
        }
    }

    /// The document as an object: itself when it is one, else `{fields[0]: it}`.
    pub fn to_object(&self, fields: &[&str]) -> Map<String, Value> {
        match self.to_json(fields) {
            Value::Object(map) => map,
            other => Map::from_iter([(fields.first().unwrap_or(&"value").to_string(), other)]),
        }
    }
}

/// The fields [`object_schema`] names, for [`Doc::to_json`] to pick keys from.
pub const FIELDS: &[&str] =
    &["id", "total", "count", "method", "tags", "address", "city", "zip", "paid", "note", "x"];

/// A schema with every keyword the Redis library's Lua checks, and `pattern` (checked in Rust
/// only) when `with_pattern`.
pub fn object_schema(with_pattern: bool) -> Value {
    let mut zip = serde_json::json!({"type": "string", "minLength": 5});
    if with_pattern {
        zip["pattern"] = Value::from("^[0-9]{5}$");
    }
    serde_json::json!({
        "type": "object",
        "required": ["id"],
        "additionalProperties": false,
        "properties": {
            "id": {"type": "string", "minLength": 1, "maxLength": 20},
            "total": {"type": "number", "minimum": 0, "exclusiveMaximum": 1_000_000},
            "count": {"type": "integer", "maximum": 100, "exclusiveMinimum": -1},
            "method": {"enum": ["ground", "air"]},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 5},
            "address": {
                "type": "object",
                "required": ["city"],
                "properties": {"city": {"type": "string"}, "zip": zip},
                "additionalProperties": {"type": ["string", "null"]}
            },
            "paid": {"const": true},
            "note": {"type": ["string", "null"]},
            "x": true
        }
    })
}

/// Whether two documents are equal, numbers compared by value (`3` and `3.0` are one number).
pub fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same_json(a, b))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

/// RFC 7386 merge patch, written from the RFC's pseudo-code as the reference the exchanges'
/// merges are compared with.
pub fn merge_patch(target: &Value, patch: &Value) -> Value {
    let Value::Object(patch) = patch else { return patch.clone() };
    let mut merged = match target {
        Value::Object(target) => target.clone(),
        _ => Map::new(),
    };
    for (name, value) in patch {
        if value.is_null() {
            merged.remove(name);
        } else {
            let inner = merge_patch(merged.get(name).unwrap_or(&Value::Null), value);
            merged.insert(name.clone(), inner);
        }
    }
    Value::Object(merged)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn merge_patch_follows_the_rfc_examples() {
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "b"}), json!({"b": "c"}), json!({"a": "b", "b": "c"})),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (json!({"a": [{"b": "c"}]}), json!({"a": [1]}), json!({"a": [1]})),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a": "foo"}), json!(null), json!(null)),
            (json!({"e": null}), json!({"a": 1}), json!({"e": null, "a": 1})),
            (json!([1, 2]), json!({"a": "b", "c": null}), json!({"a": "b"})),
            (json!({}), json!({"a": {"bb": {"ccc": null}}}), json!({"a": {"bb": {}}})),
        ];
        for (target, patch, want) in cases {
            assert_eq!(merge_patch(&target, &patch), want, "{target} + {patch}");
        }
    }

    #[test]
    fn the_apps_schemas_are_read() {
        let schemas = app_schemas();
        assert!(schemas.objects.contains_key(&"shipping/shipments".parse().unwrap()));
        assert!(schemas.logs.contains_key(&"email/sent".parse().unwrap()));
    }
}
