//! `knactor bench sync`: Sync flows over the embedded Log exchange, each beside its baseline
//! measured in the same run:
//!
//! - a `filter` + `rename` + `select` flow over records already in the log, end to end into
//!   its destination store, against a bare DataFusion query over the same record batches;
//! - a windowed aggregate (1-minute windows by room), against a bare `date_bin` GROUP BY;
//! - 8 flows sharing a `filter` + `rename` prefix, consolidated (the default) against the
//!   same flows run apart.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
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

use super::{progress_bar, round};

/// Records per appended batch.
const BATCH: usize = 65_536;
/// Flows sharing a prefix in the consolidation run.
const FLOWS: usize = 8;
/// Rooms the readings come from.
const ROOMS: i64 = 16;
/// The first reading's `ts`, in milliseconds; one reading per millisecond after it.
const START_MS: i64 = 1_700_000_000_000;
/// How long a flow may take to write what it must before the run gives up.
const DEADLINE: Duration = Duration::from_secs(600);

#[derive(Debug, clap::Args)]
pub(super) struct SyncArgs {
    /// Records in the log (rounded up to whole batches of 65,536).
    #[arg(long, default_value_t = 10_000_000)]
    records: usize,
    /// Prints a JSON array, one object per measurement, instead of a table.
    #[arg(long)]
    json: bool,
}

const MOTION: &str = "    - name: motion\n      from: motion/readings\n      to: house/motion\n      ops:\n        - filter: \"triggered AND sensitivity >= 2\"\n        - rename: {triggered: motion}\n        - select: [ts, room, motion]\n";

const ENERGY: &str = "    - name: energy\n      from: motion/readings\n      to: house/energy\n      ops:\n        - derive: {wh: \"kwh * 1000\"}\n        - aggregate:\n            window: 1m\n            by: [room]\n            values: {wh: \"sum(wh)\", samples: \"count(*)\"}\n";

const BARE_MOTION: &str =
    "SELECT ts, room, triggered AS motion FROM readings WHERE triggered AND sensitivity >= 2";

const BARE_ENERGY: &str = "SELECT date_bin(INTERVAL '1 minute', ts) AS ts, room, sum(kwh * 1000) AS wh, count(*) AS samples FROM readings GROUP BY 1, 2";

pub(super) async fn run(args: SyncArgs) -> anyhow::Result<()> {
    let batches = args.records.div_ceil(BATCH).max(1);
    let records = batches * BATCH;
    let bar = progress_bar(5, "runs");
    let step = |what: &str| {
        bar.set_message(what.to_owned());
        bar.inc(1);
    };
    let mut rows = Vec::new();

    bar.set_message("bare queries");
    let bare = BareQueries::over(batches).await?;
    let (bare_motion, matched) = best_of_three(|| bare.run(BARE_MOTION)).await?;
    if matched != records / 4 {
        bail!("the bare query matched {matched} records of {records}, not a quarter");
    }
    let (bare_energy, _) = best_of_three(|| bare.run(BARE_ENERGY)).await?;
    drop(bare);
    step("filter + rename + select");

    // Every figure, flows and baselines alike, is the best of three runs: the first run after a
    // pause measured 4× slower here, most likely while the VM took back from its host the
    // memory it had freed.
    let motion = [("house/motion", (records / 4) as u64)];
    let (flow, _) =
        best_of_three(|| run_flows(MOTION, SyncOptions::default(), batches, &motion)).await?;
    rows.push(measurement("filter + rename + select", records, flow, Some(bare_motion)));
    step("windowed aggregate");

    let energy = [("house/energy", closed_windows(records) * ROOMS as u64)];
    let (aggregate, _) =
        best_of_three(|| run_flows(ENERGY, SyncOptions::default(), batches, &energy)).await?;
    rows.push(measurement("windowed aggregate", records, aggregate, Some(bare_energy)));
    step("8 flows, unconsolidated");

    let flows = shared_prefix_flows();
    let stores: Vec<String> = (0..FLOWS).map(|i| format!("house/motion-{i}")).collect();
    let written: Vec<(&str, u64)> = stores.iter().map(|s| (s.as_str(), motion[0].1)).collect();
    let apart = SyncOptions { consolidate: false, ..SyncOptions::default() };
    let (unconsolidated, _) =
        best_of_three(|| run_flows(&flows, apart.clone(), batches, &written)).await?;
    rows.push(measurement("8 flows, unconsolidated", records, unconsolidated, None));
    step("8 flows, consolidated");

    let (consolidated, _) =
        best_of_three(|| run_flows(&flows, SyncOptions::default(), batches, &written)).await?;
    rows.push(measurement("8 flows, consolidated", records, consolidated, Some(unconsolidated)));
    step("done");
    bar.finish_and_clear();

    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print_table(&rows, records);
    }
    Ok(())
}

/// One measurement: `records` through `what` in `took`, against `baseline` when it has one
/// (its ratio: baseline time / this time, so 1 is as fast).
fn measurement(what: &str, records: usize, took: Duration, baseline: Option<Duration>) -> Value {
    let per_s = |d: Duration| round(records as f64 / d.as_secs_f64());
    json!({
        "what": what,
        "records": records,
        "ms": round(took.as_secs_f64() * 1000.0),
        "records_per_s": per_s(took),
        "baseline_records_per_s": baseline.map(per_s),
        "ratio": baseline.map(|b| round(b.as_secs_f64() / took.as_secs_f64())),
    })
}

fn print_table(rows: &[Value], records: usize) {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    println!("Sync on the embedded log: {records} records in batches of {BATCH}, {cores} cores");
    println!("{:<26} {:>16} {:>16} {:>8}", "flow", "records/s", "baseline", "ratio");
    for row in rows {
        let figure = |key: &str| row[key].as_f64().map_or("—".to_owned(), |f| format!("{f:.0}"));
        let ratio = row["ratio"].as_f64().map_or("—".to_owned(), |r| format!("{r:.2}×"));
        println!(
            "{:<26} {:>16} {:>16} {:>8}",
            row["what"].as_str().unwrap_or_default(),
            figure("records_per_s"),
            figure("baseline_records_per_s"),
            ratio
        );
    }
    println!(
        "each figure is the best of three runs; baselines: the flow and the aggregate, bare DataFusion queries over the same batches; the consolidated flows, the same flows unconsolidated"
    );
    let consolidated = rows.iter().find(|row| row["what"] == "8 flows, consolidated");
    if let Some(ratio) = consolidated.and_then(|row| row["ratio"].as_f64()).filter(|r| *r > 8.0) {
        println!(
            "note: {ratio:.2}× is more than the {FLOWS} flows sharing their prefix can explain: the unconsolidated runs were slowed by more than their work (memory or caches); run again"
        );
    }
}

/// The 1-minute windows the readings close (every one but the last, still open).
fn closed_windows(records: usize) -> u64 {
    let last = START_MS + records as i64 - 1;
    (last / 60_000 - START_MS / 60_000) as u64
}

fn schemas() -> anyhow::Result<BTreeMap<StoreRef, Value>> {
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
        ("motion/readings".parse()?, readings),
        ("house/motion".parse()?, motion.clone()),
        ("house/energy".parse()?, energy),
    ]);
    for i in 0..FLOWS {
        schemas.insert(format!("house/motion-{i}").parse()?, motion.clone());
    }
    Ok(schemas)
}

/// Batch `n` of the readings: a quarter of them pass the flows' filter.
fn readings(log: &EmbeddedLog, store: &StoreRef, n: usize) -> anyhow::Result<RecordBatch> {
    let schema = log.arrow_schema(store)?;
    let first = (n * BATCH) as i64;
    let rows = first..first + BATCH as i64;
    let column = |name: &str| -> anyhow::Result<ArrayRef> {
        Ok(match name {
            "ts" => Arc::new(
                TimestampMillisecondArray::from_iter_values(rows.clone().map(|i| START_MS + i))
                    .with_timezone("UTC"),
            ),
            "room" => Arc::new(StringArray::from_iter_values(
                rows.clone().map(|i| format!("room-{}", i % ROOMS)),
            )),
            "triggered" => {
                Arc::new(BooleanArray::from_iter(rows.clone().map(|i| Some(i % 2 == 0))))
            }
            "sensitivity" => Arc::new(Int64Array::from_iter_values(rows.clone().map(|i| i % 4))),
            "kwh" => Arc::new(Float64Array::from_iter_values(
                rows.clone().map(|i| (i % 100) as f64 * 0.001),
            )),
            other => bail!("the readings have no column `{other}`"),
        })
    };
    let columns = schema.fields().iter().map(|f| column(f.name())).collect::<Result<_, _>>()?;
    Ok(RecordBatch::try_new(schema, columns)?)
}

fn spec(flows: &str) -> SpecFile {
    let text = format!(
        "apiVersion: knactor.dev/v1\nkind: Sync\nmetadata: {{name: bench}}\nspec:\n  flows:\n{flows}"
    );
    SpecFile::from_text(Path::new("bench.yaml"), text)
}

fn shared_prefix_flows() -> String {
    (0..FLOWS)
        .map(|i| format!("    - name: motion-{i}\n      from: motion/readings\n      to: house/motion-{i}\n      ops:\n        - filter: \"triggered AND sensitivity >= 2\"\n        - rename: {{triggered: motion}}\n        - select: [ts, room, motion]\n"))
        .collect()
}

/// A fresh in-memory log holding `batches` batches of readings, and the batches.
async fn loaded(
    batches: usize,
) -> anyhow::Result<(Arc<EmbeddedLog>, BTreeMap<StoreRef, Value>, Vec<RecordBatch>)> {
    let log = Arc::new(EmbeddedLog::in_memory());
    let schemas = schemas()?;
    for (store, schema) in &schemas {
        log.register(store, schema).await?;
    }
    let source: StoreRef = "motion/readings".parse()?;
    let mut all = Vec::with_capacity(batches);
    for n in 0..batches {
        let batch = readings(&log, &source, n)?;
        log.append(&source, batch.clone()).await?;
        all.push(batch);
    }
    Ok((log, schemas, all))
}

/// The best time of three runs of `run` (each timing itself), with what the last run gave.
async fn best_of_three<T, Run>(run: impl Fn() -> Run) -> anyhow::Result<(Duration, T)>
where
    Run: std::future::Future<Output = anyhow::Result<(Duration, T)>>,
{
    let (mut best, mut gave) = run().await?;
    for _ in 1..3 {
        let (took, last) = run().await?;
        (best, gave) = (best.min(took), last);
    }
    Ok((best, gave))
}

/// Starts `flows` over a fresh log of `batches` batches and times them until each of
/// `targets` (a store, its count of records) is written; with the records written in all.
async fn run_flows(
    flows: &str,
    options: SyncOptions,
    batches: usize,
    targets: &[(&str, u64)],
) -> anyhow::Result<(Duration, u64)> {
    let (log, schemas, _) = loaded(batches).await?;
    let plan = SyncPlan::load(&spec(flows), Some(&schemas)).map_err(|d| anyhow::anyhow!("{d}"))?;
    let targets: Vec<(StoreRef, u64)> =
        targets.iter().map(|(s, n)| Ok((s.parse()?, *n))).collect::<anyhow::Result<_>>()?;
    let started = Instant::now();
    let sync = SyncIntegrator::start(log.clone(), plan, options).await?;
    let mut total = 0;
    for (store, expected) in &targets {
        loop {
            let written = log.end(store).await?;
            if written >= *expected {
                total += written;
                break;
            }
            if started.elapsed() > DEADLINE {
                bail!("{store} holds {written} of {expected} records after {DEADLINE:?}");
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }
    let took = started.elapsed();
    sync.stop().await;
    Ok((took, total))
}

/// The readings as one DataFusion table, queried as DataFusion runs queries (all cores).
struct BareQueries(SessionContext);

impl BareQueries {
    async fn over(batches: usize) -> anyhow::Result<Self> {
        let (_, _, all) = loaded(batches).await?;
        let schema = all.first().context("no batch")?.schema();
        let ctx = SessionContext::new();
        ctx.register_table("readings", Arc::new(MemTable::try_new(schema, vec![all])?))?;
        Ok(BareQueries(ctx))
    }

    /// How long one run of `sql` takes, and the rows it gives.
    async fn run(&self, sql: &str) -> anyhow::Result<(Duration, usize)> {
        let started = Instant::now();
        let batches = self.0.sql(sql).await?.collect().await?;
        Ok((started.elapsed(), batches.iter().map(RecordBatch::num_rows).sum()))
    }
}
