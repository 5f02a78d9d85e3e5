//! Crash recovery: acknowledged writes survive, versions keep increasing, watchers resume.

use std::sync::Arc;
use std::time::Duration;

use data_exchange::testing::RedisServer;
use data_exchange::testing::conformance::{counter_schema, next_event};
use data_exchange::{EmbeddedExchange, ObjectExchange, RedisExchange, StoreRef, Write};
use serde_json::json;

fn counts() -> StoreRef {
    "counter/counts".parse().unwrap()
}

#[tokio::test]
async fn embedded_reopen_keeps_every_acknowledged_write_and_versions_increase() {
    let dir = tempfile::tempdir().unwrap();
    let store = counts();
    let last = {
        let exchange = EmbeddedExchange::open(dir.path()).unwrap();
        exchange.register(&store, &counter_schema()).await.unwrap();
        for i in 0..50 {
            exchange.write(&store, Write::put(format!("o{i}"), json!({"count": i}))).await.unwrap();
        }
        exchange.write(&store, Write::delete("o7")).await.unwrap();
        exchange.list(&store).await.unwrap().version
    };
    let exchange = EmbeddedExchange::open(dir.path()).unwrap();
    exchange.register(&store, &counter_schema()).await.unwrap();
    let list = exchange.list(&store).await.unwrap();
    assert_eq!((list.version, list.items.len()), (last, 49));
    assert_eq!(exchange.get(&store, "o42").await.unwrap().unwrap().data, json!({"count": 42}));
    let next = exchange.write(&store, Write::put("new", json!({}))).await.unwrap();
    assert_eq!(next.version, last + 1, "versions keep increasing after a restart");
    let err = exchange.watch(&store, 3).await.err().expect("older changes are gone");
    assert!(matches!(err, data_exchange::ExchangeError::Expired { .. }), "{err}");
}

/// The journal holds the schema as evolved: a restart validates against it, and a restart
/// from an older manifest is refused instead of validating differently.
#[tokio::test]
async fn embedded_reopen_holds_the_evolved_schema() {
    let dir = tempfile::tempdir().unwrap();
    let store = counts();
    let mut evolved = counter_schema();
    evolved["properties"]["count"]["maximum"] = json!(10);
    {
        let exchange = EmbeddedExchange::open(dir.path()).unwrap();
        exchange.register(&store, &counter_schema()).await.unwrap();
        exchange.write(&store, Write::put("a", json!({"count": 3}))).await.unwrap();
        assert_eq!(exchange.evolve(&store, &evolved, None).await.unwrap(), 2);
    }
    let exchange = EmbeddedExchange::open(dir.path()).unwrap();
    let err = exchange.register(&store, &counter_schema()).await.unwrap_err();
    assert!(matches!(err, data_exchange::ExchangeError::SchemaDiffers { version: 2, .. }), "{err}");
    let err = exchange.write(&store, Write::put("b", json!({"count": 11}))).await.unwrap_err();
    assert!(matches!(err, data_exchange::ExchangeError::SchemaViolation { .. }), "{err}");
    exchange.register(&store, &evolved).await.expect("the manifest of the schema held");
}

/// Redis is killed with SIGKILL and restarted while a writer writes and a watcher watches: once
/// the connection is back, the watcher has seen every acknowledged write, in order, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_kill_9_and_restart_loses_no_acknowledged_write() {
    let mut server = RedisServer::start();
    let store = counts();
    let exchange = Arc::new(RedisExchange::connect(&server.url()).await.unwrap());
    exchange.register(&store, &counter_schema()).await.unwrap();
    let mut watch = exchange.watch(&store, 0).await.unwrap();

    let writer = tokio::spawn({
        let (exchange, store) = (exchange.clone(), store.clone());
        async move {
            let mut acknowledged = Vec::new();
            for i in 0..300u64 {
                // Retry each write until it is acknowledged; an error means it may or may not
                // have happened, so retry it as an idempotent put.
                let write = || Write::put(format!("o{i}"), json!({"count": i}));
                loop {
                    match exchange.write(&store, write()).await {
                        Ok(object) => break acknowledged.push(object),
                        Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            acknowledged
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.restart();
    let acknowledged = writer.await.unwrap();

    let mut seen = Vec::new();
    while seen.len() < acknowledged.len() {
        seen.push(next_event(&mut watch).await.object().clone());
    }
    assert_eq!(seen, acknowledged);
}

/// Redis restarted without persistence has lost every store: a watch that resumes there
/// expires, even once as many changes were written again as it had seen (its version alone
/// would let it resume, and miss them), and the administrator is told, once.
#[tokio::test]
async fn a_watch_on_a_redis_that_lost_its_data_expires() {
    let mut server = RedisServer::start_in_memory();
    let store = counts();
    let exchange = RedisExchange::connect(&server.url()).await.unwrap();
    exchange.register(&store, &counter_schema()).await.unwrap();
    for i in 0..3 {
        exchange.write(&store, Write::put(format!("o{i}"), json!({"count": i}))).await.unwrap();
    }
    let mut watch = exchange.watch(&store, 3).await.unwrap();
    assert!(!exchange.lost_data().await.unwrap(), "nothing lost yet");

    server.restart();
    let again = RedisExchange::connect(&server.url()).await.unwrap();
    again.register(&store, &counter_schema()).await.unwrap();
    for i in 0..5 {
        again.write(&store, Write::put(format!("n{i}"), json!({"count": i}))).await.unwrap();
    }
    let resumed =
        tokio::time::timeout(Duration::from_secs(30), futures::StreamExt::next(&mut watch));
    let resumed = resumed.await.expect("the watch answers within 30 s");
    let err = resumed.expect("the watch goes on").expect_err("the watch expires");
    assert!(matches!(err, data_exchange::ExchangeError::Expired { lost: true, .. }), "{err}");
    // A watch from a version listed before, started now, expires too.
    let late = exchange.watch(&store, 3).await.err().expect("expires at once");
    assert!(matches!(late, data_exchange::ExchangeError::Expired { lost: true, .. }), "{late}");
    // The administrator's connection finds its old one broken first, then reconnects.
    let lost = match exchange.lost_data().await {
        Ok(lost) => lost,
        Err(_) => exchange.lost_data().await.unwrap(),
    };
    assert!(lost, "the administrator is told");
    assert!(!exchange.lost_data().await.unwrap(), "once");
}

/// A Log store holds the schema of its records: opened again with another schema, on the
/// durable embedded log or on Redis (as the administrator), it is refused, and its records
/// stay; with the same schema, it opens. (Queries over every store would fail on records of
/// two shapes.)
#[tokio::test]
async fn a_log_store_opened_with_another_schema_is_refused() {
    use data_exchange::EmbeddedLog;
    use data_exchange::log::RedisLog;

    let dir = tempfile::tempdir().unwrap();
    holds_its_schema("embedded", || async { EmbeddedLog::open(dir.path()) }).await;
    let server = RedisServer::start();
    holds_its_schema("redis", || async { RedisLog::connect(&server.url()).await.unwrap() }).await;
}

/// Registers a Log store, appends, then opens it again (`open`) with another schema, then with
/// the first one.
async fn holds_its_schema<L, F>(backend: &str, open: impl Fn() -> F)
where
    L: data_exchange::LogExchange,
    F: std::future::Future<Output = L>,
{
    use data_exchange::ExchangeError;

    let store: StoreRef = "k/events".parse().unwrap();
    let v1 = json!({"type": "object", "properties": {"what": {"type": "string"}}});
    let v2 = json!({"type": "object", "properties": {"what": {"type": "integer"}}});
    let log = open().await;
    log.register(&store, &v1).await.unwrap();
    log.append_json(&store, &[json!({"what": "it"})]).await.unwrap();
    drop(log);
    let err = open().await.register(&store, &v2).await.unwrap_err();
    assert!(matches!(err, ExchangeError::LogSchemaDiffers { .. }), "{backend}: {err}");
    let log = open().await;
    log.register(&store, &v1).await.unwrap();
    assert_eq!(log.end(&store).await.unwrap(), 1, "{backend}: the record stays");
}
