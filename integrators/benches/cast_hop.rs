//! Cast benchmarks: one hop (source write → target written) p50/p99 on each backend, and edge
//! evaluations per second on the embedded exchange.
//!
//! Run: `cargo bench -p integrators --bench cast_hop [-- SAMPLES]`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use data_exchange::testing::RedisServer;
use data_exchange::{EmbeddedExchange, ObjectExchange, RedisExchange, StoreRef, Write};
use futures::StreamExt;
use hdrhistogram::Histogram;
use integrators::cast::{CastIntegrator, CastPlan, Schemas};
use integrators::source::SpecFile;
use serde_json::json;

const WARMUP: usize = 500;

fn setup() -> (StoreRef, StoreRef, Schemas, CastPlan) {
    let (src, dst): (StoreRef, StoreRef) = ("a/src".parse().unwrap(), "b/dst".parse().unwrap());
    let mut schemas = BTreeMap::new();
    schemas.insert(src.clone(), json!({"type": "object", "properties": {"n": {"type": "integer"}, "total": {"type": "number"}}}));
    schemas.insert(
        dst.clone(),
        json!({"type": "object", "properties": {
            "n": {"type": "integer", "x-knactor-ingest": true},
            "method": {"type": "string", "x-knactor-ingest": true}
        }}),
    );
    let spec = "apiVersion: knactor.dev/v1\nkind: Cast\nmetadata: {name: hop}\nspec:\n  inputs: {src: a/src, dst: b/dst}\n  edges:\n    - name: hop\n      from: [src]\n      to: dst\n      when: src.n >= 0\n      set:\n        n: src.n\n        method: 'src.total > 100 ? \"air\" : \"ground\"'\n";
    let (plan, _) =
        CastPlan::load(&SpecFile::from_text(Path::new("hop.yaml"), spec), Some(&schemas)).unwrap();
    (src, dst, schemas, plan)
}

async fn hop(exchange: Arc<dyn ObjectExchange>, samples: usize) -> Histogram<u64> {
    let (src, dst, schemas, plan) = setup();
    for (store, schema) in &schemas {
        exchange.register(store, schema).await.unwrap();
    }
    let integrator = CastIntegrator::start(exchange.clone(), plan).await.unwrap();
    let from = exchange.list(&dst).await.unwrap().version;
    let mut targets = exchange.watch(&dst, from).await.unwrap();
    let mut latencies = Histogram::<u64>::new(3).unwrap();
    for n in 0..WARMUP + samples {
        let started = Instant::now();
        let data = json!({"n": n, "total": 50 + n % 100});
        exchange.write(&src, Write::put("item", data)).await.unwrap();
        let event = targets.next().await.unwrap().unwrap();
        let took = started.elapsed();
        assert_eq!(event.object().data["n"], json!(n));
        if n >= WARMUP {
            latencies.record(took.as_nanos() as u64).unwrap();
        }
    }
    integrator.stop().await;
    latencies
}

/// Edge evaluations per second: `count` changes already in the source, evaluated and written.
async fn evaluations_per_second(count: usize) -> f64 {
    let (src, dst, schemas, plan) = setup();
    let exchange: Arc<dyn ObjectExchange> =
        Arc::new(EmbeddedExchange::in_memory().with_history(count + 1));
    for (store, schema) in &schemas {
        exchange.register(store, schema).await.unwrap();
    }
    for n in 0..count {
        exchange
            .write(&src, Write::put(format!("o{n}"), json!({"n": n, "total": n % 200})))
            .await
            .unwrap();
    }
    let started = Instant::now();
    let integrator = CastIntegrator::start(exchange.clone(), plan).await.unwrap();
    while integrator.stats().writes.load(Ordering::Relaxed) < count as u64 {
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let rate = count as f64 / started.elapsed().as_secs_f64();
    assert_eq!(exchange.list(&dst).await.unwrap().items.len(), count);
    integrator.stop().await;
    rate
}

fn report(setup: &str, h: &Histogram<u64>) {
    let us = |ns: u64| Duration::from_nanos(ns).as_secs_f64() * 1e6;
    println!(
        "{setup:<22} samples {:>6}  p50 {:>8.1} µs  p99 {:>8.1} µs  max {:>9.1} µs",
        h.len(),
        us(h.value_at_quantile(0.5)),
        us(h.value_at_quantile(0.99)),
        us(h.max())
    );
}

fn main() {
    let samples = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(10_000usize);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    println!("Cast hop: source write → target written ({samples} samples, current-thread runtime)");
    let embedded = runtime.block_on(hop(Arc::new(EmbeddedExchange::in_memory()), samples));
    report("embedded", &embedded);
    let server = RedisServer::start();
    let redis = runtime.block_on(async {
        let exchange = RedisExchange::connect(&server.url()).await.unwrap();
        hop(Arc::new(exchange), samples / 2).await
    });
    report("redis (loopback)", &redis);
    let rate = runtime.block_on(evaluations_per_second(100_000));
    println!("edge evaluations (with target writes), embedded: {rate:.0} /s over 100000 changes");
}
