//! Demos (`knactor demo NAME`): an example app run in-process, driven by simulated users or
//! devices, ending with a summary of what flowed. Apps register theirs in the [`Demos`] the
//! binary links.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;

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
