//! Orders and shipments of the retail app, through the CLI.

use std::path::Path;

use serde_json::{Value, json};

use crate::harness::{Up, eventually, file};

/// The data of a placed order: one lamp at `price`, to Paris (international: shipping costs
/// twice the domestic rate), paid with a valid card.
pub(crate) fn order_data(price: f64) -> Value {
    json!({
        "status": "placed",
        "items": [{"sku": "lamp", "qty": 1, "price": price}],
        "address": {"street": "1 rue de Rivoli", "city": "Paris", "country": "FR"},
        "card": {"number": "4242 4242 4242 4242", "expiry": "12/39"}
    })
}

/// Places order `name` (see [`order_data`]).
pub(crate) fn put_order(up: &Up, dir: &Path, name: &str, price: f64) {
    let order = json!({"name": name, "data": order_data(price)}).to_string();
    let path = file(dir, &format!("{name}.json"), &order);
    up.ok(&["put", "checkout/orders", "-f", &path]);
}

/// The data of object `name` of `store`, if it exists.
pub(crate) fn get(up: &Up, store: &str, name: &str) -> Option<Value> {
    let output = up.cli(&["get", store, name, "-o", "json"]);
    output
        .status
        .success()
        .then(|| serde_json::from_slice::<Value>(&output.stdout).unwrap()["data"].clone())
}

/// The shipping method of shipment `name`, once it exists.
pub(crate) fn method_of(up: &Up, name: &str) -> String {
    eventually("the shipment", || {
        get(up, "shipping/shipments", name)?["method"].as_str().map(str::to_owned)
    })
}

/// The order `name` once completed.
pub(crate) fn completed(up: &Up, name: &str) -> Value {
    eventually(&format!("order {name} to complete"), || {
        get(up, "checkout/orders", name).filter(|o| o["status"] == "completed")
    })
}
