//! TEMPORARY stand-in (replaced by the kube-crd branch).
#![allow(missing_docs)]
use crate::store::StoreRef;
use serde_json::{Value, json};
pub const SCHEMA_ANNOTATION: &str = "knactor.dev/schema";
#[derive(Debug)]
pub struct CrdNames {
    pub group: String,
    pub version: &'static str,
    pub kind: String,
    pub plural: String,
    pub singular: String,
}
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CrdError(String);
impl CrdNames {
    pub fn of(store: &StoreRef) -> Result<CrdNames, CrdError> {
        let plural = store.store().to_owned();
        let kind: String = plural
            .split('-')
            .map(|p| {
                let mut c = p.chars();
                c.next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default()
            })
            .collect();
        Ok(CrdNames {
            group: if store.knactor() == "_knactor" {
                "knactor.dev".to_owned()
            } else {
                format!("{}.knactor.dev", store.knactor())
            },
            version: "v1",
            singular: kind.to_lowercase(),
            kind,
            plural,
        })
    }
    pub fn api_version(&self) -> String {
        format!("{}/{}", self.group, self.version)
    }
    pub fn crd_name(&self) -> String {
        format!("{}.{}", self.plural, self.group)
    }
}
pub fn is_valid_object_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
}
pub fn custom_resource_definition(store: &StoreRef, schema: &Value) -> Result<Value, CrdError> {
    let n = CrdNames::of(store)?;
    Ok(json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
      "metadata": {"name": n.crd_name(), "annotations": {SCHEMA_ANNOTATION: schema.to_string()}},
      "spec": {"group": n.group, "scope": "Namespaced", "names": {"kind": n.kind, "plural": n.plural, "singular": n.singular, "listKind": format!("{}List", n.kind)},
        "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object", "properties": {"data": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}]}}))
}
