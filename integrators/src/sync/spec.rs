//! The Sync spec as users write it (plain serde data; see [`super::plan`] for the checked form).

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

/// `spec` of a `Sync` manifest.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SyncSpec {
    /// The dataflows.
    pub flows: Vec<FlowSpec>,
}

/// One dataflow: records of `from` through `ops` into `to`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FlowSpec {
    /// Unique within the spec; with the spec's name, it keys the flow's checkpoint.
    pub name: String,
    /// The Log store read, or several read as one (union).
    pub from: Sources,
    /// The Log store appended to.
    pub to: String,
    /// The operators, applied in order; each a one-key mapping (`- filter: "..."`).
    #[serde(default, with = "serde_yaml::with::singleton_map_recursive")]
    pub ops: Vec<OpSpec>,
}

/// `from`: one store ref or a list of them.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Sources {
    /// `from: knactor/store`.
    One(String),
    /// `from: [a/x, b/y]`.
    Many(Vec<String>),
}

impl Sources {
    /// The store refs as written.
    pub fn refs(&self) -> Vec<&str> {
        match self {
            Sources::One(one) => vec![one],
            Sources::Many(many) => many.iter().map(String::as_str).collect(),
        }
    }
}

/// One operator.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum OpSpec {
    /// Keeps the records for which a SQL expression is true.
    Filter(String),
    /// Renames columns: old → new.
    Rename(IndexMap<String, String>),
    /// Keeps these columns, in this order.
    Select(Vec<String>),
    /// Removes these columns.
    Drop(Vec<String>),
    /// Adds (or replaces) columns computed by SQL expressions, in order.
    Derive(IndexMap<String, String>),
    /// Orders the records of each batch the flow emits.
    Sort(SortSpec),
    /// Groups and aggregates, per tumbling window of `ts` or per batch.
    Aggregate(AggregateSpec),
    /// Drops records whose `by` columns repeat, per tumbling window of `ts` or per batch.
    Dedupe(DedupeSpec),
    /// Passes the first N records of the flow, then nothing.
    Limit(u64),
}

impl OpSpec {
    /// The operator's name, as written.
    pub fn kind(&self) -> &'static str {
        match self {
            OpSpec::Filter(_) => "filter",
            OpSpec::Rename(_) => "rename",
            OpSpec::Select(_) => "select",
            OpSpec::Drop(_) => "drop",
            OpSpec::Derive(_) => "derive",
            OpSpec::Sort(_) => "sort",
            OpSpec::Aggregate(_) => "aggregate",
            OpSpec::Dedupe(_) => "dedupe",
            OpSpec::Limit(_) => "limit",
        }
    }

    /// Whether the operator works record by record, keeping nothing between batches.
    pub fn is_stateless(&self) -> bool {
        matches!(
            self,
            OpSpec::Filter(_)
                | OpSpec::Rename(_)
                | OpSpec::Select(_)
                | OpSpec::Drop(_)
                | OpSpec::Derive(_)
        )
    }
}

/// `sort`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SortSpec {
    /// The columns, most significant first.
    pub by: Vec<String>,
    /// Largest first.
    #[serde(default)]
    pub descending: bool,
}

/// `aggregate`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateSpec {
    /// A tumbling window over `ts` (`30s`, `1m`, `1h`); without one, each batch is aggregated
    /// on its own.
    #[serde(default)]
    pub window: Option<String>,
    /// How long after a window's end its records may still arrive (default `0s`).
    #[serde(default)]
    pub lateness: Option<String>,
    /// The grouping columns.
    #[serde(default)]
    pub by: Vec<String>,
    /// Output column → SQL aggregate expression (`sum(wh)`, `count(*)`, `avg(x)`...).
    pub values: IndexMap<String, String>,
}

/// `dedupe`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DedupeSpec {
    /// The columns that identify a duplicate.
    pub by: Vec<String>,
    /// A tumbling window over `ts` within which duplicates are dropped; without one, within
    /// each batch.
    #[serde(default)]
    pub window: Option<String>,
    /// How long after a window's end its records may still arrive (default `0s`).
    #[serde(default)]
    pub lateness: Option<String>,
}
