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
//!   inside the order's write;
//! - `knactor-embedded-untraced` (with `--untraced`): the embedded setup with provenance off,
//!   no write stamped with its origin, to weigh what `knactor why` costs;
//! - `knactor-kube` (with `--kube`): the same over a private kube-apiserver and etcd, stores as
//!   custom resources, the writer, the integrator and Shipping each with a client of its own.
//!
//! The setups take turns of 100 propagations (each round of turns starting one setup further),
//! so that a machine that speeds up or slows down during the run weighs on every setup alike
//! and their ratios hold, while each turn runs on caches warmed by its own setup.
//!
//! Every setup is measured two ways, from the same start (Checkout starts):
//! - **one way**: until Shipping has the order. For Knactor, Shipping's watch has the
//!   shipment; for gRPC, the handler has the request; for the echo, it has the bytes.
//! - **round trip**: until Checkout has the answer. For gRPC the reply, for the echo the bytes
//!   back; for Knactor, Shipping writes a tracking number onto the shipment, the
//!   `report-shipment` edge copies it into the order, and Checkout's watch has it.
//!
//! The paper compared Knactor's one way with gRPC's round trip: that measure is kept, labelled
//! as the paper's. The embedded setup never leaves the process; the others cross a socket.
//! Each order starts once the integrator has handled what the round trip before it changed.
//!
//! Knactor's one way is split into C-I (the order written → the integrator sees it), I (the
//! integrator computes the shipment), and I-S (the integrator writes → Shipping's watch has
//! it). For gRPC and the echo the three split the round trip instead: the call sent → the
//! handler runs, the handler's work, and the reply back. Pushed
//! down, the integrator is inside the write: C-I is nil, I lasts until the write is
//! acknowledged or Shipping has the shipment, whichever comes first, and I-S is the rest.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use data_exchange::kube::KubeApiserver;
use data_exchange::{EmbeddedExchange, KubeExchange, ObjectExchange, Origin, StoreRef, WatchEvent};
use futures::StreamExt;
use hdrhistogram::Histogram;
use integrators::cast::{CastIntegrator, CastOptions, CastPlan, EdgeTiming};
use integrators::source::SpecFile;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::task::AbortOnDropHandle;

use super::baseline::{Baseline, Helper};
use super::{
    RetailOptions, WallClock, grpc, loopback, private_redis, progress_bar, round, wall_ns,
};
use knactor::Write;
use knactor::app::AppConfig;

/// The edge measured.
const EDGE: &str = "request-shipment";
/// The edge that brings Shipping's answer back into the order.
const EDGE_BACK: &str = "report-shipment";
/// Propagations a setup runs in a row before the next setup's turn.
const TURN: usize = 100;
/// How long a shipment may take to reach Shipping before the run gives up.
const PATIENCE: Duration = Duration::from_secs(10);

#[derive(Debug, clap::Args)]
pub(super) struct PropagationArgs {
    /// Measured propagations per setup.
    #[arg(long, default_value_t = 5000)]
    samples: usize,
    /// Propagations per setup run first and not measured.
    #[arg(long, default_value_t = 500)]
    warmup: usize,
    /// Adds `knactor-kube`: the hop on a private kube-apiserver and etcd (built once by
    /// scripts/kube-apiserver), etcd syncing to disk as it does by default.
    #[arg(long)]
    kube: bool,
    /// With --kube: etcd without fsync (`--unsafe-no-fsync`), the row `knactor-kube-nofsync`.
    #[arg(long, requires = "kube")]
    kube_no_fsync: bool,
    /// Adds `knactor-embedded-untraced`: the embedded setup with provenance off (no write
    /// stamped with its origin), to measure what `knactor why` costs.
    #[arg(long)]
    untraced: bool,
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

/// When one propagation's stages happened (see the module doc).
#[derive(Debug, Clone, Copy)]
pub(super) struct Stamps {
    /// Checkout starts.
    pub(super) sent: Instant,
    /// The integrator (or the handler, or the echo) has the order.
    pub(super) seen: Instant,
    /// It computed the shipment.
    pub(super) computed: Instant,
    /// The stage I-S ends: Shipping has the shipment; for an RPC, the reply is back.
    pub(super) passed: Instant,
    /// The one way ends: Shipping has the order.
    pub(super) delivered: Instant,
    /// The round trip ends: Checkout has the answer.
    pub(super) answered: Instant,
}

impl Stamps {
    /// The stamps of a request answered in one round trip (gRPC, the echo): the server has
    /// the order when it sees it, and its reply is the answer.
    pub(super) fn rpc(sent: Instant, seen: Instant, computed: Instant, reply: Instant) -> Self {
        Stamps { sent, seen, computed, passed: reply, delivered: seen, answered: reply }
    }
}

/// One way to bring order `n` to Shipping.
enum Setup {
    Loopback(loopback::Client),
    Grpc(grpc::Client),
    Knactor(Box<KnactorHop>),
}

impl Setup {
    async fn propagate(&mut self, n: usize) -> anyhow::Result<Stamps> {
        match self {
            Setup::Loopback(client) => client.round_trip().await,
            Setup::Grpc(client) => client.ship(n).await,
            Setup::Knactor(hop) => hop.propagate(n).await,
        }
    }
}

pub(super) async fn run(args: PropagationArgs) -> anyhow::Result<()> {
    let config = AppConfig::load(&args.retail.app)?;
    let baseline = Baseline::start().await?;
    let payload = order(0).to_string().into_bytes();
    let mut setups = vec![
        ("tcp-loopback", Setup::Loopback(loopback::Client::connect(baseline.echo, payload).await?)),
        ("grpc", Setup::Grpc(grpc::Client::connect(baseline.shipping).await?)),
    ];
    let untraced: &[bool] = if args.untraced { &[true, false] } else { &[true] };
    for &provenance in untraced {
        let embedded: Arc<dyn ObjectExchange> = Arc::new(EmbeddedExchange::in_memory());
        let shipping = Shipping::Here(embedded.clone());
        let options = CastOptions { provenance, ..CastOptions::default() };
        let hop = KnactorHop::start(&config, "", [embedded.clone(), embedded], shipping, options);
        let name = if provenance { "knactor-embedded" } else { "knactor-embedded-untraced" };
        setups.push((name, Setup::Knactor(Box::new(hop.await?))));
    }
    let redis = private_redis(args.retail.redis.as_deref());
    match &redis {
        Some((_server, url)) => {
            // Stores of their own, so that the pushed-down edge runs in the pushdown setup's
            // writes only.
            for (setup, prefix, pushdown) in
                [("knactor-redis", "redis-", false), ("knactor-redis-pushdown", "pushdown-", true)]
            {
                let connections = [
                    data_exchange::connect(url, None).await?,
                    data_exchange::connect(url, None).await?,
                ];
                let shipping = Shipping::Apart(url.clone());
                let options = CastOptions { pushdown, ..CastOptions::default() };
                let hop =
                    KnactorHop::start(&config, prefix, connections, shipping, options).await?;
                setups.push((setup, Setup::Knactor(Box::new(hop))));
            }
        }
        None => eprintln!("knactor-redis: skipped (no redis-server installed; pass --redis URL)"),
    }
    let no_fsync = args.kube_no_fsync;
    let kube = match args.kube {
        true => Some(tokio::task::spawn_blocking(move || private_kube(no_fsync)).await?),
        false => None,
    };
    if let Some(server) = &kube {
        let kubeconfig = server.kubeconfig();
        let connect = || KubeExchange::with_kubeconfig(&kubeconfig, "bench");
        let exchanges: [Arc<dyn ObjectExchange>; 2] =
            [Arc::new(connect().await?), Arc::new(connect().await?)];
        let watcher = connect().await?;
        let shipments = store("shipping/shipments");
        let schema = config.stores().remove(&shipments).context("the app has no shipments")?;
        watcher.register(&store("kube-shipping/shipments"), &schema).await?;
        let shipping = Shipping::Here(Arc::new(watcher));
        let options = CastOptions::default();
        let hop = KnactorHop::start(&config, "kube-", exchanges, shipping, options).await?;
        let name = if no_fsync { "knactor-kube-nofsync" } else { "knactor-kube" };
        setups.push((name, Setup::Knactor(Box::new(hop))));
    }

    let measured = measure(&mut setups, args.warmup, args.samples).await;
    let names: Vec<&str> = setups.iter().map(|(name, _)| *name).collect();
    // Stopped whatever happened: a Redis given with --redis keeps no pushed-down edge.
    for (_, setup) in setups {
        if let Setup::Knactor(hop) = setup {
            hop.cast.stop().await;
        }
    }
    let summaries: Vec<Value> =
        names.iter().zip(&measured?).map(|(name, breakdown)| breakdown.summary(name)).collect();
    if args.retail.json {
        println!("{}", serde_json::to_string_pretty(&summaries)?);
    } else {
        print_table(&summaries, &args);
    }
    Ok(())
}

/// A private kube-apiserver, its etcd syncing to disk unless `no_fsync`.
fn private_kube(no_fsync: bool) -> KubeApiserver {
    eprintln!("knactor-kube: starting kube-apiserver and etcd");
    if no_fsync { KubeApiserver::start_without_fsync() } else { KubeApiserver::start() }
}

/// Where Shipping watches its store.
enum Shipping {
    /// In a task of this process, on this exchange.
    Here(Arc<dyn ObjectExchange>),
    /// In a process of its own (see [`shipping`](super::shipping)), on the Redis server at this
    /// URL.
    Apart(String),
}

/// The hop as Knactor runs it: Checkout writes orders, a Cast integrator runs the edge (or the
/// exchange does, pushed down), and Shipping watches its store, stamping each shipment as its
/// watch has it.
struct KnactorHop {
    writer: Arc<dyn ObjectExchange>,
    orders: StoreRef,
    cast: CastIntegrator,
    pushdown: bool,
    /// Who Checkout's writes say they are from, with provenance.
    origin: Option<Arc<Origin>>,
    /// The integrator's timings (not used pushed down).
    timings: mpsc::UnboundedReceiver<EdgeTiming>,
    /// Shipments' names as Shipping's watch has them, with when (in [`wall_ns`]).
    arrivals: mpsc::UnboundedReceiver<(String, u64)>,
    /// The task that feeds `arrivals`.
    watching: AbortOnDropHandle<anyhow::Result<()>>,
    /// Orders' names as Checkout's watch has their tracking number, with when.
    answers: mpsc::UnboundedReceiver<(String, Instant)>,
    /// The task that feeds `answers`.
    _checking: AbortOnDropHandle<anyhow::Result<()>>,
    /// A name of the run's own, so that a Redis holding an earlier run changes nothing.
    run: u128,
}

impl KnactorHop {
    /// Starts the edges there and back on `integrator`, run with `options`, over the app's
    /// stores renamed with `prefix` (`checkout` is `{prefix}checkout`), Shipping's watch
    /// (which answers each new shipment with a tracking number) and Checkout's, and writes
    /// with `writer`. With provenance, Checkout's and Shipping's writes name their knactors,
    /// as a knactor's handle does.
    async fn start(
        config: &AppConfig,
        prefix: &str,
        [writer, integrator]: [Arc<dyn ObjectExchange>; 2],
        shipping: Shipping,
        options: CastOptions,
    ) -> anyhow::Result<Self> {
        let (pushdown, provenance) = (options.pushdown, options.provenance);
        let origin = |knactor: &str| provenance.then(|| Arc::new(Origin::by(knactor)));
        let (checkout, shipper) = (origin("knactor:checkout"), origin("knactor:shipping"));
        let renamed = |store: &StoreRef| -> anyhow::Result<StoreRef> {
            Ok(StoreRef::new(&format!("{prefix}{}", store.knactor()), store.store())?)
        };
        let stores: BTreeMap<StoreRef, Value> = config
            .stores()
            .into_iter()
            .map(|(store, schema)| Ok((renamed(&store)?, schema)))
            .collect::<anyhow::Result<_>>()?;
        for exchange in [&writer, &integrator] {
            for (store, schema) in &stores {
                exchange.register(store, schema).await?;
            }
        }
        let (plan, _) = CastPlan::load(&hop_spec(config, prefix)?, Some(&stores))?;
        let (probe, timings) = mpsc::unbounded_channel();
        let options = CastOptions { probe: Some(probe), ..options };
        let cast = CastIntegrator::start_with(integrator, plan, options).await?;
        if pushdown && cast.stats().pushed_down.load(Ordering::Relaxed) != 2 {
            bail!(
                "the exchange did not take the edges `{EDGE}` and `{EDGE_BACK}` (see the log with RUST_LOG=info)"
            );
        }
        let shipments = renamed(&store("shipping/shipments"))?;
        let (arrived, arrivals) = mpsc::unbounded_channel();
        let watching = match shipping {
            Shipping::Here(watcher) => {
                let from = watcher.version(&shipments).await?;
                let mut watch = watcher.watch(&shipments, from).await?;
                let shipments = shipments.clone();
                tokio::spawn(async move {
                    while let Some(event) = watch.next().await {
                        let at = wall_ns();
                        let WatchEvent::Added(shipment) = event? else { continue };
                        if arrived.send((shipment.name.clone(), at)).is_err() {
                            break;
                        }
                        let write = Write { origin: shipper.clone(), ..shipped(&shipment.name) };
                        watcher.write(&shipments, write).await?;
                    }
                    Ok(())
                })
            }
            Shipping::Apart(url) => {
                let schema = stores[&shipments].to_string();
                let store = shipments.to_string();
                let args = ["shipping", "--redis", &url, "--store", &store, "--schema", &schema];
                let (process, first) = Helper::start(&args).await?;
                if first != "ready" {
                    bail!("Shipping's process answered `{first}`");
                }
                tokio::spawn(async move {
                    // Owns the whole process, which lives as long as this task.
                    let mut process = process;
                    while let Some(line) = process.lines.next_line().await? {
                        let stamp = line
                            .rsplit_once(' ')
                            .and_then(|(name, at)| Some((name.to_owned(), at.parse().ok()?)));
                        let stamp = stamp.with_context(|| format!("Shipping printed `{line}`"))?;
                        if arrived.send(stamp).is_err() {
                            break;
                        }
                    }
                    Ok(())
                })
            }
        };
        let orders = renamed(&store("checkout/orders"))?;
        let (answered, answers) = mpsc::unbounded_channel();
        let mut watch = writer.watch(&orders, writer.version(&orders).await?).await?;
        let checking = tokio::spawn(async move {
            while let Some(event) = watch.next().await {
                let at = Instant::now();
                let order = event?.object().clone();
                if order.data.get("trackingID").is_some()
                    && answered.send((order.name.clone(), at)).is_err()
                {
                    break;
                }
            }
            Ok(())
        });
        Ok(KnactorHop {
            writer,
            orders,
            cast,
            pushdown,
            origin: checkout,
            timings,
            arrivals,
            watching: AbortOnDropHandle::new(watching),
            answers,
            _checking: AbortOnDropHandle::new(checking),
            run: SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis(),
        })
    }

    async fn propagate(&mut self, n: usize) -> anyhow::Result<Stamps> {
        let name = format!("order-{}-{n:06}", self.run);
        let clock = WallClock::now();
        let sent = clock.instant;
        let write = Write { origin: self.origin.clone(), ..Write::put(&name, order(n)) };
        self.writer.write(&self.orders, write).await?;
        let acknowledged = Instant::now();
        let delivered = loop {
            let arrival = tokio::time::timeout(PATIENCE, self.arrivals.recv()).await;
            let Ok(arrival) = arrival else {
                bail!("Shipping had no shipment for {name} {PATIENCE:?} after the order");
            };
            let Some((shipment, at)) = arrival else {
                return Err(match (&mut self.watching).await {
                    Ok(Err(e)) => e.context("Shipping's watch failed"),
                    _ => anyhow::anyhow!("Shipping's watch ended"),
                });
            };
            if shipment == name {
                break clock.at(at)?;
            }
        };
        let answered = loop {
            let answer = tokio::time::timeout(PATIENCE, self.answers.recv()).await;
            let Ok(Some((order, at))) = answer else {
                bail!("Checkout had no tracking number for {name} {PATIENCE:?} after the order");
            };
            if order == name {
                break at;
            }
        };
        let (seen, computed) = match self.pushdown {
            true => (sent, acknowledged.min(delivered)),
            false => self.settled(&name).await?,
        };
        Ok(Stamps { sent, seen, computed, passed: delivered, delivered, answered })
    }

    /// The integrator's stamps of order `name` on the measured edge, once it has handled
    /// everything the round trip changed: `report-shipment` runs twice, writing the answer and
    /// then, for the order it changed, finding nothing to write. The next order then starts on
    /// an idle integrator, as an order does on an idle gRPC server.
    async fn settled(&mut self, name: &str) -> anyhow::Result<(Instant, Instant)> {
        let (mut stamps, mut answers) = (None, 0);
        while stamps.is_none() || answers < 2 {
            let timing = tokio::time::timeout(PATIENCE, self.timings.recv()).await;
            let Ok(Some(timing)) = timing else {
                bail!("the integrator did not settle {PATIENCE:?} after order {name}");
            };
            match timing.edge.as_str() {
                _ if timing.key != name => {}
                EDGE => stamps = stamps.or(Some((timing.seen, timing.computed))),
                EDGE_BACK => answers += 1,
                _ => {}
            }
        }
        Ok(stamps.expect("stamped above"))
    }
}

/// Shipping's answer to shipment `name`: a tracking number, and what it costs.
pub(super) fn shipped(name: &str) -> Write {
    Write::patch(name, json!({"trackingID": format!("1Z{name}"), "cost": 8.99}))
}

/// The app's Cast spec holding the measured edges, with those edges alone, over the stores
/// renamed with `prefix`.
fn hop_spec(config: &AppConfig, prefix: &str) -> anyhow::Result<SpecFile> {
    for path in &config.integrators {
        let mut spec: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(path)?)?;
        let Some(edges) = spec["spec"]["edges"].as_sequence_mut() else { continue };
        let name = |edge: &serde_yaml::Value| edge.get("name")?.as_str().map(str::to_owned);
        edges.retain(|edge| name(edge).is_some_and(|name| name == EDGE || name == EDGE_BACK));
        if edges.len() != 2 {
            continue;
        }
        if let Some(inputs) = spec["spec"]["inputs"].as_mapping_mut() {
            for (_, input) in inputs.iter_mut() {
                let store = if input.is_mapping() { &mut input["store"] } else { input };
                if let Some(name) = store.as_str() {
                    *store = format!("{prefix}{name}").into();
                }
            }
        }
        return Ok(SpecFile::from_text(path, serde_yaml::to_string(&spec)?));
    }
    bail!("no integrator spec of {} has the edges `{EDGE}` and `{EDGE_BACK}`", config.dir.display())
}

fn store(name: &str) -> StoreRef {
    name.parse().expect("a valid store ref")
}

/// The latencies of one setup's propagations, in nanoseconds: source write → integrator (C-I),
/// integrator compute (I), integrator write → target store has it (I-S), one way and round
/// trip (see the module doc).
#[derive(Debug)]
struct Breakdown {
    c_i: Histogram<u64>,
    i: Histogram<u64>,
    i_s: Histogram<u64>,
    one_way: Histogram<u64>,
    round_trip: Histogram<u64>,
}

impl Default for Breakdown {
    fn default() -> Self {
        let histogram = || Histogram::new(3).expect("3 significant figures are supported");
        Breakdown {
            c_i: histogram(),
            i: histogram(),
            i_s: histogram(),
            one_way: histogram(),
            round_trip: histogram(),
        }
    }
}

impl Breakdown {
    fn record(&mut self, stamps: Stamps) -> anyhow::Result<()> {
        let Stamps { sent, seen, computed, passed, delivered, answered } = stamps;
        let ns = |from: Instant, to: Instant| to.saturating_duration_since(from).as_nanos() as u64;
        self.c_i.record(ns(sent, seen))?;
        self.i.record(ns(seen, computed))?;
        self.i_s.record(ns(computed, passed))?;
        self.one_way.record(ns(sent, delivered))?;
        self.round_trip.record(ns(sent, answered))?;
        Ok(())
    }

    /// The figures, in microseconds, as `--json` prints them. The paper's measure is the one
    /// way for Knactor, the round trip for the RPC setups.
    fn summary(&self, setup: &str) -> Value {
        let us = |h: &Histogram<u64>, q: f64| round(h.value_at_quantile(q) as f64 / 1000.0);
        let paper = if setup.starts_with("knactor") { &self.one_way } else { &self.round_trip };
        json!({
            "setup": setup,
            "samples": self.one_way.len(),
            "one_way_p50_us": us(&self.one_way, 0.5),
            "one_way_p99_us": us(&self.one_way, 0.99),
            "one_way_max_us": round(self.one_way.max() as f64 / 1000.0),
            "round_trip_p50_us": us(&self.round_trip, 0.5),
            "round_trip_p99_us": us(&self.round_trip, 0.99),
            "round_trip_max_us": round(self.round_trip.max() as f64 / 1000.0),
            "paper_p50_us": us(paper, 0.5),
            "paper_p99_us": us(paper, 0.99),
            "c_i_p50_us": us(&self.c_i, 0.5),
            "c_i_p99_us": us(&self.c_i, 0.99),
            "i_p50_us": us(&self.i, 0.5),
            "i_p99_us": us(&self.i, 0.99),
            "i_s_p50_us": us(&self.i_s, 0.5),
            "i_s_p99_us": us(&self.i_s, 0.99),
        })
    }
}

/// Runs `warmup` then `samples` propagations of each setup, the setups taking turns.
async fn measure(
    setups: &mut [(&str, Setup)],
    warmup: usize,
    samples: usize,
) -> anyhow::Result<Vec<Breakdown>> {
    let mut breakdowns: Vec<Breakdown> = setups.iter().map(|_| Breakdown::default()).collect();
    let per_setup = warmup + samples;
    let bar = progress_bar(per_setup * setups.len(), "propagations");
    bar.set_message("propagation");
    for (round, first) in (0..per_setup).step_by(TURN).enumerate() {
        for turn in 0..setups.len() {
            let k = (round + turn) % setups.len();
            for n in first..per_setup.min(first + TURN) {
                let stamps = setups[k].1.propagate(n).await?;
                if n >= warmup {
                    breakdowns[k].record(stamps)?;
                }
                bar.inc(1);
            }
        }
    }
    bar.finish_and_clear();
    Ok(breakdowns)
}

fn print_table(summaries: &[Value], args: &PropagationArgs) {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    println!(
        "propagation, retail checkout → shipping: {} samples per setup after {} warm-up, setups taking turns, one order in flight, {cores} cores",
        args.samples, args.warmup
    );
    println!(
        "one way: until Shipping has the order; round trip: until Checkout has the answer; the paper's: Knactor's one way, gRPC's round trip; knactor-embedded never leaves the process"
    );
    println!(
        "{:<25} {:>9} {:>9} {:>9} │ {:>9} {:>9} │ {:>9} {:>9} │ {:>9} │ {:>7} {:>7} {:>7}",
        "setup",
        "C-I p50",
        "I p50",
        "I-S p50",
        "1-way p50",
        "p99",
        "round p50",
        "p99",
        "paper p50",
        "1-way",
        "round",
        "paper"
    );
    let grpc = summaries.iter().find(|s| s["setup"] == "grpc");
    let of_grpc = |key: &str| grpc.and_then(|s| s[key].as_f64()).unwrap_or(1.0);
    for s in summaries {
        let value = |key: &str| s[key].as_f64().unwrap_or_default();
        let us = |key: &str| format!("{:.1} µs", value(key));
        let ratio = |key: &str| format!("{:.2}×", value(key) / of_grpc(key));
        println!(
            "{:<25} {:>9} {:>9} {:>9} │ {:>9} {:>9} │ {:>9} {:>9} │ {:>9} │ {:>7} {:>7} {:>7}",
            s["setup"].as_str().unwrap_or_default(),
            us("c_i_p50_us"),
            us("i_p50_us"),
            us("i_s_p50_us"),
            us("one_way_p50_us"),
            us("one_way_p99_us"),
            us("round_trip_p50_us"),
            us("round_trip_p99_us"),
            us("paper_p50_us"),
            ratio("one_way_p50_us"),
            ratio("round_trip_p50_us"),
            ratio("paper_p50_us"),
        );
    }
    println!("(the last three columns: p50 against gRPC's, one way, round trip and the paper's)");
}
