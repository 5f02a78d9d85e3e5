//! Demos (`knactor demo NAME`): an example app run in-process (or attached to where it
//! runs), driven by simulated users or devices, ending with a summary of what flowed. The
//! binary links the example apps' demos ([`examples`]).

pub mod retail;
pub mod smart_home;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use async_trait::async_trait;
use data_exchange::{LogExchange, ObjectExchange, RedisExchange};
use knactor::Registry;
use knactor::api::{Access, Tokens};
use knactor::app::{App, AppConfig, AppError, AppOptions, Exchanges, Schemas};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How to run a demo; each demo uses the sizes that apply to it.
#[derive(Clone, Debug, Default)]
pub struct DemoOptions {
    /// The app directory (default: the demo's app under `apps/`).
    pub app: Option<PathBuf>,
    /// Overrides the app's exchanges (`redis://HOST:PORT`, or `kube` for the Object stores).
    pub exchange: Option<String>,
    /// Drives the app already running on `exchange` (its knactors and integrators in other
    /// processes) instead of running it in this one.
    pub attach: bool,
    /// Simulated minutes (smart home).
    pub minutes: u64,
    /// Orders to place (retail).
    pub orders: u64,
    /// Seeds the simulation's randomness: the same seed gives the same run.
    pub seed: u64,
    /// Pushes Cast edges down into the exchange (Redis).
    pub pushdown: bool,
    /// Keeps every object: the stores' retention policies are off.
    pub keep: bool,
}

/// A runnable demonstration of an app.
#[async_trait]
pub trait Demo: Send + Sync + 'static {
    /// Runs the app with `registry`'s reconcilers, drives it, prints a summary; an error when
    /// what flowed is not what was expected.
    async fn run(&self, options: DemoOptions, registry: &Registry) -> anyhow::Result<()>;
}

/// The example apps' demos: `retail` and `smart-home`.
pub fn examples() -> Demos {
    let mut demos = Demos::default();
    demos.register("retail", retail::RetailDemo);
    demos.register("smart-home", smart_home::SmartHomeDemo);
    demos
}

/// Demos by name.
#[derive(Clone, Default)]
pub struct Demos {
    demos: BTreeMap<String, Arc<dyn Demo>>,
}

impl fmt::Debug for Demos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.demos.keys()).finish()
    }
}

impl Demos {
    /// Registers `demo` as `name` (e.g. `smart-home`).
    pub fn register(&mut self, name: &str, demo: impl Demo) -> &mut Self {
        self.demos.insert(name.to_owned(), Arc::new(demo));
        self
    }

    /// The demo registered as `name`.
    pub fn get(&self, name: &str) -> Option<Arc<dyn Demo>> {
        self.demos.get(name).cloned()
    }

    /// The registered names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.demos.keys().map(String::as_str)
    }
}

/// The app a demo drives: run in this process, with its API on a free loopback port, or
/// attached to when it runs elsewhere.
#[derive(Debug)]
pub struct DemoApp {
    exchanges: Exchanges,
    running: Option<Running>,
    pushed_down: Option<PushedDown>,
}

/// With `--pushdown` on Redis: the writes the edges pushed down make there, counted by the
/// server, so that a demo's summary shows that they ran there.
#[derive(Debug)]
struct PushedDown {
    redis: RedisExchange,
    /// The counts when the demo started.
    before: BTreeMap<String, u64>,
}

impl PushedDown {
    async fn start(options: &DemoOptions) -> anyhow::Result<Option<Self>> {
        let url = options.exchange.as_deref().filter(|url| url.starts_with("redis"));
        let Some(url) = url.filter(|_| options.pushdown) else { return Ok(None) };
        let redis = RedisExchange::connect(url).await?;
        let before = redis.edge_writes().await?;
        Ok(Some(PushedDown { redis, before }))
    }

    /// The writes each edge made in Redis since the demo started, as a summary line.
    async fn report(&self) -> anyhow::Result<String> {
        let now = self.redis.edge_writes().await?;
        let made: Vec<(String, u64)> = now
            .into_iter()
            .map(|(edge, n)| {
                let since = n.saturating_sub(self.before.get(&edge).copied().unwrap_or(0));
                (edge, since)
            })
            .filter(|(_, n)| *n > 0)
            .collect();
        let total: u64 = made.iter().map(|(_, n)| n).sum();
        let by_edge: Vec<String> = made.iter().map(|(edge, n)| format!("{edge} {n}")).collect();
        let writes = knactor::specs::counted(total as usize, "write");
        Ok(format!("  edges run in Redis: {writes} ({})", by_edge.join(", ")))
    }
}

/// An app running in this process.
#[derive(Debug)]
struct Running {
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), AppError>>,
}

impl DemoApp {
    /// Loads the app of `options.app` (default `default_dir`) and runs it on its exchanges
    /// (or `options.exchange`) with `registry`'s reconcilers; with `options.attach`, connects
    /// to the app already running on `options.exchange`.
    pub async fn start(
        options: &DemoOptions,
        registry: &Registry,
        default_dir: &str,
    ) -> anyhow::Result<DemoApp> {
        let dir = options.app.clone().unwrap_or_else(|| PathBuf::from(default_dir));
        let config = AppConfig::load_for(&dir, options.exchange.as_deref())
            .with_context(|| format!("loading {}", dir.display()))?;
        if options.attach {
            let url = options.exchange.as_deref().context(
                "--attach needs --exchange: the exchange the running app is on (redis://...)",
            )?;
            return Ok(DemoApp {
                exchanges: config.connect(Some(url), Schemas::Held).await?,
                running: None,
                pushed_down: None,
            });
        }
        let app_options = AppOptions {
            exchange: options.exchange.clone(),
            pushdown: options.pushdown,
            keep: options.keep,
            ..AppOptions::default()
        };
        // Nobody outside this process calls the demo's API: its tokens live in memory only.
        let tokens = Tokens::ephemeral(config.principals())?;
        let app = App::open(config, app_options, registry).await?;
        let exchanges = Exchanges { objects: app.exchange().clone(), log: app.log().clone() };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let access = Access::new(tokens, listener.local_addr()?);
        let shutdown = CancellationToken::new();
        let pushed_down = PushedDown::start(options).await?;
        let task = tokio::spawn(app.run(listener, access, shutdown.clone()));
        Ok(DemoApp { exchanges, running: Some(Running { shutdown, task }), pushed_down })
    }

    /// The app's Object exchange.
    pub fn objects(&self) -> &Arc<dyn ObjectExchange> {
        &self.exchanges.objects
    }

    /// The app's Log exchange.
    pub fn log(&self) -> &Arc<dyn LogExchange> {
        &self.exchanges.log
    }

    /// Stops the app if it runs in this process, letting running work finish.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop_with_summary().await.map(drop)
    }

    /// [`stop`](Self::stop), then, with `--pushdown`, the line of a demo's summary counting the
    /// writes the edges made in Redis.
    pub async fn stop_with_summary(self) -> anyhow::Result<Option<String>> {
        let Some(Running { shutdown, task }) = self.running else { return Ok(None) };
        shutdown.cancel();
        task.await??;
        match &self.pushed_down {
            Some(pushed_down) => pushed_down.report().await.map(Some),
            None => Ok(None),
        }
    }
}
