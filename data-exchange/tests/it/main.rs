//! Integration tests of the data exchange: the Object and Log conformance suites on every
//! backend, and crash recovery of the durable ones.

mod durability;

use std::sync::Arc;

use data_exchange::log::RedisLog;
use data_exchange::testing::RedisServer;
use data_exchange::testing::conformance::Fixture;
use data_exchange::testing::log_conformance::LogFixture;
use data_exchange::{EmbeddedExchange, EmbeddedLog, RedisExchange};

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
