//! The controller's promises: own stores only, one reconcile per object at a time, coalescing,
//! backoff, requeue-after, deletions, and graceful shutdown.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use data_exchange::{EmbeddedExchange, ObjectExchange, StoreRef, Write};
use knactor::controller::{Controller, ControllerOptions};
use knactor::metrics::Metrics;
use knactor::reconciler::StoreError;
use knactor::{Action, Change, Context, ReconcileError, Reconciler};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// What a test reconciler saw.
#[derive(Debug, Default)]
struct Journal {
    /// Every reconcile: (name, the `n` it saw or None when deleted, when).
    seen: Mutex<Vec<(String, Option<i64>, Instant)>>,
    active: Mutex<HashMap<String, usize>>,
    max_active: AtomicUsize,
}

impl Journal {
    fn seen(&self) -> Vec<(String, Option<i64>, Instant)> {
        self.seen.lock().unwrap().clone()
    }
}

type Behaviour = Box<dyn Fn(&Change, usize) -> Result<Action, ReconcileError> + Send + Sync>;

/// A reconciler that records what it sees, holds each object for `hold`, then behaves as told.
struct Recorder {
    journal: Arc<Journal>,
    hold: Duration,
    behaviour: Behaviour,
}

#[async_trait]
impl Reconciler for Recorder {
    async fn reconcile(&self, _ctx: &Context, change: &Change) -> Result<Action, ReconcileError> {
        let n = change.object.as_ref().map(|o| o.data["n"].as_i64().unwrap());
        let calls = {
            let mut seen = self.journal.seen.lock().unwrap();
            seen.push((change.name.clone(), n, Instant::now()));
            seen.len()
        };
        let concurrent = {
            let mut active = self.journal.active.lock().unwrap();
            let count = active.entry(change.name.clone()).or_default();
            *count += 1;
            *count
        };
        self.journal.max_active.fetch_max(concurrent, Ordering::SeqCst);
        tokio::time::sleep(self.hold).await;
        *self.journal.active.lock().unwrap().get_mut(&change.name).unwrap() -= 1;
        (self.behaviour)(change, calls)
    }
}

struct Harness {
    exchange: Arc<dyn ObjectExchange>,
    metrics: Arc<Metrics>,
    store: StoreRef,
    shutdown: CancellationToken,
    running: tokio::task::JoinHandle<()>,
    /// Where the reconciler is: every change up to it handled.
    handled: Arc<knactor::handled::Handled>,
}

impl Harness {
    async fn start(reconciler: impl Reconciler) -> Self {
        let exchange: Arc<dyn ObjectExchange> = Arc::new(EmbeddedExchange::in_memory());
        let store: StoreRef = "test/items".parse().unwrap();
        let schema = json!({"type": "object", "properties": {"n": {"type": "integer"}}});
        exchange.register(&store, &schema).await.unwrap();
        let options = ControllerOptions {
            workers: 4,
            backoff_base: Duration::from_millis(20),
            backoff_max: Duration::from_secs(1),
        };
        let metrics = Arc::new(Metrics::default());
        let controller = Controller::new(
            "test",
            vec![store.clone()],
            Arc::new(reconciler),
            exchange.clone(),
            metrics.clone(),
        )
        .with_options(options);
        let handled = controller.handled();
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(controller.run(shutdown.clone()));
        Harness { exchange, metrics, store, shutdown, running, handled }
    }

    /// Writes `n` into `name`; the store's version after it.
    async fn put(&self, name: &str, n: i64) -> u64 {
        let write = Write::put(name, json!({ "n": n }));
        self.exchange.write(&self.store, write).await.unwrap().version
    }

    /// Waits until every change up to `version` is reconciled, retries included: nothing more
    /// comes of them.
    async fn settled(&self, version: u64) {
        let store = self.store.store().to_owned();
        eventually("every change reconciled", || self.handled.position(&store) >= version).await;
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), self.running).await.unwrap().unwrap();
    }
}

fn done() -> Behaviour {
    Box::new(|_, _| Ok(Action::Done))
}

/// Waits until `check` holds, failing after 5 s.
async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_during_a_reconcile_coalesce_into_one_follow_up_with_the_latest_state() {
    let journal = Arc::new(Journal::default());
    let recorder =
        Recorder { journal: journal.clone(), hold: Duration::from_millis(100), behaviour: done() };
    let harness = Harness::start(recorder).await;
    harness.put("a", 0).await;
    eventually("the first reconcile", || !journal.seen().is_empty()).await;
    let mut last = 0;
    for n in 1..=20 {
        last = harness.put("a", n).await;
    }
    eventually("the latest state", || journal.seen().last().unwrap().1 == Some(20)).await;
    harness.settled(last).await;
    let seen = journal.seen();
    assert!(seen.len() <= 3, "20 changes during one reconcile coalesce: {seen:?}");
    assert_eq!(journal.max_active.load(Ordering::SeqCst), 1, "never two reconciles of one object");
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn different_objects_reconcile_concurrently_but_each_one_alone() {
    let journal = Arc::new(Journal::default());
    let recorder =
        Recorder { journal: journal.clone(), hold: Duration::from_millis(20), behaviour: done() };
    let harness = Harness::start(recorder).await;
    for round in 0..10 {
        for name in ["a", "b", "c"] {
            harness.put(name, round).await;
        }
    }
    eventually("every object's last state", || {
        let seen = journal.seen();
        ["a", "b", "c"].iter().all(|name| {
            seen.iter().rev().find(|(n, _, _)| n == name).is_some_and(|(_, n, _)| *n == Some(9))
        })
    })
    .await;
    assert_eq!(journal.max_active.load(Ordering::SeqCst), 1);
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_retried_with_growing_delays() {
    let journal = Arc::new(Journal::default());
    let behaviour: Behaviour =
        Box::new(|_, calls| if calls <= 4 { Err("not yet".into()) } else { Ok(Action::Done) });
    let recorder = Recorder { journal: journal.clone(), hold: Duration::ZERO, behaviour };
    let harness = Harness::start(recorder).await;
    let version = harness.put("a", 1).await;
    eventually("four retries", || journal.seen().len() == 5).await;
    harness.settled(version).await;
    let seen = journal.seen();
    assert_eq!(seen.len(), 5, "no more reconciles after success: {seen:?}");
    let gaps: Vec<Duration> = seen.windows(2).map(|w| w[1].2 - w[0].2).collect();
    // Backoff 20, 40, 80, 160 ms.
    for (gap, floor) in gaps.iter().zip([20, 40, 80, 160]) {
        assert!(*gap >= Duration::from_millis(floor), "gaps {gaps:?}");
    }
    harness.stop().await;
}

impl Harness {
    /// The value of the sample `series` of the test knactor's reconciler in its metrics.
    fn sample(&self, series: &str) -> Option<f64> {
        let text = self.metrics.render();
        let line = format!("{series}{{knactor=\"test\"}} ");
        text.lines().find_map(|l| l.strip_prefix(&line)?.parse().ok())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_and_failing_objects_are_counted_per_reconciler() {
    let journal = Arc::new(Journal::default());
    let behaviour: Behaviour = Box::new(|change, _| match (&*change.name, &change.object) {
        ("stuck", Some(_)) => Err("never".into()),
        _ => Ok(Action::Done),
    });
    let recorder = Recorder { journal: journal.clone(), hold: Duration::ZERO, behaviour };
    let harness = Harness::start(recorder).await;
    harness.put("fine", 1).await;
    harness.put("stuck", 1).await;
    let retries = "knactor_reconcile_retries_total";
    eventually("two retries of the stuck object", || {
        harness.sample(retries).is_some_and(|n| n >= 2.0)
    })
    .await;
    let failing = "knactor_reconcile_failing_objects";
    assert_eq!(harness.sample(failing), Some(1.0), "the stuck object only");
    let deleted = harness.exchange.write(&harness.store, Write::delete("stuck")).await.unwrap();
    harness.settled(deleted.version).await;
    assert_eq!(harness.sample(failing), Some(0.0), "its deletion reconciled");
    let fine = journal.seen().iter().filter(|(name, ..)| name == "fine").count();
    assert_eq!(fine, 1, "the fine object was reconciled once, never retried");
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeue_after_reconciles_again_without_a_change() {
    let journal = Arc::new(Journal::default());
    let behaviour: Behaviour = Box::new(|_, _| Ok(Action::RequeueAfter(Duration::from_millis(30))));
    let recorder = Recorder { journal: journal.clone(), hold: Duration::ZERO, behaviour };
    let harness = Harness::start(recorder).await;
    harness.put("a", 1).await;
    eventually("three requeues", || journal.seen().len() >= 4).await;
    let seen = journal.seen();
    assert!(seen[1].2 - seen[0].2 >= Duration::from_millis(30));
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_objects_and_deletions_are_delivered() {
    let journal = Arc::new(Journal::default());
    let recorder = Recorder { journal: journal.clone(), hold: Duration::ZERO, behaviour: done() };
    let harness = Harness::start(recorder).await;
    harness.put("a", 1).await;
    eventually("a", || journal.seen().iter().any(|s| s.1 == Some(1))).await;
    harness.exchange.write(&harness.store, Write::delete("a")).await.unwrap();
    eventually("a's deletion", || journal.seen().last().is_some_and(|s| s.1.is_none())).await;
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_a_running_reconcile_finish() {
    let journal = Arc::new(Journal::default());
    let finished = Arc::new(AtomicUsize::new(0));
    let behaviour: Behaviour = Box::new({
        let finished = finished.clone();
        move |_, _| {
            finished.fetch_add(1, Ordering::SeqCst);
            Ok(Action::Done)
        }
    });
    let recorder =
        Recorder { journal: journal.clone(), hold: Duration::from_millis(200), behaviour };
    let harness = Harness::start(recorder).await;
    harness.put("a", 1).await;
    eventually("the reconcile to start", || !journal.seen().is_empty()).await;
    harness.stop().await;
    assert_eq!(finished.load(Ordering::SeqCst), 1, "the running reconcile completed");
}

/// A reconciler that tries to read a store that is not its knactor's.
struct Trespasser(Arc<Mutex<Option<String>>>);

#[async_trait]
impl Reconciler for Trespasser {
    async fn reconcile(&self, ctx: &Context, change: &Change) -> Result<Action, ReconcileError> {
        let own = ctx.store(&change.store)?.get(&change.name).await?;
        assert!(own.is_some());
        let error = match ctx.store("orders") {
            Err(e @ StoreError::NotOwned { .. }) => e.to_string(),
            other => panic!("reached another store: {other:?}"),
        };
        *self.0.lock().unwrap() = Some(error);
        Ok(Action::Done)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_knactor_reaches_only_its_own_stores() {
    let refused = Arc::new(Mutex::new(None));
    let harness = Harness::start(Trespasser(refused.clone())).await;
    let other: StoreRef = "checkout/orders".parse().unwrap();
    harness.exchange.register(&other, &json!({})).await.unwrap();
    harness.put("a", 1).await;
    eventually("the reconcile", || refused.lock().unwrap().is_some()).await;
    let message: Value = json!(refused.lock().unwrap().clone());
    assert_eq!(
        message,
        json!("knactor `test` has no store `orders`: a knactor reaches only its own stores")
    );
    harness.stop().await;
}

/// A reconciler whose reconcile fails reaching for a store that is not its knactor's.
struct Intruder;

#[async_trait]
impl Reconciler for Intruder {
    async fn reconcile(&self, ctx: &Context, _change: &Change) -> Result<Action, ReconcileError> {
        ctx.store("elsewhere")?;
        Ok(Action::Done)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconcile_refused_a_store_is_counted_as_a_denial_of_its_knactor() {
    let harness = Harness::start(Intruder).await;
    harness.put("a", 1).await;
    let line = r#"knactor_reconcile_denied_total{principal="knactor:test",operation="reach"}"#;
    eventually("the denial to be counted", || harness.metrics.render().contains(line)).await;
    harness.stop().await;
}
