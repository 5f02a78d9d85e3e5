//! Apps on the Kubernetes apiserver: the example demos, unchanged, with their Object stores as
//! custom resources on a real kube-apiserver (their Log stores stay embedded).

use std::time::Duration;

use data_exchange::testing::{KubeApiserver, fresh_namespace, shared_kube_apiserver};
use serde_json::Value;

use crate::demo::{RETAIL_CHECKS, SMART_HOME_CHECKS, assert_passed, demo_with};
use crate::harness::{Up, eventually_within, file, knactor, retail_app};
use crate::retail::order_data;

/// Runs `knactor demo ARGS... --exchange kube://?namespace=NS` in a namespace of its own, as
/// the shared apiserver's admin.
fn kube_demo(args: &[&str]) -> String {
    let server = shared_kube_apiserver();
    let url = format!("kube://?namespace={}", fresh_namespace("demo"));
    let mut command = knactor();
    command.env("KUBECONFIG", server.kubeconfig());
    demo_with(command, &[args, &["--exchange", &url]].concat())
}

#[test]
fn the_retail_demo_runs_on_kubernetes() {
    let summary = kube_demo(&["retail", "--orders", "30"]);
    assert_passed(&summary, &RETAIL_CHECKS);
    assert!(summary.contains("stuck:                  0"), "{summary}");
}

#[test]
fn the_smart_home_demo_runs_on_kubernetes() {
    let summary = kube_demo(&["smart-home", "--minutes", "120"]);
    assert_passed(&summary, &SMART_HOME_CHECKS);
}

/// `knactor up` on an apiserver it cannot reach says so once, naming the apiserver.
#[test]
fn an_unreachable_apiserver_is_named_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let server = shared_kube_apiserver();
    let port = data_exchange::testing::free_port();
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig, "no-token", "default");
    let text = std::fs::read_to_string(&kubeconfig).unwrap();
    let elsewhere = text.replace(&server.url(), &format!("https://127.0.0.1:{port}"));
    std::fs::write(&kubeconfig, elsewhere).unwrap();
    let out = knactor()
        .env("KUBECONFIG", &kubeconfig)
        .args(["up", "apps/hello", "--exchange", "kube"])
        .current_dir(crate::harness::repo())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let named = format!("cannot reach the apiserver at https://127.0.0.1:{port}/");
    assert!(stderr.contains(&named), "{stderr}");
}

/// A store Kubernetes cannot serve is refused before anything runs, at the keyword's
/// file:line:column, by `check --app --exchange kube` and by `up --exchange kube` alike; on the
/// app's own exchange the same app is fine.
#[test]
fn a_schema_kubernetes_cannot_serve_is_located_before_start() {
    let dir = tempfile::tempdir().unwrap();
    file(
        dir.path(),
        "app.yaml",
        "apiVersion: knactor.dev/v1\nkind: App\nmetadata: {name: shop}\nspec:\n  knactors: [shop.yaml]\n",
    );
    let manifest = file(
        dir.path(),
        "shop.yaml",
        "apiVersion: knactor.dev/v1\nkind: Knactor\nmetadata: {name: shop}\nspec:\n  stores:\n    - name: carts\n      schema:\n        type: object\n        properties:\n          sku:\n            oneOf: [{type: string}, {type: integer}]\n",
    );
    let spec = crate::harness::repo().join("dxg-specs/retail/checkout.yaml");
    let run = |args: &[&str]| {
        // An apiserver nobody serves: the check must come before any connection.
        knactor().env("KUBECONFIG", dir.path().join("none")).args(args).output().unwrap()
    };
    let app_dir = dir.path().to_str().unwrap();
    let spec = spec.to_str().unwrap();
    let want = format!("{manifest}:11:13: error: shop/carts: `oneOf` at /properties/sku: ");
    for args in [
        &["check", spec, "--app", app_dir, "--exchange", "kube"][..],
        &["up", app_dir, "--exchange", "kube"],
    ] {
        let out = run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr.contains(&want), "{args:?}: {stderr}\n  wanted: {want}");
    }
    let embedded = run(&["up", app_dir, "--exchange", "redis://127.0.0.1:1"]);
    let stderr = String::from_utf8_lossy(&embedded.stderr);
    // Loaded and checked: it got as far as connecting to that (absent) Redis.
    assert!(
        stderr.contains("Connection refused"),
        "only Kubernetes needs a structural schema: {stderr}"
    );
}

/// A shadow run reads its live changes from the apiserver; its copies are its own.
#[test]
fn t2_runs_as_a_shadow_on_kubernetes_then_is_promoted() {
    let server = shared_kube_apiserver();
    let dir = tempfile::tempdir().unwrap();
    let mut command = knactor();
    command.env("KUBECONFIG", server.kubeconfig());
    let exchange = format!("kube://?namespace={}", fresh_namespace("shadow"));
    let app = crate::tasks::uncomposed_retail(dir.path(), false);
    let up = Up::start_as(command, &app, &["--exchange", &exchange, "--keep"]);
    crate::tasks::t2_as_a_shadow(&up, dir.path(), 40);
}

/// Orders placed before and after kube-apiserver restarts all end as they should: the app's
/// watches and writes wait for it and go on.
#[test]
fn the_retail_app_rides_out_an_apiserver_restart() {
    let mut server = KubeApiserver::start();
    let dir = tempfile::tempdir().unwrap();
    let app = retail_app(dir.path());
    let mut command = knactor();
    command.env("KUBECONFIG", server.kubeconfig());
    let exchange = format!("kube://?namespace={}", fresh_namespace("outage"));
    // Everything kept: every order is listed at the end.
    let up = Up::start_as(command, &app, &["--exchange", &exchange, "--keep"]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = up.client();
    let place = |orders: std::ops::Range<usize>| {
        runtime.block_on(async {
            for i in orders {
                let data = order_data(10.0 + 50.0 * i as f64);
                client.put("checkout/orders", &format!("o{i:02}"), data, None).await.unwrap();
            }
        })
    };
    place(0..5);
    server.restart_apiserver();
    place(5..10);
    let orders = eventually_within(Duration::from_secs(60), "every order to end", || {
        let list = up.cli(&["get", "checkout/orders", "-o", "json"]);
        let list: Value = serde_json::from_slice(&list.stdout).ok()?;
        let items = list["items"].as_array()?.clone();
        let ended = items.iter().all(|o| o["data"]["status"] != "placed");
        (items.len() == 10 && ended).then_some(items)
    });
    for order in &orders {
        let data = &order["data"];
        assert_eq!(data["status"], "completed", "{}: {data}", order["name"]);
        assert!(data["trackingID"].as_str().unwrap().starts_with("1Z"), "{data}");
    }
}
