//! Golden Cast cases: stores in, a spec, steps, stores expected — run on every backend.
//!
//! A case is a folder of `tests/golden/` with `cast.yaml` (the spec) and `case.yaml`:
//! `schemas` (store → JSON Schema), `before` (objects present when the integrator starts),
//! `steps` (writes made while it runs: `put`, `patch` once the object exists, `delete`) and
//! `expected` (every object of the listed stores once the integrator has settled), and
//! `pushed_down`, how many edges Redis runs itself when the integrator pushes them down: the
//! cases run that way too, with the same expectations.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use data_exchange::testing::{RedisServer, fresh_namespace, shared_kube_apiserver};
use data_exchange::{
    EmbeddedExchange, ExchangeError, KubeExchange, ObjectExchange, RedisExchange, StoreRef, Write,
};
use integrators::cast::{CastIntegrator, CastOptions, CastPlan};
use integrators::source::SpecFile;
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    schemas: BTreeMap<String, Value>,
    #[serde(default)]
    before: BTreeMap<String, Vec<Named>>,
    #[serde(default, with = "serde_yaml::with::singleton_map_recursive")]
    steps: Vec<Step>,
    expected: BTreeMap<String, Vec<Named>>,
    pushed_down: u64,
}

#[derive(Debug, Deserialize, PartialEq, Clone)]
#[serde(deny_unknown_fields)]
struct Named {
    name: String,
    data: Value,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Step {
    Put(Target),
    Patch(Target),
    Delete(Target),
}

#[derive(Debug, Deserialize)]
struct Target {
    store: String,
    name: String,
    #[serde(default)]
    data: Value,
}

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut cases: Vec<PathBuf> =
        std::fs::read_dir(root).unwrap().map(|e| e.unwrap().path()).collect();
    cases.sort();
    assert!(!cases.is_empty());
    cases
}

async fn run_case(dir: &Path, exchange: Arc<dyn ObjectExchange>, pushdown: bool) {
    let text = std::fs::read_to_string(dir.join("case.yaml")).unwrap();
    let case: Case = serde_yaml::from_str(&text).unwrap();
    let mut schemas = BTreeMap::new();
    for (store, schema) in &case.schemas {
        let store: StoreRef = store.parse().unwrap();
        exchange.register(&store, schema).await.unwrap();
        schemas.insert(store, schema.clone());
    }
    for (store, objects) in &case.before {
        for object in objects {
            let write = Write::create(&object.name, object.data.clone());
            exchange.write(&store.parse().unwrap(), write).await.unwrap();
        }
    }
    let file = SpecFile::read(&dir.join("cast.yaml")).unwrap();
    let (plan, warnings) = CastPlan::load(&file, Some(&schemas)).unwrap_or_else(|e| panic!("{e}"));
    assert!(warnings.0.is_empty(), "{warnings}");
    let options = CastOptions { pushdown, ..CastOptions::default() };
    let integrator = CastIntegrator::start_with(exchange.clone(), plan, options).await.unwrap();
    let pushed_down = integrator.stats().pushed_down.load(Ordering::Relaxed);
    assert_eq!(pushed_down, if pushdown { case.pushed_down } else { 0 }, "{}", dir.display());
    for step in &case.steps {
        apply(&*exchange, step).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let actual = snapshot(&*exchange, case.expected.keys()).await;
        if actual == case.expected {
            break;
        }
        if Instant::now() > deadline {
            panic!(
                "{}: did not settle\nexpected: {:#?}\nactual: {:#?}",
                dir.display(),
                case.expected,
                actual
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    integrator.stop().await;
}

async fn apply(exchange: &dyn ObjectExchange, step: &Step) {
    let (target, write) = match step {
        Step::Put(t) => (t, Write::put(&t.name, t.data.clone())),
        Step::Patch(t) => (t, Write::patch(&t.name, t.data.clone())),
        Step::Delete(t) => (t, Write::delete(&t.name)),
    };
    let store: StoreRef = target.store.parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    // A patch waits for the integrator to create its object.
    loop {
        match exchange.write(&store, write.clone()).await {
            Ok(_) => return,
            Err(ExchangeError::NotFound { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(e) => panic!("step {step:?}: {e}"),
        }
    }
}

async fn snapshot<'a>(
    exchange: &dyn ObjectExchange,
    stores: impl Iterator<Item = &'a String>,
) -> BTreeMap<String, Vec<Named>> {
    let mut snapshot = BTreeMap::new();
    for store in stores {
        let list = exchange.list(&store.parse().unwrap()).await.unwrap();
        let objects =
            list.items.iter().map(|o| Named { name: o.name.clone(), data: o.data.clone() });
        snapshot.insert(store.clone(), objects.collect());
    }
    snapshot
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_cases_on_the_embedded_exchange() {
    for case in cases() {
        run_case(&case, Arc::new(EmbeddedExchange::in_memory()), false).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_cases_on_redis() {
    for case in cases() {
        let server = RedisServer::start();
        let exchange = RedisExchange::connect(&server.url()).await.unwrap();
        run_case(&case, Arc::new(exchange), false).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_cases_on_redis_with_pushdown() {
    for case in cases() {
        let server = RedisServer::start();
        let exchange = RedisExchange::connect(&server.url()).await.unwrap();
        run_case(&case, Arc::new(exchange), true).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_cases_on_kubernetes() {
    let server = tokio::task::spawn_blocking(shared_kube_apiserver).await.unwrap();
    for case in cases() {
        let namespace = fresh_namespace("golden");
        let exchange = KubeExchange::with_kubeconfig(&server.kubeconfig(), &namespace).await;
        run_case(&case, Arc::new(exchange.unwrap()), false).await;
    }
}
