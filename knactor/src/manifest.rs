//! The `Knactor` and `App` manifests (DESIGN §4, §8): parsed from YAML, checked, and reported
//! with file:line:column when wrong.

pub use integrators::source::{API_VERSION, Metadata};

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use data_exchange::StoreRef;
use data_exchange::crd::{self, CrdError, CrdNames, NameRole};
use data_exchange::log::ingest::Ingest;
use data_exchange::object::is_valid_name;
use data_exchange::schema::StoreSchema;
use integrators::source::{Diagnostic, Diagnostics, Manifest, SpecFile, Step, parse_manifest};
use serde::Deserialize;

use crate::migration::Migration;
use crate::retention::Retention;

/// A knactor: its reconciler and its stores.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KnactorSpec {
    /// The registered reconciler to run; `None` makes a plain store.
    #[serde(default)]
    pub reconciler: Option<String>,
    /// The knactor's own stores.
    pub stores: Vec<StoreSpec>,
}

impl KnactorSpec {
    /// Turns its stores' retention policies off: everything is kept.
    pub fn keep_everything(&mut self) {
        for store in &mut self.stores {
            store.retention = None;
            store.archive = None;
        }
    }
}

/// One store of a knactor.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSpec {
    /// The store's name within its knactor.
    pub name: String,
    /// Which exchange holds the store.
    #[serde(default)]
    pub exchange: ExchangeKind,
    /// The JSON Schema (draft 2020-12) of its objects.
    pub schema: serde_json::Value,
    /// A YAML file (relative to the manifest) of objects (`[{name, data}]`) the store starts
    /// with: each is created when absent, never overwritten.
    #[serde(default)]
    pub seed: Option<PathBuf>,
    /// The seed objects, read and checked when the manifest is loaded.
    #[serde(skip)]
    pub seeds: Vec<Seed>,
    /// How the objects stored take this schema's shape when the manifest is applied to a
    /// running app (see [`crate::migration`]): field -> CEL expression or JSONPath over `old`.
    #[serde(default)]
    pub migrate: BTreeMap<String, String>,
    /// How long its objects are kept (see [`crate::retention`]): `keep` when absent.
    #[serde(default)]
    pub retention: Option<serde_json::Value>,
    /// A Log store of the same knactor where each object collected is appended first.
    #[serde(default)]
    pub archive: Option<String>,
}

impl StoreSpec {
    /// The store's retention policy (checked at load).
    pub fn retention(&self) -> Retention {
        let log = self.exchange == ExchangeKind::Log;
        let parsed = self.retention.as_ref().map(|r| Retention::parse(r, log));
        parsed.map_or(Retention::Keep, |r| r.expect("checked at load"))
    }

    /// The store's migration, compiled (checked at load); `None` when it names none.
    pub fn migration(&self) -> Option<Migration> {
        if self.migrate.is_empty() {
            return None;
        }
        Some(Migration::compile(&self.migrate).expect("checked at load"))
    }
}

/// An object a store starts with.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    /// The object's name.
    pub name: String,
    /// Its data, valid against the store's schema.
    pub data: serde_json::Value,
}

/// The kind of exchange a store lives on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExchangeKind {
    /// An Object store (key/value documents with watch).
    #[default]
    Object,
    /// A Log store (append-only records, tail, SQL).
    Log,
}

/// A `Knactor` manifest.
pub type KnactorManifest = Manifest<KnactorSpec>;

impl StoreSpec {
    /// The store's ref, as a store of `knactor`.
    pub fn store_ref(&self, knactor: &str) -> StoreRef {
        StoreRef::new(knactor, &self.name).expect("names checked at load")
    }
}

/// An app: its exchange, its knactors and its integrators.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppSpec {
    /// Where the app's stores live.
    #[serde(default)]
    pub exchange: ExchangeSpec,
    /// Where the embedded exchange keeps its data, relative to the app directory; in memory
    /// when absent.
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// Globs of knactor manifests, relative to the app directory.
    #[serde(default)]
    pub knactors: Vec<String>,
    /// Globs of integrator specs (Cast, Sync), relative to the app directory.
    #[serde(default)]
    pub integrators: Vec<String>,
    /// Globs of `Policy` manifests (grants beyond each principal's own), relative to the app
    /// directory.
    #[serde(default)]
    pub policies: Vec<String>,
}

/// The exchanges of an app, as URLs.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExchangeSpec {
    /// `embedded`, `redis://HOST:PORT[/DB]`, or `kube` / `kube://?context=C&namespace=NS`.
    #[serde(default = "embedded")]
    pub object: String,
    /// `embedded` or `redis://HOST:PORT[/DB]`.
    #[serde(default = "embedded")]
    pub log: String,
}

impl Default for ExchangeSpec {
    fn default() -> Self {
        ExchangeSpec { object: embedded(), log: embedded() }
    }
}

fn embedded() -> String {
    "embedded".to_owned()
}

/// An `App` manifest.
pub type AppManifest = Manifest<AppSpec>;

/// Reads and checks a `Knactor` manifest: unique valid store names, valid JSON Schemas and
/// migrations, and the seed objects it names, read from files beside it.
pub fn load_knactor(file: &SpecFile) -> Result<KnactorManifest, Diagnostics> {
    let mut manifest = parse_knactor(file)?;
    let mut problems = Vec::new();
    let name = manifest.metadata.name.clone();
    for (i, store) in manifest.spec.stores.iter_mut().enumerate() {
        let at = [Step::from("spec"), "stores".into(), i.into(), "seed".into()];
        match read_seeds(file, store, &name) {
            Ok(seeds) => store.seeds = seeds,
            Err(message) => problems.push(file.error_at(&at, message)),
        }
    }
    Diagnostics(problems).into_result(manifest)
}

/// [`load_knactor`] without reading the seeds: for a manifest sent to a running app, whose
/// seeds are not used, and whose files are not the server's to read.
pub fn parse_knactor(file: &SpecFile) -> Result<KnactorManifest, Diagnostics> {
    let manifest: KnactorManifest = parse_manifest(file, "Knactor")?;
    let mut problems = Vec::new();
    let mut seen = HashSet::new();
    for (i, store) in manifest.spec.stores.iter().enumerate() {
        let at = |field| [Step::from("spec"), "stores".into(), i.into(), Step::Key(field)];
        if !is_valid_name(&store.name) {
            let message = format!("invalid store name `{}`", store.name);
            problems.push(file.error_at(&at("name"), message));
            continue;
        }
        if !seen.insert(&store.name) {
            let message = format!("store `{}` is declared twice", store.name);
            problems.push(file.error_at(&at("name"), message));
        }
        let store_ref = store.store_ref(&manifest.metadata.name);
        let checked = match store.exchange {
            ExchangeKind::Object => StoreSchema::compile(&store_ref, &store.schema).map(drop),
            ExchangeKind::Log => Ingest::new(&store_ref, &store.schema).map(drop),
        };
        if let Err(e) = checked {
            problems.push(file.error_at(&at("schema"), e.to_string()));
        }
        if !store.migrate.is_empty() && store.exchange != ExchangeKind::Object {
            problems.push(file.error_at(&at("migrate"), "`migrate` is for Object stores"));
        } else if let Err((field, message)) = Migration::compile(&store.migrate) {
            let mut path = at("migrate").to_vec();
            path.push(Step::Key(&field));
            problems.push(file.error_at(&path, format!("`{field}`: {message}")));
        }
        let declared = store.schema.get("properties").and_then(|p| p.as_object());
        for (field, expr) in &store.migrate {
            // A field the schema does not declare may only be removed.
            if declared.is_some_and(|d| !d.contains_key(field)) && expr.trim() != "null" {
                let mut path = at("migrate").to_vec();
                path.push(Step::Key(field));
                let message = format!(
                    "`{field}` is not a field of the store's schema: a migration sets the schema's fields, and removes others with `null`"
                );
                problems.push(file.error_at(&path, message));
            }
        }
    }
    problems.extend(check_retention(file, &manifest));
    Diagnostics(problems).into_result(manifest)
}

/// The problems of the stores' `retention` and `archive`.
fn check_retention(file: &SpecFile, manifest: &KnactorManifest) -> Vec<Diagnostic> {
    let mut problems = Vec::new();
    let stores = &manifest.spec.stores;
    for (i, store) in stores.iter().enumerate() {
        let at =
            |field: &'static str| [Step::from("spec"), "stores".into(), i.into(), field.into()];
        let mut collects = false;
        if let Some(retention) = &store.retention {
            match Retention::parse(retention, store.exchange == ExchangeKind::Log) {
                Ok(policy) => collects = matches!(policy, Retention::Collect { .. }),
                Err((key, message)) => {
                    let mut path = at("retention").to_vec();
                    path.extend(key.as_deref().map(Step::Key));
                    problems.push(file.error_at(&path, message));
                }
            }
        }
        let Some(archive) = &store.archive else { continue };
        let log = stores.iter().any(|s| s.name == *archive && s.exchange == ExchangeKind::Log);
        let message = if !log {
            format!("`archive: {archive}` names no Log store of `{}`", manifest.metadata.name)
        } else if !collects {
            "`archive` keeps the objects collected: give the store a `retention` that collects"
                .to_owned()
        } else {
            continue;
        };
        problems.push(file.error_at(&at("archive"), message));
    }
    problems
}

/// The seed objects of `store`, each checked against its schema; the problem in words.
fn read_seeds(file: &SpecFile, store: &StoreSpec, knactor: &str) -> Result<Vec<Seed>, String> {
    let Some(seed) = &store.seed else { return Ok(Vec::new()) };
    if store.exchange != ExchangeKind::Object {
        return Err("`seed` is for Object stores".into());
    }
    let path = file.path().parent().unwrap_or(Path::new(".")).join(seed);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read the seed {}: {e}", path.display()))?;
    let seeds: Vec<Seed> = serde_yaml::from_str(&text)
        .map_err(|e| format!("{}: expected a list of {{name, data}}: {e}", path.display()))?;
    let store_ref = store.store_ref(knactor);
    let schema = StoreSchema::compile(&store_ref, &store.schema).map_err(|e| e.to_string())?;
    for seed in &seeds {
        if let Err(violation) = schema.validate(&seed.data) {
            return Err(format!("{}: object `{}`: {violation}", path.display(), seed.name));
        }
    }
    Ok(seeds)
}

/// Reads and checks an `App` manifest.
pub fn load_app(file: &SpecFile) -> Result<AppManifest, Diagnostics> {
    let manifest: AppManifest = parse_manifest(file, "App")?;
    let mut problems = Vec::new();
    let exchange = &manifest.spec.exchange;
    for (field, url) in [("object", &exchange.object), ("log", &exchange.log)] {
        if let Err(message) = check_exchange_url(url) {
            let at = [Step::from("spec"), "exchange".into(), field.into()];
            problems.push(file.error_at(&at, message));
        }
    }
    Diagnostics(problems).into_result(manifest)
}

/// Accepts the exchange URLs this build can open.
pub fn check_exchange_url(url: &str) -> Result<(), String> {
    if url == "embedded" || url.starts_with("redis://") || is_kube_url(url) {
        Ok(())
    } else {
        Err(format!(
            "unknown exchange `{url}`: expected `embedded`, `redis://HOST:PORT[/DB]` or `kube`"
        ))
    }
}

/// Whether `url` names the Kubernetes apiserver, which holds Object stores only.
pub fn is_kube_url(url: &str) -> bool {
    url == "kube" || url.starts_with("kube://")
}

/// Checks that every Object store of `knactor` can be a Kubernetes custom resource (for an
/// app whose Object exchange is `kube`): names Kubernetes accepts, one resource name per store,
/// and a schema with a structural form. Each problem is located in `file`, a schema's at the
/// offending keyword.
pub fn check_crds(file: &SpecFile, knactor: &KnactorManifest) -> Vec<Diagnostic> {
    let mut problems = Vec::new();
    let mut taken: HashMap<String, &str> = HashMap::new();
    let mut knactor_reported = false;
    let name = &knactor.metadata.name;
    for (i, store) in knactor.spec.stores.iter().enumerate() {
        if store.exchange != ExchangeKind::Object {
            continue;
        }
        let at = |field| [Step::from("spec"), "stores".into(), i.into(), Step::Key(field)];
        let store_ref = store.store_ref(name);
        match CrdNames::of(&store_ref) {
            Ok(names) => {
                let resources = [names.plural, names.singular];
                let shared = resources.iter().find_map(|r| taken.get(r).map(|other| (r, *other)));
                if let Some((resource, other)) = shared {
                    let message = format!(
                        "stores `{other}` and `{}` would share the Kubernetes resource name `{resource}` in `{}`; rename one",
                        store.name, names.group
                    );
                    problems.push(file.error_at(&at("name"), message));
                }
                taken.extend(resources.map(|r| (r, store.name.as_str())));
            }
            Err(e @ CrdError::InvalidName { role: NameRole::Knactor, .. }) => {
                if !std::mem::replace(&mut knactor_reported, true) {
                    let at = [Step::from("metadata"), "name".into()];
                    problems.push(file.error_at(&at, e.to_string()));
                }
            }
            Err(e) => problems.push(file.error_at(&at("name"), e.to_string())),
        }
        if let Err(e) = crd::structural_schema(&store.schema) {
            let steps = schema_steps(at("schema").to_vec(), &store.schema, &e.path);
            problems.push(file.error_at_key(&steps, format!("{store_ref}: {e}")));
        }
    }
    problems
}

/// `steps` (to a schema) extended by `path`, keys and array indexes inside `schema`.
fn schema_steps<'a>(
    mut steps: Vec<Step<'a>>,
    schema: &serde_json::Value,
    path: &'a [String],
) -> Vec<Step<'a>> {
    let mut node = Some(schema);
    for segment in path {
        let index = node.filter(|n| n.is_array()).and_then(|_| segment.parse::<usize>().ok());
        match index {
            Some(i) => {
                steps.push(Step::Index(i));
                node = node.and_then(|n| n.get(i));
            }
            None => {
                steps.push(Step::Key(segment));
                node = node.and_then(|n| n.get(segment.as_str()));
            }
        }
    }
    steps
}

/// Expands `patterns` (globs relative to `dir`) into the files they match, sorted; a pattern
/// that matches nothing is an error, reported at `at` in `file`.
pub fn expand_globs(
    file: &SpecFile,
    dir: &Path,
    patterns: &[String],
    field: &str,
) -> Result<Vec<PathBuf>, Diagnostic> {
    let mut paths = Vec::new();
    for (i, pattern) in patterns.iter().enumerate() {
        let at = [Step::from("spec"), field.into(), i.into()];
        let full = dir.join(pattern);
        let matches = glob::glob(&full.to_string_lossy())
            .map_err(|e| file.error_at(&at, format!("invalid glob `{pattern}`: {e}")))?;
        let before = paths.len();
        paths.extend(matches.filter_map(Result::ok));
        if paths.len() == before {
            return Err(file.error_at(&at, format!("`{pattern}` matches no file")));
        }
    }
    paths.sort();
    paths.dedup();
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asserts one problem per `wants`, each starting with its own.
    #[track_caller]
    fn assert_starts_with(problems: &[String], wants: &[&str]) {
        assert_eq!(problems.len(), wants.len(), "{problems:#?}");
        for (got, want) in problems.iter().zip(wants) {
            assert!(got.starts_with(want), "{problems:#?}\n  wanted: {want}");
        }
    }

    fn knactor(text: &str) -> Result<KnactorManifest, Diagnostics> {
        load_knactor(&SpecFile::from_text(Path::new("k.yaml"), text))
    }

    #[test]
    fn a_valid_knactor_loads() {
        let m = knactor(
            "apiVersion: knactor.dev/v1\nkind: Knactor\nmetadata: {name: shipping}\nspec:\n  reconciler: retail.shipping\n  stores:\n    - name: shipments\n      schema: {type: object}\n",
        )
        .unwrap();
        assert_eq!(m.spec.stores[0].store_ref(&m.metadata.name).to_string(), "shipping/shipments");
        assert_eq!(m.spec.reconciler.as_deref(), Some("retail.shipping"));
    }

    #[test]
    fn a_wrong_retention_is_located_and_a_right_one_read() {
        let stores = "spec:\n  stores:\n    - name: orders\n      schema: {type: object}\n      retention: {after: read}\n      archive: nowhere\n    - name: charges\n      schema: {type: object}\n      retention: {after: consumed, when: 'order.done'}\n    - name: sent\n      exchange: log\n      schema: {type: object, properties: {a: {type: string}}}\n      retention: {maxRecords: 0, after: consumed}\n    - name: emails\n      schema: {type: object}\n      retention: {ttl: soon}\n    - name: paid\n      schema: {type: object}\n      retention: {when: 'data.paid'}\n";
        let text = format!(
            "apiVersion: knactor.dev/v1\nkind: Knactor\nmetadata: {{name: shop}}\n{stores}"
        );
        let problems: Vec<String> =
            knactor(&text).unwrap_err().0.iter().map(|d| d.to_string()).collect();
        let wants = [
            "k.yaml:8:26: error: `after: read`: the only one is `after: consumed`",
            "k.yaml:9:16: error: `archive: nowhere` names no Log store of `shop`",
            "k.yaml:12:42: error: `when` reads `order`: it reads only `data` (the object's data) and `name`",
            "k.yaml:16:41: error: unknown key `after`: a Log store's retention takes `maxAge`, `maxRecords` (`after`, `when` and `ttl` are for Object stores)",
            "k.yaml:19:24: error: `ttl: soon`: expected number at 0 (write e.g. `30s`, `24h`, `7d`)",
            "k.yaml:22:19: error: say when objects go: `after: consumed`, a `ttl`, or both (or `retention: keep`)",
        ];
        assert_starts_with(&problems, &wants);
        let text = "apiVersion: knactor.dev/v1\nkind: Knactor\nmetadata: {name: shop}\nspec:\n  stores:\n    - name: orders\n      schema: {type: object}\n      retention: {ttl: 1h, when: 'data.done'}\n    - {name: carts, schema: {type: object}, retention: keep}\n    - {name: sent, exchange: log, schema: {type: object, properties: {a: {type: string}}}, retention: {maxAge: 7d, maxRecords: 1000}}\n";
        let m = knactor(text).unwrap();
        let when = Some("data.done".to_owned());
        let ttl = std::time::Duration::from_secs(3600);
        assert_eq!(
            m.spec.stores[0].retention(),
            crate::retention::Retention::Collect { when, ttl }
        );
        assert_eq!(m.spec.stores[1].retention(), crate::retention::Retention::Keep);
        let max_age = Some(std::time::Duration::from_secs(7 * 86_400));
        let trim = crate::retention::Retention::Trim { max_age, max_records: Some(1000) };
        assert_eq!(m.spec.stores[2].retention(), trim);
    }

    fn crd_problems(text: &str) -> Vec<String> {
        let file = SpecFile::from_text(Path::new("k.yaml"), text);
        let knactor = load_knactor(&file).unwrap();
        check_crds(&file, &knactor).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_schema_kubernetes_cannot_serve_is_located_at_its_keyword() {
        let text = "apiVersion: knactor.dev/v1\nkind: Knactor\nmetadata: {name: shop}\nspec:\n  stores:\n    - name: orders\n      schema:\n        type: object\n        properties:\n          total: {type: number}\n          items:\n            type: array\n            items:\n              oneOf:\n                - {type: string}\n                - {type: integer}\n    - name: events\n      exchange: log\n      schema: {type: object, properties: {a: {type: string, oneOf: [{maxLength: 3}]}}}\n";
        let problems = crd_problems(text);
        assert_eq!(problems.len(), 1, "{problems:?}");
        let want = "k.yaml:14:15: error: shop/orders: `oneOf` at /properties/items/items: ";
        assert!(problems[0].starts_with(want), "{}\n  wanted: {want}", problems[0]);

        // Flow style, and a `false` schema named by its property.
        let text = "apiVersion: knactor.dev/v1\nkind: Knactor\nmetadata: {name: shop}\nspec:\n  stores:\n    - name: carts\n      schema: {type: object, properties: {sku: {type: [string, integer]}, gone: false}}\n";
        let problems = crd_problems(text);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("k.yaml:7:"), "{}", problems[0]);
        assert!(
            problems[0].contains("`gone` at /properties")
                || problems[0].contains("`type` at /properties/sku"),
            "{}",
            problems[0]
        );
    }

    #[test]
    fn names_kubernetes_refuses_are_located() {
        let stores = "spec:\n  stores:\n    - {name: Orders, schema: {}}\n    - {name: my_store, schema: {}}\n    - {name: smart-plugs, schema: {}}\n    - {name: smartplugs, schema: {}}\n    - {name: Logs, exchange: log, schema: {type: object, properties: {a: {type: string}}}}\n";
        let text = format!(
            "apiVersion: knactor.dev/v1\nkind: Knactor\nmetadata: {{name: shop}}\n{stores}"
        );
        let problems = crd_problems(&text);
        let wants = [
            "k.yaml:6:14: error: store name `Orders` has the uppercase letter `O`; Kubernetes accepts a DNS-1035 label",
            "k.yaml:7:14: error: store name `my_store` has the character `_`",
            "k.yaml:9:14: error: stores `smart-plugs` and `smartplugs` would share the Kubernetes resource name `smartplugs` in `shop.knactor.dev`",
        ];
        assert_starts_with(&problems, &wants);

        let text = format!(
            "apiVersion: knactor.dev/v1\nkind: Knactor\nmetadata: {{name: My_Shop}}\n{stores}"
        );
        let problems = crd_problems(&text);
        let want = "k.yaml:3:18: error: knactor name `My_Shop` has the uppercase letter `M`; Kubernetes accepts a DNS-1123 label";
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(problems[0].starts_with(want), "{}\n  wanted: {want}", problems[0]);
    }

    #[test]
    fn every_example_store_can_be_a_kubernetes_resource() {
        let apps = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("apps");
        let mut stores = 0;
        for app in ["hello", "retail", "smart-home"] {
            for entry in std::fs::read_dir(apps.join(app).join("knactors")).unwrap() {
                let file = SpecFile::read(&entry.unwrap().path()).unwrap();
                let knactor = load_knactor(&file).unwrap();
                assert_eq!(check_crds(&file, &knactor), vec![], "{}", file.path().display());
                for store in
                    knactor.spec.stores.iter().filter(|s| s.exchange == ExchangeKind::Object)
                {
                    let store_ref = store.store_ref(&knactor.metadata.name);
                    crd::custom_resource_definition(&store_ref, &store.schema).unwrap();
                    stores += 1;
                }
            }
        }
        assert!(stores >= 20, "{stores} stores");
    }

    #[test]
    fn mistakes_are_located() {
        let cases = [
            ("apiVersion: v2\nkind: Knactor\n", "k.yaml:1:13: error: apiVersion must be"),
            (
                "apiVersion: knactor.dev/v1\nkind: Knactor\nmetadata: {name: a}\nspec:\n  stores: []\n  extra: 1\n",
                "k.yaml:6:3: error: spec: unknown field `extra`",
            ),
            (
                "apiVersion: knactor.dev/v1\nkind: Knactor\nmetadata: {name: a}\nspec:\n  stores:\n    - name: s\n      schema: {type: 3}\n",
                "k.yaml:7:16: error: invalid JSON Schema for a/s",
            ),
            (
                "apiVersion: knactor.dev/v1\nkind: Knactor\nmetadata: {name: a}\nspec:\n  stores:\n    - {name: s, schema: {}}\n    - {name: s, schema: {}}\n",
                "k.yaml:7:14: error: store `s` is declared twice",
            ),
            (
                "apiVersion: knactor.dev/v1\nkind: App\n",
                "k.yaml:2:7: error: expected a manifest of kind `Knactor`",
            ),
            ("a: [1\n", "k.yaml:2:1: error: did not find expected"),
        ];
        for (text, want) in cases {
            let got = knactor(text).unwrap_err().to_string();
            assert!(got.starts_with(want), "{got}\n  wanted: {want}");
        }
    }
}
