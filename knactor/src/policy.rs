//! The `Policy` manifest (DESIGN §11): grants declared beyond the rights each principal has
//! by construction (a knactor's own stores, what a spec's edges and flows need). Each grant
//! names a principal of the app, one of its stores (a whole store: grants add up, and one
//! limited to some objects would narrow the others), and what it may do there; a grant that
//! names an unknown principal, store or field, or one its principal cannot use, is rejected
//! with file:line:column.

use std::collections::{BTreeMap, BTreeSet};

use data_exchange::StoreRef;
use data_exchange::access::{Fields, Grant, Rights};
use integrators::source::{Diagnostic, Diagnostics, Manifest, SpecFile, Step, parse_manifest};
use serde::Deserialize;
use serde_json::Value;

/// `spec` of a `Policy` manifest.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    /// The grants, each to one principal on one store.
    pub grants: Vec<GrantSpec>,
}

/// One declared grant.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantSpec {
    /// `knactor:NAME` or `integrator:SPEC`.
    pub principal: String,
    /// `knactor/store`.
    pub store: String,
    /// `true` (every field), or the top-level fields it may see.
    #[serde(default)]
    pub read: FieldsSpec,
    /// `true` (every field), or the top-level fields it may change; on a Log store, appends.
    #[serde(default)]
    pub write: FieldsSpec,
    /// It may delete objects.
    #[serde(default)]
    pub delete: bool,
}

/// `true`, `false`, or a list of top-level fields.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum FieldsSpec {
    /// Every field, or none.
    Every(bool),
    /// These fields.
    Only(Vec<String>),
}

impl Default for FieldsSpec {
    fn default() -> Self {
        FieldsSpec::Every(false)
    }
}

impl FieldsSpec {
    fn fields(&self) -> Option<Fields> {
        match self {
            FieldsSpec::Every(false) => None,
            FieldsSpec::Every(true) => Some(Fields::All),
            FieldsSpec::Only(fields) => Some(Fields::only(fields.iter().cloned())),
        }
    }

    fn named(&self) -> &[String] {
        match self {
            FieldsSpec::Only(fields) => fields,
            FieldsSpec::Every(_) => &[],
        }
    }
}

/// A `Policy` manifest.
pub type PolicyManifest = Manifest<PolicySpec>;

/// What a policy is checked against: the app's principals and stores.
#[derive(Clone, Debug, Default)]
pub struct Known {
    /// `knactor:NAME` of every knactor, which may be granted any store.
    pub knactors: BTreeSet<String>,
    /// `integrator:SPEC` of every Cast spec, which reaches Object stores only.
    pub casts: BTreeSet<String>,
    /// `integrator:SPEC` of every Sync spec, which reaches Log stores only.
    pub syncs: BTreeSet<String>,
    /// Every Object store, with its schema.
    pub objects: BTreeMap<StoreRef, Value>,
    /// Every Log store.
    pub logs: BTreeSet<StoreRef>,
}

/// The grants of an app's policies, by principal.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policies(BTreeMap<String, Rights>);

impl Policies {
    /// Reads and checks the `Policy` manifests `files` against `known`, reporting every
    /// problem found.
    pub fn load(files: &[SpecFile], known: &Known) -> Result<Self, Diagnostics> {
        let mut policies = Policies::default();
        let mut problems = Vec::new();
        for file in files {
            match parse_manifest::<PolicySpec>(file, "Policy") {
                Ok(manifest) => {
                    for (i, grant) in manifest.spec.grants.iter().enumerate() {
                        match check(file, i, grant, known) {
                            Ok((store, checked)) => policies.add(&grant.principal, store, checked),
                            Err(mut found) => problems.append(&mut found),
                        }
                    }
                }
                Err(e) => problems.extend(e.0),
            }
        }
        Diagnostics(problems).into_result(policies)
    }

    fn add(&mut self, principal: &str, store: StoreRef, grant: Grant) {
        let rights = self.0.entry(principal.to_owned()).or_insert_with(|| Rights::new(principal));
        rights.grant(store, grant);
    }

    /// The grants declared for `principal` (e.g. `knactor:shipping`), added to `rights`.
    pub fn add_to(&self, rights: &mut Rights) {
        if let Some(declared) = self.0.get(rights.principal()) {
            rights.extend(declared);
        }
    }

    /// The grants declared for `principal`: no rights when none are.
    pub fn of(&self, principal: &str) -> Rights {
        self.0.get(principal).cloned().unwrap_or_else(|| Rights::new(principal))
    }
}

/// The store and grant of the `i`th grant of `file`, or its problems.
fn check(
    file: &SpecFile,
    i: usize,
    spec: &GrantSpec,
    known: &Known,
) -> Result<(StoreRef, Grant), Vec<Diagnostic>> {
    let at = |field: &'static str| [Step::from("spec"), "grants".into(), i.into(), field.into()];
    let mut problems = Vec::new();
    let principal = &spec.principal;
    let (is_cast, is_sync) = (known.casts.contains(principal), known.syncs.contains(principal));
    if !known.knactors.contains(principal) && !is_cast && !is_sync {
        let all = known.knactors.iter().chain(&known.casts).chain(&known.syncs);
        let names: Vec<&str> = all.map(String::as_str).collect();
        let message = format!(
            "`{principal}` is not a principal of this app (its principals: {})",
            names.join(", ")
        );
        problems.push(file.error_at(&at("principal"), message));
    }
    let store: Option<StoreRef> = spec.store.parse().ok();
    let (on_log, schema) = match &store {
        Some(s) if known.logs.contains(s) => (true, None),
        Some(s) if known.objects.contains_key(s) => (false, known.objects.get(s)),
        _ => {
            let message = format!("`{}` is not a store of this app", spec.store);
            problems.push(file.error_at(&at("store"), message));
            return Err(problems);
        }
    };
    if (is_cast && on_log) || (is_sync && !on_log) {
        let (kind, reaches) = if is_cast { ("Cast", "Object") } else { ("Sync", "Log") };
        let message = format!(
            "`{principal}` is a {kind} spec, which reaches {reaches} stores only: `{}` is not one",
            spec.store
        );
        problems.push(file.error_at(&at("store"), message));
    }
    let (read, write) = (spec.read.fields(), spec.write.fields());
    if read.is_none() && write.is_none() && !spec.delete {
        let message = "the grant gives nothing: set `read`, `write` or `delete`";
        problems.push(file.error_at(&[Step::from("spec"), "grants".into(), i.into()], message));
    }
    for (field, fields) in [("read", &spec.read), ("write", &spec.write)] {
        if matches!(fields, FieldsSpec::Only(named) if named.is_empty()) {
            let message = format!("an empty list grants no field: leave `{field}` out");
            problems.push(file.error_at(&at(field), message));
        }
    }
    if on_log {
        for (field, given) in [
            ("read", !spec.read.named().is_empty()),
            ("write", !spec.write.named().is_empty()),
            ("delete", spec.delete),
        ] {
            if given {
                let message = format!(
                    "`{}` is a Log store: its records are read and appended whole (`read: true`, `write: true`), never deleted",
                    spec.store
                );
                problems.push(file.error_at(&at(field), message));
            }
        }
    }
    let declared = schema.and_then(|s| s["properties"].as_object());
    for (field, fields) in [("read", &spec.read), ("write", &spec.write)] {
        for (j, name) in fields.named().iter().enumerate() {
            if declared.is_some_and(|d| !d.contains_key(name)) {
                let message = format!("`{}` declares no field `{name}`", spec.store);
                let path = [Step::from("spec"), "grants".into(), i.into(), field.into(), j.into()];
                problems.push(file.error_at(&path, message));
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let grant = Grant { read, write, delete: spec.delete, objects: None };
    Ok((store.expect("checked above"), grant))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::Path;

    fn known() -> Known {
        let orders = json!({"type": "object", "properties": {"status": {}, "total": {}}});
        Known {
            knactors: ["knactor:ads".to_owned()].into(),
            casts: ["integrator:checkout".to_owned()].into(),
            syncs: ["integrator:digest".to_owned()].into(),
            objects: [("checkout/orders".parse().unwrap(), orders)].into(),
            logs: ["email/sent".parse().unwrap()].into(),
        }
    }

    fn load(grants: &str) -> Result<Policies, Diagnostics> {
        let text = format!(
            "apiVersion: knactor.dev/v1\nkind: Policy\nmetadata: {{name: p}}\nspec:\n  grants:\n{grants}"
        );
        Policies::load(&[SpecFile::from_text(Path::new("p.yaml"), text)], &known())
    }

    #[test]
    fn a_grant_adds_to_the_rights_of_its_principal_only() {
        let policies = load(
            "    - {principal: knactor:ads, store: checkout/orders, read: [status, total]}\n    - {principal: knactor:ads, store: email/sent, read: true}\n",
        )
        .unwrap();
        let mut ads = Rights::new("knactor:ads");
        policies.add_to(&mut ads);
        let orders = ads.on(&"checkout/orders".parse().unwrap()).unwrap();
        assert_eq!(orders.read, Some(Fields::only(["status", "total"])));
        assert_eq!((orders.write.as_ref(), orders.delete), (None, false));
        assert_eq!(ads.on(&"email/sent".parse().unwrap()), Some(&Grant::read()));
        assert_eq!(policies.of("integrator:checkout").grants().count(), 0);
    }

    #[test]
    fn unknown_principals_stores_and_fields_are_located() {
        let problems = load(
            "    - {principal: knactor:nobody, store: checkout/orders, read: true}\n    - {principal: knactor:ads, store: checkout/carts, read: true}\n    - {principal: knactor:ads, store: checkout/orders, write: [status, colour]}\n    - {principal: knactor:ads, store: email/sent, write: [to]}\n    - {principal: knactor:ads, store: checkout/orders}\n    - {principal: integrator:checkout, store: email/sent, read: true}\n    - {principal: integrator:digest, store: checkout/orders, read: []}\n",
        )
        .unwrap_err()
        .to_string();
        for expected in [
            "p.yaml:6:19: error: `knactor:nobody` is not a principal of this app (its principals: knactor:ads, integrator:checkout, integrator:digest)",
            "p.yaml:7:39: error: `checkout/carts` is not a store of this app",
            "p.yaml:8:72: error: `checkout/orders` declares no field `colour`",
            "p.yaml:9:58: error: `email/sent` is a Log store",
            "p.yaml:10:8: error: the grant gives nothing",
            "p.yaml:11:47: error: `integrator:checkout` is a Cast spec, which reaches Object stores only: `email/sent` is not one",
            "p.yaml:12:45: error: `integrator:digest` is a Sync spec, which reaches Log stores only",
            "p.yaml:12:68: error: an empty list grants no field: leave `read` out",
        ] {
            assert!(problems.contains(expected), "{expected}\nnot in:\n{problems}");
        }
    }
}
