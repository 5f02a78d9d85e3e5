//! Pushdown on Redis: an edge pushed down runs inside the write of its source; it stops when
//! the integrator stops, a restarted integrator evaluates what was written meanwhile, and a
//! plan applied at run time replaces it. (The Redis library's upgrade safety is tested with the
//! exchange, in data-exchange's tests.)

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use data_exchange::testing::RedisServer;
use data_exchange::trace::{self, TraceParent};
use data_exchange::{ObjectExchange, RedisExchange, StoreRef, Write};
use integrators::cast::{CastIntegrator, CastOptions, CastPlan, Schemas};
use integrators::source::SpecFile;
use serde_json::json;

const SPEC: &str = "apiVersion: knactor.dev/v1\nkind: Cast\nmetadata: {name: ship}\nspec:\n  inputs: {order: shop/orders, shipment: shop/shipments}\n  edges:\n    - name: ship\n      from: [order]\n      to: shipment\n      when: has(order.total) && order.total > 0\n      set: {method: 'order.total > 100 ? \"air\" : \"ground\"'}\n";

/// The spec, with `threshold` for air shipping.
fn plan(threshold: u32, schemas: &Schemas) -> CastPlan {
    let text = SPEC.replace("order.total > 100", &format!("order.total > {threshold}"));
    let file = SpecFile::from_text(Path::new("ship.yaml"), text);
    CastPlan::load(&file, Some(schemas)).unwrap().0
}

fn schemas() -> Schemas {
    let mut schemas = BTreeMap::new();
    schemas.insert("shop/orders".parse().unwrap(), json!({"type": "object"}));
    schemas.insert(
        "shop/shipments".parse().unwrap(),
        json!({"type": "object", "properties": {
            "method": {"type": "string", "enum": ["ground", "air"], "x-knactor-ingest": true}
        }}),
    );
    schemas
}

async fn start(exchange: &Arc<dyn ObjectExchange>) -> CastIntegrator {
    let schemas = schemas();
    for (store, schema) in &schemas {
        exchange.register(store, schema).await.unwrap();
    }
    let plan = plan(100, &schemas);
    let options = CastOptions { pushdown: true, ..CastOptions::default() };
    let integrator = CastIntegrator::start_with(exchange.clone(), plan, options).await.unwrap();
    assert_eq!(integrator.stats().pushed_down.load(Ordering::Relaxed), 1);
    integrator
}

/// A private Redis holding orders and shipments.
struct Shop {
    _server: RedisServer,
    exchange: Arc<dyn ObjectExchange>,
}

impl Shop {
    async fn open() -> Shop {
        let server = RedisServer::start();
        let exchange = Arc::new(RedisExchange::connect(&server.url()).await.unwrap());
        Shop { _server: server, exchange }
    }

    async fn order(&self, name: &str, total: u32) {
        let orders: StoreRef = "shop/orders".parse().unwrap();
        let write = Write::put(name, json!({ "total": total }));
        self.exchange.write(&orders, write).await.unwrap();
    }

    /// The shipping method of order `name`'s shipment, if it has one.
    async fn method(&self, name: &str) -> Option<String> {
        let shipments: StoreRef = "shop/shipments".parse().unwrap();
        let shipment = self.exchange.get(&shipments, name).await.unwrap()?;
        Some(shipment.data["method"].as_str().unwrap().to_owned())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_down_edges_run_in_the_write_and_stop_with_the_integrator() {
    let shop = Shop::open().await;
    let integrator = start(&shop.exchange).await;

    // Inside the write: the shipment is there when the write returns.
    shop.order("o1", 120).await;
    assert_eq!(shop.method("o1").await.as_deref(), Some("air"));
    assert_eq!(integrator.stats().evaluations.load(Ordering::Relaxed), 0);

    // Stopped, the integrator takes its edge out of Redis.
    integrator.stop().await;
    shop.order("o2", 20).await;
    assert_eq!(shop.method("o2").await, None);

    // Restarted, it evaluates what was written meanwhile, then Redis runs the edge again.
    let integrator = start(&shop.exchange).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while shop.method("o2").await.is_none() {
        assert!(Instant::now() < deadline, "o2 was never shipped");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(shop.method("o2").await.as_deref(), Some("ground"));
    shop.order("o3", 500).await;
    assert_eq!(shop.method("o3").await.as_deref(), Some("air"));
    integrator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_applied_at_run_time_replaces_the_pushed_down_edges() {
    let shop = Shop::open().await;
    let integrator = start(&shop.exchange).await;
    shop.order("o1", 50).await;
    assert_eq!(shop.method("o1").await.as_deref(), Some("ground"));

    integrator.apply(plan(10, &schemas())).await.unwrap();
    assert_eq!(integrator.stats().pushed_down.load(Ordering::Relaxed), 1);
    shop.order("o2", 50).await;
    assert_eq!(shop.method("o2").await.as_deref(), Some("air"));
    integrator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_down_edges_change_carries_the_trace_of_the_write_it_ran_in() {
    let shop = Shop::open().await;
    let integrator = start(&shop.exchange).await;
    let shipments: StoreRef = "shop/shipments".parse().unwrap();
    let mut watch = shop.exchange.watch(&shipments, 0).await.unwrap();
    let traced = TraceParent { trace_id: [3; 16], span_id: [4; 8], sampled: true };
    trace::within(Some(traced), shop.order("o1", 120)).await;
    shop.order("o2", 120).await;
    let first = data_exchange::testing::conformance::next_event(&mut watch).await;
    assert_eq!((first.object().name.as_str(), first.object().trace), ("o1", Some(traced)));
    let second = data_exchange::testing::conformance::next_event(&mut watch).await;
    assert_eq!((second.object().name.as_str(), second.object().trace), ("o2", None));
    integrator.stop().await;
}
