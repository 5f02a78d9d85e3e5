//! /metrics shows the integrators' work: the numbers move with the orders placed and the
//! records appended.

use std::path::Path;

use serde_json::json;

use crate::harness::{Up, eventually, file, retail_app, smart_home_app};
use crate::retail::order_data;

/// The text of `/metrics` of `up`.
pub(crate) fn scrape(up: &Up, runtime: &tokio::runtime::Runtime) -> String {
    runtime.block_on(async {
        let http = knactor_cli::client::http_client(reqwest::Client::builder()).unwrap();
        let request = http.get(format!("{}/metrics", up.server)).bearer_auth(up.operator_token());
        request.send().await.unwrap().text().await.unwrap()
    })
}

/// The value of the sample `name{labels}` in `/metrics` of `up`, if it is there.
fn sample(up: &Up, runtime: &tokio::runtime::Runtime, series: &str) -> Option<f64> {
    let text = scrape(up, runtime);
    let line =
        text.lines().find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))?;
    line.rsplit(' ').next()?.parse().ok()
}

#[test]
fn cast_edges_count_their_outcomes_and_specs_show_their_lag() {
    const ORDERS: usize = 5;
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(&retail_app(dir.path()), &[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let written = r#"knactor_cast_edge_evaluations_total{spec="checkout",edge="request-payment",outcome="written"}"#;
    assert_eq!(sample(&up, &runtime, written), None, "nothing handled yet");

    let client = up.client();
    runtime.block_on(async {
        for i in 0..ORDERS {
            let name = format!("m{i}");
            client.put("checkout/orders", &name, order_data(20.0 + i as f64), None).await.unwrap();
        }
    });
    eventually("every order to complete", || {
        let list = runtime.block_on(client.list("checkout/orders")).unwrap();
        let items = list["items"].as_array().unwrap().clone();
        (items.len() == ORDERS && items.iter().all(|o| o["data"]["status"] == "completed"))
            .then_some(())
    });
    // One charge created per order; the order's later changes evaluate the edge again and find
    // nothing to change.
    let lag = r#"knactor_spec_lag_versions{spec="checkout",store="checkout/orders"}"#;
    eventually("the checkout spec to catch up", || {
        (sample(&up, &runtime, lag)? == 0.0).then_some(())
    });
    assert_eq!(sample(&up, &runtime, written), Some(ORDERS as f64));
    let pending = r#"knactor_spec_pending_seconds{spec="checkout"}"#;
    eventually("the checkout spec to wait for changes", || {
        (sample(&up, &runtime, pending)? == 0.0).then_some(())
    });
    let queued = r#"knactor_reconcile_queue_depth{knactor="checkout"}"#;
    eventually("checkout's queue to empty", || {
        (sample(&up, &runtime, queued)? == 0.0).then_some(())
    });
    // Per store: the writes this process made (the orders put, then the edges' and the
    // reconcilers' changes to them) and the watches it holds (reconcilers, integrators,
    // collectors).
    let writes = |store: &str| {
        sample(&up, &runtime, &format!(r#"knactor_store_writes_total{{store="{store}"}}"#))
    };
    assert!(writes("checkout/orders").unwrap() > ORDERS as f64, "puts and edges' writes");
    assert!(writes("shipping/shipments").unwrap() >= ORDERS as f64, "one shipment each");
    let watches = r#"knactor_store_watches{store="checkout/orders"}"#;
    assert!(sample(&up, &runtime, watches).unwrap() >= 2.0, "the reconciler's and the specs'");
    // Objects per store: counted at the scrape where no retention policy counts them.
    let objects = |store: &str| {
        sample(&up, &runtime, &format!(r#"knactor_store_objects{{store="{store}"}}"#))
    };
    let catalog = runtime.block_on(client.list("productcatalog/products")).unwrap();
    let products = catalog["items"].as_array().unwrap().len();
    assert!(products > 0, "the catalog ships with the app");
    assert_eq!(objects("productcatalog/products"), Some(products as f64));
    let carts = objects("cart/carts").unwrap();
    runtime.block_on(client.put("cart/carts", "metrics", json!({"items": []}), None)).unwrap();
    assert_eq!(objects("cart/carts"), Some(carts + 1.0), "a cart put, counted at the next scrape");
    let unchanged = written.replace("written", "unchanged");
    assert!(sample(&up, &runtime, &unchanged).unwrap() >= ORDERS as f64);
    let durations =
        r#"knactor_cast_edge_duration_seconds_count{spec="checkout",edge="request-payment"}"#;
    let evaluated = sample(&up, &runtime, durations).unwrap();
    let outcomes: f64 = ["written", "unchanged", "skipped"]
        .iter()
        .filter_map(|o| sample(&up, &runtime, &written.replace("written", o)))
        .sum();
    assert_eq!(evaluated, outcomes, "each evaluation is timed once");
    let text = scrape(&up, &runtime);
    let failed: Vec<&str> =
        text.lines().filter(|l| l.starts_with("knactor_cast_edge_errors_total{")).collect();
    assert!(failed.is_empty(), "no edge failed: {failed:?}");
    assert!(
        text.contains(
            r#"knactor_cast_edge_evaluations_total{spec="email",edge="confirm-order",outcome="#
        ),
        "every spec's edges are counted"
    );
}

#[test]
fn sync_flows_count_the_records_they_append() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(&smart_home_app(dir.path(), "readings.yaml"), &[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // Eight readings, of which the motion flow keeps the triggered ones with sensitivity >= 2.
    let readings: String = (0..8)
        .map(|i| {
            format!("{}\n", json!({"room": "hall", "triggered": i % 2 == 0, "sensitivity": i % 4}))
        })
        .collect();
    let records = file(Path::new(dir.path()), "readings.jsonl", &readings);
    up.ok(&["log", "append", "motion/readings", "-f", &records]);
    let appended = r#"knactor_sync_flow_records_total{spec="readings",flow="motion"}"#;
    eventually("the motion flow's records", || {
        (sample(&up, &runtime, appended)? == 2.0).then_some(())
    });
}
