//! The Cast spec as users write it (plain serde data; see [`super::plan`] for the checked form).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `spec` of a `Cast` manifest.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CastSpec {
    /// Alias → the store it names.
    pub inputs: BTreeMap<String, InputSpec>,
    /// The data exchange edges.
    #[serde(default)]
    pub edges: Vec<EdgeSpec>,
    /// When applied to a running app, also evaluate the objects already present.
    #[serde(default)]
    pub resync: bool,
}

/// An input: a store ref, or `{store, collect}`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum InputSpec {
    /// `alias: knactor/store`.
    Store(String),
    /// `alias: {store: knactor/store, collect: true}`.
    Detailed(DetailedInput),
}

/// An input with options.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DetailedInput {
    /// The store ref.
    pub store: String,
    /// Bind the alias to the list of all objects' data in the store.
    #[serde(default)]
    pub collect: bool,
}

impl InputSpec {
    /// The store ref as written.
    pub fn store(&self) -> &str {
        match self {
            InputSpec::Store(store) => store,
            InputSpec::Detailed(d) => &d.store,
        }
    }

    /// Whether the alias is bound to all objects of the store.
    pub fn collect(&self) -> bool {
        matches!(self, InputSpec::Detailed(DetailedInput { collect: true, .. }))
    }
}

/// One edge of the graph: when a `from` object changes, write fields of the `to` object.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EdgeSpec {
    /// Unique within the spec.
    pub name: String,
    /// The aliases whose changes trigger the edge; all must exist under the same key.
    pub from: Vec<String>,
    /// The alias written.
    pub to: String,
    /// A CEL condition; the edge writes only when it is true.
    #[serde(default)]
    pub when: Option<String>,
    /// A CEL expression for the target's name; default: the triggering object's name.
    #[serde(default)]
    pub key: Option<String>,
    /// Target field (dotted path) → value: JSONPath when it starts with `$`, else CEL.
    #[serde(default)]
    pub set: BTreeMap<String, SetValue>,
    /// What a deletion of the triggering object does to the target.
    #[serde(default)]
    pub on_delete: OnDelete,
}

/// A `set` value: YAML may give a number or a boolean, which is a CEL literal.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum SetValue {
    /// An expression.
    Text(String),
    /// A numeric literal.
    Number(serde_json::Number),
    /// A boolean literal.
    Bool(bool),
}

impl SetValue {
    /// The value as expression source.
    pub fn source(&self) -> String {
        match self {
            SetValue::Text(text) => text.clone(),
            SetValue::Number(n) => n.to_string(),
            SetValue::Bool(b) => b.to_string(),
        }
    }
}

/// `onDelete` of an edge.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnDelete {
    /// Leave the target as it is (the default).
    #[default]
    Ignore,
    /// Delete the target.
    Cascade,
}
