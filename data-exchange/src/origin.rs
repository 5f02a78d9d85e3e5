//! Provenance: who wrote each field of an object, and from what. A write may carry its
//! [`Origin`]; the exchange keeps it for every top-level field the write sets, until another
//! write sets that field (the last writer of each field, nothing older), and forgets an
//! object's origins with the object.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::object::WriteOp;

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

/// The top-level fields a write sets, and whether it replaces the object's other fields too.
pub(crate) struct Touched<'a> {
    /// The fields it sets.
    pub(crate) fields: Vec<&'a str>,
    /// A put: every field it does not set is gone, and so is its origin.
    pub(crate) replaces: bool,
}

impl<'a> Touched<'a> {
    /// What `op` touches (a delete touches nothing: the object's origins go with it).
    pub(crate) fn of(op: &'a WriteOp) -> Self {
        let (data, replaces) = match op {
            WriteOp::Put(data) => (data, true),
            WriteOp::Patch(patch) => (patch, false),
            WriteOp::Delete => (&Value::Null, true),
        };
        let fields = data.as_object().into_iter().flat_map(|m| m.keys()).map(String::as_str);
        Touched { fields: fields.collect(), replaces }
    }

    /// `origins` after a write stamped `stamp` (`None`: no origin; the fields it sets then have
    /// none) set these fields.
    pub(crate) fn apply(&self, origins: &mut Origins, stamp: Option<&Stamp>) {
        if self.replaces {
            origins.clear();
        }
        for field in &self.fields {
            match stamp {
                Some(stamp) => origins.insert((*field).to_owned(), stamp.clone()),
                None => origins.remove(*field),
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
    fn a_patch_restamps_the_fields_it_sets_and_keeps_the_others() {
        let mut origins = Origins::new();
        let put = WriteOp::Put(json!({ "a": 1, "b": 2 }));
        Touched::of(&put).apply(&mut origins, Some(&stamp(1, "knactor:k")));
        let patch = WriteOp::Patch(json!({ "b": 3, "c": 4 }));
        Touched::of(&patch).apply(&mut origins, Some(&stamp(2, "integrator:i")));
        let writers: Vec<(&str, u64, &str)> = origins
            .iter()
            .map(|(f, s)| (f.as_str(), s.version, s.origin.writer.as_str()))
            .collect();
        let want = [("a", 1, "knactor:k"), ("b", 2, "integrator:i"), ("c", 2, "integrator:i")];
        assert_eq!(writers, want);
    }

    #[test]
    fn a_put_forgets_the_fields_it_drops_and_a_write_without_origin_clears_its_own() {
        let mut origins = Origins::new();
        let put = WriteOp::Put(json!({ "a": 1, "b": 2 }));
        Touched::of(&put).apply(&mut origins, Some(&stamp(1, "knactor:k")));
        Touched::of(&WriteOp::Put(json!({ "a": 5 }))).apply(&mut origins, Some(&stamp(2, "o")));
        assert_eq!(origins.keys().collect::<Vec<_>>(), ["a"]);
        Touched::of(&WriteOp::Patch(json!({ "a": 6 }))).apply(&mut origins, None);
        assert!(origins.is_empty());
    }
}
