//! `knactor bench scale`: propagation as an app grows to 10, 100, 1,000 and 10,000 stores.
//!
//! The stores come in clusters of ten, each composed by its own Cast spec of nine edges: a
//! fan-out from `s0` to `s1`..`s4`, and a chain `s1` → `s5` → ... → `s9`; every edge adds one
//! to `n`. A propagation is a write of `s0` until `s9` has it, six hops later, in a cluster
//! taken in turn, so that every part of the app is exercised. Each size runs in a process of
//! its own (this binary again), on the embedded exchange, and reports its resident memory and
//! CPU time per propagation (from `/proc`). The figures are tabled, and drawn as SVG charts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, bail, ensure};
use data_exchange::{EmbeddedExchange, ObjectExchange, StoreRef};
use futures::StreamExt;
use hdrhistogram::Histogram;
use integrators::cast::{CastIntegrator, CastPlan};
use integrators::source::SpecFile;
use serde_json::{Value, json};

use super::{charts, progress_bar, round};
use knactor::Write;

/// Stores per cluster.
const CLUSTER: usize = 10;
/// Hops from `s0` to `s9`.
const HOPS: i64 = 6;

#[derive(Debug, clap::Args)]
pub(super) struct ScaleArgs {
    /// App sizes, in stores (multiples of 10).
    #[arg(long, value_delimiter = ',', default_value = "10,100,1000,10000")]
    stores: Vec<usize>,
    /// Measured propagations per size.
    #[arg(long, default_value_t = 2000)]
    samples: usize,
    /// Propagations run first and not measured.
    #[arg(long, default_value_t = 200)]
    warmup: usize,
    /// Where the SVG charts are written.
    #[arg(long, default_value = "docs")]
    charts: PathBuf,
    /// Prints a JSON array, one object per size, instead of a table.
    #[arg(long)]
    json: bool,
    /// Measures one size in this process and prints its JSON object (what each child runs).
    #[arg(long, hide = true)]
    one: Option<usize>,
}

pub(super) async fn run(args: ScaleArgs) -> anyhow::Result<()> {
    if let Some(stores) = args.one {
        let measured = measure(stores, args.samples, args.warmup).await?;
        println!("{measured}");
        return Ok(());
    }
    for &stores in &args.stores {
        ensure!(
            stores >= CLUSTER && stores % CLUSTER == 0,
            "--stores: {stores} is not a multiple of {CLUSTER}"
        );
    }
    let bar = progress_bar(args.stores.len(), "sizes");
    let mut sizes = Vec::new();
    for &stores in &args.stores {
        bar.set_message(format!("{stores} stores"));
        sizes.push(in_child(stores, &args)?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let written = draw(&sizes, &args.charts)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&sizes)?);
    } else {
        print_table(&sizes, &args);
        println!("charts: {}", written.join(", "));
    }
    Ok(())
}

/// Measures `stores` in a fresh process of this binary, so that each size's memory is its own.
fn in_child(stores: usize, args: &ScaleArgs) -> anyhow::Result<Value> {
    let output = std::process::Command::new(std::env::current_exe()?)
        .args(["bench", "scale", "--one", &stores.to_string()])
        .args(["--samples", &args.samples.to_string(), "--warmup", &args.warmup.to_string()])
        .stderr(std::process::Stdio::inherit())
        .output()?;
    if !output.status.success() {
        bail!("measuring {stores} stores failed ({})", output.status);
    }
    serde_json::from_slice(&output.stdout).context("reading a size's figures")
}

fn store(cluster: usize, i: usize) -> StoreRef {
    format!("c{cluster}/s{i}").parse().expect("a valid store ref")
}

/// The Cast spec of one cluster.
fn cluster_spec(cluster: usize) -> String {
    let inputs: Vec<String> = (0..CLUSTER).map(|i| format!("s{i}: c{cluster}/s{i}")).collect();
    let edge = |from: usize, to: usize| {
        format!(
            "    - {{name: s{from}-s{to}, from: [s{from}], to: s{to}, set: {{n: s{from}.n + 1}}}}\n"
        )
    };
    let fan_out = (1..=4).map(|to| edge(0, to));
    let chain = [(1, 5), (5, 6), (6, 7), (7, 8), (8, 9)].into_iter().map(|(a, b)| edge(a, b));
    format!(
        "apiVersion: knactor.dev/v1\nkind: Cast\nmetadata: {{name: cluster-{cluster}}}\nspec:\n  inputs: {{{}}}\n  edges:\n{}",
        inputs.join(", "),
        fan_out.chain(chain).collect::<String>()
    )
}

/// Builds an app of `stores` stores and measures `samples` propagations.
async fn measure(stores: usize, samples: usize, warmup: usize) -> anyhow::Result<Value> {
    let clusters = stores / CLUSTER;
    let exchange: Arc<dyn ObjectExchange> = Arc::new(EmbeddedExchange::in_memory());
    let schema = json!({"type": "object", "properties": {"n": {"type": "integer", "x-knactor-ingest": true}}});
    let mut integrators = Vec::with_capacity(clusters);
    for cluster in 0..clusters {
        let mut schemas = BTreeMap::new();
        for i in 0..CLUSTER {
            exchange.register(&store(cluster, i), &schema).await?;
            schemas.insert(store(cluster, i), schema.clone());
        }
        let file = SpecFile::from_text(Path::new("cluster.yaml"), cluster_spec(cluster));
        let (plan, _) = CastPlan::load(&file, Some(&schemas))?;
        integrators.push(CastIntegrator::start(exchange.clone(), plan).await?);
    }
    let mut latencies = Histogram::<u64>::new(3)?;
    let cpu_before = cpu_seconds();
    for n in 0..warmup + samples {
        let cluster = n % clusters;
        let (root, leaf) = (store(cluster, 0), store(cluster, CLUSTER - 1));
        let from = exchange.list(&leaf).await?.version;
        let mut arrivals = exchange.watch(&leaf, from).await?;
        let value = n as i64;
        let started = Instant::now();
        exchange.write(&root, Write::put("x", json!({ "n": value }))).await?;
        loop {
            let event = arrivals.next().await.context("the leaf's watch ended")??;
            if event.object().data["n"] == json!(value + HOPS) {
                break;
            }
        }
        if n >= warmup {
            latencies.record(started.elapsed().as_nanos() as u64)?;
        }
    }
    let cpu = cpu_seconds().zip(cpu_before).map(|(after, before)| after - before);
    let rss = super::resident_mib();
    for integrator in integrators {
        integrator.stop().await;
    }
    let us = |q: f64| round(latencies.value_at_quantile(q) as f64 / 1000.0);
    Ok(json!({
        "stores": stores,
        "edges": clusters * 9,
        "samples": samples,
        "propagation_p50_us": us(0.5),
        "propagation_p99_us": us(0.99),
        "propagation_max_us": round(latencies.max() as f64 / 1000.0),
        "rss_mib": rss.map(round),
        "cpu_us_per_propagation": cpu.map(|s| round(s * 1e6 / (warmup + samples) as f64)),
    }))
}

/// The process's CPU time (user and system), from `/proc/self/stat`; `None` off Linux.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    // utime and stime, the 14th and 15th fields, in USER_HZ (100 per second on Linux).
    Some((ticks(11)? + ticks(12)?) / 100.0)
}

/// Draws the latency, memory and CPU charts into `dir`; returns the files written.
fn draw(sizes: &[Value], dir: &Path) -> anyhow::Result<Vec<String>> {
    let series = |key: &str| -> Vec<(f64, f64)> {
        sizes.iter().filter_map(|s| Some((s["stores"].as_f64()?, s[key].as_f64()?))).collect()
    };
    std::fs::create_dir_all(dir)?;
    let charts = [
        (
            "bench-scale-latency.svg",
            "Propagation (6 hops) by app size",
            "µs",
            vec![("p50", series("propagation_p50_us")), ("p99", series("propagation_p99_us"))],
        ),
        (
            "bench-scale-memory.svg",
            "Resident memory by app size",
            "MiB",
            vec![("RSS", series("rss_mib"))],
        ),
        (
            "bench-scale-cpu.svg",
            "CPU time per propagation by app size",
            "µs",
            vec![("CPU", series("cpu_us_per_propagation"))],
        ),
    ];
    let mut written = Vec::new();
    for (file, title, unit, lines) in charts {
        let path = dir.join(file);
        std::fs::write(&path, charts::line_chart(title, "stores", unit, &lines)?)?;
        written.push(path.display().to_string());
    }
    Ok(written)
}

fn print_table(sizes: &[Value], args: &ScaleArgs) {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    println!(
        "scale, embedded exchange: clusters of {CLUSTER} stores (a fan-out of 4, a chain), {HOPS}-hop propagation, {} samples per size after {} warm-up, {cores} cores",
        args.samples, args.warmup
    );
    println!(
        "{:>7} {:>6} {:>10} {:>10} {:>10} {:>9} {:>14}",
        "stores", "edges", "p50", "p99", "max", "RSS", "CPU/propagation"
    );
    let figure = |s: &Value, key: &str| s[key].as_f64().unwrap_or(f64::NAN);
    for s in sizes {
        println!(
            "{:>7} {:>6} {:>7.1} µs {:>7.1} µs {:>7.1} µs {:>5.1} MiB {:>11.1} µs",
            s["stores"].as_u64().unwrap_or_default(),
            s["edges"].as_u64().unwrap_or_default(),
            figure(s, "propagation_p50_us"),
            figure(s, "propagation_p99_us"),
            figure(s, "propagation_max_us"),
            figure(s, "rss_mib"),
            figure(s, "cpu_us_per_propagation"),
        );
    }
    if let (Some(first), Some(last)) = (sizes.first(), sizes.last()) {
        let ratio = figure(last, "propagation_p99_us") / figure(first, "propagation_p99_us");
        println!(
            "p99 at {} stores / p99 at {} stores: {ratio:.2}×",
            last["stores"], first["stores"]
        );
    }
}
