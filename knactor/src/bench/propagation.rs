//! `knactor bench propagation`: how long the retail checkout → shipping hop takes to bring a
//! paid order's state to Shipping, side by side in one run:
//!
//! - `tcp-loopback`: the floor, one round trip of the order's bytes to an echo in another
//!   process, on loopback;
//! - `grpc`: the API-centric baseline, Checkout calling Shipping, a process of its own, with a
//!   gRPC unary call;
//! - `knactor-embedded`: the `request-shipment` edge of the retail checkout graph, run by a
//!   Cast integrator over the embedded exchange;
//! - `knactor-redis`: the same over Redis, with the writer, the integrator and the shipping
//!   side each on their own connection;
//! - `knactor-redis-pushdown`: the same with the edge pushed down into Redis, which runs it
//!   inside the order's write.
//!
//! Each propagation is split into C-I (the order written → the integrator sees it), I (the
//! integrator computes the shipment), and I-S (the integrator writes → Shipping's watch has it).
//! For gRPC: the call sent → the handler runs, the handler's work, and the reply back. Pushed
//! down, the integrator is inside the write: C-I is nil, I is the write's round trip (the
//! order and the shipment written), I-S the write acknowledged → Shipping's watch has it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use data_exchange::{EmbeddedExchange, ObjectExchange, StoreRef};
use futures::StreamExt;
use integrators::cast::{CastIntegrator, CastOptions, CastPlan};
use integrators::source::SpecFile;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::baseline::Baseline;
use super::{Breakdown, Progress, RetailOptions, grpc, loopback, private_redis};
use crate::Write;
use crate::app::AppConfig;

/// The edge measured.
const EDGE: &str = "request-shipment";

#[derive(Debug, clap::Args)]
pub(super) struct PropagationArgs {
    /// Measured propagations per setup.
    #[arg(long, default_value_t = 5000)]
    samples: usize,
    /// Propagations run first and not measured.
    #[arg(long, default_value_t = 500)]
    warmup: usize,
    #[command(flatten)]
    retail: RetailOptions,
}

/// The total of order `n`: between 50 and 198.5, so that both shipping methods are picked.
pub(super) fn total(n: usize) -> f64 {
    50.0 + (n % 100) as f64 * 1.5
}

/// The data of paid order `n` (the order the gRPC setup sends, as Checkout stores it).
fn order(n: usize) -> Value {
    json!({
        "status": "placed",
        "paymentID": "txn-00000001",
        "items": [
            {"sku": "OLJCESPC7Z", "qty": 2, "price": 19.99},
            {"sku": "6E92ZMYYFZ", "qty": 1, "price": 8.99}
        ],
        "address": {"street": "1 rue de Rivoli", "city": "Paris", "country": "FR"},
        "total": total(n),
        "email": "shopper@example.com",
    })
}

pub(super) async fn run(args: PropagationArgs) -> anyhow::Result<()> {
    let config = AppConfig::load(&args.retail.app)?;
    let spec = hop_spec(&config)?;
    let progress = |setup| Progress::new(setup, args.warmup, args.samples);
    let mut results = Vec::new();

    let baseline = Baseline::start().await?;
    let bar = progress("tcp-loopback");
    let payload = order(0).to_string();
    results
        .push(("tcp-loopback", loopback::measure(baseline.echo, payload.as_bytes(), &bar).await?));
    bar.finish();

    let bar = progress("grpc");
    results.push(("grpc", grpc::measure(baseline.shipping, &bar).await?));
    bar.finish();
    drop(baseline);

    let bar = progress("knactor-embedded");
    let embedded: Arc<dyn ObjectExchange> = Arc::new(EmbeddedExchange::in_memory());
    let connections = [embedded.clone(), embedded.clone(), embedded];
    results.push(("knactor-embedded", hop(&config, &spec, connections, false, &bar).await?));
    bar.finish();

    match private_redis(args.retail.redis.as_deref()) {
        Some((_server, url)) => {
            for (setup, pushdown) in [("knactor-redis", false), ("knactor-redis-pushdown", true)] {
                let bar = progress(setup);
                let mut connections = Vec::new();
                for _ in 0..3 {
                    connections.push(data_exchange::connect(&url, None).await?);
                }
                let connections = connections.try_into().expect("three connections");
                results.push((setup, hop(&config, &spec, connections, pushdown, &bar).await?));
                bar.finish();
            }
        }
        None => eprintln!("knactor-redis: skipped (no redis-server installed; pass --redis URL)"),
    }
    let summaries: Vec<Value> = results.iter().map(|(setup, b)| b.summary(setup)).collect();
    if args.retail.json {
        println!("{}", serde_json::to_string_pretty(&summaries)?);
    } else {
        print_table(&summaries, &args);
    }
    Ok(())
}

/// The app's Cast spec holding the measured edge, with that edge alone.
fn hop_spec(config: &AppConfig) -> anyhow::Result<SpecFile> {
    for path in &config.integrators {
        let mut spec: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(path)?)?;
        let Some(edges) = spec["spec"]["edges"].as_sequence_mut() else { continue };
        edges.retain(|edge| edge.get("name").and_then(serde_yaml::Value::as_str) == Some(EDGE));
        if edges.len() == 1 {
            return Ok(SpecFile::from_text(path, serde_yaml::to_string(&spec)?));
        }
    }
    bail!("no integrator spec of {} has the edge `{EDGE}`", config.dir.display())
}

fn store(name: &str) -> StoreRef {
    name.parse().expect("a valid store ref")
}

/// Writes paid orders one at a time through `writer`, with the edge run by an integrator on
/// `integrator` (or pushed down by it), and measures each until `watcher`'s watch of the
/// shipments has it.
async fn hop(
    config: &AppConfig,
    spec: &SpecFile,
    [writer, integrator, watcher]: [Arc<dyn ObjectExchange>; 3],
    pushdown: bool,
    progress: &Progress,
) -> anyhow::Result<Breakdown> {
    for exchange in [&writer, &integrator, &watcher] {
        for (store, schema) in config.stores() {
            exchange.register(&store, &schema).await?;
        }
    }
    let (plan, _) = CastPlan::load(spec, Some(&config.schemas().objects))?;
    let (probe, mut timings) = mpsc::unbounded_channel();
    let options = CastOptions { pushdown, probe: Some(probe), ..CastOptions::default() };
    let cast = CastIntegrator::start_with(integrator, plan, options).await?;
    if pushdown && cast.stats().pushed_down.load(Ordering::Relaxed) != 1 {
        bail!("the exchange did not take the edge `{EDGE}` (see the log with RUST_LOG=info)");
    }
    let (orders, shipments) = (store("checkout/orders"), store("shipping/shipments"));
    let from = watcher.list(&shipments).await?.version;
    let mut arrivals = watcher.watch(&shipments, from).await?;
    // Names of their own, so that a Redis holding an earlier run changes nothing.
    let run = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
    let mut breakdown = Breakdown::default();
    for n in 0..progress.total() {
        let name = format!("order-{run}-{n:06}");
        let sent = Instant::now();
        writer.write(&orders, Write::put(&name, order(n))).await?;
        let acknowledged = Instant::now();
        let arrived = loop {
            let event = arrivals.next().await.context("the shipments' watch ended")??;
            if event.object().name == name {
                break Instant::now();
            }
        };
        let (seen, computed) = if pushdown {
            (sent, acknowledged)
        } else {
            loop {
                let timing = timings.recv().await.context("the integrator stopped")?;
                if timing.key == name {
                    break (timing.seen, timing.computed);
                }
            }
        };
        progress.record(&mut breakdown, n, sent, seen, computed, arrived)?;
    }
    cast.stop().await;
    Ok(breakdown)
}

fn print_table(summaries: &[Value], args: &PropagationArgs) {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    println!(
        "propagation, retail checkout → shipping: {} samples per setup after {} warm-up, one order in flight, {cores} cores",
        args.samples, args.warmup
    );
    println!(
        "{:<22} {:>9} {:>9} {:>9} │ {:>9} {:>9} {:>9} │ {:>11}",
        "setup", "C-I p50", "I p50", "I-S p50", "p50", "p99", "max", "p50 / gRPC"
    );
    let grpc = summaries
        .iter()
        .find(|s| s["setup"] == "grpc")
        .and_then(|s| s["propagation_p50_us"].as_f64())
        .unwrap_or(1.0);
    for s in summaries {
        let us = |key: &str| format!("{:.1} µs", s[key].as_f64().unwrap_or_default());
        let ratio = s["propagation_p50_us"].as_f64().unwrap_or_default() / grpc;
        println!(
            "{:<22} {:>9} {:>9} {:>9} │ {:>9} {:>9} {:>9} │ {:>10.2}×",
            s["setup"].as_str().unwrap_or_default(),
            us("c_i_p50_us"),
            us("i_p50_us"),
            us("i_s_p50_us"),
            us("propagation_p50_us"),
            us("propagation_p99_us"),
            us("propagation_max_us"),
            ratio
        );
    }
}
