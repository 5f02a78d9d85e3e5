//! The state retention's promises, on the embedded exchange, on Redis and (with the `kube`
//! feature) on the Kubernetes apiserver: an object goes once
//! finished and handled by every consumer (its reconciler, the Cast specs whose checkpoints
//! name its store), not while one lags, stopped or crashed, nor while a source an edge creates
//! it from exists; a retired spec holds nothing; a collected object is archived once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use data_exchange::redis::RedisServer;
use data_exchange::{
    EmbeddedExchange, EmbeddedLog, LogExchange, ObjectExchange, RedisExchange, StoreRef, Write,
};
use knactor::controller::Controller;
use knactor::metrics::Metrics;
use knactor::retention::{Collected, Collector, Finished};
use knactor::{Action, Change, Context, ReconcileError, Reconciler};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// A reconciler that does not return while `held` is set.
struct Holding {
    held: Arc<AtomicBool>,
}

#[async_trait]
impl Reconciler for Holding {
    async fn reconcile(&self, _ctx: &Context, _change: &Change) -> Result<Action, ReconcileError> {
        while self.held.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(Action::Done)
    }
}

/// The exchanges a scenario runs on: embedded, Redis (with its server), and the Kubernetes
/// apiserver (a namespace of its own on the one the tests share) with the `kube` feature.
async fn exchanges() -> Vec<(Arc<dyn ObjectExchange>, Option<RedisServer>)> {
    let redis = RedisServer::start_in_memory();
    let on_redis: Arc<dyn ObjectExchange> =
        Arc::new(RedisExchange::connect(&redis.url()).await.unwrap());
    #[allow(unused_mut)]
    let mut exchanges =
        vec![(Arc::new(EmbeddedExchange::in_memory()) as _, None), (on_redis, Some(redis))];
    #[cfg(feature = "kube")]
    {
        use data_exchange::testing::{fresh_namespace, shared_kube_apiserver};
        let kubeconfig = shared_kube_apiserver().kubeconfig();
        let namespace = fresh_namespace("retention");
        let kube = data_exchange::KubeExchange::with_kubeconfig(&kubeconfig, &namespace).await;
        exchanges.push((Arc::new(kube.unwrap()) as _, None));
    }
    exchanges
}

/// A store collected from, with a collector (and the reconciler `held` holds, if given).
struct Rig {
    exchange: Arc<dyn ObjectExchange>,
    log: Arc<dyn LogExchange>,
    metrics: Arc<Metrics>,
    items: StoreRef,
    shutdown: CancellationToken,
}

impl Rig {
    async fn start(exchange: Arc<dyn ObjectExchange>, held: Option<Arc<AtomicBool>>) -> Rig {
        let items: StoreRef = "shop/items".parse().unwrap();
        let sources: StoreRef = "src/orders".parse().unwrap();
        let schema = json!({"type": "object", "properties": {"done": {"type": "boolean"}}});
        exchange.register(&items, &schema).await.unwrap();
        exchange.register(&sources, &json!({"type": "object"})).await.unwrap();
        let log: Arc<dyn LogExchange> = Arc::new(EmbeddedLog::in_memory());
        let archive: StoreRef = "shop/archive".parse().unwrap();
        let archive_schema = json!({"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string"}, "done": {"type": "boolean"}
        }});
        log.register(&archive, &archive_schema).await.unwrap();
        let metrics = Arc::new(Metrics::default());
        let shutdown = CancellationToken::new();
        let handled = match held {
            Some(held) => {
                let reconciler = Arc::new(Holding { held });
                let controller = Controller::new(
                    "shop",
                    vec![items.clone()],
                    reconciler,
                    exchange.clone(),
                    metrics.clone(),
                );
                let handled = controller.handled();
                tokio::spawn(controller.run(shutdown.clone()));
                Some(handled)
            }
            None => None,
        };
        let ingest = data_exchange::log::ingest::Ingest::new(&archive, &archive_schema).unwrap();
        let collected = Collected {
            store: items.clone(),
            finished: Finished::compile("has(data.done) && data.done").unwrap(),
            ttl: Duration::ZERO,
            archive: Some((archive.clone(), ingest)),
        };
        let collector = Collector::new(
            "shop",
            exchange.clone(),
            log.clone(),
            handled,
            vec![collected],
            metrics.clone(),
        );
        tokio::spawn(collector.run(shutdown.clone()));
        Rig { exchange, log, metrics, items, shutdown }
    }

    async fn put(&self, store: &StoreRef, name: &str, data: Value) -> u64 {
        self.exchange.write(store, Write::put(name, data)).await.unwrap().version
    }

    async fn exists(&self, name: &str) -> bool {
        self.exchange.get(&self.items, name).await.unwrap().is_some()
    }

    /// Writes the checkpoint of a Cast spec `name`.
    async fn checkpoint(&self, name: &str, state: Value) {
        let store = integrators::cast::checkpoint_store();
        self.exchange.register(&store, &integrators::cast::checkpoint_schema()).await.unwrap();
        self.exchange.write(&store, Write::put(format!("cast.{name}"), state)).await.unwrap();
    }

    /// The value of a retention series of the items' store in /metrics.
    fn metric(&self, name: &str) -> f64 {
        let text = self.metrics.render();
        let series = format!("knactor_{name}{{store=\"shop/items\"}} ");
        let line = text.lines().find(|l| l.starts_with(&series));
        line.map_or(0.0, |l| l[series.len()..].trim().parse().unwrap())
    }

    /// Waits until the collector has held `count` finished objects back in a round.
    async fn held(&self, count: f64) {
        eventually(&format!("{count} objects held"), || async {
            self.metric("retention_held_objects") == count
        })
        .await;
    }

    async fn gone(&self, name: &str) {
        eventually(&format!("{name} collected"), || async { !self.exists(name).await }).await;
    }

    fn stop(&self) {
        self.shutdown.cancel();
    }
}

/// Waits until `check` holds, failing after 10 s.
async fn eventually<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    // A deadline, not a pause: generous, for a machine that runs the other tests meanwhile.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_goes_once_finished_and_handled_by_its_reconciler_and_is_archived_once() {
    for (exchange, _redis) in exchanges().await {
        let held = Arc::new(AtomicBool::new(true));
        let rig = Rig::start(exchange, Some(held.clone())).await;
        rig.put(&rig.items, "open", json!({"done": false})).await;
        rig.put(&rig.items, "x", json!({"done": true})).await;
        rig.held(1.0).await;
        assert!(rig.exists("x").await, "not collected while its reconcile has not returned");
        held.store(false, Ordering::SeqCst);
        rig.gone("x").await;
        assert!(rig.exists("open").await, "an unfinished object stays");
        // The collector counts a deletion once its write returns, after the watch may show it.
        let collected = || async { rig.metric("retention_collected_total") >= 1.0 };
        eventually("the collection counted", collected).await;
        let archived = rig.log.query("SELECT name, done FROM \"shop/archive\"").await.unwrap();
        let lines = String::from_utf8(data_exchange::log::json_lines(&archived)).unwrap();
        assert_eq!(lines.trim(), r#"{"name":"x","done":true}"#, "archived once");
        assert_eq!(rig.metric("retention_collected_total"), 1.0, "collected once");
        rig.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cast_spec_holds_what_it_has_not_consumed_until_it_does_or_is_retired() {
    for (exchange, _redis) in exchanges().await {
        let rig = Rig::start(exchange, None).await;
        rig.checkpoint("late", json!({"consumed": {"shop/items": 0}})).await;
        let v1 = rig.put(&rig.items, "a", json!({"done": true})).await;
        rig.held(1.0).await;
        assert!(rig.exists("a").await, "a spec that lags (or crashed) holds it");
        rig.checkpoint("late", json!({"consumed": {"shop/items": v1}})).await;
        rig.gone("a").await;
        rig.put(&rig.items, "b", json!({"done": true})).await;
        rig.held(1.0).await;
        assert!(rig.exists("b").await);
        rig.checkpoint("late", json!({"consumed": {"shop/items": v1}, "retired": true})).await;
        rig.gone("b").await;
        rig.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_stays_while_a_source_an_edge_creates_it_from_exists() {
    for (exchange, _redis) in exchanges().await {
        let rig = Rig::start(exchange, None).await;
        let sources: StoreRef = "src/orders".parse().unwrap();
        let creates = json!({"shop/items": ["src/orders"]});
        // The edge's spec first, having handled nothing, so that it holds what comes; then the
        // source and the item, each handled at the version it was written.
        let nothing = json!({"src/orders": 0, "shop/items": 0});
        rig.checkpoint("feed", json!({"consumed": nothing, "creates": creates})).await;
        let source = rig.put(&sources, "o1", json!({})).await;
        let item = rig.put(&rig.items, "o1", json!({"done": true})).await;
        let handled = |source: u64| json!({"src/orders": source, "shop/items": item});
        rig.checkpoint("feed", json!({"consumed": handled(source), "creates": creates})).await;
        rig.held(1.0).await;
        assert!(rig.exists("o1").await, "its source would create it again");
        // Deleted, and the deletion handled by the edge.
        let deleted = rig.exchange.write(&sources, Write::delete("o1")).await.unwrap().version;
        rig.checkpoint("feed", json!({"consumed": handled(deleted), "creates": creates})).await;
        rig.gone("o1").await;
        rig.stop();
    }
}

/// The number of records in the Log store `store` and its first offset kept.
async fn held(log: &dyn LogExchange, store: &StoreRef) -> (u64, u64) {
    let sql = format!(r#"SELECT count(*) AS n FROM "{store}""#);
    let batches = log.query(&sql).await.unwrap();
    let counts = batches[0].column(0).as_any().downcast_ref::<arrow::array::Int64Array>().unwrap();
    let mut tail = log.tail(store, 0).await.unwrap();
    let end = log.end(store).await.unwrap();
    let first = if counts.value(0) == 0 {
        end
    } else {
        futures::StreamExt::next(&mut tail).await.unwrap().unwrap().offset
    };
    (counts.value(0) as u64, first)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_flow_holds_what_it_has_not_read_and_reads_it_all_once_restarted() {
    use integrators::sync::{SyncIntegrator, SyncOptions, SyncPlan};
    use knactor::retention::{Trimmed, Trimmer};

    let redis = RedisServer::start_in_memory();
    let logs: Vec<Arc<dyn LogExchange>> = vec![
        Arc::new(EmbeddedLog::in_memory()),
        Arc::new(data_exchange::log::RedisLog::connect(&redis.url()).await.unwrap()),
    ];
    for log in logs {
        let (readings, copy): (StoreRef, StoreRef) =
            ("motion/readings".parse().unwrap(), "house/copy".parse().unwrap());
        let schema = json!({"type": "object", "properties": {"seq": {"type": "integer"}}});
        let mut schemas = std::collections::BTreeMap::new();
        for store in [&readings, &copy] {
            log.register(store, &schema).await.unwrap();
            schemas.insert(store.clone(), schema.clone());
        }
        let text = "apiVersion: knactor.dev/v1\nkind: Sync\nmetadata: {name: copy}\nspec:\n  flows:\n    - name: copy\n      from: motion/readings\n      to: house/copy\n      ops:\n        - select: [ts, seq]\n";
        let file =
            integrators::source::SpecFile::from_text(std::path::Path::new("copy.yaml"), text);
        let plan = || SyncPlan::load(&file, Some(&schemas)).unwrap();
        let start = || SyncIntegrator::start(log.clone(), plan(), SyncOptions::default());
        let append = |seq: u64| {
            let log = log.clone();
            let readings = readings.clone();
            async move { log.append_json(&readings, &[json!({ "seq": seq })]).await.unwrap() }
        };
        let copied = |count: u64| {
            let (log, copy) = (log.clone(), copy.clone());
            async move {
                eventually(&format!("{count} records copied"), || async {
                    log.end(&copy).await.unwrap() == count
                })
                .await;
            }
        };
        // Keeps one record, but what the flow has not read.
        let mut trimmer = Trimmer::new(
            log.clone(),
            vec![Trimmed { store: readings.clone(), max_age: None, max_records: Some(1) }],
            vec![readings.clone(), copy.clone()],
            Arc::new(Metrics::default()),
        );
        let sync = start().await.unwrap();
        for seq in 0..10 {
            append(seq).await;
        }
        copied(10).await;
        sync.stop().await;
        for seq in 10..20 {
            append(seq).await;
        }
        for _ in 0..2 {
            let trimmed = trimmer.trim().await.unwrap();
            assert!(matches!(trimmed[0], Some(Ok(_))), "{trimmed:?}");
        }
        assert_eq!(held(&*log, &readings).await, (10, 10), "what it read goes, the rest stays");
        let sync = start().await.unwrap();
        copied(20).await;
        let sql = r#"SELECT count(DISTINCT seq) AS n FROM "house/copy""#;
        let distinct = log.query(sql).await.unwrap();
        let distinct =
            distinct[0].column(0).as_any().downcast_ref::<arrow::array::Int64Array>().unwrap();
        assert_eq!(distinct.value(0), 20, "every record once");
        trimmer.trim().await.unwrap();
        assert_eq!(held(&*log, &readings).await, (1, 19));
        // Retired (the spec deleted), it holds nothing.
        sync.retire().await;
        for seq in 20..25 {
            append(seq).await;
        }
        trimmer.trim().await.unwrap();
        assert_eq!(held(&*log, &readings).await, (1, 24));
    }
}
