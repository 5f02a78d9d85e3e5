//! Write → watch-event latency of each Object backend, p50/p99/max.
//!
//! One writer replaces one object and waits until a watcher of the store has received the
//! change before writing again, so each sample is one unloaded write → event hop. Everything
//! runs on a current-thread Tokio runtime; Redis runs as a real `redis-server` on loopback.
//!
//! Run: `cargo bench -p data-exchange --bench write_to_watch [-- SAMPLES]`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use data_exchange::testing::RedisServer;
use data_exchange::{EmbeddedExchange, ObjectExchange, RedisExchange, StoreRef, Write};
use futures::StreamExt;
use hdrhistogram::Histogram;
use serde_json::json;

const WARMUP: usize = 1_000;

async fn measure(exchange: Arc<dyn ObjectExchange>, samples: usize) -> Histogram<u64> {
    let store: StoreRef = "bench/items".parse().unwrap();
    let schema = json!({"type": "object", "properties": {"n": {"type": "integer"}}});
    exchange.register(&store, &schema).await.unwrap();
    let from = exchange.list(&store).await.unwrap().version;
    let mut watch = exchange.watch(&store, from).await.unwrap();
    let mut latencies = Histogram::<u64>::new(3).unwrap();
    for n in 0..WARMUP + samples {
        let started = Instant::now();
        let written = exchange.write(&store, Write::put("item", json!({ "n": n }))).await.unwrap();
        let event = watch.next().await.unwrap().unwrap();
        let took = started.elapsed();
        assert_eq!(event.version(), written.version);
        if n >= WARMUP {
            latencies.record(took.as_nanos() as u64).unwrap();
        }
    }
    latencies
}

fn report(setup: &str, h: &Histogram<u64>) {
    let us = |q: f64| Duration::from_nanos(h.value_at_quantile(q)).as_secs_f64() * 1e6;
    println!(
        "{setup:<22} samples {:>7}  p50 {:>8.1} µs  p99 {:>8.1} µs  max {:>9.1} µs",
        h.len(),
        us(0.5),
        us(0.99),
        Duration::from_nanos(h.max()).as_secs_f64() * 1e6
    );
}

fn main() {
    let samples = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(20_000usize);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    println!("write → watch event latency, {samples} samples each (current-thread runtime)");

    let embedded = runtime.block_on(measure(Arc::new(EmbeddedExchange::in_memory()), samples));
    report("embedded (in memory)", &embedded);

    let dir = tempfile::tempdir().unwrap();
    let durable = EmbeddedExchange::open(dir.path()).unwrap();
    let durable = runtime.block_on(measure(Arc::new(durable), samples / 10));
    report("embedded (dataDir)", &durable);

    let server = RedisServer::start();
    let redis = runtime.block_on(async {
        let exchange = RedisExchange::connect(&server.url()).await.unwrap();
        measure(Arc::new(exchange), samples).await
    });
    report("redis (loopback)", &redis);

    // The floor under the Redis figure: one PING round trip on the same kind of connection.
    let ping = runtime.block_on(async {
        let client = redis::Client::open(server.url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let mut latencies = Histogram::<u64>::new(3).unwrap();
        for n in 0..WARMUP + samples {
            let started = Instant::now();
            let _: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
            if n >= WARMUP {
                latencies.record(started.elapsed().as_nanos() as u64).unwrap();
            }
        }
        latencies
    });
    report("redis PING round trip", &ping);
}
