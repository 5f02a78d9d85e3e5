//! Sync flows end to end on every Log backend: the golden cases of `tests/sync-golden/`, and
//! exactly-once delivery while a spec is re-applied over and over.
//!
//! A golden case is a folder with `sync.yaml` and `case.yaml`: `schemas` (store → JSON
//! Schema), `steps` (`append` records to a store; `settle`: wait until the flows have read
//! every record appended so far) and `expected` (every record of the listed stores, in order).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use arrow::array::RecordBatch;
use data_exchange::log::{LogExchange, RedisLog};
use data_exchange::testing::RedisServer;
use data_exchange::{EmbeddedLog, StoreRef};
use integrators::source::SpecFile;
use integrators::sync::{SyncIntegrator, SyncOptions, SyncPlan};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::wait_until;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    schemas: BTreeMap<String, Value>,
    #[serde(with = "serde_yaml::with::singleton_map_recursive")]
    steps: Vec<Step>,
    expected: BTreeMap<String, Vec<Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Step {
    Append { store: String, records: Vec<Value> },
    Settle,
}

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sync-golden");
    let mut cases: Vec<PathBuf> =
        std::fs::read_dir(root).unwrap().map(|e| e.unwrap().path()).collect();
    cases.sort();
    assert!(!cases.is_empty());
    cases
}

pub(crate) async fn register(
    log: &dyn LogExchange,
    schemas: &BTreeMap<String, Value>,
) -> BTreeMap<StoreRef, Value> {
    let mut registered = BTreeMap::new();
    for (store, schema) in schemas {
        let store: StoreRef = store.parse().unwrap();
        log.register(&store, schema).await.unwrap();
        registered.insert(store, schema.clone());
    }
    registered
}

/// Every record of `store` as JSON rows, in offset order.
pub(crate) async fn rows(log: &dyn LogExchange, store: &StoreRef) -> Vec<Value> {
    let end = log.end(store).await.unwrap();
    let mut rows = Vec::new();
    if end == 0 {
        return rows;
    }
    let mut tail = log.tail(store, 0).await.unwrap();
    let mut read = 0;
    while read < end {
        let records = data_exchange::testing::log_conformance::next_records(&mut tail).await;
        read = records.end();
        rows.extend(json_rows(&records.batch));
    }
    rows
}

fn json_rows(batch: &RecordBatch) -> Vec<Value> {
    let mut writer = arrow::json::ArrayWriter::new(Vec::new());
    writer.write(batch).unwrap();
    writer.finish().unwrap();
    let bytes = writer.into_inner();
    if bytes.is_empty() { Vec::new() } else { serde_json::from_slice(&bytes).unwrap() }
}

/// Equal, with numbers compared to 1e-9 and timestamps as instants.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            (x.as_f64().unwrap() - y.as_f64().unwrap()).abs() < 1e-9
        }
        (Value::String(x), Value::String(y)) => {
            let instant = |s: &str| {
                s.trim_end_matches('Z')
                    .trim_end_matches("+00:00")
                    .trim_end_matches(".000")
                    .to_owned()
            };
            instant(x) == instant(y)
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// Waits until the flows have handled every record appended, `appended` in all: whatever they
/// make of them is written.
async fn settle(sync: &SyncIntegrator, appended: u64) {
    wait_until("the flows to handle every record", async || {
        sync.stats().handled.load(Ordering::Relaxed) == appended
    })
    .await;
}

async fn run_case(dir: &Path, log: Arc<dyn LogExchange>) {
    let case: Case =
        serde_yaml::from_str(&std::fs::read_to_string(dir.join("case.yaml")).unwrap()).unwrap();
    let schemas = register(&*log, &case.schemas).await;
    let file = SpecFile::read(&dir.join("sync.yaml")).unwrap();
    let plan = SyncPlan::load(&file, Some(&schemas)).unwrap_or_else(|d| panic!("{d}"));
    let sync = SyncIntegrator::start(log.clone(), plan, SyncOptions::default()).await.unwrap();
    let mut appended = 0;
    for step in &case.steps {
        match step {
            Step::Append { store, records } => {
                log.append_json(&store.parse().unwrap(), records).await.unwrap();
                appended += records.len() as u64;
            }
            Step::Settle => settle(&sync, appended).await,
        }
    }
    settle(&sync, appended).await;
    for (store, expected) in &case.expected {
        let got = rows(&*log, &store.parse().unwrap()).await;
        let matches =
            got.len() == expected.len() && got.iter().zip(expected).all(|(g, e)| same(g, e));
        assert!(matches, "{}: {store}\n got: {got:#?}\nwant: {expected:#?}", dir.display());
    }
    sync.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_cases_on_the_embedded_log() {
    for case in cases() {
        run_case(&case, Arc::new(EmbeddedLog::in_memory())).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_cases_on_redis() {
    for case in cases() {
        let server = RedisServer::start();
        run_case(&case, Arc::new(RedisLog::connect(&server.url()).await.unwrap())).await;
    }
}

fn readings_schemas() -> BTreeMap<String, Value> {
    let readings = json!({"type": "object", "properties": {
        "seq": {"type": "integer"}, "room": {"type": "string"},
        "triggered": {"type": "boolean"}, "sensitivity": {"type": "integer"}
    }});
    let motion = json!({"type": "object", "properties": {
        "seq": {"type": "integer"}, "room": {"type": "string"}, "motion": {"type": "boolean"}
    }});
    BTreeMap::from([("motion/readings".into(), readings), ("house/motion".into(), motion)])
}

/// A Sync spec named `name` (in `NAME.yaml`) with these `flows` (YAML list items).
pub(crate) fn sync_spec(name: &str, flows: &str) -> SpecFile {
    let text = format!(
        "apiVersion: knactor.dev/v1\nkind: Sync\nmetadata: {{name: {name}}}\nspec:\n  flows:\n{flows}"
    );
    SpecFile::from_text(Path::new(&format!("{name}.yaml")), text)
}

fn motion_spec(filter: &str) -> SpecFile {
    let flows = format!(
        "    - name: motion\n      from: motion/readings\n      to: house/motion\n      ops:\n        - filter: \"{filter}\"\n        - rename: {{triggered: motion}}\n        - select: [ts, seq, room, motion]\n"
    );
    sync_spec("motion", &flows)
}

/// Re-applies a spec 100 times while 100,000 records stream in: each expected record reaches the
/// destination exactly once.
async fn reapply_while_streaming(log: Arc<dyn LogExchange>) {
    let schemas = register(&*log, &readings_schemas()).await;
    let plan = |filter| SyncPlan::load(&motion_spec(filter), Some(&schemas)).unwrap();
    let variants = ["triggered AND sensitivity >= 2", "sensitivity >= 2 AND triggered"];
    let sync = SyncIntegrator::start(log.clone(), plan(variants[0]), SyncOptions::default())
        .await
        .unwrap();
    let (total, per_append) = (100_000u64, 500u64);
    let source: StoreRef = "motion/readings".parse().unwrap();
    let writer = {
        let (log, source) = (log.clone(), source.clone());
        tokio::spawn(async move {
            for first in (0..total).step_by(per_append as usize) {
                let records: Vec<Value> = (first..first + per_append)
                    .map(|seq| json!({"seq": seq, "room": format!("r{}", seq % 7), "triggered": seq % 2 == 0, "sensitivity": seq % 4}))
                    .collect();
                log.append_json(&source, &records).await.unwrap();
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    for i in 0..100 {
        let diff = sync.apply(plan(variants[(i + 1) % 2])).await.unwrap();
        assert_eq!(diff.changed, ["motion"]);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(!writer.is_finished(), "the specs were re-applied while records streamed");
    writer.await.unwrap();
    let expected: Vec<i64> = (0..total as i64).filter(|s| s % 2 == 0 && s % 4 >= 2).collect();
    let destination: StoreRef = "house/motion".parse().unwrap();
    wait_until("every expected record", async || {
        log.end(&destination).await.unwrap() >= expected.len() as u64
    })
    .await;
    sync.stop().await;
    let batches = log.query(r#"SELECT seq FROM "house/motion" ORDER BY seq"#).await.unwrap();
    let got: Vec<i64> = batches
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .unwrap()
                .values()
                .to_vec()
        })
        .collect();
    assert_eq!(got.len(), expected.len(), "no record lost or duplicated");
    assert_eq!(got, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reapplying_while_streaming_delivers_exactly_once_on_the_embedded_log() {
    reapply_while_streaming(Arc::new(EmbeddedLog::in_memory())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reapplying_while_streaming_delivers_exactly_once_on_redis() {
    let server = RedisServer::start();
    reapply_while_streaming(Arc::new(RedisLog::connect(&server.url()).await.unwrap())).await;
}

/// Each kind of mistake is reported at its place in the file.
#[test]
fn checks_locate_mistakes() {
    let schemas: BTreeMap<StoreRef, Value> =
        readings_schemas().into_iter().map(|(s, v)| (s.parse().unwrap(), v)).collect();
    let errors = |flows: &str| -> Vec<String> {
        match SyncPlan::load(&sync_spec("s", flows), Some(&schemas)) {
            Ok(_) => Vec::new(),
            Err(d) => d.0.iter().map(ToString::to_string).collect(),
        }
    };
    let flow = |ops: &str| {
        format!(
            "    - name: f\n      from: motion/readings\n      to: house/motion\n      ops:\n{ops}"
        )
    };
    let select = "        - select: [ts, seq, room]\n";
    assert_eq!(errors(&flow(select)), Vec::<String>::new());
    let cases = [
        (
            flow(&format!(
                "        - aggregate:\n            window: 1m\n            by: [room]\n            values: {{seq: \"count(*)\", room2: \"sum(nope)\"}}\n{select}"
            )),
            "s.yaml:13:",
        ),
        (
            flow(&format!("        - dedupe: {{by: [room], window: soon}}\n{select}")),
            "s.yaml:10:40: error: dedupe: `soon` is not a duration",
        ),
        (
            flow("        - derive: {seq: \"room\"}\n        - select: [seq]\n"),
            "s.yaml:8:11: error: column `seq` is Utf8 but `house/motion` holds Int64",
        ),
        (
            flow("        - select: [ts, sensitivity]\n"),
            "s.yaml:8:11: error: the flow produces column `sensitivity`",
        ),
        (
            "    - name: f\n      from: motion/nope\n      to: house/motion\n".to_owned(),
            "s.yaml:7:13: error: unknown Log store `motion/nope`",
        ),
        (
            "    - name: f\n      from: house/motion\n      to: house/motion\n".to_owned(),
            "s.yaml:8:11: error: the flow writes `house/motion`, which it reads",
        ),
    ];
    for (flows, want) in cases {
        let got = errors(&flows);
        assert!(got.iter().any(|e| e.starts_with(want)), "want {want}, got {got:#?}");
    }
}

/// Two flows of one source stop at different positions (a window holds records the other flow
/// is past) and resume: the windowed flow's checkpoint was written without records, and both
/// deliver each record exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flows_resume_from_different_positions() {
    let readings = json!({"type": "object", "properties": {
        "seq": {"type": "integer"}, "roomID": {"type": "string"}
    }});
    let counts = json!({"type": "object", "properties": {
        "roomID": {"type": "string"}, "n": {"type": "integer"}
    }});
    let schemas = BTreeMap::from([
        ("house/readings".to_owned(), readings.clone()),
        ("house/copy".to_owned(), readings),
        ("house/counts".to_owned(), counts),
    ]);
    let log: Arc<dyn LogExchange> = Arc::new(EmbeddedLog::in_memory());
    let schemas = register(&*log, &schemas).await;
    let flows = "    - name: copy\n      from: house/readings\n      to: house/copy\n      ops:\n        - filter: \"seq >= 0\"\n    - name: counts\n      from: house/readings\n      to: house/counts\n      ops:\n        - aggregate: {window: 1m, by: [roomID], values: {n: \"count(*)\"}}\n";
    let plan = || SyncPlan::load(&sync_spec("two", flows), Some(&schemas)).unwrap();
    let source: StoreRef = "house/readings".parse().unwrap();
    let records = |first: i64, minute: i64| -> Vec<Value> {
        (first..first + 5)
            .map(|seq| json!({"seq": seq, "roomID": "hall", "ts": minute * 60_000 + seq}))
            .collect()
    };
    let (copy, counts): (StoreRef, StoreRef) =
        ("house/copy".parse().unwrap(), "house/counts".parse().unwrap());

    let sync = SyncIntegrator::start(log.clone(), plan(), SyncOptions::default()).await.unwrap();
    log.append_json(&source, &records(0, 0)).await.unwrap();
    log.append_json(&source, &records(5, 0)).await.unwrap();
    wait_until("the copy", async || log.end(&copy).await.unwrap() == 10).await;
    sync.stop().await;
    let saved = log.checkpoint(&counts, "sync/two/counts").await.unwrap();
    assert!(
        saved.is_some_and(|s| s.contains("\"replay\":{\"house/readings\":0}")),
        "the window's records are to be replayed"
    );

    log.append_json(&source, &records(10, 1)).await.unwrap();
    let sync = SyncIntegrator::start(log.clone(), plan(), SyncOptions::default()).await.unwrap();
    wait_until("the copy", async || log.end(&copy).await.unwrap() == 15).await;
    wait_until("minute 0's count", async || log.end(&counts).await.unwrap() == 1).await;
    // It re-reads the source from its start (the window's records): all of it handled, nothing
    // more comes.
    settle(&sync, log.end(&source).await.unwrap()).await;
    sync.stop().await;
    assert_eq!(log.end(&copy).await.unwrap(), 15, "each record copied once");
    let rows = rows(&*log, &counts).await;
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0]["roomID"].clone(), rows[0]["n"].clone()), (json!("hall"), json!(10)));
}

/// The stores of two flows reading `house/readings`: `copy` copies it to `house/copy`,
/// `numbers` casts each room to an integer into `house/numbers`, whose schema is `numbers`.
struct TwoFlows {
    log: Arc<dyn LogExchange>,
    sync: SyncIntegrator,
    source: StoreRef,
    copy: StoreRef,
    numbers: StoreRef,
}

impl TwoFlows {
    async fn start(numbers: Value) -> TwoFlows {
        let readings = json!({"type": "object", "properties": {"room": {"type": "string"}}});
        let schemas = BTreeMap::from([
            ("house/readings".to_owned(), readings.clone()),
            ("house/copy".to_owned(), readings),
            ("house/numbers".to_owned(), numbers),
        ]);
        let log: Arc<dyn LogExchange> = Arc::new(EmbeddedLog::in_memory());
        let schemas = register(&*log, &schemas).await;
        let flows = "    - name: copy\n      from: house/readings\n      to: house/copy\n    - name: numbers\n      from: house/readings\n      to: house/numbers\n      ops:\n        - derive: {n: \"CAST(room AS BIGINT)\"}\n        - select: [ts, n]\n";
        let plan = SyncPlan::load(&sync_spec("two", flows), Some(&schemas))
            .unwrap_or_else(|d| panic!("{d}"));
        let sync = SyncIntegrator::start(log.clone(), plan, SyncOptions::default()).await.unwrap();
        let store = |name: &str| name.parse::<StoreRef>().unwrap();
        let (source, copy, numbers) =
            (store("house/readings"), store("house/copy"), store("house/numbers"));
        TwoFlows { log, sync, source, copy, numbers }
    }

    async fn append(&self, rooms: &[&str]) {
        let records: Vec<Value> = rooms.iter().map(|room| json!({"room": room})).collect();
        self.log.append_json(&self.source, &records).await.unwrap();
    }

    /// Waits for `copies` copies, stops, and answers the numbers flow's checkpoint.
    async fn stop_after(self, copies: u64) -> (Arc<dyn LogExchange>, String) {
        let (log, copy) = (&self.log, &self.copy);
        wait_until("every copy", async || log.end(copy).await.unwrap() == copies).await;
        settle(&self.sync, log.end(&self.source).await.unwrap()).await;
        self.sync.stop().await;
        let saved = self.log.checkpoint(&self.numbers, "sync/two/numbers").await.unwrap();
        (self.log, saved.unwrap())
    }
}

/// A flow that cannot process its records stops alone: the flows beside it go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_flow_stops_alone() {
    let flows =
        TwoFlows::start(json!({"type": "object", "properties": {"n": {"type": "integer"}}})).await;
    let numbers = flows.numbers.clone();
    flows.append(&["12"]).await;
    flows.append(&["hall", "7"]).await;
    flows.append(&["3"]).await;
    let (log, saved) = flows.stop_after(4).await;
    assert_eq!(log.end(&numbers).await.unwrap(), 1, "the numbers flow stopped at `hall`");
    assert!(saved.contains("\"next\":{\"house/readings\":1}"), "{saved}");
}

/// A flow whose output breaks its destination's JSON Schema writes none of it and stops alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_whose_output_breaks_the_schema_stops_alone() {
    let schema = json!({"type": "object", "properties": {"n": {"type": "integer", "minimum": 0}}});
    let flows = TwoFlows::start(schema).await;
    let (log, numbers) = (flows.log.clone(), flows.numbers.clone());
    flows.append(&["12"]).await;
    wait_until("the first number", async || log.end(&numbers).await.unwrap() == 1).await;
    flows.append(&["-7"]).await;
    flows.append(&["3"]).await;
    let (log, saved) = flows.stop_after(3).await;
    let written: Vec<Value> = rows(&*log, &numbers).await.iter().map(|r| r["n"].clone()).collect();
    assert_eq!(written, [json!(12)], "-7 breaks `minimum`: the numbers flow stopped there");
    assert!(saved.contains("\"next\":{\"house/readings\":1}"), "{saved}");
}
