//! The composition tasks of the Knactor paper (docs/walkthrough.md), each done by editing a
//! spec and `knactor apply` to a running app: no service changed, rebuilt or restarted.
//!
//! - T1: integrate Payment and Shipping with Checkout.
//! - T2: add a shipment policy based on the order price.
//! - T3: absorb a change of the Shipping store's schema (`trackingID` renamed to `tracking`,
//!   the address object become a one-line `destination`).
//!
//! T2 is also tried first as a shadow run, compared with the live graph, then promoted; T3 is
//! also applied live, under load.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Up, eventually, eventually_within, repo};
use crate::retail::{completed, get, method_of, order_data, put_order};

/// The retail knactors with no integrator: checkout, payment, and shipping (version 1 or 2).
pub(crate) fn uncomposed_retail(dir: &Path, shipping_v2: bool) -> PathBuf {
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

/// T2 as a shadow run: the policy runs beside the live graph (everything by ground) on 1,000
/// live orders, writing copies of its targets; the diff lists exactly the orders whose method
/// would change. Promoted, the next orders follow it; no order was shipped by both versions.
#[test]
fn t2_runs_as_a_shadow_on_live_orders_then_is_promoted() {
    let dir = tempfile::tempdir().unwrap();
    // Everything kept: the test compares every order's shipment once all are done.
    let up = Up::start(&uncomposed_retail(dir.path(), false), &["--keep"]);
    t2_as_a_shadow(&up, dir.path(), 1_000);
}

/// The same on Redis, where the shadow reads as a Redis user of its own that may write nothing.
#[test]
fn t2_runs_as_a_shadow_on_redis_then_is_promoted() {
    let redis = data_exchange::testing::RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let up =
        Up::start(&uncomposed_retail(dir.path(), false), &["--exchange", &redis.url(), "--keep"]);
    t2_as_a_shadow(&up, dir.path(), 1_000);
    // The shadow's Redis user went with it; the live spec's stays.
    let users = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let admin = data_exchange::RedisExchange::connect(&redis.url()).await.unwrap();
        admin.users().await.unwrap()
    });
    assert!(users.iter().any(|u| u == "retail/integrator:checkout"), "{users:?}");
    assert!(!users.iter().any(|u| u.contains("shadow")), "{users:?}");
}

/// T2 tried as a shadow on the running retail app `up` (its knactors only, files in `dir`)
/// over `orders` live orders, then promoted.
pub(crate) fn t2_as_a_shadow(up: &Up, dir: &Path, orders: usize) {
    let policy = spec("dxg-specs/retail/checkout.yaml");
    let alone = up.cli(&["apply", "-f", &policy, "--shadow"]);
    let refused = String::from_utf8_lossy(&alone.stderr);
    assert!(
        refused.contains("no Cast spec `checkout` runs to shadow: apply it without --shadow first"),
        "a shadow runs beside a live spec: {refused}"
    );
    up.ok(&["apply", "-f", &spec("apps/retail/tasks/t1-compose.yaml")]);
    let started = up.ok(&["apply", "-f", &policy, "--shadow"]);
    assert_eq!(
        started.trim(),
        "cast/checkout shadow started beside the live spec; against it: edges added: -; removed: -; changed: request-shipment"
    );
    let listed = up.ok(&["get", "specs"]);
    assert!(listed.lines().nth(1).is_some_and(|l| l.contains("  since 20")), "{listed}");
    // Re-applying the live spec leaves the shadow running, and says so.
    let reapplied = up.cli(&["apply", "-f", &spec("apps/retail/tasks/t1-compose.yaml")]);
    let warned = String::from_utf8_lossy(&reapplied.stderr);
    assert!(warned.contains("the shadow beside `checkout` runs on"), "{warned}");

    // Prices from $20 to $179.50: above $100, the policy ships by air.
    let price = |i: usize| 20.0 + (i * 7 % 320) as f64 / 2.0;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = up.client();
    runtime.block_on(async {
        for i in 0..orders {
            let name = format!("o{i:04}");
            client.put("checkout/orders", &name, order_data(price(i)), None).await.unwrap();
        }
    });
    let list = |store: &str| -> Vec<Value> {
        let list = runtime.block_on(client.list(store)).unwrap();
        list["items"].as_array().unwrap().clone()
    };
    eventually_within(Duration::from_secs(120), "every order to complete", || {
        let placed = list("checkout/orders");
        (placed.len() == orders && placed.iter().all(|o| o["data"]["status"] == "completed"))
            .then_some(())
    });
    let would_fly: BTreeSet<String> =
        (0..orders).filter(|&i| price(i) > 100.0).map(|i| format!("o{i:04}")).collect();
    assert!(!would_fly.is_empty() && would_fly.len() < orders, "{}", would_fly.len());
    let diff = eventually("the shadow to have handled every order", || {
        let diff: Value =
            serde_json::from_str(&up.ok(&["diff", "spec", "checkout", "-o", "json"])).unwrap();
        (diff["compared"] == json!(3 * orders)).then_some(diff)
    });
    let differences = diff["differences"].as_array().unwrap();
    let named: BTreeSet<String> =
        differences.iter().map(|d| d["name"].as_str().unwrap().to_owned()).collect();
    assert_eq!(named, would_fly, "exactly the orders whose method would change");
    for difference in differences {
        let (store, field) = (&difference["store"], &difference["field"]);
        assert_eq!((store, field), (&json!("shipping/shipments"), &json!("method")));
        assert_eq!((&difference["live"], &difference["shadow"]), (&json!("ground"), &json!("air")));
    }
    let count =
        json!([{"store": "shipping/shipments", "field": "method", "differing": would_fly.len()}]);
    assert_eq!((&diff["differing"], &diff["fields"]), (&json!(would_fly.len()), &count));
    let table = up.ok(&["diff", "spec", "checkout"]);
    let summary = format!("{} of {} objects the shadow wrote since", would_fly.len(), 3 * orders);
    assert!(table.contains(&summary) && table.contains("shipping/shipments.method"), "{table}");
    // The shadow wrote no live object: every shipment went by ground.
    let shipments = list("shipping/shipments");
    assert_eq!(shipments.len(), orders);
    assert!(shipments.iter().all(|s| s["data"]["method"] == "ground"), "a shadow write leaked");

    // Each change is handled by one version: an order whose later changes (its tracking
    // number, its completion) the live spec has yet to handle would have those handled by the
    // promoted one. Promote once the live spec has handled every change made.
    eventually("the live spec to handle every change", || {
        let specs = runtime.block_on(client.specs()).unwrap();
        let handled = &specs.iter().find(|s| s.name == "checkout")?.handled;
        let stores = ["checkout/orders", "payment/charges", "shipping/shipments"];
        let last = |store| list(store).iter().filter_map(|o| o["version"].as_u64()).max();
        stores.iter().all(|store| handled.get(*store).copied() >= last(store)).then_some(())
    });
    let promoted = up.ok(&["promote", "spec", "checkout"]);
    assert!(
        promoted.starts_with(
            "cast/checkout configured: edges added: -; removed: -; changed: request-shipment"
        ),
        "{promoted}"
    );
    let gone = up.cli(&["diff", "spec", "checkout"]);
    assert!(String::from_utf8_lossy(&gone.stderr).contains("runs no shadow"), "{gone:?}");
    put_order(up, dir, "after-high", 150.0);
    put_order(up, dir, "after-low", 20.0);
    assert_eq!(method_of(up, "after-high"), "air", "the promoted policy runs live");
    assert_eq!(method_of(up, "after-low"), "ground");
    let shipments = list("shipping/shipments");
    let by_air = shipments.iter().filter(|s| s["data"]["method"] == "air").count();
    assert_eq!(by_air, 1, "no order before the promotion was shipped again by the new version");

    // A shadow is dropped without touching the live spec.
    up.ok(&["apply", "-f", &spec("apps/retail/tasks/t1-compose.yaml"), "--shadow"]);
    let dropped = up.ok(&["delete", "spec", "checkout", "--shadow"]);
    assert!(dropped.starts_with("shadow of checkout deleted (it ran since 20"), "{dropped}");
    let listed = up.ok(&["get", "specs"]);
    assert!(listed.lines().nth(1).is_some_and(|l| l.ends_with("  -")), "{listed}");
    put_order(up, dir, "last", 150.0);
    assert_eq!(method_of(up, "last"), "air");
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
            applied.starts_with("knactor/shipping configured: shipping/shipments at schema version 2; reconciler retail.shipping-v2 running\ncast/checkout configured: edges added: -; removed: -; changed: request-shipment, report-shipment"),
            "{applied}"
        );
        let specs: serde_json::Value =
            serde_json::from_str(&up.ok(&["get", "specs", "-o", "json"])).unwrap();
        let checkout = specs["specs"].as_array().unwrap().iter().find(|s| s["name"] == "checkout");
        assert_eq!(checkout.unwrap()["version"], 2, "the spec's versions go on: {specs}");
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

/// A knactor's manifest applied live may add stores: Shipping gains the Object store `quotes`
/// and the Log store `events`, registered and listed at once, which the operator and Shipping's
/// own token reach, and no other knactor's; a Cast spec that ran before is re-applied to write
/// quotes (on Redis, its connection learns the new store, and its user is granted its keys). A
/// removed store, and a store added beside a schema change, are refused.
#[test]
fn a_knactor_apply_adds_stores() {
    adds_stores(&[]);
}

/// The same on Redis, where each principal connects as its own Redis user.
#[test]
fn a_knactor_apply_adds_stores_on_redis() {
    let redis = data_exchange::testing::RedisServer::start();
    adds_stores(&["--exchange", &redis.url()]);
}

fn adds_stores(extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(&uncomposed_retail(dir.path(), false), extra);
    let quoting = |edges: &str, inputs: &str| {
        let text = format!(
            "apiVersion: knactor.dev/v1\nkind: Cast\nmetadata: {{name: quoting}}\nspec:\n  inputs: {{order: checkout/orders, shipment: shipping/shipments{inputs}}}\n  edges:\n    - {{name: method, from: [order], to: shipment, when: has(order.total), set: {{method: 'order.total > 100 ? \"air\" : \"ground\"'}}}}\n{edges}"
        );
        up.ok(&["apply", "-f", &crate::harness::file(dir.path(), "quoting.yaml", &text)]);
    };
    quoting("", "");
    let v1 = std::fs::read_to_string(repo().join("apps/retail/knactors/shipping.yaml")).unwrap();
    let stores = "    - name: quotes\n      schema:\n        type: object\n        properties:\n          price: { type: number, x-knactor-ingest: true }\n    - name: events\n      exchange: log\n      schema:\n        type: object\n        required: [order]\n        properties:\n          order: { type: string }\n";
    let manifest = crate::harness::file(dir.path(), "shipping.yaml", &format!("{v1}{stores}"));
    let applied = up.ok(&["apply", "-f", &manifest]);
    assert_eq!(
        applied,
        "knactor/shipping configured: no schema changed; stores added: shipping/quotes, shipping/events; reconciler retail.shipping running\n"
    );
    let listed = up.ok(&["get"]);
    let kind = |store: &str| {
        let row = listed.lines().find(|l| l.starts_with(&format!("{store} ")));
        row.unwrap_or_else(|| panic!("{store} is listed:\n{listed}")).split_whitespace().nth(1)
    };
    assert_eq!((kind("shipping/quotes"), kind("shipping/events")), (Some("Object"), Some("Log")));

    let quote = |name: &str, price: &str| {
        let text = format!("{{\"name\": \"{name}\", \"data\": {{\"price\": {price}}}}}");
        up.cli(&[
            "put",
            "shipping/quotes",
            "-f",
            &crate::harness::file(dir.path(), "q.json", &text),
        ])
    };
    assert!(!quote("bad", "\"free\"").status.success(), "the new store's schema holds");
    assert!(quote("q1", "4.5").status.success());
    let events = crate::harness::file(dir.path(), "events.jsonl", "{\"order\": \"o1\"}\n");
    assert_eq!(
        up.ok(&["log", "append", "shipping/events", "-f", &events]),
        "1 record appended at offset 0\n"
    );
    let token = |knactor: &str| {
        let file = dir.path().join(format!(".knactor/tokens/knactor-{knactor}"));
        std::fs::read_to_string(file).unwrap().trim().to_owned()
    };
    let api = crate::api::Api::new(&up);
    let answer = api.get("/v1/stores/shipping/quotes/objects", Some(&token("shipping")));
    assert_eq!(answer.status, 200, "Shipping's token reaches its new store: {:?}", answer.body);
    let answer = api.get("/v1/stores/shipping/quotes/objects", Some(&token("checkout")));
    crate::api::assert_denied(&answer, 403, "Forbidden");

    let quote = "    - {name: quote, from: [order], to: quote, when: has(order.total), set: {price: order.total}}\n";
    quoting(quote, ", quote: shipping/quotes");
    put_order(&up, dir.path(), "o1", 20.0);
    eventually("o1 quoted at its total", || {
        let total = get(&up, "checkout/orders", "o1")?["total"].as_f64();
        get(&up, "shipping/quotes", "o1")
            .filter(|quote| total.is_some() && quote["price"].as_f64() == total)
    });

    let removed = crate::harness::file(dir.path(), "removed.yaml", &v1);
    let refused = up.cli(&["apply", "-f", &removed]);
    let error = String::from_utf8_lossy(&refused.stderr);
    assert!(error.contains("`shipping` is missing stores (`quotes`, `events`)"), "{error}");
    let both = format!("{v1}{stores}    - name: notes\n      schema: {{type: object}}\n")
        .replace("trackingID: { type: string }", "trackingID: { type: string, minLength: 1 }");
    let refused = up.cli(&["apply", "-f", &crate::harness::file(dir.path(), "both.yaml", &both)]);
    let error = String::from_utf8_lossy(&refused.stderr);
    let both_refused = "adds stores (`notes`) and changes the schema of `shipments`";
    assert!(error.contains(both_refused), "{error}");
}
