//! JSON ingest into the embedded Log exchange: records/s for appends of JSON records
//! (validation against the JSON Schema, Arrow decoding, `ts` stamping), beside the bare Arrow
//! JSON decoding of the same records measured in the same run.
//!
//! Run: `cargo bench -p data-exchange --bench log_ingest [-- RECORDS]`.

use std::sync::Arc;
use std::time::Instant;

use arrow::json::ReaderBuilder;
use data_exchange::log::arrow_schema;
use data_exchange::{EmbeddedLog, LogExchange, StoreRef};
use serde_json::{Value, json};

const BATCH: usize = 10_000;

fn main() {
    let total = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(1_000_000usize);
    let schema = json!({"type": "object", "required": ["room"], "properties": {
        "room": {"type": "string"},
        "triggered": {"type": "boolean"},
        "sensitivity": {"type": "integer", "minimum": 0},
        "kwh": {"type": "number"}
    }});
    let records: Vec<Value> = (0..BATCH)
        .map(|i| json!({"room": format!("room-{}", i % 16), "triggered": i % 3 == 0, "sensitivity": i % 4, "kwh": i as f64 * 0.001}))
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();

    let arrow = Arc::new(arrow_schema::to_arrow(&schema).unwrap());
    let bare_decoding = || {
        let started = Instant::now();
        for _ in 0..total / BATCH {
            let mut decoder =
                ReaderBuilder::new(arrow.clone()).with_batch_size(BATCH).build_decoder().unwrap();
            decoder.serialize(&records).unwrap();
            decoder.flush().unwrap().unwrap();
        }
        total as f64 / started.elapsed().as_secs_f64()
    };
    bare_decoding(); // Warm-up: the figure below is the second run.
    let bare = bare_decoding();

    let log = EmbeddedLog::in_memory();
    let store: StoreRef = "motion/readings".parse().unwrap();
    let rate = runtime.block_on(async {
        log.register(&store, &schema).await.unwrap();
        let started = Instant::now();
        for _ in 0..total / BATCH {
            log.append_json(&store, &records).await.unwrap();
        }
        total as f64 / started.elapsed().as_secs_f64()
    });
    println!("JSON ingest, {total} records in appends of {BATCH}:");
    println!("  embedded Log append_json (validate + decode + ts)  {rate:>12.0} records/s");
    println!("  bare Arrow JSON decoding of the same records        {bare:>12.0} records/s");
}
