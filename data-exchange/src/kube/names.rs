//! Object names as Kubernetes spells them. Knactor names may hold capitals and `_`, which a
//! resource name may not: such a name is stored under a lowercase spelling with a hash of the
//! original (`EUR` is `eur-` and ten hex digits), and the original is kept in the annotation
//! `knactor.dev/name`. A name Kubernetes accepts as it is keeps its spelling.

use std::collections::BTreeMap;

use kube::api::{ApiResource, DynamicObject, ObjectMeta};

use crate::crd::is_valid_object_name as is_resource_name;

/// The annotation holding an object's Knactor name when its resource name differs.
pub(super) const NAME_ANNOTATION: &str = "knactor.dev/name";

/// The resource name of the object `name`.
pub(super) fn resource_name(name: &str) -> String {
    if is_resource_name(name) {
        return name.to_owned();
    }
    let spelled: String = name
        .chars()
        .map(|c| match c {
            'A'..='Z' => c.to_ascii_lowercase(),
            'a'..='z' | '0'..='9' => c,
            _ => '-',
        })
        .collect();
    let spelled = spelled.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    let spelled = if spelled.is_empty() { "x" } else { &spelled[..spelled.len().min(200)] };
    format!("{spelled}-{:010x}", fnv1a(name) >> 24)
}

/// A new resource for the object `name`, annotated with it when its spelling differs.
pub(super) fn resource(name: &str, api: &ApiResource) -> DynamicObject {
    let mut resource = DynamicObject::new(&resource_name(name), api);
    if !is_resource_name(name) {
        let annotations = BTreeMap::from([(NAME_ANNOTATION.to_owned(), name.to_owned())]);
        resource.metadata.annotations = Some(annotations);
    }
    resource
}

/// The Knactor name of a resource.
pub(super) fn object_name(metadata: &ObjectMeta) -> String {
    let annotated = metadata.annotations.as_ref().and_then(|a| a.get(NAME_ANNOTATION));
    annotated.or(metadata.name.as_ref()).cloned().unwrap_or_default()
}

/// FNV-1a, 64 bits: a hash that never changes between builds, as stored names need.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_kubernetes_accepts_keep_their_spelling() {
        for name in ["o1", "order-1042", "cast.retail-checkout", "a.b-c"] {
            assert_eq!(resource_name(name), name);
        }
    }

    #[test]
    fn other_names_are_spelled_lowercase_with_a_hash_of_the_original() {
        let eur = resource_name("EUR");
        assert!(eur.starts_with("eur-") && eur.len() == 14, "{eur}");
        assert_ne!(eur, resource_name("Eur"), "names differing in case stay apart");
        assert_eq!(eur, resource_name("EUR"), "the same name always maps alike");
        for name in ["living_room", "_x_", "-a", "a-", "a..b", "A"] {
            let spelled = resource_name(name);
            assert!(is_resource_name(&spelled), "{name} -> {spelled}");
        }
    }

    #[test]
    fn the_annotation_gives_the_name_back() {
        let api = ApiResource {
            group: "fx.knactor.dev".into(),
            version: "v1".into(),
            api_version: "fx.knactor.dev/v1".into(),
            kind: "Rates".into(),
            plural: "rates".into(),
        };
        for name in ["EUR", "usd"] {
            assert_eq!(object_name(&resource(name, &api).metadata), name);
        }
    }
}
