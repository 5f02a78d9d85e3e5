//! The composition tasks of the Knactor paper (docs/walkthrough.md), each done by editing a
//! spec and `knactor apply` to a running app: no service changed, rebuilt or restarted.
//!
//! - T1: integrate Payment and Shipping with Checkout.
//! - T2: add a shipment policy based on the order price.
//! - T3: absorb a change of the Shipping store's schema (`trackingID` renamed to `tracking`,
//!   the address object become a one-line `destination`).

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::harness::{Up, eventually_within, repo};
use crate::retail::{completed, get, method_of, put_order};

/// The retail knactors with no integrator: checkout, payment, and shipping (version 1 or 2).
fn uncomposed_retail(dir: &Path, shipping_v2: bool) -> PathBuf {
    let knactors = repo().join("apps/retail/knactors");
    let shipping = match shipping_v2 {
        true => repo().join("apps/retail/tasks/shipping-v2.yaml"),
        false => knactors.join("shipping.yaml"),
    };
    let list = [knactors.join("checkout.yaml"), knactors.join("payment.yaml"), shipping]
        .map(|p| p.display().to_string())
        .join(", ");
    let manifest = format!(
        "apiVersion: knactor.dev/v1\nkind: App\nmetadata: {{name: retail}}\nspec:\n  knactors: [{list}]\n"
    );
    std::fs::write(dir.join("app.yaml"), manifest).unwrap();
    dir.to_owned()
}

fn spec(path: &str) -> String {
    repo().join(path).display().to_string()
}

#[test]
fn t1_and_t2_compose_checkout_then_add_a_shipment_policy() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(&uncomposed_retail(dir.path(), false), &[]);

    // T1: the composition is one spec, applied to the running app.
    let applied = up.ok(&["apply", "-f", &spec("apps/retail/tasks/t1-compose.yaml")]);
    assert_eq!(
        applied.trim(),
        "cast/checkout created: edges added: request-payment, report-payment, report-decline, request-shipment, report-shipment; removed: -; changed: -"
    );
    put_order(&up, dir.path(), "o1", 120.5);
    let order = completed(&up, "o1");
    assert!(order["trackingID"].as_str().unwrap().starts_with("1Z"), "{order}");
    assert!(order["paymentID"].as_str().unwrap().starts_with("txn-"), "{order}");
    assert_eq!(method_of(&up, "o1"), "ground", "before T2 everything ships by ground");

    // T2: orders over $100 ship by air — one line of the spec.
    let applied = up.ok(&["apply", "-f", &spec("dxg-specs/retail/checkout.yaml")]);
    assert_eq!(
        applied.trim(),
        "cast/checkout configured: edges added: -; removed: -; changed: request-shipment"
    );
    put_order(&up, dir.path(), "o2", 120.5);
    put_order(&up, dir.path(), "o3", 20.0);
    completed(&up, "o2");
    completed(&up, "o3");
    assert_eq!(method_of(&up, "o2"), "air");
    assert_eq!(method_of(&up, "o3"), "ground");
}

#[test]
fn t3_absorbs_a_change_of_the_shipping_schema() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(&uncomposed_retail(dir.path(), true), &[]);

    // The composition written for Shipping version 1 no longer fits, and says where.
    let out = up.cli(&["apply", "-f", &spec("dxg-specs/retail/checkout.yaml")]);
    assert!(!out.status.success());
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(errors.contains("checkout.yaml:38:") && errors.contains("address"), "{errors}");
    assert!(errors.contains("trackingID"), "{errors}");

    // T3: the edited composition maps the new fields; no service changes.
    let applied = up.ok(&["apply", "-f", &spec("apps/retail/tasks/t3-shipping-v2.yaml")]);
    assert!(applied.starts_with("cast/checkout created"), "{applied}");
    put_order(&up, dir.path(), "o1", 120.5);
    let order = completed(&up, "o1");
    assert!(order["trackingID"].as_str().unwrap().starts_with("1Z"), "{order}");
    let shipment = get(&up, "shipping/shipments", "o1").unwrap();
    assert_eq!(shipment["destination"], json!("1 rue de Rivoli, Paris, FR"));
    assert_eq!(shipment["tracking"], order["trackingID"]);
}

/// T3 as a live change: Shipping's version 2 (its schema, with a migration of the shipments
/// stored, and its reconciler) and the graph that fits it are applied together to the running,
/// composed app while orders are placed. Every order placed before, during and after completes;
/// every shipment has the new shape.
#[test]
fn t3_live_shipping_v2_is_applied_under_load_and_every_order_completes() {
    t3_live(&[]);
}

/// The same on Redis, where each knactor and spec acts as its own Redis user, and the new
/// reconciler's user learns the schema Redis holds.
#[test]
fn t3_live_on_redis_shipping_v2_is_applied_under_load_and_every_order_completes() {
    let redis = data_exchange::testing::RedisServer::start();
    t3_live(&["--exchange", &redis.url()]);
}

/// T3 as a live change on an app started with `extra` arguments.
fn t3_live(extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(&uncomposed_retail(dir.path(), false), extra);
    up.ok(&["apply", "-f", &spec("dxg-specs/retail/checkout.yaml")]);
    for i in 0..5 {
        put_order(&up, dir.path(), &format!("before-{i}"), 20.0 + i as f64);
    }
    completed(&up, "before-0");
    // Alone, version 2 does not fit the running graph, which says where; nothing changes.
    let alone = up.cli(&["apply", "-f", &spec("apps/retail/tasks/shipping-v2.yaml")]);
    let errors = String::from_utf8_lossy(&alone.stderr);
    assert!(!alone.status.success(), "{errors}");
    assert!(
        errors
            .contains("checkout.yaml:38:18: error: shipping/shipments declares no field `address`"),
        "{errors}"
    );

    let orders: Vec<String> = std::thread::scope(|scope| {
        let placing = scope.spawn(|| {
            let names: Vec<String> = (0..30).map(|i| format!("during-{i}")).collect();
            for (i, name) in names.iter().enumerate() {
                put_order(&up, dir.path(), name, 50.0 + 10.0 * i as f64);
            }
            names
        });
        let applied = up.ok(&[
            "apply",
            "-f",
            &spec("apps/retail/tasks/shipping-v2.yaml"),
            "-f",
            &spec("apps/retail/tasks/t3-shipping-v2.yaml"),
        ]);
        assert!(
            applied.starts_with("knactor/shipping configured: shipping/shipments at schema version 2; reconciler retail.shipping-v2 running\ncast/checkout created"),
            "{applied}"
        );
        placing.join().unwrap()
    });
    put_order(&up, dir.path(), "after", 120.5);

    let all = (0..5).map(|i| format!("before-{i}")).chain(orders).chain(["after".to_owned()]);
    let within = std::time::Duration::from_secs(60);
    for name in all {
        let order = eventually_within(within, &format!("order {name} to complete"), || {
            get(&up, "checkout/orders", &name).filter(|o| o["status"] == "completed")
        });
        let shipment = get(&up, "shipping/shipments", &name).unwrap();
        assert!(shipment.get("address").is_none(), "{name}: {shipment}");
        assert!(shipment.get("trackingID").is_none(), "{name}: {shipment}");
        assert_eq!(shipment["destination"], json!("1 rue de Rivoli, Paris, FR"), "{name}");
        assert_eq!(shipment["tracking"], order["trackingID"], "{name}");
    }
    assert_eq!(method_of(&up, "after"), "air", "T2's policy is kept in the new graph");
}

/// A knactor's manifest the checks or the exchange refuse changes nothing: the old schema,
/// reconciler and graph go on.
#[test]
fn a_refused_knactor_apply_leaves_the_running_app_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(&uncomposed_retail(dir.path(), false), &[]);
    up.ok(&["apply", "-f", &spec("dxg-specs/retail/checkout.yaml")]);
    put_order(&up, dir.path(), "o1", 20.0);
    completed(&up, "o1");

    let v2 = std::fs::read_to_string(repo().join("apps/retail/tasks/shipping-v2.yaml")).unwrap();
    let refused = |text: String, name: &str| {
        let file = crate::harness::file(dir.path(), name, &text);
        let t3 = spec("apps/retail/tasks/t3-shipping-v2.yaml");
        let out = up.cli(&["apply", "-f", &file, "-f", &t3]);
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // A migration reading a field the stored shipments lack fails on the first of them.
    let failing = v2.replace("old.address.country'", "old.address.zip'");
    let error = refused(failing, "failing.yaml");
    assert!(error.contains("shipping/shipments: the migration failed on object `o1`"), "{error}");
    let unknown = v2.replace("name: shipping", "name: shippping");
    let error = refused(unknown, "unknown.yaml");
    assert!(
        error.contains("unknown.yaml:7:9: error: the app has no knactor `shippping`"),
        "{error}"
    );

    put_order(&up, dir.path(), "o2", 30.0);
    let o2 = completed(&up, "o2");
    let shipment = get(&up, "shipping/shipments", "o2").unwrap();
    assert_eq!(shipment["trackingID"], o2["trackingID"], "version 1 runs on: {shipment}");
    assert!(shipment["address"].is_object(), "{shipment}");
}
