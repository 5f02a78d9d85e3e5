//! An app split across processes on one Redis exchange: its knactors in two `knactor up
//! --only ...` processes and its integrators in a third give the results of a single process.

use data_exchange::testing::RedisServer;
use serde_json::{Value, json};

use crate::demo::{demo, outcome};
use crate::harness::{Up, eventually, repo, retail_app};
use crate::retail::order_data;

#[test]
fn retail_split_across_processes_pays_ships_and_declines_as_one() {
    const ORDERS: usize = 20;
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let app = retail_app(dir.path());
    let app_arg = app.to_string_lossy().into_owned();
    let on_redis = ["--exchange", &redis.url(), "--no-integrators"];
    let checkout = Up::start(&app, &[&["--only", "checkout"][..], &on_redis].concat());
    let _others = Up::start(&app, &[&["--only", "shipping,payment"][..], &on_redis].concat());
    let spec = repo().join("dxg-specs/retail/checkout.yaml").to_string_lossy().into_owned();
    let _integrator = Up::integrate(&["-f", &spec, "--app", &app_arg, "--exchange", &redis.url()]);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = checkout.client();
    runtime.block_on(async {
        for i in 0..ORDERS {
            let mut data = order_data(10.0 + 10.0 * i as f64);
            if i % 7 == 3 {
                data["card"]["expiry"] = json!("01/20");
            }
            client.put("checkout/orders", &format!("o{i:02}"), data, None).await.unwrap();
        }
    });
    let orders = eventually("every order to end", || {
        let list: Value =
            serde_json::from_str(&checkout.ok(&["get", "checkout/orders", "-o", "json"])).unwrap();
        let items = list["items"].as_array().unwrap().clone();
        let ended = items.iter().all(|o| o["data"]["status"] != "placed");
        (items.len() == ORDERS && ended).then_some(items)
    });
    for order in &orders {
        let (name, data) = (order["name"].as_str().unwrap(), &order["data"]);
        let i: usize = name[1..].parse().unwrap();
        if i % 7 == 3 {
            assert_eq!(data["status"], "declined", "{name}: {data}");
            assert_eq!(data["paymentError"], "card expired 01/2020");
        } else {
            assert_eq!(data["status"], "completed", "{name}: {data}");
            assert!(data["trackingID"].as_str().unwrap().starts_with("1Z"));
            let method = if data["total"].as_f64().unwrap() > 100.0 { "air" } else { "ground" };
            let cost = data["shippingCost"].as_f64().unwrap();
            assert_eq!(cost, if method == "air" { 34.0 } else { 12.0 }, "{name}: {data}");
        }
    }
}

/// Runs the demo of `app` (`demo_args` after its name) on Redis twice: in one process, and
/// attached to the app split into the knactors of `halves`, each in its own `knactor up
/// --only`, and its integrators in `knactor integrate` (with `integrate_args`). Both summaries
/// must say the same. Returns the first line `knactor integrate` printed.
pub(crate) fn split_run_matches_one_process(
    app: &str,
    halves: [&str; 2],
    demo_args: &[&str],
    integrate_args: &[&str],
) -> String {
    let whole = RedisServer::start();
    let one_process = demo(&[&[app, "--exchange", &whole.url()][..], demo_args].concat());

    let split = RedisServer::start();
    let url = split.url();
    let dir = repo().join("apps").join(app);
    let on_redis = ["--exchange", &url, "--no-integrators"];
    // With pushdown, every process is told: its knactors then share the administrator's
    // connection, as pushed-down edges write their targets as the writer of their source.
    let pushdown: &[&str] =
        if integrate_args.contains(&"--pushdown") { &["--pushdown"] } else { &[] };
    let _halves =
        halves.map(|only| Up::start(&dir, &[&["--only", only][..], &on_redis, pushdown].concat()));
    let mut specs: Vec<String> = std::fs::read_dir(repo().join("dxg-specs").join(app))
        .unwrap()
        .map(|entry| entry.unwrap().path().to_string_lossy().into_owned())
        .collect();
    specs.sort();
    let mut integrate = vec!["--app", dir.to_str().unwrap(), "--exchange", &url];
    integrate.extend(integrate_args);
    for spec in &specs {
        integrate.extend(["-f", spec]);
    }
    let integrators = Up::integrate(&integrate);
    let attached = demo(&[&[app, "--exchange", &split.url(), "--attach"][..], demo_args].concat());
    assert_eq!(
        outcome(&attached),
        outcome(&one_process),
        "split:\n{attached}\none process:\n{one_process}"
    );
    integrators.banner.clone()
}

#[test]
fn smart_home_split_across_processes_gives_the_results_of_one() {
    split_run_matches_one_process(
        "smart-home",
        ["house", "motion,lamp"],
        &["--minutes", "120", "--seed", "5"],
        &[],
    );
}

#[test]
fn retail_demo_split_across_processes_gives_the_results_of_one() {
    let storefront = "frontend,loadgenerator,cart,productcatalog,currency,recommendation,ad";
    let back_office = "checkout,payment,shipping,email";
    split_run_matches_one_process(
        "retail",
        [storefront, back_office],
        &["--orders", "60", "--seed", "4"],
        &[],
    );
}
