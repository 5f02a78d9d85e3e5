//! The data exchange: where knactors keep their state.
//!
//! Start with [`ObjectExchange`], the contract every Object backend implements: get, list,
//! conditional writes ([`Write`]) and a resumable [`watch`](ObjectExchange::watch) of changes.
//! Then pick a backend with [`connect`]: [`EmbeddedExchange`] (in-process, optionally durable)
//! or [`RedisExchange`].
//!
//! Layout:
//! - [`object`]: the contract and its value types (`Object`, `Write`, `WatchEvent`).
//! - [`store`]: store names (`StoreRef`); [`error`]: what every operation can fail with.
//! - [`schema`]: JSON Schema validation of every write.
//! - [`edge`]: edges an exchange runs inside the writes of their sources: the neutral
//!   [`Edge`] with its expression tree, and the optional [`EdgeRunner`] capability.
//! - [`embedded`]: the in-process backend; `embedded::journal` makes it durable with redb.
//! - [`redis`]: the Redis backend; one server-side function per write, watch by blocking reads;
//!   it runs edges, compiled to Lua, inside that function.
//! - [`log`]: the Log exchange contract ([`LogExchange`]): Arrow records, tail, SQL; and its
//!   embedded backend.
//! - `testing` (feature `testing`): the conformance suite every backend passes, and a harness
//!   that runs a real `redis-server` on a free loopback port.

pub mod edge;
pub mod embedded;
pub mod error;
pub mod log;
pub mod object;
pub mod redis;
pub mod schema;
pub mod store;
mod task_stream;
#[cfg(feature = "testing")]
pub mod testing;

use std::path::Path;
use std::sync::Arc;

pub use edge::{Edge, EdgeRunner, EdgesRun};
pub use embedded::EmbeddedExchange;
pub use error::{ExchangeError, Result};
pub use log::{EmbeddedLog, LogExchange};
pub use object::{
    Expect, Object, ObjectExchange, ObjectList, WatchEvent, WatchStream, Write, WriteOp,
};
pub use redis::RedisExchange;
pub use store::StoreRef;

/// Opens the Object exchange named by `url`: `embedded` (in memory, or durable under
/// `data_dir` when given) or `redis://HOST:PORT[/DB]`.
pub async fn connect(url: &str, data_dir: Option<&Path>) -> Result<Arc<dyn ObjectExchange>> {
    if url == "embedded" {
        let exchange = match data_dir {
            Some(dir) => EmbeddedExchange::open(dir)?,
            None => EmbeddedExchange::in_memory(),
        };
        Ok(Arc::new(exchange))
    } else if url.starts_with("redis://") || url.starts_with("rediss://") {
        Ok(Arc::new(RedisExchange::connect(url).await?))
    } else {
        Err(ExchangeError::UnsupportedUrl(url.to_owned()))
    }
}
