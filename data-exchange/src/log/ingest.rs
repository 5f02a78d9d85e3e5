//! JSON records into one Arrow batch: each checked against the store's JSON Schema, `ts` set
//! to now where absent; any bad record rejects the whole append, naming its line and field.
//! An Arrow batch appended as such (a Sync flow's output) is checked against the same schema.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arrow::array::{Array, ArrayRef, RecordBatch, TimestampMillisecondArray};
use arrow::datatypes::SchemaRef;
use arrow::json::ReaderBuilder;
use serde_json::Value;

use super::arrow_schema::{self, TS};
use crate::error::{ExchangeError, Result};
use crate::object::StoreRef;
use crate::schema::{StoreSchema, is_annotation};

/// How one store's records are checked and decoded.
#[derive(Debug)]
pub struct Ingest {
    store: StoreRef,
    json: StoreSchema,
    arrow: SchemaRef,
    /// Whether the JSON Schema asks more of values than their Arrow types hold.
    constrains_values: bool,
    /// Whether the JSON Schema declares `ts` (else it is the exchange's own field).
    declares_ts: bool,
}

impl Ingest {
    /// Compiles `schema` for `store`, checking it maps to Arrow.
    pub fn new(store: &StoreRef, schema: &Value) -> Result<Self> {
        let json = StoreSchema::compile(store, schema)?;
        let arrow = arrow_schema::to_arrow(schema).map_err(|message| {
            ExchangeError::UnsupportedLogSchema { store: store.clone(), message }
        })?;
        let declares_ts = schema.pointer(&format!("/properties/{TS}")).is_some();
        let constrains_values = constrains_values(schema);
        Ok(Ingest {
            store: store.clone(),
            json,
            arrow: Arc::new(arrow),
            constrains_values,
            declares_ts,
        })
    }

    /// The Arrow schema of the store's records.
    pub fn arrow_schema(&self) -> &SchemaRef {
        &self.arrow
    }

    /// Checks that an Arrow batch has the store's schema: its Arrow schema, and, when the JSON
    /// Schema asks more than types (`required`, `minimum`, `enum`...), each record's values.
    pub fn check_batch(&self, batch: &RecordBatch) -> Result<()> {
        if batch.schema().fields() != self.arrow.fields() {
            let message = "the batch's schema differs from the store's".to_owned();
            return Err(self.invalid(1, None, message));
        }
        self.check_times(batch)?;
        if !self.constrains_values || batch.num_rows() == 0 {
            return Ok(());
        }
        let mut writer = arrow::json::ArrayWriter::new(Vec::new());
        writer.write(batch)?;
        writer.finish()?;
        let records: Vec<Value> = serde_json::from_slice(&writer.into_inner())
            .map_err(|e| ExchangeError::Corrupt(format!("a batch as JSON: {e}")))?;
        for (i, mut record) in records.into_iter().enumerate() {
            if !self.declares_ts
                && let Some(fields) = record.as_object_mut()
            {
                fields.remove(TS);
            }
            if let Err(violation) = self.json.validate(&record) {
                return Err(self.invalid(i + 1, Some(violation.pointer), violation.message));
            }
        }
        Ok(())
    }

    fn invalid(&self, line: usize, field: Option<String>, message: String) -> ExchangeError {
        ExchangeError::InvalidRecord { store: self.store.clone(), line, field, message }
    }

    /// Checks and decodes `records` into one batch.
    pub fn decode(&self, records: &[Value]) -> Result<RecordBatch> {
        for (i, record) in records.iter().enumerate() {
            if !record.is_object() {
                return Err(self.invalid(i + 1, None, "a record must be a JSON object".into()));
            }
            if let Err(violation) = self.json.validate(record) {
                return Err(self.invalid(i + 1, Some(violation.pointer), violation.message));
            }
        }
        let batch = match self.decode_unchecked(records) {
            Ok(batch) => batch,
            // Find the record Arrow refuses, to name it.
            Err(e) => {
                for (i, record) in records.iter().enumerate() {
                    if let Err(e) = self.decode_unchecked(std::slice::from_ref(record)) {
                        return Err(self.invalid(i + 1, None, e.to_string()));
                    }
                }
                return Err(e.into());
            }
        };
        self.check_times(&batch)?;
        Ok(stamp_missing_ts(batch))
    }

    /// Refuses a time outside years 1 to 9999, which could not be written back as RFC 3339.
    fn check_times(&self, batch: &RecordBatch) -> Result<()> {
        const YEAR_1: i64 = -62_135_596_800_000;
        const YEAR_10000: i64 = 253_402_300_800_000;
        for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
            let Some(times) = column.as_any().downcast_ref::<TimestampMillisecondArray>() else {
                continue;
            };
            let outside =
                times.iter().position(|t| t.is_some_and(|t| !(YEAR_1..YEAR_10000).contains(&t)));
            if let Some(row) = outside {
                let message = "a time must fall within years 1 to 9999".to_owned();
                return Err(self.invalid(row + 1, Some(format!("/{}", field.name())), message));
            }
        }
        Ok(())
    }

    fn decode_unchecked(&self, records: &[Value]) -> Result<RecordBatch, arrow::error::ArrowError> {
        let mut decoder = ReaderBuilder::new(self.arrow.clone())
            .with_batch_size(records.len().max(1))
            .build_decoder()?;
        decoder.serialize(records)?;
        Ok(decoder.flush()?.unwrap_or_else(|| RecordBatch::new_empty(self.arrow.clone())))
    }
}

/// Whether `schema` asks more of a value than the Arrow type it maps to holds: any keyword but
/// the ones that make the type (`type`, `properties`, `items`, `format: date-time`) and
/// annotations.
fn constrains_values(schema: &Value) -> bool {
    let Some(keywords) = schema.as_object() else { return schema == &Value::Bool(false) };
    keywords.iter().any(|(keyword, value)| match keyword.as_str() {
        "properties" => value.as_object().is_some_and(|p| p.values().any(constrains_values)),
        "items" => constrains_values(value),
        "format" => value != "date-time",
        "type" => false,
        other => !is_annotation(other),
    })
}

/// Sets `ts` to now in the records that have none.
fn stamp_missing_ts(batch: RecordBatch) -> RecordBatch {
    let index = batch.schema().index_of(TS).expect("every log schema has ts");
    let ts = batch.column(index);
    if ts.null_count() == 0 {
        return batch;
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let ts = ts.as_any().downcast_ref::<TimestampMillisecondArray>().expect("ts is a ms timestamp");
    let filled: TimestampMillisecondArray = ts
        .iter()
        .map(|t| Some(t.unwrap_or(now)))
        .collect::<TimestampMillisecondArray>()
        .with_timezone("UTC");
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    columns[index] = Arc::new(filled);
    RecordBatch::try_new(batch.schema(), columns).expect("same schema, same length")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ingest() -> Ingest {
        let schema = json!({"type": "object", "required": ["room"], "properties": {
            "room": {"type": "string"},
            "sensitivity": {"type": "integer", "minimum": 0}
        }});
        Ingest::new(&"motion/readings".parse().unwrap(), &schema).unwrap()
    }

    #[test]
    fn records_decode_into_one_batch_with_ts() {
        let batch = ingest()
            .decode(&[
                json!({"room": "hall", "sensitivity": 2, "ts": "2026-01-01T00:00:00Z"}),
                json!({"room": "study", "ts": 1_700_000_000_000i64}),
                json!({"room": "attic"}),
            ])
            .unwrap();
        assert_eq!(batch.num_rows(), 3);
        let ts = batch.column(0).as_any().downcast_ref::<TimestampMillisecondArray>().unwrap();
        assert_eq!(ts.value(0), 1_767_225_600_000);
        assert_eq!(ts.value(1), 1_700_000_000_000);
        assert!(ts.value(2) > 1_700_000_000_000, "stamped with now");
        assert_eq!(ts.null_count(), 0);
    }

    #[test]
    fn a_bad_record_is_named_by_line_and_field() {
        let err = ingest()
            .decode(&[json!({"room": "hall"}), json!({"room": "hall", "sensitivity": -1})])
            .unwrap_err();
        match err {
            ExchangeError::InvalidRecord { line, field, .. } => {
                assert_eq!((line, field.as_deref()), (2, Some("/sensitivity")));
            }
            other => panic!("{other}"),
        }
        let err = ingest().decode(&[json!({"room": "a", "ts": "yesterday"})]).unwrap_err();
        assert!(matches!(err, ExchangeError::InvalidRecord { line: 1, .. }), "{err}");
        let far = [json!({"room": "a"}), json!({"room": "b", "ts": -99_999_999_999_999_999i64})];
        match ingest().decode(&far).unwrap_err() {
            ExchangeError::InvalidRecord { line, field, message, .. } => {
                assert_eq!((line, field.as_deref()), (2, Some("/ts")));
                assert!(message.contains("years 1 to 9999"), "{message}");
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn an_arrow_batch_is_checked_against_the_json_schema() {
        let ingest = ingest();
        let good = ingest.decode(&[json!({"room": "hall", "sensitivity": 2})]).unwrap();
        ingest.check_batch(&good).unwrap();
        // Arrow types hold both: only the JSON Schema refuses them.
        let bad = ingest
            .decode_unchecked(&[json!({"room": "hall"}), json!({"sensitivity": -1})])
            .unwrap();
        match ingest.check_batch(&bad).unwrap_err() {
            ExchangeError::InvalidRecord { line, message, .. } => {
                assert_eq!(line, 2);
                assert!(message.contains("room"), "{message}");
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn only_keywords_beyond_types_ask_for_value_checks() {
        let typed = json!({"type": "object", "x-knactor-ingest": true, "properties": {
            "at": {"type": "string", "format": "date-time", "description": "when"},
            "tags": {"type": "array", "items": {"type": "string"}}
        }});
        assert!(!constrains_values(&typed));
        let mut bounded = typed.clone();
        bounded["properties"]["tags"]["items"]["maxLength"] = json!(8);
        assert!(constrains_values(&bounded));
        assert!(constrains_values(&json!({"type": "object", "required": ["at"]})));
    }
}
