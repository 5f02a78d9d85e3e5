//! A store as a Kubernetes CustomResourceDefinition (DESIGN §12), as plain JSON: what the
//! apiserver Object exchange registers and `knactor deploy` writes.
//!
//! Start with [`custom_resource_definition`]. A store `checkout/orders` becomes the resource
//! `orders` of the API group `checkout.knactor.dev` ([`CrdNames`]); its objects are custom
//! resources `{apiVersion, kind, metadata: {name, resourceVersion}, data}`, the object's data
//! under `.data`, described by the store's schema made structural ([`structural_schema`]).

mod names;
mod structural;

pub use names::{CrdNames, NameRole, is_valid_object_name};
pub use structural::{NotStructural, structural_schema};

use serde_json::{Value, json};

use crate::store::StoreRef;

/// The CRD annotation that holds the store's whole JSON Schema (compact JSON): the
/// structural schema drops what Kubernetes has no use for, this keeps it.
pub const SCHEMA_ANNOTATION: &str = "knactor.dev/schema";

/// Why a store cannot become a CustomResourceDefinition.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CrdError {
    /// The knactor's or the store's name is not a name Kubernetes accepts for its role.
    #[error("{role} name `{name}` {problem}; Kubernetes accepts {accepts}")]
    InvalidName {
        /// Which name.
        role: NameRole,
        /// The name.
        name: String,
        /// What is wrong with it.
        problem: String,
        /// What Kubernetes accepts there.
        accepts: &'static str,
    },
    /// The store's schema has no structural form.
    #[error(transparent)]
    NotStructural(#[from] NotStructural),
}

/// The CustomResourceDefinition (`apiextensions.k8s.io/v1`) of `store`, whose objects'
/// data `schema` describes.
pub fn custom_resource_definition(store: &StoreRef, schema: &Value) -> Result<Value, CrdError> {
    let names = CrdNames::of(store)?;
    let data = structural_schema(schema)?;
    Ok(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": names.crd_name(),
            "labels": {
                "app.kubernetes.io/managed-by": "knactor",
                "knactor.dev/store": names::store_label(store),
            },
            "annotations": { SCHEMA_ANNOTATION: schema.to_string() },
        },
        "spec": {
            "group": names.group,
            "names": {
                "kind": names.kind,
                "listKind": format!("{}List", names.kind),
                "plural": names.plural,
                "singular": names.singular,
            },
            "scope": "Namespaced",
            "versions": [{
                "name": names.version,
                "served": true,
                "storage": true,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": { "data": data },
                    },
                },
            }],
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_becomes_a_crd_with_its_schema_under_data() {
        let store: StoreRef = "house/settings".parse().unwrap();
        let schema = json!({
            "type": "object",
            "properties": {
                "hour": {"type": "integer", "minimum": 0, "x-knactor-ingest": true},
                "brightness": {"type": "object", "additionalProperties": {"type": "number"}},
            },
        });
        let crd = custom_resource_definition(&store, &schema).unwrap();
        let want = json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {
                "name": "settings.house.knactor.dev",
                "labels": {
                    "app.kubernetes.io/managed-by": "knactor",
                    "knactor.dev/store": "house.settings",
                },
                "annotations": { SCHEMA_ANNOTATION: schema.to_string() },
            },
            "spec": {
                "group": "house.knactor.dev",
                "names": {
                    "kind": "Settings",
                    "listKind": "SettingsList",
                    "plural": "settings",
                    "singular": "settings",
                },
                "scope": "Namespaced",
                "versions": [{
                    "name": "v1",
                    "served": true,
                    "storage": true,
                    "schema": {"openAPIV3Schema": {
                        "type": "object",
                        "properties": {"data": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": true,
                            "properties": {
                                "hour": {"type": "integer", "minimum": 0},
                                "brightness": {
                                    "type": "object",
                                    "additionalProperties": {"type": "number"},
                                },
                            },
                        }},
                    }},
                }],
            },
        });
        assert_eq!(crd, want);
        // The annotation is the schema itself, nothing dropped.
        let kept = crd["metadata"]["annotations"][SCHEMA_ANNOTATION].as_str().unwrap();
        assert_eq!(serde_json::from_str::<Value>(kept).unwrap(), schema);
        assert!(!kept.contains('\n'), "compact: {kept}");
    }

    #[test]
    fn a_store_kubernetes_cannot_serve_is_refused() {
        let store: StoreRef = "checkout/orders".parse().unwrap();
        let err = custom_resource_definition(&store, &json!({"oneOf": []})).unwrap_err();
        assert!(matches!(&err, CrdError::NotStructural(n) if n.keyword == "oneOf"), "{err}");
        let store: StoreRef = "checkout/my_orders".parse().unwrap();
        let err = custom_resource_definition(&store, &json!({})).unwrap_err();
        assert!(matches!(&err, CrdError::InvalidName { role: NameRole::Store, .. }), "{err}");
    }
}
