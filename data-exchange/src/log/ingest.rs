//! JSON records into one Arrow batch: each checked against the store's JSON Schema, `ts` set
//! to now where absent; any bad record rejects the whole append, naming its line and field.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arrow::array::{Array, ArrayRef, RecordBatch, TimestampMillisecondArray};
use arrow::datatypes::SchemaRef;
use arrow::json::ReaderBuilder;
use serde_json::Value;

use super::arrow_schema::{self, TS};
use crate::error::{ExchangeError, Result};
use crate::object::StoreRef;
use crate::schema::StoreSchema;

/// How one store's records are checked and decoded.
#[derive(Debug)]
pub struct Ingest {
    store: StoreRef,
    json: StoreSchema,
    arrow: SchemaRef,
}

impl Ingest {
    /// Compiles `schema` for `store`, checking it maps to Arrow.
    pub fn new(store: &StoreRef, schema: &Value) -> Result<Self> {
        let json = StoreSchema::compile(store, schema)?;
        let arrow = arrow_schema::to_arrow(schema).map_err(|message| {
            ExchangeError::UnsupportedLogSchema { store: store.clone(), message }
        })?;
        Ok(Ingest { store: store.clone(), json, arrow: Arc::new(arrow) })
    }

    /// The Arrow schema of the store's records.
    pub fn arrow_schema(&self) -> &SchemaRef {
        &self.arrow
    }

    /// Checks that an Arrow batch has the store's schema.
    pub fn check_batch(&self, batch: &RecordBatch) -> Result<()> {
        if batch.schema().fields() == self.arrow.fields() {
            return Ok(());
        }
        Err(self.invalid(1, None, "the batch's schema differs from the store's".to_owned()))
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
        Ok(stamp_missing_ts(batch))
    }

    fn decode_unchecked(&self, records: &[Value]) -> Result<RecordBatch, arrow::error::ArrowError> {
        let mut decoder = ReaderBuilder::new(self.arrow.clone())
            .with_batch_size(records.len().max(1))
            .build_decoder()?;
        decoder.serialize(records)?;
        Ok(decoder.flush()?.unwrap_or_else(|| RecordBatch::new_empty(self.arrow.clone())))
    }
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
    }
}
