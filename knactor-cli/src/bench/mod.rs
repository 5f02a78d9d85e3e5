//! `knactor bench`: the figures of docs/BENCHMARKS.md, measured from the CLI.
//!
//! - `propagation`: the retail checkout → shipping hop, side by side with a gRPC baseline.
//! - `throughput`: orders per second through the whole retail app.
//! - `sync`: Sync flows over the embedded log, beside bare DataFusion queries.
//! - `scale`: propagation, memory and CPU as an app grows to 10,000 stores, with SVG charts.
//! - `soak`: object counts and memory as the retail app takes many orders.

mod baseline;
mod charts;
mod grpc;
mod loopback;
mod propagation;
mod scale;
mod shipping;
mod soak;
mod sync;
mod throughput;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use data_exchange::redis::RedisServer;
use indicatif::{ProgressBar, ProgressStyle};

use knactor::Registry;

/// `knactor bench ...`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Debug, clap::Subcommand)]
enum BenchCommand {
    /// State propagation of the retail checkout → shipping hop: gRPC, embedded, Redis, and
    /// Redis with the edge pushed down.
    Propagation(propagation::PropagationArgs),
    /// Orders per second through the whole retail app, embedded and Redis.
    Throughput(throughput::ThroughputArgs),
    /// Sync flows over the embedded log against bare DataFusion queries, and what
    /// consolidating 8 flows that share a prefix saves.
    Sync(sync::SyncArgs),
    /// Propagation, memory and CPU by app size: 10 to 10,000 stores.
    Scale(scale::ScaleArgs),
    /// The retail app takes many orders: object counts and memory, with its retention
    /// policies (bounded) or without (`--keep`).
    Soak(soak::SoakArgs),
    /// Serves `propagation`'s API-centric Shipping and TCP echo from a process of their own.
    #[command(hide = true)]
    Baseline,
    /// Watches `propagation`'s shipments on Redis from a process of its own.
    #[command(hide = true)]
    Shipping(shipping::ShippingArgs),
}

/// Runs a benchmark with `registry`'s reconcilers and prints its figures.
///
/// The benchmark runs as a task on a runtime worker, as a service's code does, not on the thread
/// that blocks on the runtime: every wake-up between that thread and a worker is a switch of
/// threads, which no service pays and which cost each hop tens of microseconds here.
pub async fn run(args: BenchArgs, registry: &Registry) -> anyhow::Result<()> {
    let registry = registry.clone();
    let bench = tokio::spawn(async move {
        match args.command {
            BenchCommand::Propagation(args) => propagation::run(args).await,
            BenchCommand::Throughput(args) => throughput::run(args, &registry).await,
            BenchCommand::Sync(args) => sync::run(args).await,
            BenchCommand::Scale(args) => scale::run(args).await,
            BenchCommand::Soak(args) => soak::run(args, &registry).await,
            BenchCommand::Baseline => baseline::serve().await,
            BenchCommand::Shipping(args) => shipping::serve(args).await,
        }
    });
    bench.await?
}

/// This process's resident memory, in MiB (Linux).
fn resident_mib() -> Option<f64> {
    resident_mib_of("self")
}

/// The resident memory of process `pid` (`self`: this one) in MiB, where Linux tells it.
fn resident_mib_of(pid: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The options every retail benchmark takes.
#[derive(Debug, clap::Args)]
pub(crate) struct RetailOptions {
    /// The Redis server of the Redis runs (default: a private `redis-server` on a free
    /// loopback port, when one is installed).
    #[arg(long)]
    redis: Option<String>,
    /// The retail app.
    #[arg(long, default_value = "apps/retail")]
    app: std::path::PathBuf,
    /// Prints a JSON array, one object per setup or run, instead of a table.
    #[arg(long)]
    json: bool,
}

/// The Redis to run on: `url`, or else a private `redis-server` on a free loopback port
/// (kept running while the returned server lives), or `None` when none is installed. The
/// private server keeps its data in memory, as Redis does by default and as the API-centric
/// baseline's Shipping keeps its shipments.
fn private_redis(url: Option<&str>) -> Option<(Option<RedisServer>, String)> {
    if let Some(url) = url {
        return Some((None, url.to_owned()));
    }
    let installed = std::process::Command::new("redis-server").arg("--version").output().is_ok();
    installed.then(|| {
        let server = RedisServer::start_in_memory();
        let url = server.url();
        (Some(server), url)
    })
}

/// A progress bar of `len` steps counted in `unit` (`orders`, `sizes`...), its message on the left.
fn progress_bar(len: usize, unit: &str) -> ProgressBar {
    let template = format!("{{msg:>28}} [{{bar:40}}] {{pos}}/{{len}} {unit}");
    ProgressBar::new(len as u64).with_style(
        ProgressStyle::with_template(&template).expect("a valid template").progress_chars("=> "),
    )
}

/// The system clock, in nanoseconds since the Unix epoch: the clock processes share, for the
/// stamps the baseline's and Shipping's processes take.
pub(crate) fn wall_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_nanos() as u64)
}

/// An instant with the system clock's reading at that instant, to place another process's
/// stamps on this process's timeline.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WallClock {
    instant: Instant,
    ns: u64,
}

impl WallClock {
    fn now() -> Self {
        WallClock { instant: Instant::now(), ns: wall_ns() }
    }

    /// The instant of the stamp `ns`, which another process took after this one. A stamp
    /// before it is an error of the measurement (the system clock was stepped meanwhile), said
    /// so rather than counted as no time at all.
    fn at(&self, ns: u64) -> anyhow::Result<Instant> {
        match ns.checked_sub(self.ns) {
            Some(after) => Ok(self.instant + Duration::from_nanos(after)),
            None => anyhow::bail!(
                "a stamp {} µs before the request it answers: the system clock was stepped (NTP?) during the run, so its timings cannot be trusted; run it again",
                (self.ns - ns) / 1_000
            ),
        }
    }
}

/// To two decimals.
fn round(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}
