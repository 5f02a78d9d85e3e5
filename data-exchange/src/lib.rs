//! The data exchange: where knactors keep their state.
//!
//! Start with [`ObjectExchange`], the contract every Object backend implements: get, list,
//! conditional writes ([`Write`]) and a resumable [`watch`](ObjectExchange::watch) of changes.
//! Then pick a backend with [`connect`]: [`EmbeddedExchange`] (in-process, optionally durable)
//! or [`RedisExchange`].
//!
//! Layout:
//! - [`access`]: rights per principal, and [`ScopedExchange`](access::ScopedExchange), a handle
//!   held to them.
//! - [`object`]: the contract and its value types (`Object`, `Write`, `WatchEvent`).
//! - [`store`]: store names (`StoreRef`); [`error`]: what every operation can fail with.
//! - [`schema`]: JSON Schema validation of every write.
//! - [`crd`]: a store as a Kubernetes CustomResourceDefinition: its names, and its schema made
//!   structural (pure JSON, always built).
//! - [`edge`]: edges an exchange runs inside the writes of their sources: the neutral
//!   [`Edge`] with its expression tree, and the optional [`EdgeRunner`] capability.
//! - [`embedded`]: the in-process backend; `embedded::journal` makes it durable with redb.
//! - [`redis`]: the Redis backend; one server-side function per write, watch by blocking reads;
//!   it runs edges, compiled to Lua, inside that function. [`RedisServer`](redis::RedisServer)
//!   is a private `redis-server` for benchmarks and tests.
//! - [`backoff`]: the waits of retry loops, here and in the crates above.
//! - [`merge`]: read, merge, write conditionally, again on conflict.
//! - [`kube`]: the Kubernetes apiserver backend: stores as CustomResourceDefinitions, objects
//!   as custom resources; [`KubeApiserver`](kube::KubeApiserver) is a private kube-apiserver
//!   with etcd for benchmarks and tests.
//! - [`ports`]: free loopback ports for the servers tests start.
//! - [`trace`]: the trace context each change carries from the write that made it, and the
//!   spans of the work it causes.
//! - [`log`]: the Log exchange contract ([`LogExchange`]): Arrow records, tail, SQL; and its
//!   embedded backend.
//! - `testing` (feature `testing`, for tests only): the conformance suite every backend passes.
//!
//! Features: `redis` (the Redis backend), `durable` (the embedded exchange's redb journal),
//! `log` (Log stores on Arrow and DataFusion), all on by default; `kube` (the Kubernetes
//! backend), off by default. Without them, the
//! in-memory embedded Object exchange remains.

pub mod access;
pub mod backoff;
pub mod crd;
pub mod edge;
pub mod embedded;
pub mod error;
#[cfg(feature = "kube")]
pub mod kube;
#[cfg(feature = "log")]
pub mod log;
pub mod merge;
pub mod object;
pub mod origin;
pub mod ports;
#[cfg(feature = "redis")]
pub mod redis;
pub mod schema;
pub mod store;
#[cfg(all(feature = "redis", feature = "log"))]
mod task_stream;
#[cfg(feature = "testing")]
pub mod testing;
pub mod trace;

use std::path::Path;
use std::sync::Arc;

pub use edge::{Edge, EdgeRunner, EdgesRun};
pub use embedded::EmbeddedExchange;
pub use error::{ExchangeError, Result};
#[cfg(feature = "kube")]
pub use kube::KubeExchange;
#[cfg(feature = "log")]
pub use log::{EmbeddedLog, LogExchange};
pub use object::{
    Expect, Migration, Object, ObjectExchange, ObjectList, WatchEvent, WatchStream, Write, WriteOp,
};
pub use origin::{EdgeOrigin, Origin, Origins, Source, Stamp};
#[cfg(feature = "redis")]
pub use redis::RedisExchange;
pub use store::StoreRef;

/// Opens the Object exchange named by `url`: `embedded` (in memory, or durable under
/// `data_dir` when given), `redis://HOST:PORT[/DB]`, or `kube` /
/// `kube://?context=C&namespace=NS` (the Kubernetes apiserver of the kubeconfig).
pub async fn connect(url: &str, data_dir: Option<&Path>) -> Result<Arc<dyn ObjectExchange>> {
    if url == "embedded" {
        let exchange = match data_dir {
            Some(dir) => EmbeddedExchange::open(dir)?,
            None => EmbeddedExchange::in_memory(),
        };
        Ok(Arc::new(exchange))
    } else if url.starts_with("redis://") || url.starts_with("rediss://") {
        #[cfg(feature = "redis")]
        return Ok(Arc::new(RedisExchange::connect(url).await?));
        #[cfg(not(feature = "redis"))]
        return Err(ExchangeError::NotBuilt { what: url.to_owned(), feature: "redis" });
    } else if url == "kube" || url.starts_with("kube://") {
        #[cfg(feature = "kube")]
        return Ok(Arc::new(KubeExchange::connect(url).await?));
        #[cfg(not(feature = "kube"))]
        return Err(ExchangeError::NotBuilt { what: url.to_owned(), feature: "kube" });
    } else {
        Err(ExchangeError::UnsupportedUrl(url.to_owned()))
    }
}
