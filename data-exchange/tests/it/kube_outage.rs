//! The Kubernetes exchange through an outage of its apiserver: writes wait and retry; a watch
//! resumes where the restarted apiserver can, and otherwise says it expired, after which a
//! re-list holds every change. Nothing is lost, nothing delivered twice.

use data_exchange::testing::KubeApiserver;
use data_exchange::testing::conformance::{counter_schema, next_event};
use std::sync::Arc;
use std::time::Duration;

use data_exchange::{ExchangeError, KubeExchange, ObjectExchange, StoreRef, Write};
use futures::StreamExt;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_apiserver_loses_and_repeats_no_change() {
    let mut server = tokio::task::spawn_blocking(KubeApiserver::start).await.unwrap();
    let exchange = KubeExchange::with_kubeconfig(&server.kubeconfig(), "outage").await.unwrap();
    let exchange: Arc<dyn ObjectExchange> = Arc::new(exchange);
    let store: StoreRef = "counter/counts".parse().unwrap();
    exchange.register(&store, &counter_schema()).await.unwrap();
    let from = exchange.version(&store).await.unwrap();
    let mut watch = exchange.watch(&store, from).await.unwrap();
    exchange.write(&store, Write::put("before", json!({"count": 1}))).await.unwrap();

    server.stop_apiserver();
    // A write made while the apiserver is down waits for it.
    let during = tokio::spawn({
        let (exchange, store) = (exchange.clone(), store.clone());
        async move { exchange.write(&store, Write::put("during", json!({"count": 2}))).await }
    });
    let server = tokio::task::spawn_blocking(move || {
        server.restart_apiserver();
        server
    })
    .await
    .unwrap();
    during.await.unwrap().expect("the write made during the outage lands after it");
    exchange.write(&store, Write::put("after", json!({"count": 3}))).await.unwrap();

    let want = ["before", "during", "after"];
    let mut seen = Vec::new();
    while seen.len() < want.len() {
        let next = tokio::time::timeout(Duration::from_secs(10), watch.next()).await;
        match next.expect("an event or the watch's end within 10 s") {
            Some(Ok(event)) => seen.push(event.object().name.clone()),
            Some(Err(ExchangeError::Expired { .. })) => break,
            other => panic!("the watch ended otherwise: {other:?}"),
        }
    }
    assert_eq!(seen, want[..seen.len()], "delivered once each, in order");
    if seen.len() < want.len() {
        // The restarted apiserver's watch cache starts after the changes missed: re-list.
        let list = exchange.list(&store).await.unwrap();
        let names: Vec<&str> = list.items.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["after", "before", "during"], "the re-list holds every write");
        let mut watch = exchange.watch(&store, list.version).await.unwrap();
        let next = exchange.write(&store, Write::put("next", json!({"count": 4}))).await.unwrap();
        assert_eq!(next_event(&mut watch).await.object(), &next, "the new watch goes on");
    }
    drop(server);
}
