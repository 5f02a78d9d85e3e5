//! `knactor bench throughput`: paid and shipped orders per second through the whole retail
//! app — checkout, payment, shipping, their Cast graphs, the confirmation email — run in this
//! process on the embedded exchange, on Redis, and on Redis with Cast edges pushed down, with
//! 1, 16 and 256 orders in flight.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use data_exchange::StoreRef;
use futures::StreamExt;
use hdrhistogram::Histogram;
use serde_json::{Value, json};

use super::{RetailOptions, private_redis, progress_bar, round};
use crate::demo::{DemoApp, DemoOptions};
use knactor::{Registry, Write};

/// How long a run waits for any order to progress before giving up.
const PATIENCE: Duration = Duration::from_secs(30);

#[derive(Debug, clap::Args)]
pub(super) struct ThroughputArgs {
    /// Orders per run.
    #[arg(long, default_value_t = 5000)]
    orders: usize,
    /// Orders in flight, one run each.
    #[arg(long, value_delimiter = ',', default_value = "1,16,256")]
    concurrency: Vec<usize>,
    #[command(flatten)]
    retail: RetailOptions,
}

/// A paid-by-card order of two products, to Paris.
pub(super) fn order() -> Value {
    json!({
        "items": [
            {"sku": "OLJCESPC7Z", "qty": 2, "price": 19.99},
            {"sku": "6E92ZMYYFZ", "qty": 1, "price": 8.99}
        ],
        "address": {"street": "1 rue de Rivoli", "city": "Paris", "country": "FR"},
        "card": {"number": "4242 4242 4242 4242", "expiry": "12/39"},
        "email": "shopper@example.com",
    })
}

pub(super) async fn run(args: ThroughputArgs, registry: &Registry) -> anyhow::Result<()> {
    let redis = private_redis(args.retail.redis.as_deref());
    let mut exchanges = vec![("embedded", None, false)];
    match &redis {
        Some((_, url)) => {
            exchanges.push(("redis", Some(url.clone()), false));
            exchanges.push(("redis-pushdown", Some(url.clone()), true));
        }
        None => eprintln!("redis: skipped (no redis-server installed; pass --redis URL)"),
    }
    let mut runs = Vec::new();
    for (exchange, url, pushdown) in &exchanges {
        for &concurrency in &args.concurrency {
            let options = DemoOptions {
                app: Some(args.retail.app.clone()),
                exchange: url.clone(),
                attach: false,
                minutes: 0,
                orders: args.orders as u64,
                seed: 0,
                pushdown: *pushdown,
                keep: false,
            };
            let app = DemoApp::start(&options, registry, "apps/retail").await?;
            let measured = measure(&app, args.orders, concurrency, exchange).await;
            app.stop().await?;
            runs.push(measured?.summary(exchange, concurrency));
        }
    }
    if args.retail.json {
        println!("{}", serde_json::to_string_pretty(&runs)?);
    } else {
        print_table(&runs, args.orders);
    }
    Ok(())
}

/// What one run measured.
#[derive(Debug)]
struct Run {
    orders: usize,
    took: Duration,
    latencies: Histogram<u64>,
}

impl Run {
    fn summary(&self, exchange: &str, concurrency: usize) -> Value {
        let ms = |us: u64| round(us as f64 / 1000.0);
        json!({
            "exchange": exchange,
            "concurrency": concurrency,
            "orders": self.orders,
            "orders_per_s": round(self.orders as f64 / self.took.as_secs_f64()),
            "latency_p50_ms": ms(self.latencies.value_at_quantile(0.5)),
            "latency_p99_ms": ms(self.latencies.value_at_quantile(0.99)),
        })
    }
}

/// Places `orders` orders, `concurrency` at a time: each completed order lets the next in.
async fn measure(
    app: &DemoApp,
    orders: usize,
    concurrency: usize,
    exchange: &str,
) -> anyhow::Result<Run> {
    let store: StoreRef = "checkout/orders".parse()?;
    let objects = app.objects();
    let from = objects.list(&store).await?.version;
    let mut events = objects.watch(&store, from).await?;
    let run = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
    let bar = progress_bar(orders, "orders");
    bar.set_message(format!("{exchange}, {concurrency} in flight"));
    let mut in_flight: HashMap<String, Instant> = HashMap::new();
    let mut latencies = Histogram::<u64>::new(3)?;
    let (mut placed, mut done) = (0, 0);
    let started = Instant::now();
    while done < orders {
        while placed < orders && in_flight.len() < concurrency {
            let name = format!("order-{run}-{placed:06}");
            in_flight.insert(name.clone(), Instant::now());
            objects.write(&store, Write::put(&name, order())).await?;
            placed += 1;
        }
        let event = tokio::time::timeout(PATIENCE, events.next())
            .await
            .with_context(|| format!("no order progressed for {PATIENCE:?}"))?
            .context("the orders' watch ended")??;
        let order = event.object();
        match order.data["status"].as_str() {
            Some("completed") => {}
            Some("declined") => bail!("order {} was declined: {}", order.name, order.data),
            _ => continue,
        }
        if let Some(placed_at) = in_flight.remove(&order.name) {
            latencies.record(placed_at.elapsed().as_micros() as u64)?;
            done += 1;
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    Ok(Run { orders, took: started.elapsed(), latencies })
}

fn print_table(runs: &[Value], orders: usize) {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    println!(
        "throughput, retail orders placed → paid and shipped: {orders} orders per run, {cores} cores"
    );
    println!(
        "{:<14} {:>9} {:>10} {:>12} {:>12}",
        "exchange", "in flight", "orders/s", "p50", "p99"
    );
    for r in runs {
        println!(
            "{:<14} {:>9} {:>10.0} {:>9.2} ms {:>9.2} ms",
            r["exchange"].as_str().unwrap_or_default(),
            r["concurrency"].as_u64().unwrap_or_default(),
            r["orders_per_s"].as_f64().unwrap_or_default(),
            r["latency_p50_ms"].as_f64().unwrap_or_default(),
            r["latency_p99_ms"].as_f64().unwrap_or_default(),
        );
    }
}
