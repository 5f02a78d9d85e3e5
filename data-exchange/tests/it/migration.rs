//! A schema change with a migration: the stored objects take the new shape in the same step as
//! the schema, watchers see them modified, and a migration that fails, or leaves an object
//! that breaks the new schema, changes nothing.

use std::sync::Arc;

use data_exchange::testing::RedisServer;
use data_exchange::testing::conformance::next_event;
use data_exchange::{
    EmbeddedExchange, ExchangeError, Migration, ObjectExchange, RedisExchange, StoreRef, Write,
};
use serde_json::{Value, json};

fn shipments() -> StoreRef {
    "shipping/shipments".parse().unwrap()
}

/// Version 1: an address object and a `trackingID`.
fn v1() -> Value {
    json!({"type": "object", "additionalProperties": false, "properties": {
        "address": {"type": "object"}, "trackingID": {"type": "string"}}})
}

/// Version 2: a one-line `destination` and a `tracking`.
fn v2() -> Value {
    json!({"type": "object", "additionalProperties": false, "properties": {
        "destination": {"type": "string"}, "tracking": {"type": "string"}}})
}

/// From version 1 to 2; fails on an address without a city.
fn to_v2(_: &str, old: &Value) -> Result<Value, String> {
    let city = old["address"]["city"].as_str().ok_or("no city")?;
    let mut new = json!({"destination": city});
    if let Some(id) = old.get("trackingID") {
        new["tracking"] = id.clone();
    }
    Ok(new)
}

async fn migrates_every_object_in_the_schema_change(ex: Arc<dyn ObjectExchange>) {
    let store = shipments();
    ex.register(&store, &v1()).await.unwrap();
    let s1 = json!({"address": {"city": "Oslo"}, "trackingID": "T1"});
    let shipping = Arc::new(data_exchange::Origin::by("knactor:shipping"));
    ex.write(&store, Write::put("s1", s1.clone()).by(shipping)).await.unwrap();
    let last = ex.write(&store, Write::put("s2", json!({"address": {}}))).await.unwrap();

    let migration: &Migration = &to_v2;
    match ex.evolve(&store, &v2(), Some(migration)).await.unwrap_err() {
        ExchangeError::Migration { name, message, .. } => {
            assert_eq!((&*name, &*message), ("s2", "no city"))
        }
        e => panic!("expected a failed migration, got {e}"),
    }
    let keep_all: &Migration = &|_, old| Ok(old.clone());
    let err = ex.evolve(&store, &v2(), Some(keep_all)).await.unwrap_err();
    assert!(matches!(err, ExchangeError::SchemaBreaks { count: 2, .. }), "{err}");
    assert_eq!(ex.get(&store, "s1").await.unwrap().unwrap().data, s1, "nothing changed");

    ex.write(&store, Write::put("s2", json!({"address": {"city": "Lima"}}))).await.unwrap();
    let mut watch = ex.watch(&store, last.version + 1).await.unwrap();
    let stamped = ex.origins(&store, "s1").await.unwrap().unwrap();
    assert_eq!(stamped.keys().collect::<Vec<_>>(), ["address", "trackingID"]);
    assert_eq!(ex.evolve(&store, &v2(), Some(migration)).await.unwrap(), 2);
    let s1 = ex.get(&store, "s1").await.unwrap().unwrap();
    assert_eq!(s1.data, json!({"destination": "Oslo", "tracking": "T1"}));
    let origins = ex.origins(&store, "s1").await.unwrap().unwrap();
    assert!(origins.is_empty(), "a migration's changes have no writer on record: {origins:?}");
    let mut modified: Vec<String> = Vec::new();
    for _ in 0..2 {
        modified.push(next_event(&mut watch).await.object().name.clone());
    }
    modified.sort();
    assert_eq!(modified, ["s1", "s2"], "watchers see the migrated objects");
    let err = ex.write(&store, Write::patch("s1", json!({"trackingID": "T2"}))).await.unwrap_err();
    assert!(matches!(err, ExchangeError::SchemaViolation { .. }), "the new schema holds: {err}");
}

#[tokio::test]
async fn embedded_migrates_every_object_in_the_schema_change() {
    migrates_every_object_in_the_schema_change(Arc::new(EmbeddedExchange::in_memory())).await;
}

#[tokio::test]
async fn durable_embedded_keeps_the_migrated_objects_and_the_schema_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let exchange = Arc::new(EmbeddedExchange::open(dir.path()).unwrap());
    migrates_every_object_in_the_schema_change(exchange.clone()).await;
    drop(exchange);
    let exchange = EmbeddedExchange::open(dir.path()).unwrap();
    exchange.register(&shipments(), &v2()).await.expect("the journal holds version 2");
    let s1 = exchange.get(&shipments(), "s1").await.unwrap().unwrap();
    assert_eq!(s1.data, json!({"destination": "Oslo", "tracking": "T1"}));
}

#[tokio::test]
async fn redis_migrates_every_object_in_the_schema_change() {
    let server = RedisServer::start();
    let exchange = RedisExchange::connect(&server.url()).await.unwrap();
    migrates_every_object_in_the_schema_change(Arc::new(exchange)).await;
}
