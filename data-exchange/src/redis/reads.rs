//! Reads that survive a server restart: the first command a connection manager sends after
//! the server went away fails (it reconnects then), so a read that found the connection
//! dropped is sent once more. Writes are not: one may have been applied before the connection
//! broke.

use std::future::Future;

use redis::aio::ConnectionManager;
use redis::{FromRedisValue, RedisResult};

/// Runs the read `command` on `conn`, again once if the connection had dropped.
pub(crate) async fn read<T, C>(conn: &ConnectionManager, command: &C) -> RedisResult<T>
where
    T: FromRedisValue,
    C: Query,
{
    retried(|| command.on(conn.clone())).await
}

/// `run`, again once if its connection had dropped.
async fn retried<T, F: Future<Output = RedisResult<T>>>(run: impl Fn() -> F) -> RedisResult<T> {
    match run().await {
        Err(error) if error.is_connection_dropped() => run().await,
        answer => answer,
    }
}

/// A command or a pipeline, sent on a clone of the shared (multiplexed) connection.
pub(crate) trait Query {
    /// Sends it on `conn`.
    fn on<T: FromRedisValue>(
        &self,
        conn: ConnectionManager,
    ) -> impl Future<Output = RedisResult<T>> + Send;
}

impl Query for redis::Cmd {
    fn on<T: FromRedisValue>(
        &self,
        mut conn: ConnectionManager,
    ) -> impl Future<Output = RedisResult<T>> + Send {
        let command = self.clone();
        async move { command.query_async(&mut conn).await }
    }
}

impl Query for redis::Pipeline {
    fn on<T: FromRedisValue>(
        &self,
        mut conn: ConnectionManager,
    ) -> impl Future<Output = RedisResult<T>> + Send {
        let pipeline = self.clone();
        async move { pipeline.query_async(&mut conn).await }
    }
}
