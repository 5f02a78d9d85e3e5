//! `knactor bench soak`: the retail app takes many orders, `concurrency` in flight, and every
//! `--every` orders ended it reports each store's object count and the resident memory of the
//! process (and of the Redis server it started): with the retail retention policies, both stay
//! bounded; with `--keep` (the policies
//! off, everything kept), they grow.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use data_exchange::{ExchangeError, ObjectExchange, StoreRef};
use futures::StreamExt;
use serde_json::{Value, json};

use super::{RetailOptions, private_redis, progress_bar, round};
use crate::demo::{DemoApp, DemoOptions};
use knactor::{Registry, Write};

/// How long a run waits for any order to progress before giving up.
const PATIENCE: Duration = Duration::from_secs(60);

/// The stores whose object counts are reported.
const STORES: [&str; 4] =
    ["checkout/orders", "payment/charges", "shipping/shipments", "email/confirmations"];

#[derive(Debug, clap::Args)]
pub(super) struct SoakArgs {
    /// Orders per run.
    #[arg(long, default_value_t = 200_000)]
    orders: usize,
    /// Orders in flight.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// Reports every this many orders ended.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    every: u64,
    /// The exchanges to run on: embedded, redis (each a run of its own).
    #[arg(long, value_delimiter = ',', default_value = "embedded,redis")]
    exchange: Vec<String>,
    /// Keeps every object: the stores' retention policies are off, for comparison.
    #[arg(long)]
    keep: bool,
    #[command(flatten)]
    retail: RetailOptions,
}

pub(super) async fn run(args: SoakArgs, registry: &Registry) -> anyhow::Result<()> {
    let redis = private_redis(args.retail.redis.as_deref());
    let mut reports = Vec::new();
    for exchange in &args.exchange {
        let url = match (exchange.as_str(), &redis) {
            ("embedded", _) => None,
            ("redis", Some((_, url))) => Some(url.clone()),
            ("redis", None) => {
                eprintln!("redis: skipped (no redis-server installed; pass --redis URL)");
                continue;
            }
            (other, _) => bail!("unknown exchange `{other}`: embedded or redis"),
        };
        let options = DemoOptions {
            app: Some(args.retail.app.clone()),
            exchange: url,
            orders: args.orders as u64,
            keep: args.keep,
            ..DemoOptions::default()
        };
        let app = DemoApp::start(&options, registry, "apps/retail").await?;
        // The Redis server's own memory, when it is the benchmark's.
        let redis_pid = match exchange.as_str() {
            "redis" => redis.as_ref().and_then(|(server, _)| server.as_ref()?.pid()),
            _ => None,
        };
        let samples = soak(&app, &args, exchange, redis_pid).await;
        app.stop().await?;
        let samples = samples?;
        if !args.retail.json {
            print_table(exchange, &args, &samples);
        }
        reports.push(json!({"exchange": exchange, "keep": args.keep, "samples": samples}));
    }
    if args.retail.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    }
    Ok(())
}

/// Places the orders, `concurrency` at a time, sampling every `every` orders ended.
async fn soak(
    app: &DemoApp,
    args: &SoakArgs,
    exchange: &str,
    redis_pid: Option<u32>,
) -> anyhow::Result<Vec<Value>> {
    let orders: StoreRef = "checkout/orders".parse()?;
    let objects = app.objects();
    let from = objects.list(&orders).await?.version;
    let mut events = objects.watch(&orders, from).await?;
    let run = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
    let bar = progress_bar(args.orders, "orders");
    bar.set_message(format!("{exchange}, {} in flight", args.concurrency));
    let mut in_flight = std::collections::HashSet::new();
    let (mut placed, mut ended) = (0, 0);
    let mut samples = Vec::new();
    let started = Instant::now();
    let mut since = Instant::now();
    while ended < args.orders {
        while placed < args.orders && in_flight.len() < args.concurrency {
            let name = format!("order-{run}-{placed:07}");
            objects.write(&orders, Write::put(&name, super::throughput::order())).await?;
            in_flight.insert(name);
            placed += 1;
        }
        let event = tokio::time::timeout(PATIENCE, events.next())
            .await
            .with_context(|| format!("no order progressed for {PATIENCE:?}"))?
            .context("the orders' watch ended")?;
        let finished = match event {
            Ok(event) => {
                let order = event.object();
                let ended = matches!(order.data["status"].as_str(), Some("completed" | "declined"));
                if ended { vec![order.name.clone()] } else { Vec::new() }
            }
            // Fallen behind while sampling: the orders in flight that are no longer placed
            // (ended, or ended and collected) are done.
            Err(ExchangeError::Expired { .. }) => {
                let list = objects.list(&orders).await?;
                events = objects.watch(&orders, list.version).await?;
                let placed: std::collections::HashSet<&str> = list
                    .items
                    .iter()
                    .filter(|o| {
                        !matches!(o.data["status"].as_str(), Some("completed" | "declined"))
                    })
                    .map(|o| o.name.as_str())
                    .collect();
                in_flight.iter().filter(|n| !placed.contains(n.as_str())).cloned().collect()
            }
            Err(e) => return Err(e.into()),
        };
        for name in finished {
            if !in_flight.remove(&name) {
                continue;
            }
            ended += 1;
            bar.inc(1);
            if (ended as u64).is_multiple_of(args.every) {
                let rate = args.every as f64 / since.elapsed().as_secs_f64();
                let took = started.elapsed();
                samples.push(sample(&**objects, ended, rate, took, redis_pid).await?);
                since = Instant::now();
            }
        }
    }
    bar.finish_and_clear();
    Ok(samples)
}

/// The object counts and resident memory (this process's, and the Redis server's of
/// `redis_pid`) after `ended` orders.
async fn sample(
    objects: &dyn ObjectExchange,
    ended: usize,
    rate: f64,
    took: Duration,
    redis_pid: Option<u32>,
) -> anyhow::Result<Value> {
    let mut counts = serde_json::Map::new();
    for store in STORES {
        let count = objects.list(&store.parse()?).await?.items.len();
        counts.insert(store.to_owned(), json!(count));
    }
    Ok(json!({
        "orders": ended,
        "seconds": round(took.as_secs_f64()),
        "orders_per_s": round(rate),
        "rss_mib": super::resident_mib().map(round),
        "redis_rss_mib": redis_pid.and_then(|pid| super::resident_mib_of(&pid.to_string())).map(round),
        "objects": counts,
    }))
}

fn print_table(exchange: &str, args: &SoakArgs, samples: &[Value]) {
    let policies = if args.keep { "policies off (keep)" } else { "retail policies" };
    println!(
        "soak, {exchange}, {policies}: {} orders, {} in flight",
        args.orders, args.concurrency
    );
    println!(
        "{:>8} {:>8} {:>9} {:>8} {:>10} {:>8} {:>8} {:>10} {:>14}",
        "orders",
        "seconds",
        "orders/s",
        "RSS MiB",
        "Redis MiB",
        "orders",
        "charges",
        "shipments",
        "confirmations"
    );
    for s in samples {
        let count = |store: &str| s["objects"][store].as_u64().unwrap_or_default();
        println!(
            "{:>8} {:>8.1} {:>9.0} {:>8.1} {:>10} {:>8} {:>8} {:>10} {:>14}",
            s["orders"],
            s["seconds"].as_f64().unwrap_or_default(),
            s["orders_per_s"].as_f64().unwrap_or_default(),
            s["rss_mib"].as_f64().unwrap_or_default(),
            s["redis_rss_mib"].as_f64().map_or("-".to_owned(), |m| format!("{m:.1}")),
            count(STORES[0]),
            count(STORES[1]),
            count(STORES[2]),
            count(STORES[3]),
        );
    }
}
