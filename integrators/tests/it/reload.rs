//! Re-applying a Cast plan while changes flow: each change is handled by exactly one plan
//! version, none is lost, none handled twice; `resync` re-evaluates what is already there.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use data_exchange::{EmbeddedExchange, ObjectExchange, StoreRef, WatchEvent, Write};
use futures::StreamExt;
use integrators::cast::{CastIntegrator, CastPlan, Schemas};
use integrators::source::SpecFile;
use serde_json::{Value, json};

pub(super) fn stores() -> (StoreRef, StoreRef, Schemas) {
    let (src, dst): (StoreRef, StoreRef) = ("a/src".parse().unwrap(), "b/dst".parse().unwrap());
    let mut schemas = BTreeMap::new();
    schemas
        .insert(src.clone(), json!({"type": "object", "properties": {"n": {"type": "integer"}}}));
    schemas.insert(
        dst.clone(),
        json!({"type": "object", "properties": {
            "n": {"type": "integer", "x-knactor-ingest": true},
            "stamp": {"type": "string", "x-knactor-ingest": true}
        }}),
    );
    (src, dst, schemas)
}

/// A plan copying `n` and stamping each target with `stamp`.
pub(super) fn plan(stamp: &str, resync: bool, schemas: &Schemas) -> CastPlan {
    let text = format!(
        "apiVersion: knactor.dev/v1\nkind: Cast\nmetadata: {{name: copy}}\nspec:\n  resync: {resync}\n  inputs: {{src: a/src, dst: b/dst}}\n  edges:\n    - name: copy\n      from: [src]\n      to: dst\n      set: {{n: src.n, stamp: '\"{stamp}\"'}}\n"
    );
    let file = SpecFile::from_text(Path::new("copy.yaml"), text);
    CastPlan::load(&file, Some(schemas)).unwrap_or_else(|e| panic!("{e}")).0
}

pub(super) async fn exchange(schemas: &Schemas) -> Arc<dyn ObjectExchange> {
    let exchange: Arc<dyn ObjectExchange> =
        Arc::new(EmbeddedExchange::in_memory().with_history(100_000));
    for (store, schema) in schemas {
        exchange.register(store, schema).await.unwrap();
    }
    exchange
}

/// Waits until `name` of `store` exists, failing with `missed` after 10 s.
async fn written(exchange: &dyn ObjectExchange, store: &StoreRef, name: &str, missed: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while exchange.get(store, name).await.unwrap().is_none() {
        assert!(Instant::now() < deadline, "{missed}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_is_handled_by_exactly_one_plan_version() {
    const CHANGES: usize = 2_000;
    const APPLIES: usize = 20;
    let (src, dst, schemas) = stores();
    let exchange = exchange(&schemas).await;
    let mut targets = exchange.watch(&dst, 0).await.unwrap();
    let integrator =
        CastIntegrator::start(exchange.clone(), plan("v0", false, &schemas)).await.unwrap();

    let writer = tokio::spawn({
        let (exchange, src) = (exchange.clone(), src.clone());
        async move {
            for i in 0..CHANGES {
                exchange
                    .write(&src, Write::create(format!("o{i:05}"), json!({"n": i})))
                    .await
                    .unwrap();
                if i % 100 == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
    });
    for version in 1..=APPLIES {
        let diff = integrator.apply(plan(&format!("v{version}"), false, &schemas)).await.unwrap();
        assert_eq!(diff.changed, ["copy"]);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    writer.await.unwrap();

    // Every source change produced exactly one target write (one `Added`, nothing more)...
    let mut writes: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while writes.len() < CHANGES {
        assert!(Instant::now() < deadline, "only {} of {CHANGES} targets written", writes.len());
        let event = tokio::time::timeout(Duration::from_secs(10), targets.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(matches!(event, WatchEvent::Added(_)), "a target was written twice: {event:?}");
        writes.entry(event.object().name.clone()).or_default().push(event.object().data.clone());
    }
    // One more change is the barrier: the integrator handles a store's changes in order, so
    // a second write of an earlier target would come before this one's.
    exchange.write(&src, Write::create("zz-last", json!({"n": 0}))).await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(10), targets.next()).await.unwrap();
    let next = next.unwrap().unwrap();
    assert_eq!(next.object().name, "zz-last", "no further writes: {next:?}");
    // ...by one plan version, and versions only move forward in the order changes happened.
    let stamps: Vec<u32> =
        writes.values().map(|w| w[0]["stamp"].as_str().unwrap()[1..].parse().unwrap()).collect();
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "plan versions interleaved: {stamps:?}");
    let versions: std::collections::BTreeSet<_> = stamps.iter().collect();
    assert!(versions.len() >= 5, "the applies overlapped the changes: versions {versions:?}");
    assert_eq!(
        writes.values().map(|w| w[0]["n"].as_u64().unwrap()).sum::<u64>(),
        (0..CHANGES as u64).sum::<u64>()
    );
    integrator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resync_re_evaluates_existing_objects_under_the_new_plan() {
    let (src, dst, schemas) = stores();
    let exchange = exchange(&schemas).await;
    let integrator =
        CastIntegrator::start(exchange.clone(), plan("old", false, &schemas)).await.unwrap();
    for i in 0..10 {
        exchange.write(&src, Write::create(format!("o{i}"), json!({"n": i}))).await.unwrap();
    }
    let settled = |stamp: &'static str, count: usize| {
        let exchange = exchange.clone();
        let dst = dst.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let list = exchange.list(&dst).await.unwrap();
                let stamped = list.items.iter().all(|o| o.data["stamp"] == stamp);
                if list.items.len() == count && stamped {
                    return;
                }
                assert!(Instant::now() < deadline, "targets did not all get `{stamp}`");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    settled("old", 10).await;
    integrator.apply(plan("quiet", false, &schemas)).await.unwrap();
    // A change after the apply is the barrier: handled under the new plan, and after anything
    // the apply would have re-evaluated.
    exchange.write(&src, Write::create("o10", json!({"n": 10}))).await.unwrap();
    written(&*exchange, &dst, "o10", "o10 not handled").await;
    let list = exchange.list(&dst).await.unwrap();
    assert!(
        list.items.iter().filter(|o| o.name != "o10").all(|o| o.data["stamp"] == "old"),
        "without resync, nothing is re-evaluated"
    );
    integrator.apply(plan("new", true, &schemas)).await.unwrap();
    settled("new", 11).await;
    integrator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_integrator_resumes_from_its_checkpoint() {
    let (src, dst, schemas) = stores();
    let exchange = exchange(&schemas).await;
    let integrator =
        CastIntegrator::start(exchange.clone(), plan("one", false, &schemas)).await.unwrap();
    exchange.write(&src, Write::create("before", json!({"n": 1}))).await.unwrap();
    written(&*exchange, &dst, "before", "`before` not handled").await;
    integrator.stop().await;
    // Changes while it is down, then a restart: they are handled, the old one is not redone.
    exchange.write(&src, Write::create("during", json!({"n": 2}))).await.unwrap();
    let evaluated = {
        let integrator =
            CastIntegrator::start(exchange.clone(), plan("two", false, &schemas)).await.unwrap();
        written(&*exchange, &dst, "during", "the change made while down was missed").await;
        let stats = integrator.stats().evaluations.load(std::sync::atomic::Ordering::Relaxed);
        integrator.stop().await;
        stats
    };
    assert_eq!(evaluated, 1, "only the change made while down was evaluated");
    let before = exchange.get(&dst, "before").await.unwrap().unwrap();
    assert_eq!(before.data["stamp"], "one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_run_does_not_create_again_a_target_deleted_since_but_a_new_change_does() {
    let (src, dst, schemas) = stores();
    let exchange = exchange(&schemas).await;
    let integrator =
        CastIntegrator::start(exchange.clone(), plan("old", false, &schemas)).await.unwrap();
    let mut last = 0;
    for i in 0..3 {
        last = exchange
            .write(&src, Write::create(format!("o{i}"), json!({"n": i})))
            .await
            .unwrap()
            .version;
    }
    let targets = |count: usize| {
        let (exchange, dst) = (exchange.clone(), dst.clone());
        async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let list = exchange.list(&dst).await.unwrap();
                if list.items.len() == count {
                    return list.items;
                }
                assert!(Instant::now() < deadline, "never {count} targets: {:?}", list.items);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    targets(3).await;
    // Deleted (as the state retention collects it): a resync handles o1 again, but creates
    // nothing, while it brings the others to the new plan.
    exchange.write(&dst, Write::delete("o1")).await.unwrap();
    integrator.apply(plan("new", true, &schemas)).await.unwrap();
    let after = exchange.list(&dst).await.unwrap().items;
    let stamps: Vec<(&str, &Value)> =
        after.iter().map(|o| (o.name.as_str(), &o.data["stamp"])).collect();
    assert_eq!(stamps, [("o0", &json!("new")), ("o2", &json!("new"))]);
    // The checkpoint says what the spec consumed and where its edge creates objects.
    let checkpoint = integrators::cast::checkpoint_store();
    let saved =
        || async { exchange.get(&checkpoint, "cast.copy").await.unwrap().unwrap().data.clone() };
    let deadline = Instant::now() + Duration::from_secs(10);
    while saved().await["consumed"]["a/src"].as_u64() < Some(last) {
        assert!(Instant::now() < deadline, "the checkpoint never said a/src was consumed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(saved().await["creates"], json!({"b/dst": ["a/src"]}));
    // A change of the source after the deletion creates the target again.
    exchange.write(&src, Write::put("o1", json!({"n": 11}))).await.unwrap();
    targets(3).await;
    integrator.retire().await;
    assert_eq!(saved().await["retired"], json!(true), "a retired spec consumes nothing");
}

/// Counts, per source change (object and version), the plan versions that handled it: every
/// handling, a repeat that wrote nothing new included.
#[derive(Debug, Default)]
struct Handlings(std::sync::Mutex<BTreeMap<(String, u64), Vec<String>>>);

impl integrators::cast::CastObserver for Handlings {
    fn edge_handled(&self, handled: &integrators::cast::EdgeHandled<'_>) {
        let Some((_, _, Some(patch))) = handled.write else { return };
        let key = (handled.object.name.clone(), handled.object.version);
        let stamp = patch["stamp"].as_str().unwrap_or_default().to_owned();
        self.0.lock().unwrap().entry(key).or_default().push(stamp);
    }
}

/// 10,000 changes of 1,000 objects (each created, then updated nine times) while the plan is
/// re-applied 100 times: an observer that sees every handling, those that write nothing new
/// too, finds each change handled once, by one plan version, and none lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_applies_under_ten_thousand_changes_handle_each_change_once() {
    const OBJECTS: usize = 1_000;
    const ROUNDS: usize = 10;
    const APPLIES: usize = 100;
    let (src, dst, schemas) = stores();
    let exchange = exchange(&schemas).await;
    let handlings = Arc::new(Handlings::default());
    let options = integrators::cast::CastOptions {
        observer: Some(handlings.clone()),
        ..integrators::cast::CastOptions::default()
    };
    let integrator =
        CastIntegrator::start_with(exchange.clone(), plan("v0", false, &schemas), options)
            .await
            .unwrap();
    let writer = tokio::spawn({
        let (exchange, src) = (exchange.clone(), src.clone());
        async move {
            let mut changes = Vec::new();
            for round in 0..ROUNDS {
                for i in 0..OBJECTS {
                    let write = Write::put(format!("o{i:04}"), json!({"n": round}));
                    let written = exchange.write(&src, write).await.unwrap();
                    changes.push((written.name.clone(), written.version));
                    if i % 200 == 0 {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            }
            changes
        }
    });
    for version in 1..=APPLIES {
        integrator.apply(plan(&format!("v{version}"), false, &schemas)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let changes = writer.await.unwrap();
    // The last change of every object is in its target once handled.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list = exchange.list(&dst).await.unwrap();
        let last = ROUNDS as u64 - 1;
        if list.items.len() == OBJECTS && list.items.iter().all(|o| o.data["n"] == last) {
            break;
        }
        assert!(Instant::now() < deadline, "the last changes did not all arrive");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    integrator.stop().await;
    let handlings = handlings.0.lock().unwrap();
    let twice: Vec<_> = handlings.iter().filter(|(_, by)| by.len() > 1).take(5).collect();
    assert!(twice.is_empty(), "changes handled more than once: {twice:?}");
    let lost: Vec<_> = changes.iter().filter(|c| !handlings.contains_key(c)).take(5).collect();
    assert!(lost.is_empty(), "changes not handled: {lost:?}");
    assert_eq!(handlings.len(), OBJECTS * ROUNDS);
    let versions: std::collections::BTreeSet<&String> = handlings.values().flatten().collect();
    assert!(versions.len() >= 20, "the applies overlapped the changes: {versions:?}");
}
