//! JSON Schema validation of objects written to a store.

use serde_json::Value;

use crate::error::{ExchangeError, Result, SchemaViolation};
use crate::object::{Migration, WriteOp};
use crate::store::StoreRef;

/// A store's compiled JSON Schema (draft 2020-12), and the version the exchange holds it at.
#[derive(Debug)]
pub struct StoreSchema {
    validator: jsonschema::Validator,
    source: Value,
    version: u64,
}

impl StoreSchema {
    /// Compiles `schema` for `store`.
    pub fn compile(store: &StoreRef, schema: &Value) -> Result<Self> {
        let validator = jsonschema::draft202012::new(schema).map_err(|e| {
            ExchangeError::InvalidSchema { store: store.clone(), message: e.to_string() }
        })?;
        Ok(StoreSchema { validator, source: schema.clone(), version: 0 })
    }

    /// The same schema, as held by the exchange at `version`.
    pub fn at_version(self, version: u64) -> Self {
        StoreSchema { version, ..self }
    }

    /// The schema as registered.
    pub fn source(&self) -> &Value {
        &self.source
    }

    /// The version the exchange holds it at: 1 when first registered, one more with each
    /// change (0 for a schema the exchange does not hold).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Checks `data` (the object's state) against the schema.
    pub fn validate(&self, data: &Value) -> Result<(), SchemaViolation> {
        match self.validator.validate(data) {
            Ok(()) => Ok(()),
            Err(error) => Err(SchemaViolation {
                pointer: error.instance_path().to_string(),
                message: error.to_string(),
            }),
        }
    }

    /// The objects of `objects` (a store's, by name and data) that `migration` changes, with
    /// their new data, once every object, migrated, conforms: else
    /// [`ExchangeError::Migration`] for an object the migration fails on, or
    /// [`ExchangeError::SchemaBreaks`] naming the first that does not conform, and how many.
    pub fn fit<'a>(
        &self,
        store: &StoreRef,
        objects: impl IntoIterator<Item = (&'a str, &'a Value)>,
        migration: Option<&Migration>,
    ) -> Result<Vec<(String, Value)>> {
        let (mut changed, mut broken) = (Vec::new(), Vec::new());
        for (name, data) in objects {
            let migrated = match migration {
                Some(migrate) => Some(migrate(name, data).map_err(|message| {
                    let name = name.to_owned();
                    ExchangeError::Migration { store: store.clone(), name, message }
                })?),
                None => None,
            };
            let fitted = migrated.as_ref().unwrap_or(data);
            if let Err(violation) = self.validate(fitted) {
                broken.push((name, violation));
            } else if let Some(migrated) = migrated.filter(|m| m != data) {
                changed.push((name.to_owned(), migrated));
            }
        }
        let count = broken.len();
        match broken.into_iter().next() {
            None => Ok(changed),
            Some((name, violation)) => Err(ExchangeError::SchemaBreaks {
                store: store.clone(),
                name: name.to_owned(),
                violation: Box::new(violation),
                count,
            }),
        }
    }
}

/// Keywords that describe a value without constraining it.
const ANNOTATIONS: &[&str] =
    &["title", "description", "default", "examples", "$comment", "$schema"];

/// Whether `keyword` is an annotation or an `x-` extension: it never makes a value invalid.
pub fn is_annotation(keyword: &str) -> bool {
    ANNOTATIONS.contains(&keyword) || keyword.starts_with("x-")
}

/// Computes the state a write leaves, checks it is a JSON object valid against `schema`, and
/// returns it. `current` is the object's present data, if any.
pub(crate) fn next_state(
    schema: &StoreSchema,
    store: &StoreRef,
    name: &str,
    current: Option<&Value>,
    op: &WriteOp,
) -> Result<Option<Value>> {
    let next = match op {
        WriteOp::Delete => return Ok(None),
        WriteOp::Put(data) => data.clone(),
        WriteOp::Patch(patch) => {
            let mut doc = current.cloned().unwrap_or_else(|| Value::Object(Default::default()));
            json_patch::merge(&mut doc, patch);
            doc
        }
    };
    if !next.is_object() {
        return Err(ExchangeError::NotAnObject { store: store.clone(), name: name.to_owned() });
    }
    schema.validate(&next).map_err(|violation| ExchangeError::SchemaViolation {
        store: store.clone(),
        name: name.to_owned(),
        violation,
    })?;
    Ok(Some(next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn violation_names_the_failing_field() {
        let store: StoreRef = "shipping/shipments".parse().unwrap();
        let schema = StoreSchema::compile(
            &store,
            &json!({"type": "object", "properties": {
                "method": {"type": "string", "enum": ["ground", "air"], "x-knactor-ingest": true}
            }}),
        )
        .unwrap();
        assert!(schema.validate(&json!({"method": "air"})).is_ok());
        let violation = schema.validate(&json!({"method": "sea"})).unwrap_err();
        assert_eq!(violation.pointer, "/method");
        assert!(violation.message.contains("sea"), "{violation}");
    }

    #[test]
    fn invalid_schema_is_rejected() {
        let store: StoreRef = "a/b".parse().unwrap();
        let err = StoreSchema::compile(&store, &json!({"type": 12})).unwrap_err();
        assert!(matches!(err, ExchangeError::InvalidSchema { .. }), "{err}");
    }
}
