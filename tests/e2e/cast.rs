//! Cast in a running app: the checkout → shipping/payment composition of DESIGN §5, changed at
//! run time with `knactor apply`, and a standalone integrator that survives `kill -9`.

use std::collections::BTreeMap;
use std::path::Path;

use data_exchange::testing::RedisServer;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::harness::{Up, eventually, file, repo, retail_app};
use crate::retail::{get, method_of, order_data, put_order};

/// The checkout spec with the air-shipping threshold changed.
fn spec_with(dir: &Path, name: &str, from: &str, to: &str) -> String {
    let spec = std::fs::read_to_string(repo().join("dxg-specs/retail/checkout.yaml")).unwrap();
    assert!(spec.contains(from));
    file(dir, name, &spec.replace(from, to))
}

#[test]
fn an_order_is_shipped_and_paid_through_the_graph() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(&retail_app(dir.path()), &[]);
    put_order(&up, dir.path(), "order-1", 120.5);
    let done = eventually("the order to complete", || {
        get(&up, "checkout/orders", "order-1").filter(|o| o["status"] == "completed")
    });
    assert_eq!(done["total"], json!(120.5));
    assert!(done["trackingID"].as_str().unwrap().starts_with("1Z"), "{done}");
    assert_eq!(done["shippingCost"], json!(34), "air: (15 + 2 per item) × 2 to France");
    assert!(done["paymentID"].as_str().unwrap().starts_with("txn-"), "{done}");
    assert_eq!(method_of(&up, "order-1"), "air");
}

#[test]
fn an_order_with_a_bad_card_is_declined_and_never_shipped() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(&retail_app(dir.path()), &[]);
    let mut data = order_data(30.0);
    data["card"]["number"] = json!("4242 4242 4242 4241");
    let order = file(dir.path(), "bad.json", &json!({"name": "bad", "data": data}).to_string());
    up.ok(&["put", "checkout/orders", "-f", &order]);
    let declined = eventually("the order to be declined", || {
        get(&up, "checkout/orders", "bad").filter(|o| o["status"] == "declined")
    });
    assert_eq!(declined["paymentError"], json!("invalid card number"));
    assert!(get(&up, "shipping/shipments", "bad").is_none(), "a declined order is not shipped");
}

#[test]
fn currency_converts_with_its_seeded_rate_table() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(&retail_app(dir.path()), &[]);
    let rates: Value =
        serde_json::from_str(&up.ok(&["get", "currency/rates", "-o", "json"])).unwrap();
    assert_eq!(rates["items"].as_array().unwrap().len(), 8, "the rate table ships with the app");
    for (name, to, want) in [("c1", "GBP", json!(76.05)), ("c2", "XXX", Value::Null)] {
        let request = json!({"name": name, "data": {"amount": 100, "from": "USD", "to": to}});
        let path = file(dir.path(), &format!("{name}.json"), &request.to_string());
        up.ok(&["put", "currency/conversions", "-f", &path]);
        let done = eventually("the conversion", || {
            get(&up, "currency/conversions", name)
                .filter(|c| c.get("result").is_some() || c.get("error").is_some())
        });
        assert_eq!(done.get("result").cloned().unwrap_or(Value::Null), want, "{done}");
    }
    let failed = get(&up, "currency/conversions", "c2").unwrap();
    assert_eq!(failed["error"], json!("no rate for USD or XXX"));
}

#[test]
fn carts_are_totalled_with_catalog_prices_and_get_recommendations() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(&retail_app(dir.path()), &[]);
    let cart = json!({"name": "ada", "data": {"items": [
        {"sku": "OLJCESPC7Z", "qty": 2}, {"sku": "6E92ZMYYFZ", "qty": 1}, {"sku": "NOPE", "qty": 1}
    ]}});
    up.ok(&["put", "cart/carts", "-f", &file(dir.path(), "cart.json", &cart.to_string())]);
    let totalled = eventually("the cart's total", || {
        get(&up, "cart/carts", "ada").filter(|c| c["totalUsd"] == json!(48.97))
    });
    assert_eq!(totalled["unknown"], json!(["NOPE"]), "2 × 19.99 + 8.99, and one unknown SKU");
    // The catalog changes the mug's price: the cart's copy follows, and the cart is re-totalled.
    let mug = json!({"name": "6E92ZMYYFZ", "data": {"name": "Mug", "priceUsd": 10.0, "categories": ["kitchen"]}});
    up.ok(&[
        "put",
        "productcatalog/products",
        "-f",
        &file(dir.path(), "mug.json", &mug.to_string()),
    ]);
    eventually("the new total", || {
        get(&up, "cart/carts", "ada").filter(|c| c["totalUsd"] == json!(49.98))
    });
    // Recommendations for the cart: four products of the catalog, none already in it.
    let suggested = eventually("recommendations", || {
        let request = get(&up, "recommendation/requests", "ada")?;
        request["products"].as_array().filter(|p| p.len() == 4).cloned()
    });
    for sku in ["OLJCESPC7Z", "6E92ZMYYFZ"] {
        assert!(!suggested.contains(&json!(sku)), "{sku} is in the cart: {suggested:?}");
    }
    // A cart holding six of the nine products is recommended exactly the other three.
    let six = ["OLJCESPC7Z", "66VCHSJNUP", "1YMWWN1N4O", "L9ECAV7KIM", "2ZYFJ3GM2N", "0PUK6V6EV0"];
    let items: Vec<Value> = six.iter().map(|sku| json!({"sku": sku, "qty": 1})).collect();
    let cart = json!({"name": "bob", "data": {"items": items}});
    up.ok(&["put", "cart/carts", "-f", &file(dir.path(), "bob.json", &cart.to_string())]);
    let mut rest: Vec<String> = eventually("bob's recommendations", || {
        let products = get(&up, "recommendation/requests", "bob")?["products"].clone();
        let products: Vec<String> = serde_json::from_value(products).ok()?;
        (!products.is_empty()).then_some(products)
    });
    rest.sort();
    assert_eq!(rest, ["6E92ZMYYFZ", "9SIQT8TOJO", "LS4PSXUNUM"]);
}

#[test]
fn apply_changes_the_composition_at_run_time_and_bad_specs_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(&retail_app(dir.path()), &[]);
    put_order(&up, dir.path(), "before", 120.5);
    assert_eq!(method_of(&up, "before"), "air");

    let raised = spec_with(dir.path(), "raised.yaml", "order.total > 100 ?", "order.total > 150 ?");
    let report = up.ok(&["apply", "-f", &raised]);
    assert_eq!(
        report.trim(),
        "cast/checkout configured: edges added: -; removed: -; changed: request-shipment"
    );
    put_order(&up, dir.path(), "after", 120.5);
    assert_eq!(method_of(&up, "after"), "ground", "the new threshold applies to new orders");
    assert_eq!(method_of(&up, "before"), "air", "without resync, existing shipments stay");

    let broken =
        spec_with(dir.path(), "broken.yaml", "order.total > 100 ?", "order.total >> 100 ?");
    let rejected = up.cli(&["apply", "-f", &broken]);
    assert!(!rejected.status.success());
    let message = String::from_utf8_lossy(&rejected.stderr);
    assert!(message.starts_with(&format!("{broken}:39:17: error: CEL syntax error")), "{message}");

    let unknown = spec_with(dir.path(), "unknown.yaml", "to: shipment", "to: shipments");
    let message = String::from_utf8_lossy(&up.cli(&["apply", "-f", &unknown]).stderr).into_owned();
    assert!(
        message.starts_with(&format!("{unknown}:34:11: error: unknown alias `shipments`")),
        "{message}"
    );

    let not_ingest =
        spec_with(dir.path(), "ingest.yaml", "address: order.address", "cost: order.total");
    let message =
        String::from_utf8_lossy(&up.cli(&["apply", "-f", &not_ingest]).stderr).into_owned();
    assert!(
        message
            .contains("error: `cost` of shipping/shipments is not marked `x-knactor-ingest: true`"),
        "{message}"
    );

    put_order(&up, dir.path(), "still", 120.5);
    assert_eq!(method_of(&up, "still"), "ground", "the running spec kept going");
    let check = crate::harness::knactor().args(["check", &broken]).output().unwrap();
    assert!(!check.status.success(), "check rejects what apply rejects");

    // The composition graph follows: an edge renamed is shown under its new name only.
    let renamed =
        spec_with(dir.path(), "renamed.yaml", "- name: request-shipment", "- name: ship-order");
    up.ok(&["apply", "-f", &renamed]);
    let graph = crate::api::Api::new(&up).get("/v1/graph", Some(&up.operator_token()));
    assert_eq!(graph.status, 200, "{graph:?}");
    let links = graph.body["links"].as_array().unwrap();
    let edges: Vec<&str> = links
        .iter()
        .filter(|l| l["spec"] == "checkout")
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert!(edges.contains(&"ship-order") && !edges.contains(&"request-shipment"), "{edges:?}");
}

/// A standalone integrator on Redis is killed with SIGKILL while orders stream, and restarted:
/// every order completes, and no charge is made twice.
#[test]
fn a_standalone_integrator_killed_mid_stream_converges() {
    const ORDERS: usize = 60;
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let app = retail_app(dir.path());
    let app_arg = app.to_string_lossy().into_owned();
    let spec = repo().join("dxg-specs/retail/checkout.yaml").to_string_lossy().into_owned();
    // The knactors in one process, the integrator in another; everything kept, to count
    // every order's charge at the end.
    let up = Up::start(&app, &["--exchange", &redis.url(), "--no-integrators", "--keep"]);
    let integrate = ["-f", spec.as_str(), "--app", &app_arg, "--exchange", &redis.url()];
    let integrator = Up::integrate(&integrate);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let specs: Value = runtime.block_on(async {
        let request = knactor_cli::client::http_client(reqwest::Client::builder())
            .unwrap()
            .get(format!("{}/v1/specs", up.server));
        let answer = request.bearer_auth(up.operator_token()).send().await.unwrap();
        answer.json().await.unwrap()
    });
    assert_eq!(specs, json!({"specs": []}), "--no-integrators runs none of the app's specs");
    let client = up.client();
    let mut charges = runtime.block_on(client.watch("payment/charges")).unwrap();
    let place = |orders: std::ops::Range<usize>| {
        runtime.block_on(async {
            for i in orders {
                let data = order_data(10.0 + i as f64);
                client.put("checkout/orders", &format!("o{i:03}"), data, None).await.unwrap();
            }
        })
    };
    // Crash it mid-stream, place more orders while it is down, then restart it.
    place(0..ORDERS / 2);
    integrator.kill();
    place(ORDERS / 2..ORDERS);
    let _integrator = Up::integrate(&integrate);

    eventually("every order to complete", || {
        let list: Value =
            serde_json::from_str(&up.ok(&["get", "checkout/orders", "-o", "json"])).unwrap();
        let items = list["items"].as_array().unwrap();
        (items.len() == ORDERS && items.iter().all(|o| o["data"]["status"] == "completed"))
            .then_some(())
    });
    // Each charge was written twice at most: created with its amount by the integrator, then
    // settled by payment. A replay after the crash wrote nothing again. A last order is the
    // barrier: the integrator handles the orders in the order they changed, so once its charge
    // is settled, anything the replay did is in the events before it.
    place(ORDERS..ORDERS + 1);
    let last = format!("o{ORDERS:03}");
    let mut events = runtime.block_on(async {
        let mut per_charge: BTreeMap<String, usize> = BTreeMap::new();
        while per_charge.get(&last) != Some(&2) {
            let event = tokio::time::timeout(std::time::Duration::from_secs(10), charges.next())
                .await
                .expect("charge events")
                .unwrap()
                .unwrap();
            *per_charge.entry(event["object"]["name"].as_str().unwrap().to_owned()).or_default() +=
                1;
        }
        per_charge
    });
    events.remove(&last);
    assert_eq!(events.len(), ORDERS);
    assert!(events.values().all(|n| *n == 2), "a charge was written more than twice: {events:?}");
}

/// An edited spec file listed in the app manifest is re-applied without a restart.
#[test]
fn an_edited_spec_file_is_re_applied() {
    let dir = tempfile::tempdir().unwrap();
    let spec = std::fs::read_to_string(repo().join("dxg-specs/retail/checkout.yaml")).unwrap();
    let spec_path = file(dir.path(), "checkout.yaml", &spec);
    let knactors = repo().join("apps/retail/knactors/*.yaml");
    file(
        dir.path(),
        "app.yaml",
        &format!(
            "apiVersion: knactor.dev/v1\nkind: App\nmetadata: {{name: retail}}\nspec:\n  knactors: [{}]\n  integrators: [checkout.yaml]\n",
            knactors.display()
        ),
    );
    let log = dir.path().join("stderr.log");
    let mut command = crate::harness::knactor();
    command.stderr(std::fs::File::create(&log).unwrap());
    let up = Up::start_as(command, dir.path(), &[]);
    put_order(&up, dir.path(), "first", 120.5);
    assert_eq!(method_of(&up, "first"), "air");
    // A broken edit is rejected and the running spec keeps going; a good one takes over.
    std::fs::write(&spec_path, spec.replace("order.total > 100 ?", "order.total >> 100 ?"))
        .unwrap();
    eventually("the broken edit rejected", || {
        let said = std::fs::read_to_string(&log).unwrap();
        said.contains("spec file rejected; the running spec keeps going").then_some(())
    });
    put_order(&up, dir.path(), "second", 120.5);
    assert_eq!(method_of(&up, "second"), "air");
    std::fs::write(&spec_path, spec.replace("order.total > 100 ?", "order.total > 1000 ?"))
        .unwrap();
    let mut probes = 0;
    eventually("the edited spec", || {
        probes += 1;
        let name = format!("probe{probes}");
        put_order(&up, dir.path(), &name, 120.5);
        (method_of(&up, &name) == "ground").then_some(())
    });
}

#[test]
fn graph_draws_stores_and_labelled_edges() {
    let spec = repo().join("dxg-specs/retail/checkout.yaml");
    let out = crate::harness::knactor().arg("graph").arg(&spec).output().unwrap();
    let dot = String::from_utf8(out.stdout).unwrap();
    assert!(dot.starts_with("digraph knactor {"), "{dot}");
    assert!(dot.contains(r#""shipping/shipments" -> "checkout/orders" [label="report-shipment\lwhen has(shipment.trackingID)\lshippingCost ← shipment.cost\ltrackingID ← shipment.trackingID\l"];"#), "{dot}");
    let svg = crate::harness::knactor()
        .arg("graph")
        .arg(&spec)
        .args(["--format", "svg"])
        .output()
        .unwrap();
    if svg.status.success() {
        assert!(String::from_utf8_lossy(&svg.stdout).contains("<svg"));
    } else {
        let message = String::from_utf8_lossy(&svg.stderr);
        assert!(message.contains("needs Graphviz `dot`"), "{message}");
    }
}

/// An app composed of several specs: a field one spec leaves to another is no mistake, but a
/// field no spec of the app fills is.
#[test]
fn check_warns_only_about_ingest_fields_no_spec_of_the_app_fills() {
    let check = |spec: &str| {
        let out = crate::harness::knactor()
            .current_dir(repo())
            .args(["check", spec, "--app", "apps/retail"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert_eq!(check("dxg-specs/retail/frontend.yaml"), "", "the load generator fills the rest");
    let dir = tempfile::tempdir().unwrap();
    let spec = std::fs::read_to_string(repo().join("dxg-specs/retail/loadgenerator.yaml")).unwrap();
    let without_currency = spec.replace("        currency: user.session.currency\n", "");
    let warnings = check(&file(dir.path(), "loadgenerator.yaml", &without_currency));
    assert_eq!(
        warnings.trim(),
        format!(
            "{}:10:14: warning: ingest field `currency` of frontend/sessions is filled by no edge (a client may write it)",
            dir.path().join("loadgenerator.yaml").display()
        )
    );
}

/// The pictures of docs/concepts.md are what `knactor graph --brief` draws of each app.
#[test]
fn the_concepts_pictures_are_the_graphs_of_the_apps() {
    let concepts = std::fs::read_to_string(repo().join("docs/concepts.md")).unwrap();
    for app in ["retail", "smart-home"] {
        let dir = repo().join("dxg-specs").join(app);
        let mut specs: Vec<_> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        specs.sort();
        let out = crate::harness::knactor()
            .arg("graph")
            .args(&specs)
            .args(["--format", "mermaid", "--brief"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let picture = format!("```mermaid\n{}```", String::from_utf8(out.stdout).unwrap());
        assert!(concepts.contains(&picture), "docs/concepts.md lacks the {app} graph:\n{picture}");
    }
}
