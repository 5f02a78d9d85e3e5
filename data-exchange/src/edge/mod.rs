//! Edges an exchange runs itself, inside the writes of their source stores, so that a target
//! is written without a round trip through the integrator that owns the edge.
//!
//! An [`Edge`] is a neutral, checked description: its sources, its target, and its condition,
//! key and fields as [`Expr`] trees. Running edges is a capability of its own, [`EdgeRunner`],
//! which an exchange offers through [`ObjectExchange::edge_runner`](crate::ObjectExchange::edge_runner):
//! the Redis exchange runs edges (as Redis Functions); the embedded one does not.

mod expr;

use std::collections::BTreeMap;

use async_trait::async_trait;

pub use expr::{BinaryOp, Expr, Index, Literal, Path, Step, UnaryOp};

use crate::error::Result;
use crate::store::StoreRef;

/// One edge for an exchange to run: when an object of a source store is written, it binds
/// that object's data to the source's alias and the other sources' objects of the same name to
/// theirs; when `when` holds, it merge-patches the target object named by `key` (by default
/// the written object's name) with the `set` fields, creating it if absent.
#[derive(Clone, Debug, PartialEq)]
pub struct Edge {
    name: String,
    sources: Vec<(String, StoreRef)>,
    target: StoreRef,
    cascade: bool,
    key: Option<Expr>,
    when: Option<Expr>,
    set: Vec<(Vec<String>, Expr)>,
}

/// Why an [`Edge`] cannot be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidEdge {
    /// It has no source.
    #[error("edge `{0}` has no source")]
    NoSource(String),
    /// An expression reads an alias that is not one of its sources.
    #[error("edge `{edge}` reads `{alias}`, which is not one of its sources")]
    UnknownAlias {
        /// The edge.
        edge: String,
        /// The alias read.
        alias: String,
    },
    /// A `set` path is empty or has an empty field name.
    #[error("edge `{0}` sets an empty field path")]
    EmptyPath(String),
}

impl Edge {
    /// An edge named `name` (unique in the exchange) from `sources` (alias, store) to
    /// `target`, which sets nothing yet.
    pub fn new(
        name: impl Into<String>,
        sources: Vec<(String, StoreRef)>,
        target: StoreRef,
    ) -> Result<Self, InvalidEdge> {
        let name = name.into();
        if sources.is_empty() {
            return Err(InvalidEdge::NoSource(name));
        }
        Ok(Edge { name, sources, target, cascade: false, key: None, when: None, set: Vec::new() })
    }

    /// Deletes the target when the triggering source object is deleted.
    pub fn with_cascade(mut self, cascade: bool) -> Self {
        self.cascade = cascade;
        self
    }

    /// Names the target object by `key` (a string) instead of the written object's name.
    pub fn with_key(mut self, key: Expr) -> Result<Self, InvalidEdge> {
        self.check(&key)?;
        self.key = Some(key);
        Ok(self)
    }

    /// Writes the target only when `when` holds.
    pub fn with_when(mut self, when: Expr) -> Result<Self, InvalidEdge> {
        self.check(&when)?;
        self.when = Some(when);
        Ok(self)
    }

    /// Sets the target field at `path` (nested objects are created) to `value`.
    pub fn with_set(mut self, path: Vec<String>, value: Expr) -> Result<Self, InvalidEdge> {
        if path.is_empty() || path.iter().any(String::is_empty) {
            return Err(InvalidEdge::EmptyPath(self.name));
        }
        self.check(&value)?;
        self.set.push((path, value));
        Ok(self)
    }

    /// Checks that `expr` reads only sources.
    fn check(&self, expr: &Expr) -> Result<(), InvalidEdge> {
        let unknown =
            expr.aliases().into_iter().find(|a| !self.sources.iter().any(|(s, _)| s == a));
        match unknown {
            Some(alias) => {
                Err(InvalidEdge::UnknownAlias { edge: self.name.clone(), alias: alias.to_owned() })
            }
            None => Ok(()),
        }
    }

    /// Its name, unique in the exchange.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its sources: alias and store.
    pub fn sources(&self) -> &[(String, StoreRef)] {
        &self.sources
    }

    /// The store it writes.
    pub fn target(&self) -> &StoreRef {
        &self.target
    }

    /// Whether deleting a source object deletes its target.
    pub fn cascade(&self) -> bool {
        self.cascade
    }

    /// The target object's name, when not the written object's.
    pub fn key(&self) -> Option<&Expr> {
        self.key.as_ref()
    }

    /// The condition under which it writes.
    pub fn when(&self) -> Option<&Expr> {
        self.when.as_ref()
    }

    /// The fields it sets: path in the target, value.
    pub fn set(&self) -> &[(Vec<String>, Expr)] {
        &self.set
    }

    /// The top-level fields of the target it writes.
    pub fn fields(&self) -> Vec<String> {
        let mut fields: Vec<String> = Vec::new();
        for (path, _) in &self.set {
            if !fields.contains(&path[0]) {
                fields.push(path[0].clone());
            }
        }
        fields
    }
}

/// What [`EdgeRunner::run_edges`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EdgesRun {
    /// The edges it runs.
    pub running: Vec<String>,
    /// The edges it refused, with why.
    pub refused: Vec<(String, String)>,
    /// Per source store of a running edge, the store version from which the exchange runs
    /// it: changes up to this version may have been made before it ran.
    pub from: BTreeMap<StoreRef, u64>,
}

impl EdgesRun {
    /// Every edge refused with the same reason.
    pub fn refuse_all(edges: &[Edge], why: &str) -> Self {
        let refused = edges.iter().map(|e| (e.name.clone(), why.to_owned())).collect();
        EdgesRun { refused, ..EdgesRun::default() }
    }
}

/// An exchange that runs edges inside the writes of their source stores.
#[async_trait]
pub trait EdgeRunner: Send + Sync {
    /// Runs `edges` in place of the edges `owner` handed over before (none: stop running
    /// them). The exchange takes the edges it can run exactly as the integrator would (its
    /// target's schema checked where it runs them), and says why it refuses the others.
    async fn run_edges(&self, owner: &str, edges: &[Edge]) -> Result<EdgesRun>;
}
