//! Re-applying a Sync spec restarts only the groups whose flows changed: an unchanged flow keeps
//! running, with its open window, without re-reading anything.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use data_exchange::log::LogExchange;
use data_exchange::{EmbeddedLog, StoreRef};
use integrators::PlanDiff;
use integrators::sync::{SyncIntegrator, SyncOptions, SyncPlan};
use serde_json::{Value, json};

use crate::sync::{register, rows, sync_spec};
use crate::wait_until;

/// Two flows in two groups: `counts` counts readings per room and minute (its window stays
/// open across the re-apply), `copy` copies power records that pass `filter`.
fn flows(filter: &str) -> String {
    format!(
        "    - name: counts\n      from: house/readings\n      to: house/counts\n      ops:\n        - aggregate: {{window: 1m, by: [room], values: {{n: \"count(*)\"}}}}\n    - name: copy\n      from: house/power\n      to: house/copy\n      ops:\n        - filter: \"{filter}\"\n"
    )
}

async fn stores(log: &dyn LogExchange) -> BTreeMap<StoreRef, Value> {
    let readings = json!({"type": "object", "properties": {
        "seq": {"type": "integer"}, "room": {"type": "string"}
    }});
    let counts = json!({"type": "object", "properties": {
        "room": {"type": "string"}, "n": {"type": "integer"}
    }});
    let power = json!({"type": "object", "properties": {"watts": {"type": "integer"}}});
    let schemas = BTreeMap::from([
        ("house/readings".to_owned(), readings),
        ("house/counts".to_owned(), counts),
        ("house/power".to_owned(), power.clone()),
        ("house/copy".to_owned(), power),
    ]);
    register(log, &schemas).await
}

/// Readings `seqs` in room `hall` at minute `minute`.
fn readings(seqs: std::ops::Range<i64>, minute: i64) -> Vec<Value> {
    seqs.map(|seq| json!({"seq": seq, "room": "hall", "ts": minute * 60_000 + seq})).collect()
}

fn watts(values: &[i64]) -> Vec<Value> {
    values.iter().map(|w| json!({"watts": w})).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_one_flow_leaves_the_other_running() {
    let log: Arc<dyn LogExchange> = Arc::new(EmbeddedLog::in_memory());
    let schemas = stores(&*log).await;
    let plan = |filter: &str| {
        SyncPlan::load(&sync_spec("house", &flows(filter)), Some(&schemas))
            .unwrap_or_else(|d| panic!("{d}"))
    };
    let store = |name: &str| name.parse::<StoreRef>().unwrap();
    let (source, power, counts, copy) =
        (store("house/readings"), store("house/power"), store("house/counts"), store("house/copy"));
    // Every batch writes its checkpoint, so that the window's position is always saved.
    let options = SyncOptions { idle_checkpoint: Duration::ZERO, ..SyncOptions::default() };
    let sync = SyncIntegrator::start(log.clone(), plan("watts >= 0"), options).await.unwrap();
    let read = || sync.stats().read.load(Ordering::Relaxed);
    let checkpoint = async || log.checkpoint(&counts, "sync/house/counts").await.unwrap();

    log.append_json(&source, &readings(0..3, 0)).await.unwrap();
    log.append_json(&power, &watts(&[5, 20])).await.unwrap();
    wait_until("both groups to read their records", async || read() == 5).await;
    wait_until("the counts checkpoint", async || {
        checkpoint().await.is_some_and(|c| c.contains("\"next\":{\"house/readings\":3}"))
    })
    .await;
    let before = checkpoint().await.unwrap();
    assert!(before.contains("\"replay\":{\"house/readings\":0}"), "the window is open: {before}");
    assert_eq!(log.end(&counts).await.unwrap(), 0, "minute 0 is still open");

    let diff = sync.apply(plan("watts >= 10")).await.unwrap();
    assert_eq!(diff, PlanDiff { changed: vec!["copy".into()], ..PlanDiff::default() });
    let starts = |flow: &str| sync.stats().starts(flow);
    wait_until("the changed flow to restart", async || starts("copy") == 2).await;
    // Re-applying the same spec changes nothing and restarts nothing (checked at the end).
    assert_eq!(sync.apply(plan("watts >= 10")).await.unwrap(), PlanDiff::default());

    log.append_json(&source, &readings(3..5, 0)).await.unwrap();
    log.append_json(&power, &watts(&[5, 30])).await.unwrap();
    wait_until("the counts flow to read minute 0's last readings", async || {
        checkpoint().await.is_some_and(|c| c.contains("\"next\":{\"house/readings\":5}"))
    })
    .await;
    let after = checkpoint().await.unwrap();
    assert!(after.contains("\"replay\":{\"house/readings\":0}"), "still open: {after}");
    log.append_json(&source, &readings(5..6, 1)).await.unwrap();
    wait_until("minute 0's count", async || log.end(&counts).await.unwrap() == 1).await;
    wait_until("the copies", async || log.end(&copy).await.unwrap() == 3).await;
    wait_until("every record read", async || read() >= 10).await;
    let (read, starts) = (read(), (starts("counts"), starts("copy")));
    sync.stop().await;

    assert_eq!(starts, (1, 2), "only the changed flow restarted, once");
    assert_eq!(read, 10, "no source record was read twice: the counts flow never replayed");

    let written = rows(&*log, &counts).await;
    assert_eq!(written.len(), 1);
    assert_eq!(
        (written[0]["room"].clone(), written[0]["n"].clone()),
        (json!("hall"), json!(5)),
        "the window open across the re-apply counts the readings from before and after it"
    );
    let copies: Vec<Value> = rows(&*log, &copy).await.iter().map(|r| r["watts"].clone()).collect();
    assert_eq!(copies, [json!(5), json!(20), json!(30)], "the new filter applies after the apply");
}

#[tokio::test]
async fn a_sync_spec_appends_only_where_its_running_flows_append() {
    let log: Arc<dyn LogExchange> = Arc::new(EmbeddedLog::in_memory());
    let schemas = stores(&*log).await;
    let store = |name: &str| name.parse::<StoreRef>().unwrap();
    let both = SyncPlan::load(&sync_spec("house", &flows("watts > 0")), Some(&schemas)).unwrap();
    let sync = SyncIntegrator::start(log.clone(), both, SyncOptions::default()).await.unwrap();
    let handle = sync.log().clone();
    let denied =
        |e: data_exchange::ExchangeError| matches!(e, data_exchange::ExchangeError::Denied(_));
    handle.append_json(&store("house/copy"), &watts(&[1])).await.expect("its destination");
    let source = handle.append_json(&store("house/power"), &watts(&[1])).await;
    assert!(denied(source.unwrap_err()), "a source is only read");

    // Without the `copy` flow, the spec may no longer append to its destination.
    let counts_only =
        format!("{}\n", flows("").split("    - name: copy").next().unwrap().trim_end());
    let plan = SyncPlan::load(&sync_spec("house", &counts_only), Some(&schemas)).unwrap();
    sync.apply(plan).await.unwrap();
    let copy = handle.append_json(&store("house/copy"), &watts(&[2])).await;
    assert!(denied(copy.unwrap_err()), "the removed flow's destination");
    assert_eq!(log.end(&store("house/copy")).await.unwrap(), 1, "a denied append adds nothing");
    sync.stop().await;
}

/// A shadow run starts where the live flows last checkpointed, with their open windows, and
/// appends into copies of their destinations; the live destinations get nothing from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_continues_from_the_live_checkpoints_into_copies() {
    let log: Arc<dyn LogExchange> = Arc::new(EmbeddedLog::in_memory());
    let schemas = stores(&*log).await;
    let plan = |filter: &str| {
        SyncPlan::load(&sync_spec("house", &flows(filter)), Some(&schemas))
            .unwrap_or_else(|d| panic!("{d}"))
    };
    let store = |name: &str| name.parse::<StoreRef>().unwrap();
    let (source, power, counts, copy) =
        (store("house/readings"), store("house/power"), store("house/counts"), store("house/copy"));
    let options = SyncOptions { idle_checkpoint: Duration::ZERO, ..SyncOptions::default() };
    let live =
        SyncIntegrator::start(log.clone(), plan("watts >= 0"), options.clone()).await.unwrap();
    log.append_json(&source, &readings(0..3, 0)).await.unwrap();
    log.append_json(&power, &watts(&[5, 20])).await.unwrap();
    wait_until("the live checkpoints", async || {
        let counted = log.checkpoint(&counts, "sync/house/counts").await.unwrap();
        let copied = log.checkpoint(&copy, "sync/house/copy").await.unwrap();
        counted.is_some_and(|c| c.contains("\"next\":{\"house/readings\":3}"))
            && copied.is_some_and(|c| c.contains("\"next\":{\"house/power\":2}"))
    })
    .await;

    let copies: Arc<dyn LogExchange> = Arc::new(EmbeddedLog::in_memory());
    for (store, schema) in &schemas {
        copies.register(store, schema).await.unwrap();
    }
    let next = plan("watts >= 10");
    assert!(next.shadow_rights().grants().all(|(_, g)| g.write.is_none()), "it appends nothing");
    let (shadow, from) =
        SyncIntegrator::start_shadow(log.clone(), copies.clone(), next, options).await.unwrap();
    let from: BTreeMap<StoreRef, u64> = from.into_iter().map(|(s, m)| (s, m.from)).collect();
    assert_eq!(from, BTreeMap::from([(copy.clone(), 2), (counts.clone(), 0)]));
    log.append_json(&source, &readings(3..5, 0)).await.unwrap();
    log.append_json(&source, &readings(5..6, 1)).await.unwrap();
    log.append_json(&power, &watts(&[5, 30])).await.unwrap();
    for (what, exchange, store, end) in [
        ("the live count", &log, &counts, 1),
        ("the shadow's count", &copies, &counts, 1),
        ("the live copies", &log, &copy, 4),
        ("the shadow's copies", &copies, &copy, 1),
    ] {
        wait_until(what, async || exchange.end(store).await.unwrap() == end).await;
    }
    shadow.stop().await;
    live.stop().await;

    let n = |rows: Vec<Value>| rows.iter().map(|r| r["n"].clone()).collect::<Vec<_>>();
    assert_eq!(
        n(rows(&*copies, &counts).await),
        [json!(5)],
        "the window went on from the live one"
    );
    assert_eq!(n(rows(&*log, &counts).await), [json!(5)]);
    let watts_of = |rows: Vec<Value>| rows.iter().map(|r| r["watts"].clone()).collect::<Vec<_>>();
    assert_eq!(watts_of(rows(&*copies, &copy).await), [json!(30)], "its filter, from its start");
    assert_eq!(watts_of(rows(&*log, &copy).await), [json!(5), json!(20), json!(5), json!(30)]);
}

/// A flow with no live checkpoint (a new flow) starts in the shadow where it would start once
/// promoted: at the beginning of its sources.
#[tokio::test]
async fn a_shadow_flow_without_a_live_checkpoint_reads_its_sources_from_the_start() {
    let log: Arc<dyn LogExchange> = Arc::new(EmbeddedLog::in_memory());
    let schemas = stores(&*log).await;
    let copy = "house/copy".parse::<StoreRef>().unwrap();
    log.append_json(&"house/power".parse().unwrap(), &watts(&[5, 20, 30])).await.unwrap();
    let copies: Arc<dyn LogExchange> = Arc::new(EmbeddedLog::in_memory());
    for (store, schema) in &schemas {
        copies.register(store, schema).await.unwrap();
    }
    let plan = SyncPlan::load(&sync_spec("house", &flows("watts >= 10")), Some(&schemas)).unwrap();
    let (shadow, matched) =
        SyncIntegrator::start_shadow(log.clone(), copies.clone(), plan, SyncOptions::default())
            .await
            .unwrap();
    assert_eq!(matched[&copy].from, 0);
    wait_until("the shadow's copies", async || copies.end(&copy).await.unwrap() == 2).await;
    shadow.stop().await;
    let watts_of: Vec<Value> =
        rows(&*copies, &copy).await.iter().map(|r| r["watts"].clone()).collect();
    assert_eq!(watts_of, [json!(20), json!(30)]);
    assert_eq!(log.end(&copy).await.unwrap(), 0, "nothing appended live");
}
