//! The retail app's retention, through the CLI: a finished order goes once every consumer has
//! handled it, into its archive; its charge, shipment and confirmation go after it; the email
//! is sent once; `get --show-retention` says what holds each object.

use serde_json::Value;

use crate::harness::{Up, eventually, file, retail_app};
use crate::metrics::scrape;
use crate::retail::{completed, get, order_data};

/// The `HELD BY` cell of `name` in `knactor get STORE --show-retention`.
fn held_by(up: &Up, store: &str, name: &str) -> Option<String> {
    let table = up.ok(&["get", store, "--show-retention"]);
    assert!(table.starts_with("NAME"), "a header first:\n{table}");
    assert!(table.lines().next().unwrap().contains("HELD BY"), "{table}");
    let row = table.lines().find(|l| l.split_whitespace().next() == Some(name))?;
    row.split_whitespace().nth(2).map(str::to_owned)
}

#[test]
fn a_finished_order_is_archived_and_collected_then_what_it_made() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(&retail_app(dir.path()), &[]);
    let mut data = order_data(30.0);
    data["email"] = "shopper@example.com".into();
    let order = serde_json::json!({"name": "o1", "data": data}).to_string();
    up.ok(&["put", "checkout/orders", "-f", &file(dir.path(), "o1.json", &order)]);
    let order = completed(&up, "o1");
    // Within its ttl (10 s) the order stays, and holds what it made once every consumer has
    // checkpointed (within 200 ms).
    eventually("the order held by its ttl only", || {
        (held_by(&up, "checkout/orders", "o1")? == "-").then_some(())
    });
    eventually("the shipment held by its order only", || {
        (held_by(&up, "shipping/shipments", "o1")? == "source:checkout/orders").then_some(())
    });
    let within = std::time::Duration::from_secs(30);
    crate::harness::eventually_within(within, "order o1 to be collected", || {
        get(&up, "checkout/orders", "o1").is_none().then_some(())
    });
    let sql = r#"SELECT name, status, "trackingID" FROM "checkout/archive""#;
    let archived = up.ok(&["query", sql, "-o", "json"]);
    let archived: Value = serde_json::from_str(&archived).unwrap();
    assert_eq!(archived.as_array().map(Vec::len), Some(1), "archived once: {archived}");
    assert_eq!(archived[0]["name"], "o1");
    assert_eq!(archived[0]["status"], "completed");
    assert_eq!(archived[0]["trackingID"], order["trackingID"]);
    for store in ["payment/charges", "shipping/shipments", "email/confirmations"] {
        eventually(&format!("{store}/o1 to be collected"), || {
            get(&up, store, "o1").is_none().then_some(())
        });
    }
    let sent = up.ok(&["query", r#"SELECT count(*) AS n FROM "email/sent""#, "-o", "json"]);
    assert_eq!(serde_json::from_str::<Value>(&sent).unwrap()[0]["n"], 1, "one email: {sent}");
    let metrics = scrape(&up, &tokio::runtime::Runtime::new().unwrap());
    for store in ["checkout/orders", "payment/charges", "shipping/shipments", "email/confirmations"]
    {
        let series = format!("knactor_retention_collected_total{{store=\"{store}\"}} 1");
        assert!(metrics.contains(&series), "{series} in:\n{metrics}");
    }
    assert!(metrics.contains("knactor_retention_archived_total{store=\"checkout/orders\"} 1"));
    assert_eq!(held_by(&up, "checkout/orders", "o1"), None);
}

#[test]
fn a_policy_applied_to_the_running_app_takes_effect_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(&crate::harness::hello_app(dir.path(), false), &[]);
    let text =
        |name: &str| serde_json::json!({"name": name, "data": {"text": "one two"}}).to_string();
    up.ok(&["put", "counter/texts", "-f", &file(dir.path(), "a.json", &text("a"))]);
    let counted = |name: &str| get(&up, "counter/texts", name).filter(|d| d["words"] == 2);
    eventually("a counted", || counted("a"));
    assert_eq!(held_by(&up, "counter/texts", "a").as_deref(), Some("keep"));
    // The same manifest, with a policy: counted texts go.
    let manifest =
        std::fs::read_to_string(crate::harness::repo().join("apps/hello/knactors/counter.yaml"))
            .unwrap();
    let policy = "      retention: {after: consumed, when: 'has(data.words)'}\n";
    let manifest = manifest.replace("    - name: texts\n", &format!("    - name: texts\n{policy}"));
    assert!(manifest.contains(policy));
    let report = up.ok(&["apply", "-f", &file(dir.path(), "counter.yaml", &manifest)]);
    assert!(report.contains("counter"), "{report}");
    eventually("a collected", || get(&up, "counter/texts", "a").is_none().then_some(()));
    up.ok(&["put", "counter/texts", "-f", &file(dir.path(), "b.json", &text("b"))]);
    eventually("b collected once counted", || {
        get(&up, "counter/texts", "b").is_none().then_some(())
    });
}
