//! `knactor why`: a retail order's fields traced back through the edges that wrote them to
//! the knactors and the operator that started them; and its errors.

use serde_json::Value;

use crate::harness::{Up, eventually, knactor, retail_app};
use crate::retail::order_data;

/// The trail of `field` of `store/name`, as `knactor why -o json` gives it.
fn trail(up: &Up, store: &str, name: &str, field: &str) -> Value {
    let out = up.ok(&["why", store, name, field, "-o", "json"]);
    let answer: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(answer["fields"].as_array().map(Vec::len), Some(1), "{answer}");
    answer["fields"][0].clone()
}

/// The source `alias` of the edge that last wrote `trail`'s field.
fn source<'a>(trail: &'a Value, alias: &str) -> &'a Value {
    let sources = trail["written"]["edge"]["sources"].as_array().expect("an edge wrote it");
    sources.iter().find(|s| s["alias"] == alias).unwrap_or_else(|| panic!("no {alias}: {trail}"))
}

#[test]
fn an_orders_fields_lead_back_to_the_knactors_and_the_operator_that_wrote_them() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(&retail_app(dir.path()), &[]);
    let client = up.client();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(client.put("checkout/orders", "w1", order_data(120.0), None)).unwrap();
    eventually("the order to complete", || {
        let order = runtime.block_on(client.get("checkout/orders", "w1")).ok()?;
        (order["data"]["status"] == "completed").then_some(())
    });

    // The order's shipping cost: copied back from the shipment by an edge, which Shipping set.
    let cost = trail(&up, "checkout/orders", "w1", "shippingCost");
    let written = &cost["written"];
    assert_eq!(written["writer"], "integrator:checkout", "{cost}");
    let edge = &written["edge"];
    assert_eq!((&edge["spec"], &edge["edge"]), (&"checkout".into(), &"report-shipment".into()));
    assert_eq!(edge["specVersion"], 1);
    assert_eq!(edge["set"], serde_json::json!([["shippingCost", "shipment.cost"]]));
    let shipment = source(&cost, "shipment");
    assert_eq!(
        (&shipment["store"], &shipment["name"]),
        (&"shipping/shipments".into(), &"w1".into())
    );
    let shipped = &shipment["fields"][0];
    assert_eq!(shipped["field"], "cost");
    let same = shipped["value"].as_f64().zip(cost["value"].as_f64()).is_some_and(|(a, b)| a == b);
    assert!(same, "the value read is the value copied: {cost}");
    assert_eq!(shipped["written"]["writer"], "knactor:shipping");
    assert!(shipped["written"]["edge"].is_null(), "Shipping computed it: {shipped}");
    assert!(
        shipment["version"].as_u64() >= shipped["written"]["version"].as_u64(),
        "the edge read the shipment after Shipping wrote the cost: {shipment}"
    );

    // The shipment's address: from the order, which the operator put.
    let address = trail(&up, "shipping/shipments", "w1", "address");
    let order = source(&address, "order");
    let put = &order["fields"][0];
    assert_eq!((&put["field"], &put["written"]["writer"]), (&"address".into(), &"operator".into()));
    // Its method: a CEL expression over the total, which Checkout computed.
    let method = trail(&up, "shipping/shipments", "w1", "method");
    assert_eq!(method["value"], "air", "a total over 100 ships by air");
    let total = &source(&method, "order")["fields"][0];
    assert_eq!(
        (&total["field"], &total["written"]["writer"]),
        (&"total".into(), &"knactor:checkout".into())
    );

    // Re-applied, the spec runs as version 2, and its writes say so.
    let spec = crate::harness::repo().join("dxg-specs/retail/checkout.yaml");
    up.ok(&["apply", "-f", spec.to_str().unwrap()]);
    runtime.block_on(client.put("checkout/orders", "w3", order_data(30.0), None)).unwrap();
    eventually("the order placed after the re-apply to complete", || {
        let order = runtime.block_on(client.get("checkout/orders", "w3")).ok()?;
        (order["data"]["status"] == "completed").then_some(())
    });
    let again = trail(&up, "checkout/orders", "w3", "shippingCost");
    assert_eq!(again["written"]["edge"]["specVersion"], 2, "{again}");
    let before = trail(&up, "checkout/orders", "w1", "shippingCost");
    assert_eq!(before["written"]["edge"]["specVersion"], 1, "w1 was shipped by version 1");

    let tree = up.ok(&["why", "checkout/orders", "w1", "shippingCost"]);
    for line in [
        "checkout/orders/w1.shippingCost = ",
        "written by integrator:checkout at version ",
        "edge report-shipment of spec checkout (version 1): shippingCost = shipment.cost",
        "read shipment: shipping/shipments/w1 at version ",
        "shipping/shipments/w1.cost = ",
        "written by knactor:shipping at version ",
    ] {
        assert!(tree.contains(line), "`{line}` is not in:\n{tree}");
    }
}

#[test]
fn why_says_what_is_missing_and_what_the_principal_may_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(&retail_app(dir.path()), &[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(up.client().put("checkout/orders", "w2", order_data(20.0), None)).unwrap();
    let refused = |args: &[&str], token: Option<&str>| {
        let mut command = knactor();
        if let Some(token) = token {
            command.env("KNACTOR_TOKEN", token);
        }
        let output = command.args(args).args(["--server", &up.server]).output().unwrap();
        assert!(!output.status.success(), "knactor {args:?} succeeded");
        String::from_utf8(output.stderr).unwrap()
    };
    let missing = refused(&["why", "checkout/orders", "nope"], None);
    assert!(missing.contains("checkout/orders has no object `nope`"), "{missing}");
    let field = refused(&["why", "checkout/orders", "w2", "colour"], None);
    assert!(field.contains("has no field `colour`"), "{field}");
    assert!(field.contains("its fields: address, card, items, "), "it lists them: {field}");
    let path = refused(&["why", "checkout/orders", "w2", "address.zip"], None);
    assert!(path.contains("has no field `address.zip`"), "a path inside a field too: {path}");
    // A name the server would refuse is refused before it is sent (`..`, `a#b` would not
    // reach it as one name).
    for args in [
        &["why", "checkout/orders", "w2#x"][..],
        &["why", "checkout/orders", ".."],
        &["delete", "checkout/orders", "w2#x"],
    ] {
        let odd = refused(args, None);
        assert!(odd.contains("invalid object name"), "{args:?}: {odd}");
    }
    // Payment may read neither the orders nor what they came from.
    let records = knactor_cli::credentials::ServerRecords::under(&crate::harness::config_home());
    let operator = records.token_file(&up.server).expect("knactor up recorded its token file");
    let token = std::fs::read_to_string(operator.with_file_name("knactor-payment")).unwrap();
    let token = token.trim();
    let denied = refused(&["why", "checkout/orders", "w2", "status"], Some(token));
    assert!(denied.contains("knactor:payment") && denied.contains("checkout/orders"), "{denied}");
    // Its own charge's amount came from the order, which it may not read: named, not shown.
    let amount = eventually("the charge's amount", || {
        let output = knactor()
            .env("KNACTOR_TOKEN", token)
            .args(["why", "payment/charges", "w2", "amount", "-o", "json", "--server", &up.server])
            .output()
            .unwrap();
        let answer: Value = serde_json::from_slice(&output.stdout).ok()?;
        let trail = answer["fields"][0].clone();
        trail["written"].is_object().then_some(trail)
    });
    let order = source(&amount, "order");
    assert_eq!(order["store"], "checkout/orders");
    assert!(order["name"].is_null() && order["version"].is_null(), "{order}");
    let note = order["note"].as_str().unwrap_or_default();
    assert!(note.contains("knactor:payment may not read checkout/orders"), "{order}");
    assert_eq!(order["fields"], serde_json::json!([]), "nothing of the order is shown");
}
