//! The Object exchange as this process uses it, counted per store for `/metrics`: the writes
//! it made and the watches it holds open.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use data_exchange::{
    EdgeRunner, Migration, Object, ObjectExchange, ObjectList, Origins, Result, StoreRef,
    WatchStream, Write,
};
use futures::StreamExt;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use serde_json::Value;

use crate::metrics::Metrics;

/// An Object exchange whose writes and watches are counted in [`Metrics`], store by store.
#[derive(Debug)]
pub struct Metered {
    inner: Arc<dyn ObjectExchange>,
    metrics: Arc<Metrics>,
    /// Each store's series, found without building labels at every write.
    series: RwLock<HashMap<StoreRef, (Counter, Gauge)>>,
}

impl Metered {
    /// `inner`, counted in `metrics`.
    pub fn wrap(inner: Arc<dyn ObjectExchange>, metrics: Arc<Metrics>) -> Arc<dyn ObjectExchange> {
        Arc::new(Metered { inner, metrics, series: RwLock::default() })
    }

    /// The writes and watches series of `store`.
    fn series(&self, store: &StoreRef) -> (Counter, Gauge) {
        if let Some(series) = self.series.read().unwrap_or_else(|e| e.into_inner()).get(store) {
            return series.clone();
        }
        let series = self.metrics.store_series(store);
        let mut known = self.series.write().unwrap_or_else(|e| e.into_inner());
        known.entry(store.clone()).or_insert(series).clone()
    }
}

/// Counts a watch open until it is dropped.
struct Open(Gauge);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[async_trait]
impl ObjectExchange for Metered {
    async fn register(&self, store: &StoreRef, schema: &Value) -> Result<()> {
        self.inner.register(store, schema).await
    }

    async fn evolve(
        &self,
        store: &StoreRef,
        schema: &Value,
        migration: Option<&Migration>,
    ) -> Result<u64> {
        self.inner.evolve(store, schema, migration).await
    }

    async fn get(&self, store: &StoreRef, name: &str) -> Result<Option<Arc<Object>>> {
        self.inner.get(store, name).await
    }

    async fn origins(&self, store: &StoreRef, name: &str) -> Result<Option<Origins>> {
        self.inner.origins(store, name).await
    }

    async fn list(&self, store: &StoreRef) -> Result<ObjectList> {
        self.inner.list(store).await
    }

    async fn write(&self, store: &StoreRef, write: Write) -> Result<Arc<Object>> {
        let written = self.inner.write(store, write).await?;
        self.series(store).0.inc();
        Ok(written)
    }

    async fn watch(&self, store: &StoreRef, from: u64) -> Result<WatchStream> {
        let watch = self.inner.watch(store, from).await?;
        let open = self.series(store).1;
        open.inc();
        let open = Open(open);
        Ok(watch
            .map(move |event| {
                let _counted = &open;
                event
            })
            .boxed())
    }

    async fn version(&self, store: &StoreRef) -> Result<u64> {
        self.inner.version(store).await
    }

    async fn count(&self, store: &StoreRef) -> Result<Option<u64>> {
        self.inner.count(store).await
    }

    fn versions_per_store(&self) -> bool {
        self.inner.versions_per_store()
    }

    fn edge_runner(&self) -> Option<&dyn EdgeRunner> {
        self.inner.edge_runner()
    }

    async fn lost_data(&self) -> Result<bool> {
        self.inner.lost_data().await
    }
}
