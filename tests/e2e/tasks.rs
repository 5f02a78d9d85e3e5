//! The composition tasks of the Knactor paper (docs/walkthrough.md), each done by editing a
//! spec and `knactor apply` to a running app: no service changed, rebuilt or restarted.
//!
//! - T1: integrate Payment and Shipping with Checkout.
//! - T2: add a shipment policy based on the order price.
//! - T3: absorb a change of the Shipping store's schema (`trackingID` renamed to `tracking`,
//!   the address object become a one-line `destination`).

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::harness::{Up, repo};
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
