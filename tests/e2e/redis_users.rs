//! On Redis, each knactor and each Cast spec of an app acts as its own ACL user, which Redis
//! itself holds to its stores (docs/security.md): the real binary on a real redis-server.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use data_exchange::redis::acl::Credential;
use data_exchange::testing::RedisServer;
use data_exchange::{ExchangeError, ObjectExchange, RedisExchange, StoreRef, Write};
use serde_json::json;

use crate::harness::{Up, eventually, retail_app};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The user of the retail app's `principal`, with the password `knactor up` keeps for it in
/// `secrets`.
fn credential(secrets: &Path, principal: &str) -> Credential {
    let password = std::fs::read_to_string(secrets.join(principal.replace(':', "-"))).unwrap();
    Credential { user: format!("retail/{principal}"), password: password.trim().to_owned() }
}

/// Asserts `outcome` is a denial to the retail app's `principal`.
fn assert_denied<T: std::fmt::Debug>(outcome: Result<T, ExchangeError>, principal: &str) {
    match outcome {
        Err(ExchangeError::Denied(denial)) => {
            let user = format!("retail/{principal}");
            assert_eq!(denial.principal.as_deref(), Some(user.as_str()), "{denial}");
        }
        other => panic!("expected a denial to {principal}, got {other:?}"),
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
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let connect = |principal: &str| {
            let credential = credential(&secrets, principal);
            let url = redis.url();
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
                    exchange.register(&store.parse().unwrap(), &json!({})).await.unwrap();
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
