//! Demos (`knactor demo NAME`): an example app run in-process, driven by simulated users or
//! devices, ending with a summary of what flowed. Apps register theirs in the [`Demos`] the
//! binary links.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use async_trait::async_trait;
use data_exchange::{LogExchange, ObjectExchange};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::app::{App, AppConfig, AppError, AppOptions};
use crate::reconciler::Registry;

/// How to run a demo; each demo uses the sizes that apply to it.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// The app directory (default: the demo's app under `apps/`).
    pub app: Option<PathBuf>,
    /// Overrides the app's exchanges (`redis://HOST:PORT`).
    pub exchange: Option<String>,
    /// Simulated minutes (smart home).
    pub minutes: u64,
    /// Orders to place (retail).
    pub orders: u64,
    /// Seeds the simulation's randomness: the same seed gives the same run.
    pub seed: u64,
}

/// A runnable demonstration of an app.
#[async_trait]
pub trait Demo: Send + Sync + 'static {
    /// Runs the app with `registry`'s reconcilers, drives it, prints a summary; an error when
    /// what flowed is not what was expected.
    async fn run(&self, options: DemoOptions, registry: &Registry) -> anyhow::Result<()>;
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

/// An app a demo runs in this process, with its API on a free loopback port.
#[derive(Debug)]
pub struct DemoApp {
    objects: Arc<dyn ObjectExchange>,
    log: Arc<dyn LogExchange>,
    shutdown: CancellationToken,
    running: JoinHandle<Result<(), AppError>>,
}

impl DemoApp {
    /// Loads the app of `options.app` (default `default_dir`) and runs it on its exchanges
    /// (or `options.exchange`) with `registry`'s reconcilers.
    pub async fn start(
        options: &DemoOptions,
        registry: &Registry,
        default_dir: &str,
    ) -> anyhow::Result<DemoApp> {
        let dir = options.app.clone().unwrap_or_else(|| PathBuf::from(default_dir));
        let config = AppConfig::load(&dir).with_context(|| format!("loading {}", dir.display()))?;
        let app_options =
            AppOptions { exchange: options.exchange.clone(), ..AppOptions::default() };
        let app = App::open(config, app_options, registry).await?;
        let (objects, log) = (app.exchange().clone(), app.log().clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(app.run(listener, shutdown.clone()));
        Ok(DemoApp { objects, log, shutdown, running })
    }

    /// The app's Object exchange.
    pub fn objects(&self) -> &Arc<dyn ObjectExchange> {
        &self.objects
    }

    /// The app's Log exchange.
    pub fn log(&self) -> &Arc<dyn LogExchange> {
        &self.log
    }

    /// Stops the app, letting running work finish.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        Ok(self.running.await??)
    }
}
