//! `knactor bench`: the figures of docs/BENCHMARKS.md, measured from the CLI.
//!
//! - `propagation`: the retail checkout → shipping hop, side by side with a gRPC baseline.
//! - `throughput`: orders per second through the whole retail app.
//! - `scale`: propagation, memory and CPU as an app grows to 10,000 stores, with SVG charts.

mod baseline;
mod charts;
mod grpc;
mod loopback;
mod propagation;
mod scale;
mod throughput;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use data_exchange::testing::RedisServer;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use crate::Registry;

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
    /// Propagation, memory and CPU by app size: 10 to 10,000 stores.
    Scale(scale::ScaleArgs),
    /// Serves `propagation`'s API-centric Shipping and TCP echo from a process of their own.
    #[command(hide = true)]
    Baseline,
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
            BenchCommand::Scale(args) => scale::run(args).await,
            BenchCommand::Baseline => baseline::serve().await,
        }
    });
    bench.await?
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
/// (kept running while the returned server lives), or `None` when none is installed.
fn private_redis(url: Option<&str>) -> Option<(Option<RedisServer>, String)> {
    if let Some(url) = url {
        return Some((None, url.to_owned()));
    }
    let installed = std::process::Command::new("redis-server").arg("--version").output().is_ok();
    installed.then(|| {
        let server = RedisServer::start();
        let url = server.url();
        (Some(server), url)
    })
}

/// The system clock, in nanoseconds since the Unix epoch: the clock processes share, for the
/// stamps the baseline takes in its own process.
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

    /// The instant of the stamp `ns` (never before this one).
    fn at(&self, ns: u64) -> Instant {
        self.instant + Duration::from_nanos(ns.saturating_sub(self.ns))
    }
}

/// The latencies of one setup's hops, in nanoseconds: source write → integrator (C-I),
/// integrator compute (I), integrator write → target store has it (I-S), and the whole
/// propagation.
#[derive(Debug)]
pub(crate) struct Breakdown {
    c_i: Histogram<u64>,
    i: Histogram<u64>,
    i_s: Histogram<u64>,
    total: Histogram<u64>,
}

impl Default for Breakdown {
    fn default() -> Self {
        let histogram = || Histogram::new(3).expect("3 significant figures are supported");
        Breakdown { c_i: histogram(), i: histogram(), i_s: histogram(), total: histogram() }
    }
}

impl Breakdown {
    /// Records one propagation: written at `sent`, seen by the integrator (or server) at
    /// `seen`, computed at `computed`, arrived at the target at `arrived`.
    fn record(
        &mut self,
        sent: Instant,
        seen: Instant,
        computed: Instant,
        arrived: Instant,
    ) -> anyhow::Result<()> {
        let ns = |from: Instant, to: Instant| to.saturating_duration_since(from).as_nanos() as u64;
        self.c_i.record(ns(sent, seen))?;
        self.i.record(ns(seen, computed))?;
        self.i_s.record(ns(computed, arrived))?;
        self.total.record(ns(sent, arrived))?;
        Ok(())
    }

    /// The figures, in microseconds, as `--json` prints them.
    fn summary(&self, setup: &str) -> Value {
        let us = |h: &Histogram<u64>, q: f64| round(h.value_at_quantile(q) as f64 / 1000.0);
        json!({
            "setup": setup,
            "samples": self.total.len(),
            "propagation_p50_us": us(&self.total, 0.5),
            "propagation_p99_us": us(&self.total, 0.99),
            "propagation_max_us": round(self.total.max() as f64 / 1000.0),
            "c_i_p50_us": us(&self.c_i, 0.5),
            "c_i_p99_us": us(&self.c_i, 0.99),
            "i_p50_us": us(&self.i, 0.5),
            "i_p99_us": us(&self.i, 0.99),
            "i_s_p50_us": us(&self.i_s, 0.5),
            "i_s_p99_us": us(&self.i_s, 0.99),
        })
    }
}

/// To two decimals.
fn round(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// A setup's run: warm-up iterations, then measured samples, with a progress bar.
#[derive(Debug)]
pub(crate) struct Progress {
    bar: ProgressBar,
    warmup: usize,
    samples: usize,
}

impl Progress {
    fn new(setup: &str, warmup: usize, samples: usize) -> Self {
        let bar = ProgressBar::new((warmup + samples) as u64).with_style(
            ProgressStyle::with_template("{msg:>18} [{bar:40}] {pos}/{len}")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        bar.set_message(setup.to_owned());
        Progress { bar, warmup, samples }
    }

    /// How many iterations to run, warm-up included.
    fn total(&self) -> usize {
        self.warmup + self.samples
    }

    /// Records iteration `n` unless it is a warm-up one.
    fn record(
        &self,
        breakdown: &mut Breakdown,
        n: usize,
        sent: Instant,
        seen: Instant,
        computed: Instant,
        arrived: Instant,
    ) -> anyhow::Result<()> {
        if n >= self.warmup {
            breakdown.record(sent, seen, computed, arrived)?;
        }
        self.bar.inc(1);
        Ok(())
    }

    fn finish(self) {
        self.bar.finish_and_clear();
    }
}
