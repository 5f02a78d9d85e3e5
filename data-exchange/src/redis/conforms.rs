//! The schema check of an edge run in Redis: which target schemas the Lua side can check
//! ([`checkable_in_lua`]), and the check generated from one ([`conforms`]).
//!
//! The library's `violation` walks any schema the Lua side checks and says what is wrong, at a
//! cost: a call per value and per keyword. What an edge runs first is this code instead: the
//! same keywords unrolled for one schema, answering only whether the target conforms. When it
//! says no, the library asks `violation` why.

use serde_json::{Map, Value};

use super::codegen::lua_string;
use crate::schema::is_annotation;

/// The JSON Schema keywords the Lua side checks; the target schema of an edge run here may use
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
pub(super) fn checkable_in_lua(schema: &Value, fields: &[String]) -> Result<(), String> {
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

/// `function(v, s) ... end`: whether `v` conforms to `schema`, whose decoded table is `s`.
/// What it does not unroll (`enum` and `const` of lists or objects) it leaves to `violation` on
/// the subschema, found in `s`.
pub(super) fn conforms(schema: &Value) -> String {
    let mut lua = Lua::default();
    lua.check(schema, "v", "s");
    format!("function(v, s)\n{}return true\nend", lua.code)
}

/// Lua statements under construction.
#[derive(Default)]
struct Lua {
    code: String,
    /// Locals named so far.
    locals: usize,
}

impl Lua {
    fn line(&mut self, line: &str) {
        self.code.push_str(line);
        self.code.push('\n');
    }

    /// Statements that return false unless `var`, which is not nil, conforms to `schema`,
    /// found at `table` in `s`.
    fn check(&mut self, schema: &Value, var: &str, table: &str) {
        let keywords = match schema {
            Value::Bool(true) => return,
            Value::Object(keywords) if unrollable(keywords) => keywords,
            Value::Object(_) => {
                return self
                    .line(&format!("if violation({table}, {var}, '') then return false end"));
            }
            _ => return self.line("do return false end"),
        };
        for test in tests(keywords, var) {
            self.line(&format!("if not ({test}) then return false end"));
        }
        if let Some(Value::Object(properties)) = keywords.get("properties") {
            self.line(&format!("if is_object({var}) then"));
            for (name, inner) in properties {
                let field = self.local();
                let key = lua_string(name);
                self.line(&format!("do local {field} = {var}[{key}]"));
                self.line(&format!("if {field} ~= nil then"));
                self.check(inner, &field, &format!("{table}.properties[{key}]"));
                self.line("end end");
            }
            self.line("end");
        }
        match keywords.get("additionalProperties") {
            None | Some(Value::Bool(true)) => {}
            Some(extra) => {
                let (key, value) = (self.local(), self.local());
                self.line(&format!(
                    "if is_object({var}) then for {key}, {value} in pairs({var}) do"
                ));
                let declared: Vec<String> = match keywords.get("properties") {
                    Some(Value::Object(properties)) => properties
                        .keys()
                        .map(|name| format!("{key} ~= {}", lua_string(name)))
                        .collect(),
                    _ => Vec::new(),
                };
                let undeclared =
                    if declared.is_empty() { "true".to_owned() } else { declared.join(" and ") };
                self.line(&format!("if {undeclared} then"));
                self.check(extra, &value, &format!("{table}.additionalProperties"));
                self.line("end end end");
            }
        }
        if let Some(items) = keywords.get("items") {
            let item = self.local();
            self.line(&format!(
                "if is_array({var}) then for i = 1, #{var} do local {item} = {var}[i]"
            ));
            self.check(items, &item, &format!("{table}.items"));
            self.line("end end");
        }
    }

    fn local(&mut self) -> String {
        self.locals += 1;
        format!("v{}", self.locals)
    }
}

/// Whether every keyword of the schema is one this code unrolls.
fn unrollable(keywords: &Map<String, Value>) -> bool {
    let scalars = |value: Option<&Value>| match value {
        Some(Value::Array(values)) => values.iter().all(is_scalar),
        Some(_) => false,
        None => true,
    };
    scalars(keywords.get("enum")) && keywords.get("const").is_none_or(is_scalar)
}

fn is_scalar(value: &Value) -> bool {
    !matches!(value, Value::Array(_) | Value::Object(_))
}

/// The Lua conditions of the keywords that test `var` itself, as `violation` applies them.
fn tests(keywords: &Map<String, Value>, var: &str) -> Vec<String> {
    let mut tests = Vec::new();
    match keywords.get("type") {
        Some(Value::Array(types)) if types.is_empty() => tests.push("false".to_owned()),
        Some(Value::Array(types)) => {
            let any: Vec<String> = types.iter().map(|t| type_test(t, var)).collect();
            tests.push(any.join(" or "));
        }
        Some(one) => tests.push(type_test(one, var)),
        None => {}
    }
    if let Some(Value::Array(values)) = keywords.get("enum") {
        let any: Vec<String> = values.iter().map(|v| format!("{var} == {}", literal(v))).collect();
        tests.push(if any.is_empty() { "false".to_owned() } else { any.join(" or ") });
    }
    if let Some(value) = keywords.get("const") {
        tests.push(format!("{var} == {}", literal(value)));
    }
    let bound =
        |keyword: &str| keywords.get(keyword).and_then(Value::as_f64).map(|n| format!("({n:?})"));
    for (keyword, holds) in
        [("minimum", ">="), ("maximum", "<="), ("exclusiveMinimum", ">"), ("exclusiveMaximum", "<")]
    {
        if let Some(n) = bound(keyword) {
            tests.push(format!("type({var}) ~= 'number' or {var} {holds} {n}"));
        }
    }
    for (keyword, holds) in [("minLength", ">="), ("maxLength", "<=")] {
        if let Some(n) = bound(keyword) {
            tests.push(format!("type({var}) ~= 'string' or utf8_length({var}) {holds} {n}"));
        }
    }
    for (keyword, holds) in [("minItems", ">="), ("maxItems", "<=")] {
        if let Some(n) = bound(keyword) {
            tests.push(format!("not is_array({var}) or #{var} {holds} {n}"));
        }
    }
    if let Some(Value::Array(required)) = keywords.get("required") {
        let present: Vec<String> = required
            .iter()
            .filter_map(Value::as_str)
            .map(|name| format!("{var}[{}] ~= nil", lua_string(name)))
            .collect();
        if !present.is_empty() {
            tests.push(format!("not is_object({var}) or ({})", present.join(" and ")));
        }
    }
    tests
}

/// The Lua test that `var` has the JSON type named `name`.
fn type_test(name: &Value, var: &str) -> String {
    match name.as_str() {
        Some("object") => format!("is_object({var})"),
        Some("array") => format!("is_array({var})"),
        Some("null") => format!("{var} == NULL"),
        Some("integer") => format!("(type({var}) == 'number' and {var} == floor({var}))"),
        Some(kind @ ("string" | "number" | "boolean")) => format!("type({var}) == '{kind}'"),
        _ => "false".to_owned(),
    }
}

/// A scalar JSON value as a Lua literal (numbers as the doubles they are).
fn literal(value: &Value) -> String {
    match value {
        Value::Null => "NULL".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => format!("({:?})", n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => lua_string(s),
        Value::Array(_) | Value::Object(_) => unreachable!("only scalars are unrolled"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keywords_are_unrolled_and_the_rest_left_to_violation() {
        let schema = json!({"type": "object", "required": ["method"], "properties": {
            "method": {"type": "string", "enum": ["ground", "air"], "x-knactor-ingest": true},
            "items": {"type": "array", "items": {"type": ["integer", "null"], "minimum": 0}},
            "meta": {"type": "object", "additionalProperties": {"type": "string"}},
            "card": {"properties": {"sku": {}}, "additionalProperties": false},
            "pair": {"enum": [[1, 2]]},
        }});
        let lua = conforms(&schema);
        for expected in [
            "if not (is_object(v)) then return false end",
            r#"if not (not is_object(v) or (v["method"] ~= nil)) then return false end"#,
            r#"if not (v10 == "ground" or v10 == "air") then return false end"#,
            "if not ((type(v6) == 'number' and v6 == floor(v6)) or v6 == NULL) then",
            "if not (type(v6) ~= 'number' or v6 >= (0.0)) then return false end",
            "if is_object(v7) then for v8, v9 in pairs(v7) do\nif true then\nif not (type(v9) == 'string') then return false end",
            "for v3, v4 in pairs(v1) do\nif v3 ~= \"sku\" then\ndo return false end",
            r#"if violation(s.properties["pair"], v11, '') then return false end"#,
        ] {
            assert!(lua.contains(expected), "{expected} is not in\n{lua}");
        }
    }

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
}
