//! On Redis, each knactor and each Cast spec of an app acts as its own ACL user, which Redis
//! itself holds to its stores (docs/security.md): the real binary on a real redis-server.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use data_exchange::redis::acl::Credential;
use data_exchange::testing::RedisServer;
use data_exchange::{ExchangeError, ObjectExchange, RedisExchange, StoreRef, Write};
use serde_json::json;

use crate::harness::{Up, eventually, repo, retail_app};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The user of the retail app's `principal`, with the password `knactor up` keeps for it in
/// `secrets`.
fn credential(secrets: &Path, principal: &str) -> Credential {
    credential_of(secrets, &format!("retail/{principal}"))
}

/// The Redis user `user` (`APP/PRINCIPAL`), with the password `knactor up` keeps for it in
/// `secrets`.
fn credential_of(secrets: &Path, user: &str) -> Credential {
    let principal = user.split_once('/').expect("APP/PRINCIPAL").1;
    let password = std::fs::read_to_string(secrets.join(principal.replace(':', "-"))).unwrap();
    Credential { user: user.to_owned(), password: password.trim().to_owned() }
}

/// Asserts `outcome` is a denial to the retail app's `principal`.
fn assert_denied<T: std::fmt::Debug>(outcome: Result<T, ExchangeError>, principal: &str) {
    assert_denied_to(outcome, &format!("retail/{principal}"));
}

/// Asserts `outcome` is a denial to the Redis user `user`.
fn assert_denied_to<T: std::fmt::Debug>(outcome: Result<T, ExchangeError>, user: &str) {
    match outcome {
        Err(ExchangeError::Denied(denial)) => {
            assert_eq!(denial.principal.as_deref(), Some(user), "{denial}");
        }
        other => panic!("expected a denial to {user}, got {other:?}"),
    }
}

#[test]
fn each_principal_connects_as_its_own_redis_user_held_to_its_stores() {
    let dir = tempfile::tempdir().unwrap();
    let app = retail_app(dir.path());
    let redis = RedisServer::start();
    let up = Up::start(&app, &["--exchange", &redis.url()]);
    let secrets = app.join(".knactor/tokens/redis");
    assert_eq!(mode(&secrets), 0o700);
    // The integrators start once it serves.
    let integrator = secrets.join("integrator-checkout");
    eventually("the checkout integrator's user", || integrator.exists().then_some(()));
    for file in ["knactor-checkout", "knactor-shipping", "integrator-checkout"] {
        assert_eq!(mode(&secrets.join(file)), 0o600, "{file}");
    }
    let store = |s: &str| s.parse::<StoreRef>().unwrap();
    let (orders, shipments, carts) =
        (store("checkout/orders"), store("shipping/shipments"), store("cart/carts"));
    let schemas = knactor::app::AppConfig::load(&app).unwrap().stores();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let connect = |principal: &str| {
            let credential = credential(&secrets, principal);
            let url = redis.url();
            let schemas = schemas.clone();
            async move {
                // Its password file is written just before its user is set.
                let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
                let exchange = loop {
                    match RedisExchange::connect_as(&url, &credential).await {
                        Ok(exchange) => break exchange,
                        Err(e) if tokio::time::Instant::now() > deadline => panic!("{e}"),
                        Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
                    }
                };
                for store in ["checkout/orders", "shipping/shipments", "cart/carts"] {
                    let store = store.parse().unwrap();
                    exchange.register(&store, &schemas[&store]).await.unwrap();
                }
                exchange
            }
        };
        let checkout = connect("knactor:checkout").await;
        checkout.list(&orders).await.expect("a knactor reads its own store");
        assert_denied(checkout.list(&shipments).await, "knactor:checkout");
        let write = checkout.write(&shipments, Write::put("s1", json!({}))).await;
        assert_denied(write, "knactor:checkout");

        let integrator = connect("integrator:checkout").await;
        integrator.list(&shipments).await.expect("the spec reads and writes shipments");
        assert_denied(integrator.list(&carts).await, "integrator:checkout");
        assert_denied(
            integrator.write(&carts, Write::put("c", json!({}))).await,
            "integrator:checkout",
        );
    });
    // The app itself runs on those users: the CLI (the operator) still sees every store.
    up.ok(&["get", "checkout/orders"]);
    // A spec deleted keeps its user, which then reaches nothing.
    up.ok(&["delete", "spec", "checkout"]);
    let (url, checkout) = (redis.url(), credential(&secrets, "integrator:checkout"));
    runtime.block_on(async {
        let integrator = RedisExchange::connect_as(&url, &checkout).await.unwrap();
        integrator.register(&shipments, &json!({})).await.unwrap();
        assert_denied(integrator.list(&shipments).await, "integrator:checkout");
    });
    up.kill();

    // With pushdown, edges write their targets as the writers of their sources: the app's
    // users are removed, and its principals share the administrator's connection.
    let up = Up::start(&app, &["--exchange", &redis.url(), "--pushdown"]);
    let refused = runtime.block_on(async {
        RedisExchange::connect_as(&redis.url(), &credential(&secrets, "knactor:checkout")).await
    });
    let error = refused.expect_err("the user is gone").to_string();
    assert!(
        error.contains("does not accept the credentials of retail/knactor:checkout"),
        "{error}"
    );
    up.ok(&["get", "checkout/orders"]);
}

/// Log stores on Redis are reached the same way: the smart home's Sync spec runs its flows as
/// its own user, which tails the stores its flows read, appends to those they write, and may
/// not append to what it reads; a knactor appends to its own Log stores only.
#[test]
fn a_sync_spec_reaches_the_log_stores_of_its_flows_as_its_own_redis_user() {
    use data_exchange::LogExchange;
    use data_exchange::log::RedisLog;
    use futures::StreamExt;

    let dir = tempfile::tempdir().unwrap();
    let manifest = format!(
        "apiVersion: knactor.dev/v1\nkind: App\nmetadata:\n  name: home\nspec:\n  knactors: [{}]\n  integrators: [{}]\n",
        repo().join("apps/smart-home/knactors/*.yaml").display(),
        repo().join("dxg-specs/smart-home/*.yaml").display(),
    );
    std::fs::write(dir.path().join("app.yaml"), manifest).unwrap();
    let redis = RedisServer::start();
    let up = Up::start(dir.path(), &["--exchange", &redis.url()]);
    let secrets = dir.path().join(".knactor/tokens/redis");
    let password = secrets.join("integrator-readings");
    eventually("the readings spec's user", || password.exists().then_some(()));
    let readings = tempfile::NamedTempFile::new().unwrap();
    let reading = r#"{"room": "hall", "triggered": true, "sensitivity": 3}"#;
    std::fs::write(readings.path(), reading).unwrap();
    up.ok(&["log", "append", "motion/readings", "-f", &readings.path().to_string_lossy()]);

    let store = |s: &str| s.parse::<StoreRef>().unwrap();
    let (motion, house, energy) =
        (store("motion/readings"), store("house/motion"), store("lamp/energy"));
    let schemas = data_exchange_schemas(dir.path());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let user = "home/integrator:readings";
        let log = RedisLog::connect_as(&redis.url(), &credential_of(&secrets, user)).await.unwrap();
        for store in [&motion, &house, &energy] {
            log.register(store, &schemas[store]).await.unwrap();
        }
        let mut tail = log.tail(&motion, 0).await.expect("its flow reads motion readings");
        let first = tokio::time::timeout(std::time::Duration::from_secs(5), tail.next()).await;
        assert!(matches!(first, Ok(Some(Ok(_)))), "no reading within 5 s: {first:?}");
        let record = [json!({"room": "hall", "motion": true})];
        log.append_json(&house, &record).await.expect("its flow writes house motion");
        let reading = [json!({"room": "hall", "triggered": true})];
        assert_denied_to(log.append_json(&motion, &reading).await, user);

        let knactor = "home/knactor:lamp";
        let lamp = RedisLog::connect_as(&redis.url(), &credential_of(&secrets, knactor)).await;
        let lamp = lamp.unwrap();
        for store in [&motion, &energy] {
            lamp.register(store, &schemas[store]).await.unwrap();
        }
        lamp.end(&energy).await.expect("a knactor reads its own Log store");
        assert_denied_to(lamp.end(&motion).await, knactor);
    });
}

/// The schemas of the app in `dir`, Log stores included.
fn data_exchange_schemas(dir: &Path) -> std::collections::BTreeMap<StoreRef, serde_json::Value> {
    knactor::AppConfig::load(dir).unwrap().log_stores()
}

/// A Redis restarted without an aclfile forgets the users: the process that made them gives
/// them back, and the app goes on taking orders on them.
#[test]
fn users_a_restarted_redis_forgot_are_made_again_and_orders_go_on() {
    use crate::retail::{get, put_order};
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let app = retail_app(dir.path());
    let mut redis = RedisServer::start();
    let up = Up::start(&app, &["--exchange", &redis.url()]);
    let completed = |name: &str| {
        let what = format!("order {name} to complete");
        crate::harness::eventually_within(Duration::from_secs(60), &what, || {
            get(&up, "checkout/orders", name).filter(|o| o["status"] == "completed")
        })
    };
    put_order(&up, dir.path(), "o1", 20.0);
    completed("o1");

    redis.restart();
    let secrets = app.join(".knactor/tokens/redis");
    let checkout = credential(&secrets, "knactor:checkout");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let connect = || runtime.block_on(RedisExchange::connect_as(&redis.url(), &checkout));
    eventually("the checkout knactor's user to be made again", || connect().ok());
    // The operator's first request after the restart may meet the connection Redis dropped.
    let reached = || up.cli(&["get", "checkout/orders", "o1"]).status.success().then_some(());
    eventually("the app to reach Redis again", reached);
    put_order(&up, dir.path(), "o2", 30.0);
    let o2 = completed("o2");
    assert!(o2["trackingID"].is_string(), "{o2}");

    // A server that kept its users (an aclfile) but lost its functions (no persistence):
    // principals may not load them, the app does.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut admin = runtime.block_on(client.get_multiplexed_async_connection()).unwrap();
    let mut delete = redis::cmd("FUNCTION");
    delete.arg("DELETE").arg("knactor");
    runtime.block_on(delete.query_async::<()>(&mut admin)).unwrap();
    // Loaded again by the app on its own, before any write of the operator's could load it.
    let mut list = redis::cmd("FUNCTION");
    list.arg("LIST").arg("LIBRARYNAME").arg("knactor");
    eventually("the function library to be loaded again", || {
        let libraries: Vec<redis::Value> = runtime.block_on(list.query_async(&mut admin)).unwrap();
        (!libraries.is_empty()).then_some(())
    });
    put_order(&up, dir.path(), "o3", 40.0);
    completed("o3");
}
