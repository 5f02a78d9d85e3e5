//! Integration tests of the data exchange: the conformance suite on every backend, and crash
//! recovery of the durable ones.

mod durability;

use std::sync::Arc;

use data_exchange::testing::RedisServer;
use data_exchange::testing::conformance::Fixture;
use data_exchange::{EmbeddedExchange, RedisExchange};

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
