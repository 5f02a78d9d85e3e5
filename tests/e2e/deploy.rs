//! `knactor deploy --apply` on a real kube-apiserver, and the least privilege it grants: each
//! ServiceAccount, authenticated with a token from the TokenRequest API (not impersonated by
//! the admin), reaches the stores it needs and is refused (403) everything else.

use std::path::{Path, PathBuf};

use data_exchange::testing::{fresh_namespace, shared_kube_apiserver};
use data_exchange::{ExchangeError, KubeExchange, ObjectExchange, StoreRef, Write};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use knactor::AppConfig;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, PostParams};
use kube::config::Kubeconfig;
use serde_json::json;

use crate::harness::{knactor, repo};
use crate::retail::order_data;

/// What a test holds to act as a principal of the deployed app.
struct Principal {
    client: kube::Client,
    exchange: KubeExchange,
}

/// A client of the shared apiserver with the credentials in `kubeconfig`.
async fn client(kubeconfig: &Path) -> kube::Client {
    let kubeconfig = Kubeconfig::read_from(kubeconfig).unwrap();
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
    kube::Client::try_from(config).unwrap()
}

/// The ServiceAccount `name` of `namespace`, with a token the admin asks the TokenRequest API
/// for, written into a kubeconfig of its own in `dir`.
async fn principal(admin: &kube::Client, namespace: &str, name: &str, dir: &Path) -> Principal {
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
    let exchange = KubeExchange::with_kubeconfig(&kubeconfig, namespace).await.unwrap();
    Principal { client: client(&kubeconfig).await, exchange }
}

impl Principal {
    /// Registers `store` (with its schema in `app`) on this principal's exchange.
    async fn register(&self, app: &AppConfig, store: &str) -> Result<StoreRef, ExchangeError> {
        let store: StoreRef = store.parse().unwrap();
        self.exchange.register(&store, &app.stores()[&store]).await.map(|()| store)
    }

    /// The HTTP status of listing `store`'s custom resources in `namespace` as this principal.
    async fn list_status(&self, store: &str, namespace: &str) -> u16 {
        let (knactor, plural) = store.split_once('/').unwrap();
        let resource = ApiResource {
            group: format!("{knactor}.knactor.dev"),
            version: "v1".into(),
            api_version: format!("{knactor}.knactor.dev/v1"),
            kind: String::new(),
            plural: plural.into(),
        };
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), namespace, &resource);
        status(api.list(&ListParams::default()).await)
    }
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
    assert!(matches!(err, ExchangeError::Denied { .. }), "{message}");
    assert!(message.starts_with(store), "{message}");
    assert!(message.contains(&format!("system:serviceaccount:{who}")), "{message}");
}

/// Runs `knactor deploy apps/retail --namespace NAMESPACE -o OUT --apply` as the admin.
fn deploy(namespace: &str, out: &Path) -> String {
    let output = knactor()
        .env("KUBECONFIG", shared_kube_apiserver().kubeconfig())
        .current_dir(repo())
        .args(["deploy", "apps/retail", "--namespace", namespace, "--apply", "-o"])
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
        assert_denied(checkout.register(&app, "payment/charges").await, &who, "payment/charges");
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
        assert_denied(cast.register(&app, "cart/carts").await, &who, "cart/carts");
        assert_eq!(cast.list_status("cart/carts", ns).await, 403);

        // It keeps its own checkpoint, and cannot read another Cast's.
        let checkpoints = integrators::cast::checkpoint_store();
        let schema = integrators::cast::checkpoint_schema();
        as_admin.register(&checkpoints, &schema).await.unwrap();
        cast.exchange.register(&checkpoints, &schema).await.unwrap();
        let mine = Write::put("cast.checkout", json!({"positions": {}}));
        cast.exchange.write(&checkpoints, mine).await.unwrap();
        let theirs = Write::put("cast.email", json!({"positions": {}}));
        as_admin.write(&checkpoints, theirs).await.unwrap();
        let read = cast.exchange.get(&checkpoints, "cast.email").await;
        assert_denied(read, &who, &checkpoints.to_string());
    });
}
