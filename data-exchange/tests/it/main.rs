//! Integration tests of the data exchange: the Object and Log conformance suites on every
//! backend (Kubernetes on a real kube-apiserver), crash recovery of the durable ones, and the edges the Redis exchange runs (its
//! schema check, upgrade safety both ways).

mod durability;
mod kube_failures;
mod kube_outage;
mod migration;
mod pushdown;
mod redis_acl;
mod redis_schemas;

use std::sync::Arc;

use data_exchange::log::RedisLog;
use data_exchange::testing::RedisServer;
use data_exchange::testing::conformance::Fixture;
use data_exchange::testing::log_conformance::LogFixture;
use data_exchange::{EmbeddedExchange, EmbeddedLog, KubeExchange, RedisExchange};

data_exchange::conformance_suite!(embedded_in_memory, |history| async move {
    Fixture::new(Arc::new(EmbeddedExchange::in_memory().with_history(history)), ())
});

data_exchange::conformance_suite!(embedded_durable, |history| async move {
    let dir = tempfile::tempdir().unwrap();
    let exchange = EmbeddedExchange::open(dir.path()).unwrap().with_history(history);
    Fixture::new(Arc::new(exchange), dir)
});

data_exchange::conformance_suite!(redis, |history| async move {
    let server = RedisServer::start();
    let exchange = RedisExchange::connect(&server.url()).await.unwrap().with_history(history);
    Fixture::new(Arc::new(exchange), server)
});

data_exchange::conformance_suite!(kube, |_history| async move {
    // The apiserver keeps its own watch history (its watch cache), whatever the suite asks.
    let server = data_exchange::testing::shared_kube_apiserver();
    let namespace = data_exchange::testing::fresh_namespace("conformance");
    let exchange = KubeExchange::with_kubeconfig(&server.kubeconfig(), &namespace).await.unwrap();
    Fixture::new(Arc::new(exchange), ())
        .with_sparse_versions()
        .with_increments(25)
        .without_origins()
        .without_counts()
        .without_deletion_traces()
});

data_exchange::log_conformance_suite!(log_embedded_in_memory, || async {
    LogFixture::new(Arc::new(EmbeddedLog::in_memory()), ())
});

data_exchange::log_conformance_suite!(log_embedded_durable, || async {
    let dir = tempfile::tempdir().unwrap();
    LogFixture::new(Arc::new(EmbeddedLog::open(dir.path())), dir)
});

data_exchange::log_conformance_suite!(log_redis, || async {
    let server = RedisServer::start();
    let log = RedisLog::connect(&server.url()).await.unwrap();
    LogFixture::new(Arc::new(log), server)
});

/// Appends that arrive while one is in flight share the next stream entry on Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_redis_appends_are_grouped_into_fewer_entries() {
    use data_exchange::{LogExchange, StoreRef};
    let server = RedisServer::start();
    let log = Arc::new(RedisLog::connect(&server.url()).await.unwrap());
    let store: StoreRef = "motion/readings".parse().unwrap();
    let schema = serde_json::json!({"type": "object", "properties": {"n": {"type": "integer"}}});
    log.register(&store, &schema).await.unwrap();
    let appends = (0..200).map(|n| {
        let (log, store) = (log.clone(), store.clone());
        tokio::spawn(async move { log.append_json(&store, &[serde_json::json!({"n": n})]).await })
    });
    let mut offsets: Vec<u64> =
        futures::future::join_all(appends).await.into_iter().map(|r| r.unwrap().unwrap()).collect();
    offsets.sort_unstable();
    assert_eq!(offsets, (0..200).collect::<Vec<u64>>());
    let client = ::redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let entries: u64 =
        ::redis::cmd("XLEN").arg("kn:{motion/readings}:log").query_async(&mut conn).await.unwrap();
    assert!(entries < 200, "200 concurrent appends took {entries} entries");
}

/// In-process readers of the embedded exchange share the stored object: what the write
/// returns, `get`, `list` and a watch's event are one allocation, whatever its size.
#[tokio::test]
async fn embedded_readers_share_the_stored_object_without_copying() {
    use data_exchange::{ObjectExchange, StoreRef, Write};
    use futures::StreamExt;
    let exchange = EmbeddedExchange::in_memory();
    let store: StoreRef = "big/blobs".parse().unwrap();
    exchange.register(&store, &serde_json::json!({"type": "object"})).await.unwrap();
    let mut watch = exchange.watch(&store, 0).await.unwrap();
    let blob = serde_json::json!({"text": "x".repeat(1 << 20)});
    let written = exchange.write(&store, Write::put("b", blob)).await.unwrap();
    let got = exchange.get(&store, "b").await.unwrap().unwrap();
    let listed = exchange.list(&store).await.unwrap().items.remove(0);
    let watched = watch.next().await.unwrap().unwrap();
    for reader in [&got, &listed, watched.object()] {
        assert!(Arc::ptr_eq(&written, reader), "a reader got a copy");
    }
}
