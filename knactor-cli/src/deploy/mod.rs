//! `knactor deploy APP_DIR` (DESIGN §12): the files a Kubernetes cluster needs to run an app
//! with its stores as custom resources and each knactor and integrator spec as its own
//! Deployment, holding the rights to its own stores only (and an integrator, to the fields its
//! edges set); `--apply` applies them.
//!
//! Layout:
//! - `access`: the rights each knactor and Cast spec needs, store by store, and the fields a
//!   Cast spec may write.
//! - `manifests`: the Kubernetes objects, file by file (pure).
//! - `image`: the Dockerfile of the image the Deployments run, and the app's place in it.
//! - `apply`: server-side apply to the cluster of the kubeconfig.

mod access;
#[cfg(feature = "kube")]
mod apply;
mod image;
mod manifests;

use std::path::{Path, PathBuf};

use clap::Args;
use data_exchange::StoreRef;
use data_exchange::crd::CrdError;
use integrators::source::{Diagnostics, SpecFile};
use knactor::AppConfig;

use self::image::Build;
use self::manifests::{Integrator, ManifestFile, Target};

#[derive(Debug, Args)]
pub(super) struct DeployArgs {
    /// The app directory (holding app.yaml).
    app_dir: PathBuf,
    /// The namespace the app runs in (default: the app's name).
    #[arg(long)]
    namespace: Option<String>,
    /// The container image that runs `knactor` (default: knactor:VERSION, this binary's).
    #[arg(long)]
    image: Option<String>,
    /// Where to write the files (default: deploy/APP under the current directory, which is
    /// also the Docker build context: the workspace root).
    #[arg(short, long)]
    out: Option<PathBuf>,
    /// Also applies the objects, server-side, to the cluster of the kubeconfig.
    #[arg(long)]
    apply: bool,
}

/// Why an app cannot be deployed as it is.
#[derive(Debug, thiserror::Error)]
pub(super) enum DeployError {
    /// A store cannot become a custom resource.
    #[error("store {store} cannot be a Kubernetes resource: {source}")]
    Crd {
        /// The store.
        store: StoreRef,
        /// Why not.
        #[source]
        source: Box<CrdError>,
    },
    /// A name Kubernetes would refuse.
    #[error(
        "{what} name `{name}` is not a DNS-1123 label (lowercase letters, digits and '-', \
         starting and ending with a letter or digit, at most 63 characters)"
    )]
    InvalidName {
        /// What it names.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// A file of the app is not where the image build can copy it from.
    #[error(
        "{path} is outside the Docker build context {context}: run `knactor deploy` from a \
         directory holding the app and the files it names"
    )]
    OutsideContext {
        /// The file.
        path: PathBuf,
        /// The build context.
        context: PathBuf,
    },
}

/// Writes the app's deployment files and prints their paths; applies them with `--apply`.
pub(super) async fn run(args: DeployArgs) -> anyhow::Result<()> {
    let config = AppConfig::load_for(&args.app_dir, Some("kube"))?;
    let target = Target {
        namespace: args.namespace.unwrap_or_else(|| config.name().to_owned()),
        image: args.image.unwrap_or_else(|| format!("knactor:{}", env!("CARGO_PKG_VERSION"))),
    };
    let files = manifests::manifests(&config, &integrators(&config)?, &target)?;
    let out = args.out.unwrap_or_else(|| Path::new("deploy").join(config.name()));
    let context = std::env::current_dir()?;
    let outside = image::files_outside(&config)?;
    let build = Build {
        context: &context,
        app_dir: &config.dir,
        outside: &outside,
        out_dir: &out,
        image: &target.image,
    };
    let texts = files.iter().map(|f| (f.name.clone(), f.to_yaml()));
    let docker = [
        ("Dockerfile".to_owned(), build.dockerfile()?),
        ("Dockerfile.dockerignore".to_owned(), build.dockerignore()),
    ];
    std::fs::create_dir_all(&out)
        .map_err(|e| anyhow::anyhow!("creating {}: {e}", out.display()))?;
    for (name, text) in texts.chain(docker) {
        let path = out.join(name);
        std::fs::write(&path, text)
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    if args.apply {
        apply(&files, &config, &target.namespace).await?;
    }
    Ok(())
}

/// The app's integrator specs, checked against its stores, with their paths in the image.
fn integrators(config: &AppConfig) -> anyhow::Result<Vec<Integrator>> {
    let schemas = config.schemas();
    let mut integrators = Vec::new();
    for path in &config.integrators {
        let file = SpecFile::read(path).map_err(Diagnostics::from)?;
        let spec = knactor::specs::check(&file, Some(&schemas))?.with_policies(&config.policies);
        let path = image::path_in_image(&config.dir, path).display().to_string();
        integrators.push(Integrator { path, spec });
    }
    Ok(integrators)
}

#[cfg(feature = "kube")]
async fn apply(files: &[ManifestFile], app: &AppConfig, namespace: &str) -> anyhow::Result<()> {
    apply::apply(files, app, namespace).await
}

#[cfg(not(feature = "kube"))]
async fn apply(_: &[ManifestFile], _: &AppConfig, _: &str) -> anyhow::Result<()> {
    anyhow::bail!("--apply needs a knactor built with the `kube` feature")
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use data_exchange::crd::CrdNames;
    use integrators::cast::checkpoint_store;
    use serde::Deserialize as _;
    use serde_json::Value;

    use super::*;

    /// The repository's `apps/retail`.
    fn retail() -> AppConfig {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../apps/retail");
        AppConfig::load(&dir).unwrap()
    }

    fn retail_files() -> Vec<ManifestFile> {
        let config = retail();
        let target = Target { namespace: "shop".into(), image: "knactor:test".into() };
        manifests::manifests(&config, &integrators(&config).unwrap(), &target).unwrap()
    }

    /// The documents of `file` as kubectl would read them: parsed back from its YAML.
    fn parsed(file: &ManifestFile) -> Vec<Value> {
        let text = file.to_yaml();
        let docs = serde_yaml::Deserializer::from_str(&text).map(Value::deserialize);
        docs.collect::<Result<_, _>>().unwrap_or_else(|e| panic!("{}: {e}\n{text}", file.name))
    }

    fn file<'a>(files: &'a [ManifestFile], name: &str) -> &'a ManifestFile {
        files.iter().find(|f| f.name == name).unwrap_or_else(|| panic!("no {name}"))
    }

    fn of_kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
        docs.iter().find(|d| d["kind"] == kind).unwrap_or_else(|| panic!("no {kind}"))
    }

    /// The verbs the Role of `file` grants, by `group/resource`.
    fn granted(file: &ManifestFile) -> BTreeMap<String, BTreeSet<String>> {
        let docs = parsed(file);
        let mut granted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for rule in of_kind(&docs, "Role")["rules"].as_array().unwrap() {
            let strings =
                |key: &str| -> Vec<String> { serde_json::from_value(rule[key].clone()).unwrap() };
            for group in strings("apiGroups") {
                for resource in strings("resources") {
                    granted
                        .entry(format!("{group}/{resource}"))
                        .or_default()
                        .extend(strings("verbs"));
                }
            }
        }
        granted
    }

    /// `knactor/store` as its Role names it: `knactor.knactor.dev/store`.
    fn resource(store: &str) -> String {
        let (knactor, store) = store.split_once('/').unwrap();
        format!("{knactor}.knactor.dev/{store}")
    }

    #[test]
    fn retail_gets_a_file_per_knactor_with_a_reconciler_and_per_spec() {
        let names: Vec<String> = retail_files().into_iter().map(|f| f.name).collect();
        let knactors = [
            "ad",
            "cart",
            "checkout",
            "currency",
            "email",
            "frontend",
            "loadgenerator",
            "payment",
            "recommendation",
            "shipping",
        ];
        let specs = ["catalog", "checkout", "email", "frontend", "loadgenerator"];
        let mut expected = vec!["namespace.yaml".to_owned(), "crds.yaml".to_owned()];
        expected.extend(knactors.map(|k| format!("knactor-{k}.yaml")));
        expected.extend(specs.map(|s| format!("integrator-{s}.yaml")));
        assert_eq!(names, expected, "productcatalog has no reconciler: it is only stores");
    }

    #[test]
    fn every_document_is_a_named_kubernetes_object() {
        for file in retail_files() {
            for doc in parsed(&file) {
                for field in ["apiVersion", "kind"] {
                    assert!(doc[field].is_string(), "{}: no {field} in {doc}", file.name);
                }
                assert!(doc["metadata"]["name"].is_string(), "{}: unnamed {doc}", file.name);
            }
        }
        let files = retail_files();
        let crds = parsed(file(&files, "crds.yaml"));
        let names: Vec<&str> =
            crds.iter().map(|c| c["metadata"]["name"].as_str().unwrap()).collect();
        assert!(names.contains(&"orders.checkout.knactor.dev"), "{names:?}");
        assert!(names.contains(&"products.productcatalog.knactor.dev"), "{names:?}");
    }

    #[test]
    fn each_knactor_may_touch_its_own_stores_and_what_a_policy_grants_it_only() {
        let config = retail();
        let files = retail_files();
        for knactor in config.knactors.iter().filter(|k| k.spec.reconciler.is_some()) {
            let name = &knactor.metadata.name;
            let file = file(&files, &format!("knactor-{name}.yaml"));
            let own: BTreeSet<String> = config
                .stores()
                .into_keys()
                .filter(|s| s.knactor() == name)
                .map(|s| resource(&s.to_string()))
                .collect();
            let mut granted = granted(file);
            if name != "checkout" {
                // Retail's policy: recommendation reads orders (one field of them, which RBAC
                // cannot tell).
                let orders = granted.remove(&resource("checkout/orders"));
                let orders: Option<Vec<String>> = orders.map(|v| v.into_iter().collect());
                let reads = (name == "recommendation")
                    .then(|| ["get", "list", "watch"].map(String::from).to_vec());
                assert_eq!(orders, reads, "{name}");
            }
            assert_eq!(granted.keys().cloned().collect::<BTreeSet<_>>(), own, "{name}");
            let all = ["create", "delete", "get", "list", "update", "watch"];
            for verbs in granted.values() {
                assert_eq!(verbs.iter().collect::<Vec<_>>(), all, "{name}: {verbs:?}");
            }
            let docs = parsed(file);
            let deployment = of_kind(&docs, "Deployment");
            let pod = &deployment["spec"]["template"]["spec"];
            assert_eq!(pod["serviceAccountName"], format!("knactor-{name}"));
            let args: Vec<String> =
                serde_json::from_value(pod["containers"][0]["args"].clone()).unwrap();
            let only = ["up", "/app", "--only", name, "--no-integrators"];
            assert_eq!(args[..5], only, "{args:?}");
            assert_eq!(args[5..], ["--exchange", "kube://?namespace=shop"]);
        }
    }

    #[test]
    fn a_policy_holding_a_knactor_to_some_fields_of_another_store_is_its_admission_policy() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let app = format!(
            "apiVersion: knactor.dev/v1\nkind: App\nmetadata: {{name: retail}}\nspec:\n  knactors: [{}]\n  integrators: [{}]\n  policies: [policy.yaml]\n",
            repo.join("apps/retail/knactors/*.yaml").display(),
            repo.join("dxg-specs/retail/*.yaml").display(),
        );
        std::fs::write(dir.path().join("app.yaml"), app).unwrap();
        let policy = "apiVersion: knactor.dev/v1\nkind: Policy\nmetadata: {name: notes}\nspec:\n  grants:\n    - {principal: 'knactor:shipping', store: checkout/orders, read: true, write: [trackingID]}\n";
        std::fs::write(dir.path().join("policy.yaml"), policy).unwrap();
        let config = AppConfig::load(dir.path()).unwrap();
        let target = Target { namespace: "shop".into(), image: "knactor:test".into() };
        let files = manifests::manifests(&config, &integrators(&config).unwrap(), &target);
        let files = files.unwrap();
        let shipping = file(&files, "knactor-shipping.yaml");

        // RBAC: it reads and merges into orders, and deletes none.
        let orders = granted(shipping).remove(&resource("checkout/orders")).unwrap();
        let orders: Vec<&str> = orders.iter().map(String::as_str).collect();
        assert_eq!(orders, ["create", "get", "list", "update", "watch"]);
        // Admission: on orders, as its ServiceAccount, it changes `trackingID` only; its own
        // stores are not limited.
        let docs = parsed(shipping);
        let policy = of_kind(&docs, "ValidatingAdmissionPolicy").to_string();
        assert!(policy.contains("trackingID") && policy.contains("orders"), "{policy}");
        assert!(!policy.contains("shipments"), "its own stores are its own: {policy}");
        let binding = of_kind(&docs, "ValidatingAdmissionPolicyBinding");
        assert_eq!(
            binding["spec"]["policyName"],
            of_kind(&docs, "ValidatingAdmissionPolicy")["metadata"]["name"]
        );
        assert!(policy.contains("system:serviceaccount:shop:knactor-shipping"), "{policy}");
        // Without the policy, no admission policy holds it.
        let docs = parsed(file(&retail_files(), "knactor-shipping.yaml"));
        assert!(!docs.iter().any(|d| d["kind"] == "ValidatingAdmissionPolicy"));
    }

    #[test]
    fn each_integrator_reads_what_its_spec_reads_and_writes_what_it_writes() {
        let config = retail();
        let files = retail_files();
        for path in &config.integrators {
            let spec: Value =
                serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
            let name = spec["metadata"]["name"].as_str().unwrap();
            let store_of = |alias: &Value| {
                resource(spec["spec"]["inputs"][alias.as_str().unwrap()].as_str().unwrap())
            };
            let edges = spec["spec"]["edges"].as_array().unwrap();
            let reads: BTreeSet<String> =
                edges.iter().flat_map(|e| e["from"].as_array().unwrap()).map(store_of).collect();
            let writes: BTreeSet<String> = edges.iter().map(|e| store_of(&e["to"])).collect();

            let file = file(&files, &format!("integrator-{name}.yaml"));
            let mut granted = granted(file);
            let names = CrdNames::of(&checkpoint_store()).unwrap();
            let checkpoints = granted.remove(&format!("{}/{}", names.group, names.plural));
            let with = |verb: &str| -> BTreeSet<String> {
                granted.iter().filter(|(_, v)| v.contains(verb)).map(|(r, _)| r.clone()).collect()
            };
            assert_eq!(with("watch"), reads, "{name} reads");
            assert_eq!(with("create"), writes, "{name} writes");
            assert_eq!(with("update"), writes, "{name} writes");
            assert!(with("delete").is_subset(&writes), "{name} deletes");
            assert!(with("patch").is_empty(), "the exchange sends no PATCH");
            // A store only written, without cascading deletes, is never listed nor watched.
            for store in writes.difference(&reads).filter(|s| !with("delete").contains(*s)) {
                let verbs: Vec<&String> = granted[store].iter().collect();
                assert_eq!(verbs, ["create", "get", "update"], "{name}: {store}");
            }
            let checkpoints = checkpoints.expect("a Cast keeps a checkpoint");
            assert_eq!(checkpoints.into_iter().collect::<Vec<_>>(), ["create", "get", "update"]);

            let docs = parsed(file);
            let rules = of_kind(&docs, "Role")["rules"].as_array().unwrap();
            let on_checkpoints: Vec<&Value> =
                rules.iter().filter(|r| r["apiGroups"][0] == names.group).collect();
            let expected = [
                serde_json::json!({
                    "apiGroups": [names.group], "resources": [names.plural],
                    "verbs": ["create"],
                }),
                serde_json::json!({
                    "apiGroups": [names.group], "resources": [names.plural],
                    "verbs": ["get", "update"], "resourceNames": [format!("cast.{name}")],
                }),
            ];
            assert_eq!(on_checkpoints, expected.iter().collect::<Vec<_>>(), "{name}");
            let deployment = of_kind(&docs, "Deployment");
            let args = &deployment["spec"]["template"]["spec"]["containers"][0]["args"];
            assert_eq!(args[0], "integrate");
            assert_eq!(args[2], format!("/dxg-specs/retail/{name}.yaml"));
        }
    }

    #[test]
    fn each_integrator_may_set_only_the_fields_its_edges_set() {
        let expected = [
            (
                "catalog",
                vec![
                    ("prices.cart.knactor.dev", vec!["name", "priceUsd"]),
                    ("products.frontend.knactor.dev", vec!["categories", "name", "priceUsd"]),
                    ("products.loadgenerator.knactor.dev", vec!["name"]),
                    ("products.recommendation.knactor.dev", vec!["categories"]),
                    ("requests.recommendation.knactor.dev", vec!["exclude"]),
                ],
            ),
            (
                "checkout",
                vec![
                    ("charges.payment.knactor.dev", vec!["amount", "card"]),
                    (
                        "orders.checkout.knactor.dev",
                        vec!["paymentError", "paymentID", "shippingCost", "trackingID"],
                    ),
                    ("shipments.shipping.knactor.dev", vec!["address", "items", "method"]),
                ],
            ),
            ("email", vec![("confirmations.email.knactor.dev", vec!["to", "total", "trackingID"])]),
            (
                "frontend",
                vec![
                    ("carts.cart.knactor.dev", vec!["items"]),
                    ("conversions.currency.knactor.dev", vec!["amount", "from", "to"]),
                    ("orders.checkout.knactor.dev", vec!["address", "card", "email", "items"]),
                    ("requests.ad.knactor.dev", vec!["categories"]),
                    (
                        "sessions.frontend.knactor.dev",
                        vec!["ad", "lines", "order", "recommended", "total", "totalOf", "totalUsd"],
                    ),
                ],
            ),
            (
                "loadgenerator",
                vec![
                    (
                        "sessions.frontend.knactor.dev",
                        vec!["checkout", "currency", "items", "viewing"],
                    ),
                    ("users.loadgenerator.knactor.dev", vec!["page"]),
                ],
            ),
        ];
        let files = retail_files();
        for (spec, fields) in expected {
            let docs = parsed(file(&files, &format!("integrator-{spec}.yaml")));
            let policy = of_kind(&docs, "ValidatingAdmissionPolicy");
            let name = format!("integrator-{spec}.shop");
            assert_eq!(policy["metadata"]["name"], name);
            let policy = &policy["spec"];
            let user = format!("system:serviceaccount:shop:integrator-{spec}");
            let condition = &policy["matchConditions"][0]["expression"];
            assert_eq!(*condition, format!("request.userInfo.username == \"{user}\""));

            // The fields granted per resource: a CEL map (JSON's syntax) indexed by the
            // request's resource.
            let variable = |wanted: &str| {
                let variables = policy["variables"].as_array().unwrap();
                let variable = variables.iter().find(|v| v["name"] == wanted).unwrap();
                variable["expression"].as_str().unwrap().to_owned()
            };
            let granted = variable("granted");
            let index = "[request.resource.resource + \".\" + request.resource.group]";
            let map = granted.strip_suffix(index).unwrap_or_else(|| panic!("{granted}"));
            let granted: BTreeMap<String, Vec<String>> = serde_json::from_str(map).unwrap();
            let fields: BTreeMap<String, Vec<String>> = fields
                .into_iter()
                .map(|(resource, fields)| {
                    (resource.into(), fields.into_iter().map(Into::into).collect())
                })
                .collect();
            assert_eq!(granted, fields, "{spec}");

            // It matches creates and replaces of those resources, and nothing else.
            let mut matched = BTreeSet::new();
            for rule in policy["matchConstraints"]["resourceRules"].as_array().unwrap() {
                assert_eq!(rule["operations"], serde_json::json!(["CREATE", "UPDATE"]));
                let resource = format!(
                    "{}.{}",
                    rule["resources"][0].as_str().unwrap(),
                    rule["apiGroups"][0].as_str().unwrap()
                );
                matched.insert(resource);
            }
            assert_eq!(matched, fields.keys().cloned().collect(), "{spec}");
            let validation = &policy["validations"][0];
            assert_eq!(validation["expression"], "size(variables.forbidden) == 0");
            assert_eq!(validation["reason"], "Forbidden");
            assert_eq!(policy["failurePolicy"], "Fail");

            let binding = of_kind(&docs, "ValidatingAdmissionPolicyBinding");
            assert_eq!(binding["metadata"]["name"], name);
            let expected = serde_json::json!({ "policyName": name, "validationActions": ["Deny"] });
            assert_eq!(binding["spec"], expected);
            // Applied before the Deployment whose pod it limits.
            let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
            assert_eq!(
                kinds[3..],
                ["ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "Deployment"]
            );
        }
    }

    #[test]
    fn no_role_reaches_crds_namespaces_or_anything_else() {
        for file in retail_files() {
            let docs = parsed(&file);
            for role in docs.iter().filter(|d| d["kind"] == "Role" || d["kind"] == "ClusterRole") {
                assert_eq!(role["kind"], "Role", "{}", file.name);
                for rule in role["rules"].as_array().unwrap() {
                    let groups = rule["apiGroups"].as_array().unwrap();
                    assert_eq!(groups.len(), 1, "one group per rule: {rule}");
                    assert!(groups[0].as_str().unwrap().ends_with("knactor.dev"), "{rule}");
                    for resource in rule["resources"].as_array().unwrap() {
                        let resource = resource.as_str().unwrap();
                        assert!(
                            !["*", "customresourcedefinitions", "namespaces"].contains(&resource),
                            "{}: {rule}",
                            file.name
                        );
                    }
                    assert!(!rule["verbs"].as_array().unwrap().contains(&"*".into()), "{rule}");
                }
            }
        }
    }

    #[test]
    fn a_sync_spec_gets_no_rules_and_says_why() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../apps/smart-home");
        let config = AppConfig::load(&dir).unwrap();
        let target = Target { namespace: "home".into(), image: "knactor:test".into() };
        let files = manifests::manifests(&config, &integrators(&config).unwrap(), &target).unwrap();
        let readings = file(&files, "integrator-readings.yaml");
        assert!(readings.to_yaml().contains("\n# A Sync spec reads and appends Log stores only"));
        let docs = parsed(readings);
        assert_eq!(of_kind(&docs, "Role")["rules"], serde_json::json!([]));
        assert!(!docs.iter().any(|d| d["kind"] == "ValidatingAdmissionPolicy"));
        let lamp = file(&files, "knactor-lamp.yaml");
        assert!(
            lamp.to_yaml().contains("\n# Its Log stores (lamp/energy) are not on the apiserver")
        );
        assert_eq!(granted(lamp).keys().collect::<Vec<_>>(), ["lamp.knactor.dev/lamps"]);
    }

    #[test]
    fn names_kubernetes_refuses_are_reported() {
        let config = retail();
        let target = Target { namespace: "Shop".into(), image: "knactor:test".into() };
        let err = manifests::manifests(&config, &[], &target).unwrap_err().to_string();
        assert!(err.starts_with("namespace name `Shop` is not a DNS-1123 label"), "{err}");
    }
}
