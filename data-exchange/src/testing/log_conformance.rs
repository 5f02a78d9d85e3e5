//! The Log exchange conformance suite: what every Log backend must do, written once.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use serde_json::{Value, json};

use crate::log::{Checkpoint, LogExchange, RecordStream, Records, Trim};
use crate::{ExchangeError, StoreRef};

/// A Log exchange under test and whatever must live as long as it.
#[derive(Debug)]
pub struct LogFixture {
    /// The exchange under test.
    pub log: Arc<dyn LogExchange>,
    _guard: Box<dyn Any + Send>,
}

impl LogFixture {
    /// Wraps `log`, keeping `guard` alive beside it.
    pub fn new(log: Arc<dyn LogExchange>, guard: impl Any + Send) -> Self {
        LogFixture { log, _guard: Box::new(guard) }
    }
}

/// Opens a Log exchange.
pub type LogOpener = dyn Fn() -> BoxFuture<'static, LogFixture> + Sync;

/// Instantiates the Log conformance suite as `mod $name`, opening exchanges with `$open`, an
/// `async fn() -> LogFixture`.
#[macro_export]
macro_rules! log_conformance_suite {
    ($name:ident, $open:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            use $crate::testing::log_conformance as suite;

            $crate::log_conformance_suite!(@tests $open;
                append_tail_and_query, a_bad_record_appends_nothing, unknown_stores_and_schemas,
                concurrent_appends_get_disjoint_offsets, checkpoints_ride_with_appends,
                trims_whole_segments_keeping_checkpoints_and_offsets);
        }
    };
    (@tests $open:expr; $($test:ident),*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            suite::$test(&|| Box::pin($open())).await;
        }
    )*};
}

fn readings() -> (StoreRef, Value) {
    let schema = json!({"type": "object", "required": ["room"], "properties": {
        "room": {"type": "string"},
        "sensitivity": {"type": "integer", "minimum": 0},
        "at": {"type": "object", "properties": {"x": {"type": "number"}}}
    }});
    ("motion/readings".parse().unwrap(), schema)
}

async fn open(open: &LogOpener) -> (LogFixture, StoreRef) {
    let fixture = open().await;
    let (store, schema) = readings();
    fixture.log.register(&store, &schema).await.unwrap();
    (fixture, store)
}

fn rooms(n: usize, prefix: &str) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"room": format!("{prefix}{i}"), "sensitivity": i, "at": {"x": 1.5}}))
        .collect()
}

/// The next records of `tail`, failing the test after 10 s.
pub async fn next_records(tail: &mut RecordStream) -> Records {
    tokio::time::timeout(Duration::from_secs(10), tail.next())
        .await
        .expect("records within 10 s")
        .expect("the tail ended")
        .expect("the tail failed")
}

async fn count(log: &dyn LogExchange) -> Value {
    let batches = log.query(r#"SELECT count(*) AS n FROM "motion/readings""#).await.unwrap();
    let column = batches[0].column(0);
    let counts = column.as_any().downcast_ref::<arrow::array::Int64Array>().unwrap();
    json!(counts.value(0))
}

/// Appends, then tails from the start and from the middle of a batch, follows new appends,
/// and queries by the quoted store ref.
pub async fn append_tail_and_query(open_log: &LogOpener) {
    let (fx, store) = open(open_log).await;
    let log = &fx.log;
    assert_eq!(log.append_json(&store, &rooms(3, "a")).await.unwrap(), 0);
    assert_eq!(log.append_json(&store, &rooms(2, "b")).await.unwrap(), 3);
    assert_eq!(log.end(&store).await.unwrap(), 5);

    let mut tail = log.tail(&store, 0).await.unwrap();
    let first = next_records(&mut tail).await;
    assert_eq!((first.offset, first.batch.num_rows()), (0, 3));
    let second = next_records(&mut tail).await;
    assert_eq!((second.offset, second.batch.num_rows()), (3, 2));

    let mut middle = log.tail(&store, 4).await.unwrap();
    let records = next_records(&mut middle).await;
    assert_eq!((records.offset, records.batch.num_rows()), (4, 1));

    assert_eq!(log.append_json(&store, &rooms(4, "c")).await.unwrap(), 5);
    let followed = next_records(&mut tail).await;
    assert_eq!((followed.offset, followed.batch.num_rows()), (5, 4));
    let followed = next_records(&mut middle).await;
    assert_eq!(followed.offset, 5);

    assert_eq!(count(&**log).await, json!(9));
    let sql =
        r#"SELECT room FROM "motion/readings" WHERE sensitivity >= 2 AND at.x > 1 ORDER BY room"#;
    let rows: usize = log.query(sql).await.unwrap().iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 3, "a2, c2, c3");
    let err = log.query(r#"SELECT nope FROM "motion/readings""#).await.unwrap_err();
    assert!(matches!(err, ExchangeError::Query(_)), "{err}");
}

/// One bad record rejects the whole append, naming its position and field.
pub async fn a_bad_record_appends_nothing(open_log: &LogOpener) {
    let (fx, store) = open(open_log).await;
    let log = &fx.log;
    log.append_json(&store, &rooms(2, "a")).await.unwrap();
    let bad = vec![json!({"room": "ok"}), json!({"room": "x", "sensitivity": -3})];
    match log.append_json(&store, &bad).await.unwrap_err() {
        ExchangeError::InvalidRecord { line, field, .. } => {
            assert_eq!((line, field.as_deref()), (2, Some("/sensitivity")));
        }
        other => panic!("expected an invalid record, got {other}"),
    }
    let missing = vec![json!({"sensitivity": 1})];
    assert!(matches!(
        log.append_json(&store, &missing).await,
        Err(ExchangeError::InvalidRecord { line: 1, .. })
    ));
    assert_eq!(log.end(&store).await.unwrap(), 2);
    assert_eq!(count(&**log).await, json!(2));
}

/// Unknown stores are refused, and so are schemas without an Arrow equivalent.
pub async fn unknown_stores_and_schemas(open_log: &LogOpener) {
    let (fx, _) = open(open_log).await;
    let other: StoreRef = "other/log".parse().unwrap();
    let err = fx.log.append_json(&other, &rooms(1, "a")).await.unwrap_err();
    assert!(matches!(err, ExchangeError::UnknownStore(_)), "{err}");
    assert!(matches!(fx.log.tail(&other, 0).await.err(), Some(ExchangeError::UnknownStore(_))));
    let err = fx
        .log
        .register(&other, &json!({"type": "object", "properties": {"x": {}}}))
        .await
        .unwrap_err();
    assert!(matches!(err, ExchangeError::UnsupportedLogSchema { .. }), "{err}");
}

/// Appends from many tasks at once get disjoint, gap-free offsets.
pub async fn concurrent_appends_get_disjoint_offsets(open_log: &LogOpener) {
    let (fx, store) = open(open_log).await;
    let appends = (0..10).map(|t| {
        let (log, store) = (fx.log.clone(), store.clone());
        tokio::spawn(async move {
            let mut offsets = Vec::new();
            for _ in 0..20 {
                offsets.push(log.append_json(&store, &rooms(5, &format!("t{t}-"))).await.unwrap());
            }
            offsets
        })
    });
    let mut offsets: Vec<u64> =
        futures::future::join_all(appends).await.into_iter().flat_map(Result::unwrap).collect();
    offsets.sort_unstable();
    assert_eq!(offsets, (0..200).map(|i| i * 5).collect::<Vec<u64>>());
    assert_eq!(fx.log.end(&store).await.unwrap(), 1000);
}

/// A checkpoint is stored with the batch it is appended with, also with an empty batch, and
/// the last one written under a key is the one read back.
pub async fn checkpoints_ride_with_appends(open_log: &LogOpener) {
    let (fx, store) = open(open_log).await;
    let log = &fx.log;
    assert_eq!(log.checkpoint(&store, "flow-a").await.unwrap(), None);
    log.append_json(&store, &rooms(2, "a")).await.unwrap();
    let mut tail = log.tail(&store, 0).await.unwrap();
    let records = next_records(&mut tail).await;
    let mark = |value: &str| Checkpoint { key: "flow-a".into(), value: value.into() };
    let first = log.append_checkpointed(&store, records.batch.clone(), &mark("2")).await.unwrap();
    assert_eq!(first, 2);
    assert_eq!(log.checkpoint(&store, "flow-a").await.unwrap().as_deref(), Some("2"));
    let empty = records.batch.slice(0, 0);
    assert_eq!(log.append_checkpointed(&store, empty, &mark("7")).await.unwrap(), 4);
    assert_eq!(log.checkpoint(&store, "flow-a").await.unwrap().as_deref(), Some("7"));
    assert_eq!(log.checkpoint(&store, "flow-b").await.unwrap(), None);
    assert_eq!(log.end(&store).await.unwrap(), 4);
    assert_eq!(count(&**log).await, json!(4));
}

/// A trim drops the oldest whole segments (appends) its policy lets go, never one that ends
/// past its hold; offsets and checkpoints stay, a tail from a dropped offset starts at the
/// first record kept, and appends go on from the end.
pub async fn trims_whole_segments_keeping_checkpoints_and_offsets(open_log: &LogOpener) {
    let (fx, store) = open(open_log).await;
    let log = &fx.log;
    for segment in 0..5 {
        log.append_json(&store, &rooms(2, &format!("s{segment}-"))).await.unwrap();
    }
    let empty = log.tail(&store, 0).await.map(drop);
    empty.unwrap();
    let schema = log.arrow_schema(&store).unwrap();
    let mark = Checkpoint { key: "flow-a".into(), value: "10".into() };
    log.append_checkpointed(&store, arrow::array::RecordBatch::new_empty(schema), &mark)
        .await
        .unwrap();
    let keep = |records, hold| Trim { max_records: Some(records), max_age: None, hold };
    // Three records kept at least: the segments ending at 2, 4 and 6 go.
    assert_eq!(log.trim(&store, &keep(3, u64::MAX)).await.unwrap(), 6);
    assert_eq!(log.end(&store).await.unwrap(), 10);
    assert_eq!(count(&**log).await, json!(4));
    let mut tail = log.tail(&store, 0).await.unwrap();
    assert_eq!(next_records(&mut tail).await.offset, 6, "from the first record kept");
    assert_eq!(log.checkpoints(&store).await.unwrap(), [("flow-a".to_owned(), "10".to_owned())]);
    // A reader needs offset 7: the segment [6, 8) stays.
    assert_eq!(log.trim(&store, &keep(1, 7)).await.unwrap(), 6);
    assert_eq!(log.trim(&store, &keep(1, 8)).await.unwrap(), 8);
    let by_age =
        Trim { max_records: None, max_age: Some(Duration::from_secs(3600)), hold: u64::MAX };
    assert_eq!(log.trim(&store, &by_age).await.unwrap(), 8, "nothing is an hour old");
    assert_eq!(log.append_json(&store, &rooms(1, "late")).await.unwrap(), 10);
    assert_eq!(count(&**log).await, json!(3));
}
