//! The Kubernetes objects of an app, file by file, as JSON values: its Namespace, a
//! CustomResourceDefinition per Object store, and per knactor and per
//! integrator spec a ServiceAccount, a Role holding only its [rights](super::access), a
//! RoleBinding and a Deployment; per Cast spec also a ValidatingAdmissionPolicy and its binding,
//! which let it write only the fields its edges set. Pure: nothing here reads a file or talks
//! to a cluster.

use std::collections::{BTreeMap, BTreeSet};

use data_exchange::StoreRef;
use data_exchange::crd::{self, CrdNames};
use integrators::cast::{checkpoint_schema, checkpoint_store};
use knactor::AppConfig;
use knactor::manifest::{ExchangeKind, KnactorManifest};
use knactor::specs::Checked;
use serde_json::{Value, json};

use super::DeployError;
use super::access::{self, Rights};
use super::image::APP_DIR;

/// Where and as what the app runs.
#[derive(Clone, Debug)]
pub(super) struct Target {
    /// The namespace of its objects.
    pub(super) namespace: String,
    /// The container image that runs `knactor`.
    pub(super) image: String,
}

/// An integrator spec of the app, checked, with its path in the image.
#[derive(Debug)]
pub(super) struct Integrator {
    /// Where `knactor integrate` finds the spec in the container.
    pub(super) path: String,
    /// The checked spec.
    pub(super) spec: Checked,
}

/// One file of the deployment: YAML documents with comment lines before them.
#[derive(Clone, Debug)]
pub(super) struct ManifestFile {
    /// The file's name.
    pub(super) name: String,
    /// Comment lines at the top: what the file is, and anything to know about it.
    pub(super) notes: Vec<String>,
    /// The objects, in the order to apply them.
    pub(super) docs: Vec<Value>,
}

impl ManifestFile {
    fn new(name: String, note: String, docs: Vec<Value>) -> Self {
        ManifestFile { name, notes: vec![note], docs }
    }

    /// The file's text: the notes as comments, then the documents, `---` between them.
    pub(super) fn to_yaml(&self) -> String {
        let mut text: String = self.notes.iter().map(|n| comment(n)).collect();
        for doc in &self.docs {
            text.push_str("---\n");
            text.push_str(&serde_yaml::to_string(doc).expect("JSON values serialize as YAML"));
        }
        text
    }
}

/// `note` as YAML comment lines of at most about 100 characters.
fn comment(note: &str) -> String {
    let mut lines = vec![String::from("#")];
    for word in note.split_whitespace() {
        let line = lines.last_mut().expect("a line");
        if line.len() > 1 && line.len() + word.len() >= 100 {
            lines.push(format!("# {word}"));
        } else {
            line.push(' ');
            line.push_str(word);
        }
    }
    lines.iter().map(|line| format!("{line}\n")).collect()
}

/// Every file of the app's deployment, in the order to apply them: the Namespace, the CRDs,
/// then one file per knactor with a reconciler and per integrator spec.
pub(super) fn manifests(
    config: &AppConfig,
    integrators: &[Integrator],
    target: &Target,
) -> Result<Vec<ManifestFile>, DeployError> {
    check_label("namespace", &target.namespace)?;
    let app = config.name();
    let mut files = vec![
        ManifestFile::new(
            "namespace.yaml".into(),
            format!("The namespace of the app `{app}`; apply it, and crds.yaml, as an operator."),
            vec![json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": { "name": target.namespace, "labels": { PART_OF: app } },
            })],
        ),
        crds(config, integrators)?,
    ];
    let schemas = config.stores();
    for knactor in &config.knactors {
        if knactor.spec.reconciler.is_some() {
            let declared = config.policies.of(&format!("knactor:{}", knactor.metadata.name));
            let fields = access::limited_writes(&config.knactor_rights(knactor));
            files.push(knactor_file(app, knactor, (&declared, &fields), &schemas, target)?);
        }
    }
    for integrator in integrators {
        files.push(integrator_file(app, integrator, &schemas, target)?);
    }
    Ok(files)
}

/// The label naming the app an object belongs to.
const PART_OF: &str = "app.kubernetes.io/part-of";

/// A CustomResourceDefinition per Object store, and one for the Cast checkpoints when the app
/// has a Cast spec.
fn crds(config: &AppConfig, integrators: &[Integrator]) -> Result<ManifestFile, DeployError> {
    let mut stores = config.stores();
    if integrators.iter().any(|i| matches!(i.spec, Checked::Cast(..))) {
        stores.insert(checkpoint_store(), checkpoint_schema());
    }
    let docs = stores
        .iter()
        .map(|(store, schema)| {
            crd::custom_resource_definition(store, schema).map_err(|source| DeployError::Crd {
                store: store.clone(),
                source: Box::new(source),
            })
        })
        .collect::<Result<_, _>>()?;
    let note = format!(
        "A CustomResourceDefinition per Object store of the app `{}`: cluster-wide, applied by \
         an operator (no knactor or integrator may change them). The objects some stores start \
         with are created by `knactor deploy --apply`, as `knactor up` creates them: once.",
        config.name()
    );
    Ok(ManifestFile::new("crds.yaml".into(), note, docs))
}

/// A knactor's principal and Deployment: `knactor up --only NAME`, with rights on its own
/// Object stores, and what the app's policies grant it (`declared`; the fields of each store
/// where its rights write some only, `fields`).
fn knactor_file(
    app: &str,
    knactor: &KnactorManifest,
    (declared, fields): (&data_exchange::access::Rights, &BTreeMap<StoreRef, BTreeSet<String>>),
    schemas: &BTreeMap<StoreRef, Value>,
    target: &Target,
) -> Result<ManifestFile, DeployError> {
    let name = &knactor.metadata.name;
    let principal = Principal::new(app, "knactor", format!("knactor-{name}"), target)?;
    let exchange = exchange_url(target);
    let args = ["up", APP_DIR, "--only", name, "--no-integrators", "--exchange", &exchange];
    let mut rights = access::of_knactor(knactor);
    rights.0.extend(access::of_declared(declared, schemas).0);
    let mut notes = vec![format!(
        "The knactor `{name}` of the app `{app}`: its reconciler runs as the ServiceAccount \
         {}, which may touch its own stores only, and those the app's policies grant it.",
        principal.name
    )];
    let logs = knactor.spec.stores.iter().filter(|s| s.exchange == ExchangeKind::Log);
    let logs: Vec<String> = logs.map(|s| s.store_ref(name).to_string()).collect();
    if !logs.is_empty() {
        notes.push(format!(
            "Its Log stores ({}) are not on the apiserver: the Role grants nothing for them.",
            logs.join(", ")
        ));
    }
    let policy = principal.write_policy(fields, schemas)?;
    principal.file(notes, &rights, policy, &args)
}

/// An integrator spec's principal and Deployment: `knactor integrate -f SPEC`, with the rights
/// its spec needs and no more.
fn integrator_file(
    app: &str,
    integrator: &Integrator,
    schemas: &BTreeMap<StoreRef, Value>,
    target: &Target,
) -> Result<ManifestFile, DeployError> {
    let spec = &integrator.spec;
    let principal =
        Principal::new(app, "integrator", format!("integrator-{}", spec.name()), target)?;
    let exchange = exchange_url(target);
    let args = ["integrate", "-f", &integrator.path, "--app", APP_DIR, "--exchange", &exchange];
    let mut notes = vec![format!(
        "The {} spec `{}` of the app `{app}`, run by `knactor integrate` as the ServiceAccount {}.",
        spec.kind(),
        spec.name(),
        principal.name
    )];
    match spec {
        Checked::Cast(plan, _) => {
            notes.push(
                "Its Role grants per store only the verbs its integrator sends: list and watch \
                 where edges read (get where an edge loads several), get, create and update \
                 where they write (delete and list where they cascade deletions); on the \
                 checkpoints, get and update of its own only, and create, which RBAC cannot \
                 limit to a name."
                    .into(),
            );
            notes.push(
                "Its ValidatingAdmissionPolicy (cluster-wide, applied by an operator) lets it set \
                 only the fields of `.data` its edges set in the stores they write; every other \
                 field must stay as it was."
                    .into(),
            );
            let policy = principal.write_policy(&access::fields_of_cast(plan), schemas)?;
            let mut rights = access::of_cast(plan);
            rights.0.extend(access::of_declared(&plan.declared, schemas).0);
            principal.file(notes, &rights, policy, &args)
        }
        Checked::Sync(_) => {
            notes.push(
                "A Sync spec reads and appends Log stores only, which are not on the apiserver \
                 (a policy cannot grant it an Object store): its Role grants nothing."
                    .into(),
            );
            principal.file(notes, &Rights::default(), Vec::new(), &args)
        }
    }
}

/// A process of the app on the cluster: its ServiceAccount, Role, RoleBinding and Deployment
/// share a name and labels.
struct Principal<'a> {
    name: String,
    labels: Value,
    target: &'a Target,
}

impl<'a> Principal<'a> {
    fn new(
        app: &str,
        component: &'static str,
        name: String,
        target: &'a Target,
    ) -> Result<Self, DeployError> {
        check_label(component, &name)?;
        let labels = json!({
            "app.kubernetes.io/name": name,
            "app.kubernetes.io/component": component,
            PART_OF: app,
            "app.kubernetes.io/managed-by": "knactor",
        });
        Ok(Principal { name, labels, target })
    }

    fn metadata(&self) -> Value {
        json!({ "name": self.name, "namespace": self.target.namespace, "labels": self.labels })
    }

    /// Its file: ServiceAccount, Role (with `rights`), RoleBinding, the `policy` documents, and
    /// a Deployment running `knactor ARGS`, last, so that it starts under all the others.
    fn file(
        &self,
        notes: Vec<String>,
        rights: &Rights,
        policy: Vec<Value>,
        args: &[&str],
    ) -> Result<ManifestFile, DeployError> {
        let mut docs = vec![
            json!({ "apiVersion": "v1", "kind": "ServiceAccount", "metadata": self.metadata() }),
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": self.metadata(),
                "rules": rules(rights)?,
            }),
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": self.metadata(),
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": self.name,
                },
                "subjects": [{
                    "kind": "ServiceAccount",
                    "name": self.name,
                    "namespace": self.target.namespace,
                }],
            }),
        ];
        docs.extend(policy);
        docs.push(self.deployment(args));
        Ok(ManifestFile { name: format!("{}.yaml", self.name), notes, docs })
    }

    /// A ValidatingAdmissionPolicy and its binding that let this principal create or replace
    /// objects of each store of `fields` changing only those top-level fields of `.data`:
    /// every other field must be as it was (absent on a create), or the write is refused
    /// (403), with a message naming the principal, the store and the fields it may write. The
    /// principal is told by its user name (a `matchCondition`), so no one else is limited.
    /// A field its store's schema (in `schemas`) gives a `default` may be added with that
    /// value, as the apiserver fills it in before admission. None when it writes no store (a
    /// policy must match some resource).
    fn write_policy(
        &self,
        fields: &BTreeMap<StoreRef, BTreeSet<String>>,
        schemas: &BTreeMap<StoreRef, Value>,
    ) -> Result<Vec<Value>, DeployError> {
        if fields.is_empty() {
            return Ok(Vec::new());
        }
        let mut rules = Vec::new();
        let (mut stores, mut granted, mut defaults) =
            (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
        for (store, fields) in fields {
            let names = crd_names(store)?;
            let resource = format!("{}.{}", names.plural, names.group);
            rules.push(json!({
                "apiGroups": [names.group],
                "apiVersions": [names.version],
                "resources": [names.plural],
                "operations": ["CREATE", "UPDATE"],
            }));
            stores.insert(resource.clone(), store.to_string());
            let properties = schemas.get(store).and_then(|s| s["properties"].as_object());
            // The defaults of the other fields; dyn(): CEL's map literals must otherwise hold
            // values of one type.
            let others = properties.into_iter().flatten().filter(|(f, _)| !fields.contains(*f));
            let defaulted: BTreeMap<String, String> = others
                .filter_map(|(field, schema)| {
                    let value = schema.get("default")?;
                    Some((field.clone(), format!("dyn({})", cel_literal(value))))
                })
                .collect();
            defaults.insert(resource.clone(), format!("dyn({})", cel_map(&defaulted)));
            granted.insert(resource, fields);
        }
        let user = format!("system:serviceaccount:{}:{}", self.target.namespace, self.name);
        // The store's entry in a map keyed by resource, as the CRD names it.
        let of_store = |map: String| {
            format!("{map}[request.resource.resource + \".\" + request.resource.group]")
        };
        let variables = [
            ("store", of_store(cel_literal(&stores))),
            ("granted", of_store(cel_literal(&granted))),
            ("defaults", of_store(cel_map(&defaults))),
            ("written", "has(object.data) ? object.data : {}".to_owned()),
            ("stored", "oldObject != null && has(oldObject.data) ? oldObject.data : {}".to_owned()),
            // The fields outside the grant that the write changes, adds (but with the default
            // the apiserver adds) or removes.
            (
                "forbidden",
                "variables.written.filter(k, !(k in variables.granted) && !(k in variables.stored \
                 ? variables.stored[k] == variables.written[k] : k in variables.defaults && \
                 variables.defaults[k] == variables.written[k])) + variables.stored.filter(k, \
                 !(k in variables.granted) && !(k in variables.written))"
                    .to_owned(),
            ),
        ];
        let variables: Vec<Value> = variables
            .into_iter()
            .map(|(name, expression)| json!({ "name": name, "expression": expression }))
            .collect();
        let message = format!(
            "User \"{user}\" may write only the fields its edges set; the others must stay as \
             they are"
        );
        let message_expression = format!(
            "{} + variables.granted.join(\", \") + \" of \" + variables.store + \" objects, not \" \
             + variables.forbidden.join(\", \")",
            cel_literal(&format!("User \"{user}\" may write only "))
        );
        let name = format!("{}.{}", self.name, self.target.namespace);
        let metadata = json!({ "name": name, "labels": self.labels });
        Ok(vec![
            json!({
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingAdmissionPolicy",
                "metadata": metadata,
                "spec": {
                    "failurePolicy": "Fail",
                    "matchConstraints": { "resourceRules": rules },
                    "matchConditions": [{
                        "name": "is-principal",
                        "expression": format!("request.userInfo.username == {}", cel_literal(&user)),
                    }],
                    "variables": variables,
                    "validations": [{
                        "expression": "size(variables.forbidden) == 0",
                        "reason": "Forbidden",
                        "message": message,
                        "messageExpression": message_expression,
                    }],
                },
            }),
            json!({
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingAdmissionPolicyBinding",
                "metadata": metadata,
                "spec": { "policyName": name, "validationActions": ["Deny"] },
            }),
        ])
    }

    /// One pod running `knactor ARGS` as the ServiceAccount; replaced, not rolled, so that two
    /// never run at once.
    fn deployment(&self, args: &[&str]) -> Value {
        let selector = json!({
            "app.kubernetes.io/name": self.name,
            PART_OF: self.labels[PART_OF],
        });
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": self.metadata(),
            "spec": {
                "replicas": 1,
                "strategy": { "type": "Recreate" },
                "selector": { "matchLabels": selector },
                "template": {
                    "metadata": { "labels": self.labels },
                    "spec": {
                        "serviceAccountName": self.name,
                        "containers": [{
                            "name": "knactor",
                            "image": self.target.image,
                            "args": args,
                            "securityContext": {
                                "runAsNonRoot": true,
                                "allowPrivilegeEscalation": false,
                            },
                        }],
                    },
                },
            },
        })
    }
}

/// What the resources of one rule share: their API group, the verbs, the object names.
type RuleKey<'a> = (String, Vec<&'static str>, &'a [String]);

/// The Role's rules: one per API group (a knactor's) and set of verbs and names, so that no
/// rule pairs a group with another group's resources.
fn rules(rights: &Rights) -> Result<Vec<Value>, DeployError> {
    let mut rules: BTreeMap<RuleKey, Vec<String>> = BTreeMap::new();
    for (store, grant) in &rights.0 {
        let names = crd_names(store)?;
        let verbs = grant.verbs.iter().map(|v| v.as_str()).collect();
        let key = (names.group, verbs, grant.names.as_slice());
        rules.entry(key).or_default().push(names.plural);
    }
    let rules = rules.into_iter().map(|((group, verbs, names), resources)| {
        let mut rule = json!({ "apiGroups": [group], "resources": resources, "verbs": verbs });
        if !names.is_empty() {
            rule["resourceNames"] = json!(names);
        }
        rule
    });
    Ok(rules.collect())
}

/// `value` as a CEL literal: JSON strings, lists and maps are CEL's too.
fn cel_literal(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).expect("strings, lists and maps serialize as JSON")
}

/// A CEL map literal from string keys to CEL expressions.
fn cel_map(entries: &BTreeMap<String, String>) -> String {
    let entries: Vec<String> =
        entries.iter().map(|(key, value)| format!("{}: {value}", cel_literal(key))).collect();
    format!("{{{}}}", entries.join(", "))
}

fn crd_names(store: &StoreRef) -> Result<CrdNames, DeployError> {
    CrdNames::of(store)
        .map_err(|source| DeployError::Crd { store: store.clone(), source: Box::new(source) })
}

/// The exchange the pods use: the apiserver, in the app's namespace.
fn exchange_url(target: &Target) -> String {
    format!("kube://?namespace={}", target.namespace)
}

/// Checks that `name` is a DNS-1123 label, as namespaces and the labels of objects must be.
fn check_label(what: &'static str, name: &str) -> Result<(), DeployError> {
    let bytes = name.as_bytes();
    let valid = !bytes.is_empty()
        && bytes.len() <= 63
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-';
    match valid {
        true => Ok(()),
        false => Err(DeployError::InvalidName { what, name: name.to_owned() }),
    }
}
