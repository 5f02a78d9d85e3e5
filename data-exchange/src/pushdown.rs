//! Pushdown: Cast edges an exchange runs itself, inside the writes of their source store, so
//! that the target is written without a round trip through the integrator.
//!
//! The integrator compiles an edge to two Lua functions (see `integrators::cast::pushdown`);
//! the exchange takes the edges whose target schema it can check where it runs them, and says
//! why it refuses the others, which keep running in the integrator. Only the Redis exchange
//! runs edges (as Redis Functions); the others refuse every edge.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::object::StoreRef;
use crate::schema::is_annotation;

/// One Cast edge compiled to Lua.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushedEdge {
    /// A name unique within the exchange (`<cast>/<edge>`).
    pub name: String,
    /// Its `from` aliases with their stores: a write to any of them runs it, with that alias
    /// bound to the object written and the others to the objects of the same name.
    pub sources: Vec<(String, StoreRef)>,
    /// The store it writes.
    pub target: StoreRef,
    /// The top-level fields of the target it writes.
    pub fields: Vec<String>,
    /// Deleting a source object deletes its target.
    pub cascade: bool,
    /// `function(key, b) ... end`: the target object's name, given the written object's name
    /// and the table of the `from` aliases' data.
    pub key: String,
    /// `function(key, b) ... end`: the fields to merge into the target (a table), or `nil` when
    /// the edge's condition does not hold.
    pub patch: String,
}

/// What [`ObjectExchange::push_down`](crate::ObjectExchange::push_down) did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PushDown {
    /// The edges it runs.
    pub running: Vec<String>,
    /// The edges it refused, with why.
    pub refused: Vec<(String, String)>,
    /// Per source store of a running edge, the store version from which the exchange runs
    /// it: changes up to this version may have been made before it ran.
    pub from: BTreeMap<StoreRef, u64>,
}

impl PushDown {
    /// Every edge refused with the same reason.
    pub fn refuse_all(edges: &[PushedEdge], why: &str) -> Self {
        let refused = edges.iter().map(|e| (e.name.clone(), why.to_owned())).collect();
        PushDown { refused, ..PushDown::default() }
    }
}

/// The JSON Schema keywords the Lua side checks; a pushed-down edge's target schema may use
/// these and annotations.
const CHECKED: &[&str] = &[
    "type",
    "enum",
    "const",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "items",
    "required",
    "properties",
    "additionalProperties",
];

/// `Ok` when the Lua side can tell whether writing `fields` (top-level) keeps an object valid
/// against `schema`: every keyword is one it checks (or an annotation, or an `x-` extension),
/// except in the subschemas of other properties, which a write of `fields` leaves as valid as
/// they were. Else the first keyword it cannot check, with its JSON pointer.
pub fn checkable_in_lua(schema: &Value, fields: &[String]) -> Result<(), String> {
    let Some(root) = schema.as_object() else { return checkable_at(schema, "") };
    let written = root.iter().map(|(keyword, value)| match (keyword.as_str(), value) {
        ("properties", Value::Object(properties)) => {
            let written = properties.iter().filter(|(name, _)| fields.contains(name));
            Value::Object(written.map(|(name, inner)| (name.clone(), inner.clone())).collect())
        }
        _ => value.clone(),
    });
    let keywords = root.keys().cloned().zip(written).collect();
    checkable_at(&Value::Object(keywords), "")
}

fn checkable_at(schema: &Value, at: &str) -> Result<(), String> {
    let Some(map) = schema.as_object() else {
        return match schema {
            Value::Bool(_) => Ok(()),
            _ => Err(format!("{at}: not a schema")),
        };
    };
    for (keyword, value) in map {
        let here = format!("{at}/{keyword}");
        match keyword.as_str() {
            "properties" => {
                for (name, inner) in value.as_object().into_iter().flatten() {
                    checkable_at(inner, &format!("{here}/{name}"))?;
                }
            }
            "items" | "additionalProperties" => checkable_at(value, &here)?,
            k if CHECKED.contains(&k) || is_annotation(k) => {}
            other => return Err(format!("its schema uses `{other}` (at {here})")),
        }
    }
    Ok(())
}

/// `s` as a Lua string literal: printable ASCII as is, every other byte as `\ddd`.
pub fn lua_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for byte in s.bytes() {
        match byte {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(byte as char);
            }
            0x20..=0x7e => out.push(byte as char),
            _ => out.push_str(&format!("\\{byte:03}")),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn schemas_with_keywords_lua_does_not_check_are_refused() {
        let plain = json!({"type": "object", "properties": {
            "method": {"type": "string", "enum": ["ground", "air"], "x-knactor-ingest": true},
            "items": {"type": "array", "items": {"type": "object", "required": ["sku"]}},
        }});
        let fields = ["method".to_owned(), "items".to_owned()];
        assert_eq!(checkable_in_lua(&plain, &fields), Ok(()));
        let pattern = json!({"properties": {"address": {"properties": {
            "country": {"type": "string", "pattern": "^[A-Z]{2}$"}
        }}, "trackingID": {"type": "string"}}});
        let error = checkable_in_lua(&pattern, &["address".to_owned()]).unwrap_err();
        assert!(error.contains("`pattern`") && error.contains("/properties/address"), "{error}");
        assert_eq!(checkable_in_lua(&pattern, &["trackingID".to_owned()]), Ok(()));
        let root = json!({"type": "object", "if": {"required": ["a"]}});
        assert!(checkable_in_lua(&root, &[]).unwrap_err().contains("`if`"));
    }

    #[test]
    fn lua_strings_escape_quotes_and_bytes() {
        assert_eq!(lua_string(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(lua_string("é\n"), r#""\195\169\010""#);
    }
}
