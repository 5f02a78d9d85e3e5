//! A store's JSON Schema (draft 2020-12) as the structural OpenAPI v3 schema the apiserver
//! demands of a CustomResourceDefinition.
//!
//! The structural schema accepts at least what the JSON Schema accepts and never prunes a
//! field the JSON Schema allows: Knactor still validates every write against the JSON Schema
//! itself, so where Kubernetes cannot say as much the structural schema says less, and where
//! it cannot even describe the data's shape the store is refused.

use std::fmt;

use serde_json::{Map, Value, json};

/// A JSON Schema the apiserver could not serve as a structural schema.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct NotStructural {
    /// The keys (and array indexes, as strings) from the schema's root to the offending
    /// keyword, e.g. `["properties", "items", "oneOf"]`. A schema refused as a whole (`false`)
    /// is named by the key that holds it, as if it were the keyword.
    pub path: Vec<String>,
    /// The offending keyword, the last of `path` (`schema` for a root refused as a whole).
    pub keyword: String,
    /// Why Kubernetes cannot take it, and what to write instead.
    pub reason: String,
}

impl fmt::Display for NotStructural {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let node = match self.path.split_last() {
            Some((last, node)) if *last == self.keyword => node,
            _ => &self.path,
        };
        let at = match node {
            [] => "the root".to_owned(),
            _ => node
                .iter()
                .map(|k| format!("/{}", k.replace('~', "~0").replace('/', "~1")))
                .collect(),
        };
        write!(
            f,
            "`{}` at {at}: {} (Kubernetes cannot serve this store)",
            self.keyword, self.reason
        )
    }
}

/// Converts a store's JSON Schema into a structural OpenAPI v3 schema.
///
/// Kept: `type` (and `[X, "null"]` as `type: X, nullable: true`), `properties`, `required`,
/// `items`, `enum` (`const` as a one-element `enum`), `default`, `description`, `format` and
/// the numeric, length and count bounds (2020-12's numeric `exclusiveMinimum` becomes
/// `minimum` with `exclusiveMinimum: true`). A node without `type`, and an object that allows
/// fields its `properties` do not name, gets `x-kubernetes-preserve-unknown-fields: true`;
/// `uniqueItems` becomes `x-kubernetes-list-type: set`. Annotations (`title`, `examples`,
/// `x-knactor-*` ...) are dropped. Anything else is [`NotStructural`].
pub fn structural_schema(schema: &Value) -> Result<Value, NotStructural> {
    node(schema, &mut Vec::new()).map(Value::Object)
}

/// Keywords OpenAPI v3 shares with JSON Schema, copied as they are.
const COPIED: &[&str] = &[
    "description",
    "default",
    "format",
    "enum",
    "required",
    "minimum",
    "maximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
];

/// Keywords translated by the functions below rather than copied.
const TRANSLATED: &[&str] = &[
    "type",
    "const",
    "pattern",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "properties",
    "additionalProperties",
    "items",
    "uniqueItems",
];

/// Keywords Knactor reads as annotations (with every `x-` extension but Kubernetes' own):
/// dropped, as the CRD keeps the whole schema in an annotation.
const DROPPED: &[&str] =
    &["$schema", "$id", "title", "$comment", "examples", "readOnly", "writeOnly", "deprecated"];

/// The types a structural schema can give a node.
const TYPES: &[&str] = &["object", "array", "string", "integer", "number", "boolean"];

/// What becomes of a keyword in the structural schema.
enum Fate {
    /// Copied as it is.
    Copied,
    /// Translated (or dropped) by the keyword's own rule.
    Translated,
    /// Dropped: an annotation.
    Dropped,
    /// Refused, for this reason.
    Refused(&'static str),
}

/// What becomes of `keyword`.
fn fate(keyword: &str) -> Fate {
    if COPIED.contains(&keyword) {
        Fate::Copied
    } else if TRANSLATED.contains(&keyword) {
        Fate::Translated
    } else if keyword.starts_with("x-kubernetes-") {
        Fate::Refused("Knactor derives the Kubernetes extensions from the JSON Schema; remove it")
    } else if DROPPED.contains(&keyword) || keyword.starts_with("x-") {
        Fate::Dropped
    } else {
        Fate::Refused(unsupported(keyword))
    }
}

/// Converts the schema at `path`.
fn node(schema: &Value, path: &mut Vec<String>) -> Result<Map<String, Value>, NotStructural> {
    let schema = match schema {
        Value::Object(schema) => schema,
        Value::Bool(true) => return Ok(preserve_unknown()),
        Value::Bool(false) => {
            return Err(refuse_node(
                path,
                "a `false` schema (nothing is valid) has no Kubernetes form",
            ));
        }
        _ => return Err(refuse_node(path, "a schema must be an object or a boolean")),
    };
    let mut out = Map::new();
    let (ty, nullable) = node_type(schema, path)?;
    match ty {
        Some(ty) => out.insert("type".into(), ty.into()),
        None => out.insert(PRESERVE.into(), true.into()),
    };
    if nullable {
        out.insert("nullable".into(), true.into());
    }
    for (keyword, value) in schema {
        match fate(keyword) {
            Fate::Copied => {
                out.insert(keyword.clone(), value.clone());
            }
            Fate::Translated | Fate::Dropped => {}
            Fate::Refused(reason) => return Err(refuse(path, keyword, reason)),
        }
    }
    if let Some(value) = schema.get("const") {
        if schema.contains_key("enum") {
            return Err(refuse(path, "const", "`const` together with `enum`: keep one of them"));
        }
        out.insert("enum".into(), json!([value]));
    }
    if let Some(pattern) = schema.get("pattern") {
        check_pattern(pattern, path)?;
        out.insert("pattern".into(), pattern.clone());
    }
    bound(schema, &mut out, path, "exclusiveMinimum", "minimum", |e, m| e >= m)?;
    bound(schema, &mut out, path, "exclusiveMaximum", "maximum", |e, m| e <= m)?;
    object_keywords(schema, &mut out, ty, path)?;
    array_keywords(schema, &mut out, ty, path)?;
    Ok(out)
}

/// The extension that keeps fields the schema does not name.
const PRESERVE: &str = "x-kubernetes-preserve-unknown-fields";

/// A node that takes any value and keeps all of it.
fn preserve_unknown() -> Map<String, Value> {
    Map::from_iter([(PRESERVE.to_owned(), Value::Bool(true))])
}

/// The node's one type, and whether it may also be null.
fn node_type<'a>(
    schema: &'a Map<String, Value>,
    path: &[String],
) -> Result<(Option<&'a str>, bool), NotStructural> {
    let single = |ty: &'a Value| ty.as_str().filter(|ty| TYPES.contains(ty));
    let one_type = "a Kubernetes field has one type: write `type: X`, or `type: [X, \"null\"]` \
        for a field that may be null";
    match schema.get("type") {
        None => Ok((None, false)),
        Some(Value::String(ty)) if ty == "null" => {
            let reason = "Kubernetes has no `null` type: write `type: [X, \"null\"]`";
            Err(refuse(path, "type", reason))
        }
        Some(ty @ Value::String(_)) => match single(ty) {
            Some(ty) => Ok((Some(ty), false)),
            None => Err(refuse(path, "type", "not a JSON Schema type")),
        },
        Some(Value::Array(types)) => {
            let nullable = types.iter().any(|t| t == "null");
            let others: Vec<_> = types.iter().filter(|t| *t != "null").collect();
            match others[..] {
                [ty] if types.len() == others.len() + usize::from(nullable) => match single(ty) {
                    Some(ty) => Ok((Some(ty), nullable)),
                    None => Err(refuse(path, "type", one_type)),
                },
                _ => Err(refuse(path, "type", one_type)),
            }
        }
        Some(_) => Err(refuse(path, "type", "`type` must be a string or an array of strings")),
    }
}

/// Why a JSON Schema keyword has no structural form.
fn unsupported(keyword: &str) -> &'static str {
    match keyword {
        "oneOf" | "anyOf" | "allOf" | "not" => {
            "a structural schema gives each field one shape, and Knactor does not translate \
             combinations of schemas; describe the field with one `type` (and `enum`), or \
             leave it open with `{}`"
        }
        "$ref" | "$defs" | "definitions" | "$anchor" | "$dynamicRef" | "$dynamicAnchor" => {
            "a structural schema is self-contained: write the referenced schema in place"
        }
        "if" | "then" | "else" | "dependentRequired" | "dependentSchemas" | "dependencies" => {
            "a structural schema cannot make one field's rules depend on another's"
        }
        "patternProperties" | "propertyNames" => {
            "a Kubernetes map constrains its values (`additionalProperties: {schema}`), not its \
             keys"
        }
        "prefixItems" | "additionalItems" | "contains" | "minContains" | "maxContains" => {
            "a Kubernetes list has one schema for every element (`items`)"
        }
        "unevaluatedProperties" | "unevaluatedItems" => {
            "use `additionalProperties` (objects) or `items` (arrays) instead"
        }
        _ => "Knactor cannot translate this keyword into a structural schema",
    }
}

/// Translates 2020-12's numeric `exclusive` (`exclusiveMinimum`) into OpenAPI v3.0's
/// `inclusive` number (`minimum`) with `exclusive: true`; `stricter(e, m)` tells whether the
/// exclusive bound `e` is at least as strict as the inclusive `m`.
fn bound(
    schema: &Map<String, Value>,
    out: &mut Map<String, Value>,
    path: &[String],
    exclusive: &str,
    inclusive: &str,
    stricter: fn(f64, f64) -> bool,
) -> Result<(), NotStructural> {
    let Some(value) = schema.get(exclusive) else { return Ok(()) };
    let Some(bound) = value.as_f64() else {
        let reason = format!("in draft 2020-12 `{exclusive}` is a number (the bound itself)");
        return Err(refuse(path, exclusive, reason));
    };
    let inclusive_bound = schema.get(inclusive).and_then(Value::as_f64);
    if inclusive_bound.is_none_or(|m| stricter(bound, m)) {
        out.insert(inclusive.into(), value.clone());
        out.insert(exclusive.into(), true.into());
    }
    Ok(())
}

/// `properties` and `additionalProperties`, and whether unknown fields are kept.
fn object_keywords(
    schema: &Map<String, Value>,
    out: &mut Map<String, Value>,
    ty: Option<&str>,
    path: &mut Vec<String>,
) -> Result<(), NotStructural> {
    let properties = match schema.get("properties") {
        None => None,
        Some(Value::Object(properties)) => Some(properties),
        Some(_) => return Err(refuse(path, "properties", "`properties` must be an object")),
    };
    if let Some(properties) = properties {
        let mut converted = Map::new();
        for (name, property) in properties {
            path.extend(["properties".to_owned(), name.clone()]);
            converted.insert(name.clone(), Value::Object(node(property, path)?));
            path.truncate(path.len() - 2);
        }
        out.insert("properties".into(), Value::Object(converted));
    }
    let named = properties.is_some_and(|p| !p.is_empty());
    let open = match schema.get("additionalProperties") {
        None | Some(Value::Bool(true)) => true,
        Some(Value::Bool(false)) => false,
        Some(Value::Object(extra)) if extra.is_empty() => true,
        Some(extra @ Value::Object(_)) if !named => {
            path.push("additionalProperties".into());
            let values = node(extra, path)?;
            path.pop();
            out.insert("additionalProperties".into(), Value::Object(values));
            false
        }
        Some(Value::Object(_)) => {
            let reason = "Kubernetes treats an object either as a struct (`properties`) or as a \
                map (`additionalProperties: {schema}`), not both; make the extra fields a map of \
                their own";
            return Err(refuse(path, "additionalProperties", reason));
        }
        Some(_) => {
            let reason = "`additionalProperties` must be a boolean or a schema";
            return Err(refuse(path, "additionalProperties", reason));
        }
    };
    if open && ty == Some("object") {
        out.insert(PRESERVE.into(), true.into());
    }
    Ok(())
}

/// `items` (required of a Kubernetes array) and `uniqueItems`.
fn array_keywords(
    schema: &Map<String, Value>,
    out: &mut Map<String, Value>,
    ty: Option<&str>,
    path: &mut Vec<String>,
) -> Result<(), NotStructural> {
    let items = match schema.get("items") {
        Some(Value::Array(_)) => {
            let reason = "a Kubernetes list has one schema for every element: `items` must be \
                a schema, not a list of them";
            return Err(refuse(path, "items", reason));
        }
        Some(items) => {
            path.push("items".into());
            let items = node(items, path)?;
            path.pop();
            Some(items)
        }
        // Kubernetes wants every array to say what its elements are: anything here.
        None if ty == Some("array") => Some(preserve_unknown()),
        None => None,
    };
    let Some(mut items) = items else { return Ok(()) };
    // Kubernetes forbids `uniqueItems: true` (quadratic to check); a set list says the same
    // of typed, non-null elements, and is otherwise left to Knactor's own validation.
    let unique = schema.get("uniqueItems") == Some(&Value::Bool(true));
    let typed = items.get("type").and_then(Value::as_str);
    if unique && ty == Some("array") && typed.is_some() && !items.contains_key("nullable") {
        out.insert("x-kubernetes-list-type".into(), "set".into());
        if typed == Some("object") {
            items.insert("x-kubernetes-map-type".into(), "atomic".into());
        }
    }
    out.insert("items".into(), Value::Object(items));
    Ok(())
}

/// Refuses a `pattern` Go's RE2 (the apiserver's regexp engine) cannot compile: lookaround
/// and backreferences. Other ECMA-262 features RE2 lacks are rarer and left to the apiserver.
fn check_pattern(pattern: &Value, path: &[String]) -> Result<(), NotStructural> {
    let Some(pattern) = pattern.as_str() else {
        return Err(refuse(path, "pattern", "`pattern` must be a string"));
    };
    let lookaround = ["(?=", "(?!", "(?<=", "(?<!"].iter().any(|l| pattern.contains(l));
    let bytes = pattern.as_bytes();
    let backreference = bytes.windows(2).enumerate().any(|(i, w)| {
        let escaped = bytes[..i].iter().rev().take_while(|&&b| b == b'\\').count() % 2 == 1;
        w[0] == b'\\' && !escaped && ((w[1].is_ascii_digit() && w[1] != b'0') || w[1] == b'k')
    });
    if lookaround || backreference {
        let reason = "the apiserver matches patterns with Go's RE2, which has no lookaround \
            (`(?=`, `(?!`, `(?<=`, `(?<!`) and no backreferences (`\\1`, `\\k<name>`)";
        return Err(refuse(path, "pattern", reason));
    }
    Ok(())
}

/// A refusal of the whole schema at `path`, named by the key that holds it (`schema` at the
/// root).
fn refuse_node(path: &[String], reason: &str) -> NotStructural {
    let keyword = path.last().map_or("schema", String::as_str).to_owned();
    NotStructural { path: path.to_vec(), keyword, reason: reason.into() }
}

/// A refusal of `keyword` in the schema at `path`.
fn refuse(path: &[String], keyword: &str, reason: impl Into<String>) -> NotStructural {
    let mut path = path.to_vec();
    path.push(keyword.to_owned());
    NotStructural { path, keyword: keyword.to_owned(), reason: reason.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert(schema: Value) -> Value {
        structural_schema(&schema).unwrap_or_else(|e| panic!("{schema}: {e}"))
    }

    #[test]
    fn rules_turn_json_schema_into_structural_schema() {
        let cases = [
            // Scalars and their bounds are kept; annotations dropped.
            (
                json!({"type": "string", "minLength": 1, "maxLength": 9, "pattern": "^[A-Z]{2}$",
                       "format": "email", "description": "d", "title": "t", "examples": ["x"],
                       "$comment": "c", "x-knactor-ingest": true, "x-other": 1, "default": "a"}),
                json!({"type": "string", "minLength": 1, "maxLength": 9, "pattern": "^[A-Z]{2}$",
                       "format": "email", "description": "d", "default": "a"}),
            ),
            (
                json!({"type": "integer", "minimum": 0, "maximum": 23, "multipleOf": 1}),
                json!({"type": "integer", "minimum": 0, "maximum": 23, "multipleOf": 1}),
            ),
            // 2020-12's numeric exclusive bounds become OpenAPI v3.0's boolean ones.
            (
                json!({"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}),
                json!({"type": "number", "minimum": 0, "exclusiveMinimum": true,
                       "maximum": 1, "exclusiveMaximum": true}),
            ),
            // ... unless the inclusive bound is the stricter one.
            (
                json!({"type": "number", "minimum": 5, "exclusiveMinimum": 3}),
                json!({"type": "number", "minimum": 5}),
            ),
            (
                json!({"type": "number", "minimum": 3, "exclusiveMinimum": 3}),
                json!({"type": "number", "minimum": 3, "exclusiveMinimum": true}),
            ),
            // Nullable and const.
            (
                json!({"type": ["object", "null"]}),
                json!({"type": "object", "nullable": true,
                       "x-kubernetes-preserve-unknown-fields": true}),
            ),
            (json!({"type": ["null", "string"]}), json!({"type": "string", "nullable": true})),
            (json!({"type": ["string"]}), json!({"type": "string"})),
            (json!({"type": "string", "const": "a"}), json!({"type": "string", "enum": ["a"]})),
            (
                json!({"type": "string", "enum": ["ground", "air"]}),
                json!({"type": "string", "enum": ["ground", "air"]}),
            ),
            // No type: anything, kept whole.
            (json!({}), json!({"x-kubernetes-preserve-unknown-fields": true})),
            (
                json!({"description": "any"}),
                json!({"description": "any", "x-kubernetes-preserve-unknown-fields": true}),
            ),
            (json!(true), json!({"x-kubernetes-preserve-unknown-fields": true})),
            // Objects keep unknown fields unless `additionalProperties: false`.
            (
                json!({"type": "object", "required": ["a"], "properties": {"a": {"type": "string"}}}),
                json!({"type": "object", "required": ["a"], "properties": {"a": {"type": "string"}},
                       "x-kubernetes-preserve-unknown-fields": true}),
            ),
            (
                json!({"type": "object", "additionalProperties": true, "properties": {}}),
                json!({"type": "object", "properties": {},
                       "x-kubernetes-preserve-unknown-fields": true}),
            ),
            (
                json!({"type": "object", "additionalProperties": false,
                       "properties": {"a": {"type": "string"}}}),
                json!({"type": "object", "properties": {"a": {"type": "string"}}}),
            ),
            // A map: its values' schema, recursively.
            (
                json!({"type": "object", "minProperties": 1,
                       "additionalProperties": {"type": "number", "exclusiveMaximum": 100}}),
                json!({"type": "object", "minProperties": 1, "additionalProperties":
                       {"type": "number", "maximum": 100, "exclusiveMaximum": true}}),
            ),
            (
                json!({"type": "object", "additionalProperties": {"type": "object"}}),
                json!({"type": "object", "additionalProperties":
                       {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}),
            ),
            // Arrays: items recursively; an array without items holds anything.
            (
                json!({"type": "array", "minItems": 1, "maxItems": 3,
                       "items": {"type": "string", "x-knactor-ingest": true}}),
                json!({"type": "array", "minItems": 1, "maxItems": 3, "items": {"type": "string"}}),
            ),
            (
                json!({"type": "array"}),
                json!({"type": "array", "items": {"x-kubernetes-preserve-unknown-fields": true}}),
            ),
            (
                json!({"type": "array", "items": true}),
                json!({"type": "array", "items": {"x-kubernetes-preserve-unknown-fields": true}}),
            ),
            // uniqueItems: a set list of typed, non-null elements; else Knactor's to check.
            (
                json!({"type": "array", "uniqueItems": true, "items": {"type": "string"}}),
                json!({"type": "array", "x-kubernetes-list-type": "set",
                       "items": {"type": "string"}}),
            ),
            (
                json!({"type": "array", "uniqueItems": true,
                       "items": {"type": "object", "additionalProperties": false}}),
                json!({"type": "array", "x-kubernetes-list-type": "set",
                       "items": {"type": "object", "x-kubernetes-map-type": "atomic"}}),
            ),
            (
                json!({"type": "array", "uniqueItems": true}),
                json!({"type": "array", "items": {"x-kubernetes-preserve-unknown-fields": true}}),
            ),
            (
                json!({"type": "array", "uniqueItems": true, "items": {"type": ["string", "null"]}}),
                json!({"type": "array", "items": {"type": "string", "nullable": true}}),
            ),
            (
                json!({"type": "array", "uniqueItems": false, "items": {"type": "string"}}),
                json!({"type": "array", "items": {"type": "string"}}),
            ),
            // Root annotations.
            (
                json!({"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "x",
                       "type": "object", "additionalProperties": false, "readOnly": true,
                       "writeOnly": false, "deprecated": false}),
                json!({"type": "object"}),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(convert(input.clone()), want, "{input}");
        }
    }

    #[test]
    fn nested_schemas_convert_all_the_way_down() {
        let orders = json!({
            "type": "object",
            "required": ["items"],
            "properties": {
                "status": {"type": "string", "enum": ["placed", "completed"]},
                "items": {
                    "type": "array",
                    "x-knactor-ingest": true,
                    "items": {
                        "type": "object",
                        "required": ["sku", "qty"],
                        "properties": {
                            "sku": {"type": "string"},
                            "qty": {"type": "integer", "minimum": 1},
                        },
                    },
                },
                "product": {"type": ["object", "null"]},
            },
        });
        let preserve = "x-kubernetes-preserve-unknown-fields";
        let want = json!({
            "type": "object",
            preserve: true,
            "required": ["items"],
            "properties": {
                "status": {"type": "string", "enum": ["placed", "completed"]},
                "items": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        preserve: true,
                        "required": ["sku", "qty"],
                        "properties": {
                            "sku": {"type": "string"},
                            "qty": {"type": "integer", "minimum": 1},
                        },
                    },
                },
                "product": {"type": "object", "nullable": true, preserve: true},
            },
        });
        assert_eq!(convert(orders), want);
    }

    #[test]
    fn refusals_name_the_keyword_and_where_it_is() {
        let cases = [
            (json!({"type": "object", "oneOf": [{}, {}]}), vec!["oneOf"]),
            (
                json!({"type": "object", "properties": {"items": {"anyOf": [{"type": "string"}]}}}),
                vec!["properties", "items", "anyOf"],
            ),
            (json!({"allOf": [{}]}), vec!["allOf"]),
            (json!({"not": {"type": "string"}}), vec!["not"]),
            (json!({"$ref": "#/$defs/a"}), vec!["$ref"]),
            (json!({"$defs": {"a": {}}}), vec!["$defs"]),
            (json!({"if": {}, "then": {}}), vec!["if"]),
            (json!({"type": "object", "patternProperties": {"^a": {}}}), vec!["patternProperties"]),
            (json!({"type": "array", "prefixItems": [{}]}), vec!["prefixItems"]),
            (json!({"type": "array", "items": [{}]}), vec!["items"]),
            (json!({"dependentRequired": {"a": ["b"]}}), vec!["dependentRequired"]),
            (json!({"type": ["string", "integer"]}), vec!["type"]),
            (json!({"type": ["string", "integer", "null"]}), vec!["type"]),
            (json!({"type": "null"}), vec!["type"]),
            (json!({"type": "strin"}), vec!["type"]),
            (json!({"nullable": true}), vec!["nullable"]),
            (json!({"x-kubernetes-int-or-string": true}), vec!["x-kubernetes-int-or-string"]),
            (json!({"const": 1, "enum": [1]}), vec!["const"]),
            (json!({"exclusiveMinimum": true, "minimum": 0}), vec!["exclusiveMinimum"]),
            (json!({"type": "string", "pattern": "^(?!x)"}), vec!["pattern"]),
            (json!({"type": "string", "pattern": "(a)\\1"}), vec!["pattern"]),
            (
                json!({"type": "object", "properties": {"a": {}}, "additionalProperties": {"type": "string"}}),
                vec!["additionalProperties"],
            ),
            (
                json!({"type": "object", "additionalProperties": {"type": "array", "items": {"oneOf": []}}}),
                vec!["additionalProperties", "items", "oneOf"],
            ),
            (json!({"type": "object", "properties": {"gone": false}}), vec!["properties", "gone"]),
            (json!({"type": "array", "items": false}), vec!["items"]),
            (json!(false), vec![]),
        ];
        for (input, want) in cases {
            let err = structural_schema(&input).unwrap_err();
            assert_eq!(err.path, want, "{input}: {err}");
            let keyword = want.last().copied().unwrap_or("schema");
            assert_eq!(err.keyword, keyword, "{input}: {err}");
            assert!(err.to_string().ends_with("(Kubernetes cannot serve this store)"), "{err}");
        }
    }

    #[test]
    fn a_refusal_reads_as_where_and_why() {
        let schema = json!({"type": "object", "properties": {"items": {"oneOf": [{}]}}});
        let err = structural_schema(&schema).unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with("`oneOf` at /properties/items: a structural schema"),
            "{message}"
        );
        let err = structural_schema(&json!({"not": {}})).unwrap_err().to_string();
        assert!(err.starts_with("`not` at the root: "), "{err}");
        let err = structural_schema(&json!({"properties": {"a/b": {"$ref": "#"}}})).unwrap_err();
        assert!(err.to_string().starts_with("`$ref` at /properties/a~1b: "), "{err}");
    }

    #[test]
    fn patterns_re2_can_compile_pass() {
        for pattern in ["^[A-Z]{2}$", "\\\\1", "a\\d+", "(?i)abc", "^\\p{L}+$"] {
            let schema = json!({"type": "string", "pattern": pattern});
            assert!(structural_schema(&schema).is_ok(), "{pattern}");
        }
    }
}
