//! `knactor deploy --apply` on a real kube-apiserver, and the least privilege it grants: each
//! ServiceAccount, authenticated with a token from the TokenRequest API (not impersonated by
//! the admin), reaches the stores it needs and is refused (403) everything else.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use data_exchange::access::{Fields, Rights, ScopedExchange};
use data_exchange::crd::CrdNames;
use data_exchange::testing::deny_matrix::{
    Enforcer, Principal as MatrixPrincipal, Samples, Tally, probe,
};
use data_exchange::testing::{fresh_namespace, shared_kube_apiserver};
use data_exchange::{ExchangeError, KubeExchange, ObjectExchange, StoreRef, Write};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::Role;
use knactor::AppConfig;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, PostParams, WatchParams,
};
use kube::config::Kubeconfig;
use serde_json::json;

use crate::harness::{Up, eventually_within, knactor, repo};
use crate::retail::order_data;

/// What a test holds to act as a principal of the deployed app.
struct Principal {
    client: kube::Client,
    exchange: KubeExchange,
}

/// A kubeconfig in `dir` for the ServiceAccount `name` of `namespace`, with a token the admin
/// asks the TokenRequest API for.
async fn kubeconfig(admin: &kube::Client, namespace: &str, name: &str, dir: &Path) -> PathBuf {
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), namespace);
    let request = TokenRequest {
        spec: Some(TokenRequestSpec { expiration_seconds: Some(3600), ..Default::default() }),
        ..Default::default()
    };
    let granted =
        accounts.create_token_request(name, &PostParams::default(), &request).await.unwrap();
    let token = granted.status.and_then(|s| s.token).expect("a token");
    let kubeconfig = dir.join(format!("{name}.kubeconfig"));
    shared_kube_apiserver().write_kubeconfig(&kubeconfig, &token, namespace);
    kubeconfig
}

/// A client of the shared apiserver with the credentials in `kubeconfig`.
async fn client(kubeconfig: &Path) -> kube::Client {
    let kubeconfig = Kubeconfig::read_from(kubeconfig).unwrap();
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
    kube::Client::try_from(config).unwrap()
}

/// The ServiceAccount `name` of `namespace`, with a kubeconfig of its own in `dir`.
async fn principal(admin: &kube::Client, namespace: &str, name: &str, dir: &Path) -> Principal {
    let kubeconfig = kubeconfig(admin, namespace, name, dir).await;
    let exchange = KubeExchange::with_kubeconfig(&kubeconfig, namespace).await.unwrap();
    Principal { client: client(&kubeconfig).await, exchange }
}

impl Principal {
    /// Registers `store` (with its schema in `app`) on this principal's exchange.
    async fn register(&self, app: &AppConfig, store: &str) -> Result<StoreRef, ExchangeError> {
        let store: StoreRef = store.parse().unwrap();
        self.exchange.register(&store, &app.stores()[&store]).await.map(|()| store)
    }

    /// Registers `store` and lists it: the exchange refuses one or the other to a principal
    /// without the rights.
    async fn list(&self, app: &AppConfig, store: &str) -> Result<(), ExchangeError> {
        let store = self.register(app, store).await?;
        self.exchange.list(&store).await.map(drop)
    }

    /// The custom resources of `store` in `namespace`, as this principal reaches them.
    fn api(&self, store: &str, namespace: &str) -> Api<DynamicObject> {
        resources(&self.client, store, namespace)
    }

    /// The HTTP status of listing `store`'s custom resources in `namespace` as this principal.
    async fn list_status(&self, store: &str, namespace: &str) -> u16 {
        status(self.api(store, namespace).list(&ListParams::default()).await)
    }

    /// The HTTP status of watching `store`'s custom resources in `namespace` as this principal.
    async fn watch_status(&self, store: &str, namespace: &str) -> u16 {
        let params = WatchParams::default().timeout(1);
        status(self.api(store, namespace).watch(&params, "0").await)
    }
}

/// The custom resources of `store` in `namespace`, reached with `client`.
fn resources(client: &kube::Client, store: &str, namespace: &str) -> Api<DynamicObject> {
    let names = CrdNames::of(&store.parse().unwrap()).unwrap();
    let resource = ApiResource {
        api_version: names.api_version(),
        group: names.group,
        version: names.version.into(),
        kind: names.kind,
        plural: names.plural,
    };
    Api::namespaced_with(client.clone(), namespace, &resource)
}

/// 200 for a success, else the apiserver's status code.
fn status<T>(result: kube::Result<T>) -> u16 {
    match result {
        Ok(_) => 200,
        Err(kube::Error::Api(status)) => status.code,
        Err(e) => panic!("not an answer of the apiserver: {e}"),
    }
}

/// Asserts that `result` is the exchange's refusal, naming the principal and the store.
fn assert_denied<T: std::fmt::Debug>(result: Result<T, ExchangeError>, who: &str, store: &str) {
    let err = result.expect_err("refused");
    let message = err.to_string();
    assert!(matches!(err, ExchangeError::Denied(_)), "{message}");
    assert!(message.starts_with(store), "{message}");
    assert!(message.contains(&format!("system:serviceaccount:{who}")), "{message}");
}

/// Runs `knactor deploy apps/retail --namespace NAMESPACE -o OUT --apply` as the admin.
fn deploy(namespace: &str, out: &Path) -> String {
    deploy_app(&repo(), "apps/retail", namespace, out)
}

/// Runs `knactor deploy APP --namespace NAMESPACE -o OUT --apply` in `dir` as the admin.
fn deploy_app(dir: &Path, app: &str, namespace: &str, out: &Path) -> String {
    let output = knactor()
        .env("KUBECONFIG", shared_kube_apiserver().kubeconfig())
        .current_dir(dir)
        .args(["deploy", app, "--namespace", namespace, "--apply", "-o"])
        .arg(out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "knactor deploy failed: {stderr}\n{stdout}");
    stdout
}

#[test]
fn deployed_retail_gives_each_service_account_its_own_stores_only() {
    let server = shared_kube_apiserver();
    let namespace = fresh_namespace("deploy");
    let dir = tempfile::tempdir().unwrap();
    let out: PathBuf = dir.path().join("manifests");
    let printed = deploy(&namespace, &out);
    for line in [
        "CustomResourceDefinition orders.checkout.knactor.dev applied",
        &format!("Namespace {namespace} applied"),
        "Role knactor-checkout applied",
        "Deployment integrator-checkout applied",
        "seed objects present",
    ] {
        assert!(printed.contains(line), "no `{line}` in:\n{printed}");
    }
    assert!(out.join("knactor-checkout.yaml").exists() && out.join("Dockerfile").exists());
    let app = AppConfig::load(&repo().join("apps/retail")).unwrap();
    let ns = namespace.as_str();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let admin = client(&server.kubeconfig()).await;

        // The seeds are there, under the names the exchange gives them.
        let as_admin = KubeExchange::with_kubeconfig(&server.kubeconfig(), ns).await.unwrap();
        let rates: StoreRef = "currency/rates".parse().unwrap();
        as_admin.register(&rates, &app.stores()[&rates]).await.unwrap();
        assert!(as_admin.get(&rates, "EUR").await.unwrap().is_some(), "the EUR rate is seeded");

        // checkout reads and writes its orders, and nothing else.
        let checkout = principal(&admin, ns, "knactor-checkout", dir.path()).await;
        let orders = checkout.register(&app, "checkout/orders").await.unwrap();
        checkout.exchange.write(&orders, Write::create("o1", order_data(10.0))).await.unwrap();
        let patch = json!({"status": "declined"});
        checkout.exchange.write(&orders, Write::patch("o1", patch)).await.unwrap();
        let o1 = checkout.exchange.get(&orders, "o1").await.unwrap().expect("o1");
        assert_eq!(o1.data["status"], "declined");
        let who = format!("{ns}:knactor-checkout");
        assert_denied(checkout.list(&app, "payment/charges").await, &who, "payment/charges");
        assert_eq!(checkout.list_status("payment/charges", ns).await, 403);
        assert_eq!(checkout.list_status("checkout/orders", ns).await, 200);
        assert_eq!(checkout.list_status("checkout/orders", "default").await, 403);
        // No rights on CRDs or namespaces either: the operator applies those.
        let crds = ApiResource {
            group: "apiextensions.k8s.io".into(),
            version: "v1".into(),
            api_version: "apiextensions.k8s.io/v1".into(),
            kind: "CustomResourceDefinition".into(),
            plural: "customresourcedefinitions".into(),
        };
        let crds: Api<DynamicObject> = Api::all_with(checkout.client.clone(), &crds);
        assert_eq!(status(crds.list(&ListParams::default()).await), 403);
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> =
            Api::all(checkout.client.clone());
        assert_eq!(status(namespaces.list(&ListParams::default()).await), 403);

        // The checkout Cast reads and writes orders, charges and shipments, deletes nothing,
        // and may not see carts.
        let cast = principal(&admin, ns, "integrator-checkout", dir.path()).await;
        let who = format!("{ns}:integrator-checkout");
        let orders = cast.register(&app, "checkout/orders").await.unwrap();
        let charges = cast.register(&app, "payment/charges").await.unwrap();
        cast.register(&app, "shipping/shipments").await.unwrap();
        let paid = json!({"paymentID": "tx-1"});
        cast.exchange.write(&orders, Write::patch("o1", paid)).await.unwrap();
        let charge = json!({"amount": 10, "card": {"number": "4242"}});
        cast.exchange.write(&charges, Write::patch("o1", charge).or_create()).await.unwrap();
        assert_denied(
            cast.exchange.write(&orders, Write::delete("o1")).await,
            &who,
            "checkout/orders",
        );
        assert_denied(cast.list(&app, "cart/carts").await, &who, "cart/carts");
        assert_eq!(cast.list_status("cart/carts", ns).await, 403);

        // It keeps its own checkpoint (creates it, then replaces it), may not list the
        // checkpoints, and can neither read, replace nor delete another Cast's.
        let checkpoints = integrators::cast::checkpoint_store();
        let schema = integrators::cast::checkpoint_schema();
        as_admin.register(&checkpoints, &schema).await.unwrap();
        cast.exchange.register(&checkpoints, &schema).await.unwrap();
        for position in [1, 2] {
            let mine = json!({"positions": {"checkout/orders": position}});
            cast.exchange.write(&checkpoints, Write::put("cast.checkout", mine)).await.unwrap();
        }
        let theirs = Write::put("cast.email", json!({"positions": {}}));
        as_admin.write(&checkpoints, theirs).await.unwrap();
        let read = cast.exchange.get(&checkpoints, "cast.email").await;
        assert_denied(read, &who, &checkpoints.to_string());
        let checkpoints = checkpoints.to_string();
        let mut theirs = resources(&admin, &checkpoints, ns).get("cast.email").await.unwrap();
        theirs.data["data"] = json!({"positions": {"checkout/orders": 1}});
        let api = cast.api(&checkpoints, ns);
        assert_eq!(status(api.replace("cast.email", &PostParams::default(), &theirs).await), 403);
        assert_eq!(status(api.delete("cast.email", &DeleteParams::default()).await), 403);
        assert_eq!(cast.list_status(&checkpoints, ns).await, 403);

        // The email Cast only writes confirmations: it reads the one it merges into, creates
        // or replaces it, and may neither list nor watch the store.
        let email = principal(&admin, ns, "integrator-email", dir.path()).await;
        let who = format!("{ns}:integrator-email");
        let confirmations = email.register(&app, "email/confirmations").await.unwrap();
        for total in [10, 12] {
            let confirmation = json!({"to": "ada@example.com", "total": total});
            let write = Write::patch("o1", confirmation).or_create();
            email.exchange.write(&confirmations, write).await.unwrap();
        }
        let o1 = email.exchange.get(&confirmations, "o1").await.unwrap().expect("o1");
        assert_eq!(o1.data["total"], 12);
        assert_denied(email.exchange.list(&confirmations).await, &who, "email/confirmations");
        assert_eq!(email.list_status("email/confirmations", ns).await, 403);
        assert_eq!(email.watch_status("email/confirmations", ns).await, 403);
        assert_eq!(email.watch_status("checkout/orders", ns).await, 200);

        // The catalog Cast cascades deletions to prices: a deletion there goes through.
        let catalog = principal(&admin, ns, "integrator-catalog", dir.path()).await;
        let prices = catalog.register(&app, "cart/prices").await.unwrap();
        let price = json!({"name": "Lamp", "priceUsd": 12.5});
        catalog.exchange.write(&prices, Write::put("lamp-test", price)).await.unwrap();
        catalog.exchange.write(&prices, Write::delete("lamp-test")).await.unwrap();
        assert!(catalog.exchange.get(&prices, "lamp-test").await.unwrap().is_none());
    });
}

/// The retail app split as the deployment splits it, each part outside the cluster with its
/// own ServiceAccount's token: checkout, payment and shipping in `knactor up --only` processes,
/// the checkout Cast in `knactor integrate`. An order placed is paid and shipped.
#[test]
fn the_deployed_retail_app_pays_and_ships_under_least_privilege() {
    let server = shared_kube_apiserver();
    let namespace = fresh_namespace("split");
    let dir = tempfile::tempdir().unwrap();
    deploy(&namespace, &dir.path().join("manifests"));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let principals = ["knactor-checkout", "knactor-payment", "knactor-shipping"];
    let principals = principals.into_iter().chain(["integrator-checkout", "integrator-email"]);
    let kubeconfigs: Vec<PathBuf> = runtime.block_on(async {
        let admin = client(&server.kubeconfig()).await;
        let mut kubeconfigs = Vec::new();
        for name in principals {
            kubeconfigs.push(kubeconfig(&admin, &namespace, name, dir.path()).await);
        }
        kubeconfigs
    });
    let as_principal = |kubeconfig: &PathBuf| {
        let mut command = knactor();
        command.env("KUBECONFIG", kubeconfig);
        command
    };
    let app = repo().join("apps/retail");
    let exchange = format!("kube://?namespace={namespace}");
    let knactor_args = |only| ["--only", only, "--no-integrators", "--exchange", &exchange];
    let checkout = Up::start_as(as_principal(&kubeconfigs[0]), &app, &knactor_args("checkout"));
    let _payment = Up::start_as(as_principal(&kubeconfigs[1]), &app, &knactor_args("payment"));
    let _shipping = Up::start_as(as_principal(&kubeconfigs[2]), &app, &knactor_args("shipping"));
    let spec = repo().join("dxg-specs/retail/checkout.yaml");
    let (spec, app_arg) = (spec.to_string_lossy(), app.to_string_lossy());
    let integrate = ["-f", &spec, "--app", &app_arg, "--exchange", &exchange];
    let _cast = Up::integrate_as(as_principal(&kubeconfigs[3]), &integrate);
    let spec = repo().join("dxg-specs/retail/email.yaml");
    let spec = spec.to_string_lossy();
    let integrate = ["-f", &spec, "--app", &app_arg, "--exchange", &exchange];
    let _email = Up::integrate_as(as_principal(&kubeconfigs[4]), &integrate);

    let client = checkout.client();
    let mut order = order_data(150.0);
    order["email"] = "ada@example.com".into();
    runtime.block_on(client.put("checkout/orders", "o1", order, None)).unwrap();
    let order = eventually_within(Duration::from_secs(60), "the order to be shipped", || {
        let order = checkout.cli(&["get", "checkout/orders", "o1", "-o", "json"]);
        let order: serde_json::Value = serde_json::from_slice(&order.stdout).ok()?;
        (order["data"]["status"] != "placed").then_some(order)
    });
    let data = &order["data"];
    assert_eq!(data["status"], "completed", "{data}");
    assert!(data["paymentID"].is_string(), "{data}");
    assert!(data["trackingID"].as_str().unwrap().starts_with("1Z"), "{data}");

    // The email Cast, which may only write confirmations, confirms the completed order.
    let confirmations: StoreRef = "email/confirmations".parse().unwrap();
    let as_admin = runtime.block_on(async {
        let exchange =
            KubeExchange::with_kubeconfig(&server.kubeconfig(), &namespace).await.unwrap();
        let schema = &AppConfig::load(&app).unwrap().stores()[&confirmations];
        exchange.register(&confirmations, schema).await.unwrap();
        exchange
    });
    let confirmation = eventually_within(Duration::from_secs(30), "a confirmation", || {
        runtime.block_on(as_admin.get(&confirmations, "o1")).unwrap()
    });
    assert_eq!(confirmation.data["to"], "ada@example.com", "{:?}", confirmation.data);
    assert_eq!(confirmation.data["trackingID"], data["trackingID"]);
}

/// Field-level write rights: each integrator's ValidatingAdmissionPolicy lets it change only
/// the fields of `.data` its edges set, checked by the apiserver with the integrator's own
/// token; the knactor owning the store is not limited.
#[test]
fn deployed_integrators_write_only_the_fields_their_edges_set() {
    let server = shared_kube_apiserver();
    let namespace = fresh_namespace("fields");
    let dir = tempfile::tempdir().unwrap();
    deploy(&namespace, &dir.path().join("manifests"));
    let app = AppConfig::load(&repo().join("apps/retail")).unwrap();
    let ns = namespace.as_str();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (admin, checkout, cast, frontend) = runtime.block_on(async {
        let admin = client(&server.kubeconfig()).await;
        let checkout = principal(&admin, ns, "knactor-checkout", dir.path()).await;
        let cast = principal(&admin, ns, "integrator-checkout", dir.path()).await;
        let frontend = principal(&admin, ns, "integrator-frontend", dir.path()).await;
        for principal in [&checkout, &cast, &frontend] {
            principal.register(&app, "checkout/orders").await.unwrap();
        }
        (admin, checkout, cast, frontend)
    });
    let orders: StoreRef = "checkout/orders".parse().unwrap();
    let mut order = order_data(10.0);
    order["email"] = "ada@example.com".into();
    runtime.block_on(checkout.exchange.write(&orders, Write::create("o1", order))).unwrap();

    // The policy is enforced once the apiserver has loaded it: until a dry run of a write the
    // checkout Cast may not make (the shopper's email) is refused.
    let api = cast.api("checkout/orders", ns);
    let dry_run = PostParams { dry_run: true, ..Default::default() };
    eventually_within(Duration::from_secs(30), "the write policy to be enforced", || {
        runtime.block_on(async {
            let mut o1 = api.get("o1").await.unwrap();
            o1.data["data"]["email"] = "eve@example.com".into();
            (status(api.replace("o1", &dry_run, &o1).await) == 403).then_some(())
        })
    });

    runtime.block_on(async {
        let before = resources(&admin, "checkout/orders", ns).get("o1").await.unwrap();
        // The checkout Cast sets paymentID, paymentError, trackingID and shippingCost of
        // orders: setting the email, the status or the total, or removing the card, is
        // refused, naming the fields it may write, and changes nothing.
        let who = format!("{ns}:integrator-checkout");
        for (patch, field) in [
            (json!({"email": "eve@example.com"}), "email"),
            (json!({"status": "completed", "shippingCost": 5}), "status"),
            (json!({"total": 0}), "total"),
            (json!({"card": null}), "card"),
        ] {
            let refused = cast.exchange.write(&orders, Write::patch("o1", patch)).await;
            let message = refused.as_ref().err().map(ToString::to_string).unwrap_or_default();
            assert_denied(refused, &who, "checkout/orders");
            let rights = format!(
                "User \"system:serviceaccount:{who}\" may write only paymentError, paymentID, \
                 shippingCost, trackingID of checkout/orders objects, not {field}"
            );
            assert!(message.ends_with(&rights), "{message}");
        }
        let after = resources(&admin, "checkout/orders", ns).get("o1").await.unwrap();
        assert_eq!(after.metadata.resource_version, before.metadata.resource_version);
        assert_eq!(after.data["data"], before.data["data"]);

        // Its own fields it sets, changes and removes.
        let shipped = json!({"shippingCost": 5, "trackingID": "1Z-1"});
        cast.exchange.write(&orders, Write::patch("o1", shipped)).await.unwrap();
        let changed = json!({"shippingCost": 7.5, "trackingID": null});
        cast.exchange.write(&orders, Write::patch("o1", changed)).await.unwrap();
        let o1 = cast.exchange.get(&orders, "o1").await.unwrap().expect("o1");
        assert_eq!(o1.data["shippingCost"], 7.5);
        assert!(o1.data.get("trackingID").is_none(), "{}", o1.data);

        // The frontend Cast places orders: it creates one with the fields it sets, not with a
        // payment, and may not set the payment of an order either.
        let who = format!("{ns}:integrator-frontend");
        let placed = json!({
            "items": [{"sku": "lamp", "qty": 1, "price": 10}],
            "address": {"street": "1 rue de Rivoli", "city": "Paris", "country": "FR"},
            "email": "ada@example.com",
        });
        let place = |name: &str, data: serde_json::Value| Write::patch(name, data).or_create();
        frontend.exchange.write(&orders, place("o2", placed.clone())).await.unwrap();
        let mut paid = placed;
        paid["paymentID"] = "tx-forged".into();
        let refused = frontend.exchange.write(&orders, place("o3", paid)).await;
        assert_denied(refused, &who, "checkout/orders");
        assert!(frontend.exchange.get(&orders, "o3").await.unwrap().is_none());
        let forged = Write::patch("o1", json!({"paymentID": "tx-forged"}));
        assert_denied(frontend.exchange.write(&orders, forged).await, &who, "checkout/orders");

        // The knactor owning the orders is not limited by the integrators' policies.
        let done = json!({"status": "completed", "email": "bob@example.com", "paymentID": "tx-1"});
        checkout.exchange.write(&orders, Write::patch("o1", done)).await.unwrap();
        let o1 = checkout.exchange.get(&orders, "o1").await.unwrap().expect("o1");
        assert_eq!(
            (&o1.data["status"], &o1.data["paymentID"]),
            (&json!("completed"), &json!("tx-1"))
        );
    });
}

/// A field the schema gives a `default`, which the apiserver fills in before admission, may be
/// in an integrator's create with that value, and only with it.
#[test]
fn an_integrator_creates_objects_with_the_defaults_of_fields_it_does_not_set() {
    let dir = tempfile::tempdir().unwrap();
    let file = |path: &str, text: &str| {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    file(
        "app/app.yaml",
        "apiVersion: knactor.dev/v1\nkind: App\nmetadata: {name: stock}\nspec:\n  knactors: \
         [knactors/*.yaml]\n  integrators: [specs/*.yaml]\n",
    );
    file(
        "app/knactors/stock.yaml",
        "apiVersion: knactor.dev/v1\nkind: Knactor\nmetadata: {name: stock}\nspec:\n  stores:\n    \
         - name: sources\n      schema: {type: object, properties: {name: {type: string}}}\n    \
         - name: items\n      schema:\n        type: object\n        properties:\n          \
         name: {type: string, x-knactor-ingest: true}\n          state: {type: string, default: \
         new}\n          count: {type: integer, default: 0}\n          note: {type: string}\n",
    );
    file(
        "app/specs/shelf.yaml",
        "apiVersion: knactor.dev/v1\nkind: Cast\nmetadata: {name: shelf}\nspec:\n  inputs:\n    \
         source: stock/sources\n    item: stock/items\n  edges:\n    - name: shelve\n      \
         from: [source]\n      to: item\n      set: {name: source.name}\n",
    );
    let namespace = fresh_namespace("defaults");
    let ns = namespace.as_str();
    deploy_app(dir.path(), "app", ns, &dir.path().join("manifests"));
    let app = AppConfig::load(&dir.path().join("app")).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let shelf = runtime.block_on(async {
        let admin = client(&shared_kube_apiserver().kubeconfig()).await;
        let shelf = principal(&admin, ns, "integrator-shelf", dir.path()).await;
        shelf.register(&app, "stock/items").await.unwrap();
        shelf
    });
    let items: StoreRef = "stock/items".parse().unwrap();
    let place = |name: &str, data: serde_json::Value| Write::patch(name, data).or_create();

    // Enforced once a dry run of a create with a state of its own is refused.
    let api = shelf.api("stock/items", ns);
    let dry_run = PostParams { dry_run: true, ..Default::default() };
    eventually_within(Duration::from_secs(30), "the write policy to be enforced", || {
        let item: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "stock.knactor.dev/v1", "kind": "Items",
            "metadata": {"name": "probe"}, "data": {"name": "p", "state": "sold"},
        }))
        .unwrap();
        (status(runtime.block_on(api.create(&dry_run, &item))) == 403).then_some(())
    });

    runtime.block_on(async {
        let who = format!("{ns}:integrator-shelf");
        shelf.exchange.write(&items, place("i1", json!({"name": "lamp"}))).await.unwrap();
        let i1 = shelf.exchange.get(&items, "i1").await.unwrap().expect("i1");
        assert_eq!(i1.data, json!({"name": "lamp", "state": "new", "count": 0}));
        shelf.exchange.write(&items, Write::patch("i1", json!({"name": "desk"}))).await.unwrap();
        for (name, data) in [
            ("i1", json!({"state": "sold"})),
            ("i2", json!({"name": "chair", "state": "sold"})),
            ("i3", json!({"name": "chair", "note": "n"})),
        ] {
            let refused = shelf.exchange.write(&items, place(name, data)).await;
            assert_denied(refused, &who, "stock/items");
        }
        let same = json!({"name": "chair", "state": "new", "count": 0});
        shelf.exchange.write(&items, place("i2", same)).await.unwrap();
    });
}

/// The deny matrix of the deployed retail app on the apiserver: each principal's
/// ServiceAccount (and a viewer's, bound to no Role) × every Object store × get, list, watch,
/// put, patch, delete, and every field read and written, with values the stores' schemas
/// take. As the ServiceAccount alone, the apiserver allows what its Role grants and its
/// admission policy lets it write, nothing else; behind the handle held to its rights, the
/// cells the rights allow and the Role grants work, and every other is denied.
#[test]
fn the_deny_matrix_of_the_deployed_retail_app_holds_on_the_apiserver() {
    let server = shared_kube_apiserver();
    let namespace = fresh_namespace("matrix");
    let ns = namespace.as_str();
    let dir = tempfile::tempdir().unwrap();
    deploy(ns, &dir.path().join("manifests"));
    let app = AppConfig::load(&repo().join("apps/retail")).unwrap();
    let mut principals = app.rights().unwrap();
    principals.push(Rights::new("viewer"));
    let schemas = app.stores();
    let stores: BTreeMap<StoreRef, Samples> =
        schemas.iter().map(|(store, schema)| (store.clone(), Samples::of(store, schema))).collect();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (probed, alone, behind) = runtime.block_on(async {
        let admin_client = client(&server.kubeconfig()).await;
        let admin = KubeExchange::with_kubeconfig(&server.kubeconfig(), ns).await.unwrap();
        for (store, schema) in &schemas {
            admin.register(store, schema).await.unwrap();
        }
        let accounts: Api<ServiceAccount> = Api::namespaced(admin_client.clone(), ns);
        let viewer = serde_json::from_value(json!({"metadata": {"name": "viewer"}})).unwrap();
        accounts.create(&PostParams::default(), &viewer).await.unwrap();

        let (mut alone, mut behind) = (Tally::default(), Tally::default());
        let mut probed = 0;
        for rights in &principals {
            // A knactor without a reconciler runs nowhere: it has no ServiceAccount.
            let account = rights.principal().replace(':', "-");
            if accounts.get_opt(&account).await.unwrap().is_none() {
                continue;
            }
            probed += 1;
            let principal = principal(&admin_client, ns, &account, dir.path()).await;
            for (store, schema) in &schemas {
                principal.exchange.register(store, schema).await.unwrap();
            }
            let verbs = role_verbs(&admin_client, ns, &account, &stores).await;
            // The Role reaches no store, and writes none, beyond the rights.
            for (store, granted) in &verbs {
                let grant = rights.on(store);
                let grant = grant.unwrap_or_else(|| panic!("{account}'s Role reaches {store}"));
                let writes = granted.contains("create") || granted.contains("update");
                assert!(!writes || grant.write.is_some(), "{account} writes {store} by its Role");
                let deletes = granted.contains("delete");
                assert!(!deletes || grant.delete, "{account} deletes in {store} by its Role");
            }
            await_admission(&principal, &admin, rights, &verbs, &stores, ns).await;
            let named = format!("system:serviceaccount:{ns}:{account}");
            let account = MatrixPrincipal { rights, named: &named };
            let exchange = Arc::new(principal.exchange);
            alone += probe(&*exchange, &admin, account, &stores, Enforcer::Rbac(&verbs)).await;
            let handle = ScopedExchange::new(exchange, rights.clone());
            let enforcer = Enforcer::RightsOnRbac(&verbs);
            behind += probe(&handle, &admin, account, &stores, enforcer).await;
        }
        (probed, alone, behind)
    });
    println!(
        "retail deny matrix on the apiserver, {probed} ServiceAccounts × {} stores: alone {alone:?}; behind their handles {behind:?}",
        stores.len()
    );
    assert!(probed > 10, "every principal that runs");
    assert!(alone.allowed > 0 && alone.denied > 0, "{alone:?}");
    assert!(behind.denied > alone.denied, "the handles add field and delete rights");
}

/// The verbs the Role `name` grants on every object of each of `stores` (none without the
/// Role).
async fn role_verbs(
    admin: &kube::Client,
    namespace: &str,
    name: &str,
    stores: &BTreeMap<StoreRef, Samples>,
) -> BTreeMap<StoreRef, BTreeSet<String>> {
    let roles: Api<Role> = Api::namespaced(admin.clone(), namespace);
    let Some(role) = roles.get_opt(name).await.unwrap() else { return BTreeMap::new() };
    let mut verbs: BTreeMap<StoreRef, BTreeSet<String>> = BTreeMap::new();
    let on_every_object =
        role.rules.iter().flatten().filter(|r| r.resource_names.as_ref().is_none_or(Vec::is_empty));
    for rule in on_every_object {
        for store in stores.keys() {
            let names = CrdNames::of(store).unwrap();
            let group = rule.api_groups.iter().flatten().any(|g| *g == names.group);
            let resource = rule.resources.iter().flatten().any(|r| *r == names.plural);
            if group && resource {
                verbs.entry(store.clone()).or_default().extend(rule.verbs.iter().cloned());
            }
        }
    }
    verbs
}

/// Waits until the apiserver enforces the admission policy of the principal of `rights`: on
/// each store it may update but write some fields of only, a dry run changing a field it may
/// not write is refused.
async fn await_admission(
    principal: &Principal,
    admin: &KubeExchange,
    rights: &Rights,
    verbs: &BTreeMap<StoreRef, BTreeSet<String>>,
    stores: &BTreeMap<StoreRef, Samples>,
    namespace: &str,
) {
    for (store, grant) in rights.grants() {
        let (Some(Fields::Only(only)), Some(samples)) = (&grant.write, stores.get(store)) else {
            continue;
        };
        let updates = verbs.get(store).is_some_and(|v| v.contains("update"));
        let Some(field) = samples.fields().find(|f| !only.contains(*f)).filter(|_| updates) else {
            continue;
        };
        admin.write(store, Write::put("probe", samples.start())).await.unwrap();
        let api = principal.api(&store.to_string(), namespace);
        let dry_run = PostParams { dry_run: true, ..Default::default() };
        let what = format!("{} to be held to its fields of {store}", rights.principal());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let mut object = api.get("probe").await.unwrap();
            object.data["data"][field] = samples.other(field).clone();
            if status(api.replace("probe", &dry_run, &object).await) == 403 {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
