//! The deny matrix of the retail app: every principal (each knactor, each Cast spec, the
//! viewer) × every Object store × get, list, watch, put, patch, delete, and every field of
//! every store read and written, on the embedded exchange through the principals' scoped handles, and
//! on Redis as each principal's own ACL user, alone and behind its handle. Every forbidden
//! cell must be denied, every allowed one must work.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use data_exchange::access::{Fields, Rights, ScopedExchange};
use data_exchange::testing::RedisServer;
use data_exchange::testing::deny_matrix::{
    Enforcer, Principal, Samples, Tally, probe, probe_redis_users,
};
use data_exchange::{EmbeddedExchange, ObjectExchange, RedisExchange, StoreRef};
use knactor::AppConfig;

/// The retail app's principals with their rights (and a viewer, which has none), and its
/// Object stores with their schemas.
fn retail() -> (Vec<Rights>, BTreeMap<StoreRef, serde_json::Value>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../apps/retail");
    let config = AppConfig::load(&dir).unwrap_or_else(|e| panic!("{e}"));
    let mut principals = config.rights().unwrap_or_else(|e| panic!("{e}"));
    principals.push(Rights::new("viewer"));
    (principals, config.stores())
}

/// Registers `schemas` on `exchange`.
async fn register(exchange: &dyn ObjectExchange, schemas: &BTreeMap<StoreRef, serde_json::Value>) {
    for (store, schema) in schemas {
        exchange.register(store, schema).await.unwrap();
    }
}

#[test]
fn the_checkout_spec_may_see_and_write_the_order_fields_its_edges_use_and_no_other() {
    let (principals, _) = retail();
    let checkout = principals.iter().find(|r| r.principal() == "integrator:checkout").unwrap();
    let orders = checkout.on(&"checkout/orders".parse().unwrap()).unwrap();
    let Some(Fields::Only(fields)) = &orders.write else { panic!("{orders:?}") };
    assert!(fields.contains("paymentID") && fields.contains("shippingCost"), "{fields:?}");
    assert!(!fields.contains("status") && !fields.contains("total"), "{fields:?}");
    assert!(!orders.delete);
    let Some(Fields::Only(seen)) = &orders.read else { panic!("{orders:?}") };
    assert!(seen.contains("total") && seen.contains("card"), "{seen:?}");
    assert!(!seen.contains("email"), "no edge of checkout reads the shopper's email: {seen:?}");
    assert!(checkout.on(&"cart/carts".parse().unwrap()).is_none());
}

#[test]
fn a_policy_lets_recommendation_see_what_was_ordered_and_nothing_else_of_an_order() {
    let (principals, _) = retail();
    let recommendation =
        principals.iter().find(|r| r.principal() == "knactor:recommendation").unwrap();
    let orders = recommendation.on(&"checkout/orders".parse().unwrap()).unwrap();
    assert_eq!(orders.read, Some(Fields::only(["items"])));
    assert!(orders.write.is_none() && !orders.delete);
    assert_eq!(recommendation.grants().filter(|(s, _)| s.knactor() != "recommendation").count(), 1);
}

#[tokio::test]
async fn every_forbidden_cell_is_denied_and_every_allowed_one_works() {
    let (principals, schemas) = retail();
    assert!(principals.len() > 15 && schemas.len() > 15, "the whole app");
    let stores = schemas.iter().map(|(store, schema)| (store.clone(), Samples::of(store, schema)));
    let stores: BTreeMap<StoreRef, Samples> = stores.collect();

    let embedded: Arc<dyn ObjectExchange> = Arc::new(EmbeddedExchange::in_memory());
    register(&*embedded, &schemas).await;
    let mut in_process = Tally::default();
    for rights in &principals {
        let handle = ScopedExchange::new(embedded.clone(), rights.clone());
        let principal = Principal { rights, named: rights.principal() };
        in_process += probe(&handle, &*embedded, principal, &stores, Enforcer::Rights).await;
    }

    let server = RedisServer::start();
    let admin = RedisExchange::connect(&server.url()).await.unwrap();
    register(&admin, &schemas).await;
    let (by_redis, on_redis) =
        probe_redis_users(&server.url(), &admin, &principals, &schemas, &stores).await;
    println!(
        "retail deny matrix, {} principals × {} stores: embedded {in_process:?}; Redis users alone {by_redis:?}; Redis users behind their handles {on_redis:?}",
        principals.len(),
        stores.len()
    );
    assert_eq!(in_process, on_redis, "the same rights in process and on Redis");
    assert!(in_process.allowed > 0 && in_process.denied > by_redis.denied);
}
