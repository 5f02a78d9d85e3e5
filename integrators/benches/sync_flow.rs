//! Sync benchmarks on the embedded Log exchange, each beside its baseline measured in the same
//! run: a filter + rename + select flow over records already in the log, end to end into the
//! destination store, against a bare DataFusion query over the same record batches; a windowed
//! aggregate; and 8 flows sharing a filter + rename prefix, consolidated and not.
//!
//! Run: `cargo bench -p integrators --bench sync_flow [-- RECORDS]` (default 10,000,000).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMillisecondArray,
};
use data_exchange::{EmbeddedLog, LogExchange, StoreRef};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use integrators::source::SpecFile;
use integrators::sync::{SyncIntegrator, SyncOptions, SyncPlan};
use serde_json::{Value, json};

/// Records per appended batch.
const BATCH: usize = 65_536;
/// Flows sharing a prefix in the consolidation benchmark.
const FLOWS: usize = 8;

fn schemas() -> BTreeMap<StoreRef, Value> {
    let readings = json!({"type": "object", "properties": {
        "room": {"type": "string"}, "triggered": {"type": "boolean"},
        "sensitivity": {"type": "integer"}, "kwh": {"type": "number"}
    }});
    let motion = json!({"type": "object", "properties": {
        "room": {"type": "string"}, "motion": {"type": "boolean"}
    }});
    let energy = json!({"type": "object", "properties": {
        "room": {"type": "string"}, "wh": {"type": "number"}, "samples": {"type": "integer"}
    }});
    let mut schemas = BTreeMap::from([
        ("motion/readings".parse().unwrap(), readings),
        ("house/motion".parse().unwrap(), motion.clone()),
        ("house/energy".parse().unwrap(), energy),
    ]);
    for i in 0..FLOWS {
        schemas.insert(format!("house/motion-{i}").parse().unwrap(), motion.clone());
    }
    schemas
}

/// Batch `n` of the readings: one record per millisecond, a quarter of them passing the filter.
fn readings(log: &EmbeddedLog, store: &StoreRef, n: usize) -> RecordBatch {
    let schema = log.arrow_schema(store).unwrap();
    let first = (n * BATCH) as i64;
    let rows = first..first + BATCH as i64;
    let column = |name: &str| -> ArrayRef {
        match name {
            "ts" => Arc::new(
                TimestampMillisecondArray::from_iter_values(
                    rows.clone().map(|i| 1_700_000_000_000 + i),
                )
                .with_timezone("UTC"),
            ),
            "room" => Arc::new(StringArray::from_iter_values(
                rows.clone().map(|i| format!("room-{}", i % 16)),
            )),
            "triggered" => {
                Arc::new(BooleanArray::from_iter(rows.clone().map(|i| Some(i % 2 == 0))))
            }
            "sensitivity" => Arc::new(Int64Array::from_iter_values(rows.clone().map(|i| i % 4))),
            "kwh" => Arc::new(Float64Array::from_iter_values(
                rows.clone().map(|i| (i % 100) as f64 * 0.001),
            )),
            other => panic!("no column {other}"),
        }
    };
    let columns = schema.fields().iter().map(|f| column(f.name())).collect();
    RecordBatch::try_new(schema, columns).unwrap()
}

fn spec(flows: &str) -> SpecFile {
    let text = format!(
        "apiVersion: knactor.dev/v1\nkind: Sync\nmetadata: {{name: bench}}\nspec:\n  flows:\n{flows}"
    );
    SpecFile::from_text(Path::new("bench.yaml"), text)
}

const MOTION: &str = "    - name: motion\n      from: motion/readings\n      to: house/motion\n      ops:\n        - filter: \"triggered AND sensitivity >= 2\"\n        - rename: {triggered: motion}\n        - select: [ts, room, motion]\n";

const ENERGY: &str = "    - name: energy\n      from: motion/readings\n      to: house/energy\n      ops:\n        - derive: {wh: \"kwh * 1000\"}\n        - aggregate:\n            window: 1m\n            by: [room]\n            values: {wh: \"sum(wh)\", samples: \"count(*)\"}\n";

fn shared_prefix_flows() -> String {
    (0..FLOWS)
        .map(|i| format!("    - name: motion-{i}\n      from: motion/readings\n      to: house/motion-{i}\n      ops:\n        - filter: \"triggered AND sensitivity >= 2\"\n        - rename: {{triggered: motion}}\n        - select: [ts, room, motion]\n"))
        .collect()
}

/// A fresh log holding `batches` batches of readings.
async fn loaded(batches: usize) -> (Arc<EmbeddedLog>, BTreeMap<StoreRef, Value>, Vec<RecordBatch>) {
    let log = Arc::new(EmbeddedLog::in_memory());
    let schemas = schemas();
    for (store, schema) in &schemas {
        log.register(store, schema).await.unwrap();
    }
    let source: StoreRef = "motion/readings".parse().unwrap();
    let mut all = Vec::new();
    for n in 0..batches {
        let batch = readings(&log, &source, n);
        log.append(&source, batch.clone()).await.unwrap();
        all.push(batch);
    }
    (log, schemas, all)
}

/// Runs `flows` until each store of `targets` holds its count of records; returns the time.
async fn run(
    flows: &str,
    options: SyncOptions,
    batches: usize,
    targets: &[(String, u64)],
) -> Duration {
    let (log, schemas, _) = loaded(batches).await;
    let plan = SyncPlan::load(&spec(flows), Some(&schemas)).unwrap_or_else(|d| panic!("{d}"));
    let targets: Vec<(StoreRef, u64)> =
        targets.iter().map(|(s, n)| (s.parse().unwrap(), *n)).collect();
    let started = Instant::now();
    let sync = SyncIntegrator::start(log.clone(), plan, options).await.unwrap();
    for (store, n) in &targets {
        while log.end(store).await.unwrap() < *n {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }
    let took = started.elapsed();
    sync.stop().await;
    took
}

fn rate(records: usize, took: Duration) -> String {
    format!("{:>12.0} records/s ({:.3} s)", records as f64 / took.as_secs_f64(), took.as_secs_f64())
}

fn main() {
    let total = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(10_000_000usize);
    let batches = total.div_ceil(BATCH);
    let total = batches * BATCH;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        println!("Sync on the embedded log, {total} records in batches of {BATCH}");

        // The bare query over the same batches, as DataFusion runs it (all cores).
        let (_, _, all) = loaded(batches).await;
        let ctx = SessionContext::new();
        let table = MemTable::try_new(all[0].schema(), vec![all]).unwrap();
        ctx.register_table("readings", Arc::new(table)).unwrap();
        let bare_query = async |sql: &str| {
            let mut best = Duration::MAX;
            let mut rows = 0;
            for _ in 0..3 {
                let started = Instant::now();
                let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
                best = best.min(started.elapsed());
                rows = batches.iter().map(|b| b.num_rows()).sum::<usize>();
            }
            (best, rows)
        };
        let sql = "SELECT ts, room, triggered AS motion FROM readings WHERE triggered AND sensitivity >= 2";
        let (bare, rows) = bare_query(sql).await;
        assert_eq!(rows, total / 4);
        println!("bare DataFusion query (filter+rename+select): {}", rate(total, bare));
        let sql = "SELECT date_bin(INTERVAL '1 minute', ts) AS ts, room, sum(kwh * 1000) AS wh, count(*) AS samples FROM readings GROUP BY 1, 2";
        let (bare_aggregate, _) = bare_query(sql).await;
        println!("bare DataFusion query (1m windowed aggregate): {}", rate(total, bare_aggregate));

        let expected = (total / 4) as u64;
        let flow = run(MOTION, SyncOptions::default(), batches, &[("house/motion".into(), expected)]).await;
        println!("Sync flow filter+rename+select, end to end: {}  = {:.0}% of bare", rate(total, flow), 100.0 * bare.as_secs_f64() / flow.as_secs_f64());

        // One window per minute of ts; the last stays open.
        let windows = ((total as u64).div_ceil(60_000) - 1) * 16;
        let aggregate = run(ENERGY, SyncOptions::default(), batches, &[("house/energy".into(), windows)]).await;
        println!(
            "Sync windowed aggregate (1m, 16 rooms): {}  = {:.0}% of bare",
            rate(total, aggregate),
            100.0 * bare_aggregate.as_secs_f64() / aggregate.as_secs_f64()
        );

        let flows = shared_prefix_flows();
        let all_written: Vec<(String, u64)> = (0..FLOWS).map(|i| (format!("house/motion-{i}"), expected)).collect();
        let apart = SyncOptions { consolidate: false, ..SyncOptions::default() };
        let unconsolidated = run(&flows, apart, batches, &all_written).await;
        let consolidated = run(&flows, SyncOptions::default(), batches, &all_written).await;
        println!("{FLOWS} flows sharing filter+rename, unconsolidated: {}", rate(total, unconsolidated));
        println!("{FLOWS} flows sharing filter+rename, consolidated:   {}", rate(total, consolidated));
        println!("consolidation speedup: {:.2}x", unconsolidated.as_secs_f64() / consolidated.as_secs_f64());
    });
}
