//! A Log store's JSON Schema as an Arrow schema.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, Schema, TimeUnit};
use serde_json::Value;

/// The field every record has: when it happened, UTC milliseconds.
pub const TS: &str = "ts";

/// The Arrow type of `ts`.
pub fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

/// Maps a store's JSON Schema (an object) to an Arrow schema, adding `ts` when absent.
/// Every field is nullable; `required` is enforced by JSON Schema validation.
pub fn to_arrow(schema: &Value) -> Result<Schema, String> {
    let mut fields = match object_fields(schema, "")? {
        DataType::Struct(fields) => fields.iter().cloned().collect::<Vec<_>>(),
        _ => unreachable!("objects map to structs"),
    };
    match fields.iter().position(|f| f.name() == TS) {
        Some(i) => fields[i] = Arc::new(Field::new(TS, ts_type(), true)),
        None => fields.insert(0, Arc::new(Field::new(TS, ts_type(), true))),
    }
    Ok(Schema::new(fields))
}

fn object_fields(schema: &Value, at: &str) -> Result<DataType, String> {
    let properties = schema.get("properties").and_then(Value::as_object);
    let Some(properties) = properties.filter(|p| !p.is_empty()) else {
        return Err(format!("{} declares no `properties`", display(at)));
    };
    let fields: Result<Vec<Field>, String> = properties
        .iter()
        .map(|(name, property)| {
            let path = format!("{at}/{name}");
            Ok(Field::new(name, data_type(property, &path)?, true))
        })
        .collect();
    Ok(DataType::Struct(Fields::from(fields?)))
}

fn data_type(schema: &Value, at: &str) -> Result<DataType, String> {
    let ty = match schema.get("type") {
        Some(Value::String(ty)) => ty.as_str(),
        // `["string", "null"]`: the nullable form of one type.
        Some(Value::Array(types)) => {
            let mut named = types.iter().filter_map(Value::as_str).filter(|t| *t != "null");
            match (named.next(), named.next()) {
                (Some(ty), None) => ty,
                _ => return Err(format!("{}: a field must have one type", display(at))),
            }
        }
        _ => return Err(format!("{}: a field must declare its `type`", display(at))),
    };
    Ok(match ty {
        "string" if schema.get("format").and_then(Value::as_str) == Some("date-time") => ts_type(),
        "string" => DataType::Utf8,
        "integer" => DataType::Int64,
        "number" => DataType::Float64,
        "boolean" => DataType::Boolean,
        "object" => object_fields(schema, at)?,
        "array" => {
            let items = schema
                .get("items")
                .ok_or_else(|| format!("{}: an array needs `items`", display(at)))?;
            DataType::List(Arc::new(Field::new(
                "item",
                data_type(items, &format!("{at}/items"))?,
                true,
            )))
        }
        other => return Err(format!("{}: type `{other}` has no Arrow equivalent", display(at))),
    })
}

fn display(at: &str) -> &str {
    if at.is_empty() { "the schema" } else { at }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_objects_become_structs_and_arrays_lists() {
        let schema = to_arrow(&json!({"type": "object", "properties": {
            "room": {"type": "string"},
            "sensitivity": {"type": "integer"},
            "kwh": {"type": ["number", "null"]},
            "triggered": {"type": "boolean"},
            "at": {"type": "object", "properties": {"x": {"type": "number"}}},
            "tags": {"type": "array", "items": {"type": "string"}}
        }}))
        .unwrap();
        assert_eq!(schema.field(0).name(), "ts");
        assert_eq!(schema.field_with_name("ts").unwrap().data_type(), &ts_type());
        assert_eq!(schema.field_with_name("sensitivity").unwrap().data_type(), &DataType::Int64);
        assert_eq!(schema.field_with_name("kwh").unwrap().data_type(), &DataType::Float64);
        assert!(
            matches!(schema.field_with_name("at").unwrap().data_type(), DataType::Struct(f) if f.len() == 1)
        );
        assert!(matches!(schema.field_with_name("tags").unwrap().data_type(), DataType::List(_)));
    }

    #[test]
    fn shapes_without_an_arrow_type_are_refused() {
        let err = to_arrow(&json!({"type": "object", "properties": {"x": {}}})).unwrap_err();
        assert_eq!(err, "/x: a field must declare its `type`");
        let err = to_arrow(&json!({"type": "object"})).unwrap_err();
        assert_eq!(err, "the schema declares no `properties`");
    }
}
