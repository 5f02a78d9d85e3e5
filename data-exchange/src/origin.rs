//! Provenance: who wrote each field of an object, and from what. A write may carry its
//! [`Origin`]; the exchange keeps it for every top-level field the write changes, until
//! another write changes that field (the last writer of each field, nothing older), and
//! forgets an object's origins with the object. A field written with the value it had keeps
//! its writer; a field a write changes without an origin (a migration, a pushed-down edge) has
//! none.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Who made a write, and, for a write an edge derived, from what.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Origin {
    /// The principal that wrote (`knactor:shipping`, `integrator:checkout`, `operator`).
    pub writer: String,
    /// The edge that derived the write, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edge: Option<EdgeOrigin>,
}

/// The edge behind a write: which, what it set, and the objects it read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EdgeOrigin {
    /// The Cast spec.
    pub spec: String,
    /// The spec's version that ran the edge.
    pub spec_version: u64,
    /// The edge's name.
    pub edge: String,
    /// Each field path the edge set (dotted), with its expression.
    pub set: Vec<(String, String)>,
    /// The objects the edge's expressions were evaluated on.
    pub sources: Vec<Source>,
}

/// An object an edge read, at the version it read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// The alias the edge's expressions name it by.
    pub alias: String,
    /// Its store (`knactor/store`).
    pub store: String,
    /// Its name.
    pub name: String,
    /// Its version when read.
    pub version: u64,
}

impl Origin {
    /// A write of `writer`'s own, derived by no edge.
    pub fn by(writer: impl Into<String>) -> Self {
        Origin { writer: writer.into(), edge: None }
    }

    /// Whether `principal` may say this of its write: it names `principal` as the writer and,
    /// when it names an edge, `principal` runs that edge's spec (`integrator:SPEC`, or its
    /// shadow run `shadow:SPEC`).
    pub fn may_be_claimed_by(&self, principal: &str) -> bool {
        let runs = |spec: &str| {
            let kind = principal.strip_suffix(spec).and_then(|p| p.strip_suffix(':'));
            matches!(kind, Some("integrator" | "shadow"))
        };
        self.writer == principal && self.edge.as_ref().is_none_or(|edge| runs(&edge.spec))
    }
}

/// The last write of one top-level field: the object's version it made, and its origin.
#[derive(Clone, Debug, PartialEq)]
pub struct Stamp {
    /// The object's version after the write.
    pub version: u64,
    /// Who wrote, and from what.
    pub origin: Arc<Origin>,
}

/// An object's origins: per top-level field, its last write.
pub type Origins = BTreeMap<String, Stamp>;

/// The top-level fields a write changed: those it gave another value (or added), and those
/// it dropped. A field written with the value it had keeps its last writer.
pub(crate) struct Changed {
    /// Fields with a new value.
    pub(crate) set: Vec<String>,
    /// Fields gone.
    pub(crate) dropped: Vec<String>,
}

impl Changed {
    /// What changed from `old` (`None`: the object is new) to `new`.
    pub(crate) fn between(old: Option<&Value>, new: &Value) -> Self {
        let (old, new) = (old.and_then(Value::as_object), new.as_object());
        let before = |field: &str| old.and_then(|old| old.get(field));
        let set = new.into_iter().flatten().filter(|(field, value)| before(field) != Some(value));
        let gone = old.into_iter().flatten().map(|(field, _)| field);
        let dropped = gone.filter(|field| new.is_none_or(|new| !new.contains_key(*field)));
        Changed {
            set: set.map(|(field, _)| field.clone()).collect(),
            dropped: dropped.cloned().collect(),
        }
    }

    /// `origins` after a write stamped `stamp` (`None`: it said no origin, and the fields it
    /// changed then have none) made these changes.
    pub(crate) fn apply(&self, origins: &mut Origins, stamp: Option<&Stamp>) {
        for field in &self.dropped {
            origins.remove(field);
        }
        for field in &self.set {
            match stamp {
                Some(stamp) => origins.insert(field.clone(), stamp.clone()),
                None => origins.remove(field),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn stamp(version: u64, writer: &str) -> Stamp {
        Stamp { version, origin: Arc::new(Origin::by(writer)) }
    }

    #[test]
    fn only_an_edges_own_integrator_may_claim_it() {
        let edge = EdgeOrigin {
            spec: "checkout".into(),
            spec_version: 1,
            edge: "e".into(),
            set: Vec::new(),
            sources: Vec::new(),
        };
        let claim = |writer: &str| Origin { writer: writer.into(), edge: Some(edge.clone()) };
        assert!(claim("integrator:checkout").may_be_claimed_by("integrator:checkout"));
        assert!(claim("shadow:checkout").may_be_claimed_by("shadow:checkout"));
        assert!(!claim("knactor:checkout").may_be_claimed_by("knactor:checkout"));
        assert!(!claim("integrator:other").may_be_claimed_by("integrator:other"));
        assert!(!claim("integrator:checkout").may_be_claimed_by("integrator:other"));
        assert!(Origin::by("knactor:k").may_be_claimed_by("knactor:k"));
        assert!(!Origin::by("operator").may_be_claimed_by("knactor:k"));
    }

    #[test]
    fn a_write_restamps_the_fields_it_changed_and_keeps_the_others() {
        let mut origins = Origins::new();
        let first = json!({ "a": 1, "b": 2 });
        Changed::between(None, &first).apply(&mut origins, Some(&stamp(1, "knactor:k")));
        let second = json!({ "a": 1, "b": 3, "c": 4 });
        let changed = Changed::between(Some(&first), &second);
        changed.apply(&mut origins, Some(&stamp(2, "integrator:i")));
        let writers: Vec<(&str, u64, &str)> = origins
            .iter()
            .map(|(f, s)| (f.as_str(), s.version, s.origin.writer.as_str()))
            .collect();
        let want = [("a", 1, "knactor:k"), ("b", 2, "integrator:i"), ("c", 2, "integrator:i")];
        assert_eq!(writers, want, "`a`, written with the value it had, keeps its writer");
    }

    #[test]
    fn dropped_fields_and_fields_changed_without_origin_lose_theirs() {
        let mut origins = Origins::new();
        let first = json!({ "a": 1, "b": 2 });
        Changed::between(None, &first).apply(&mut origins, Some(&stamp(1, "knactor:k")));
        let second = json!({ "a": 5 });
        Changed::between(Some(&first), &second).apply(&mut origins, Some(&stamp(2, "o")));
        assert_eq!(origins.keys().collect::<Vec<_>>(), ["a"]);
        Changed::between(Some(&second), &json!({ "a": 6 })).apply(&mut origins, None);
        assert!(origins.is_empty());
    }
}
