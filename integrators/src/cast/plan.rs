//! Checking a Cast spec into a [`CastPlan`]: every problem reported at once, each at its
//! file:line:column; expressions compiled once, here.

use std::collections::{BTreeMap, BTreeSet};

use data_exchange::StoreRef;
use data_exchange::access::Rights;
use serde_json::Value;

use super::expr::{CelExpr, ValueExpr};
use super::spec::{CastSpec, EdgeSpec};
use crate::diff::PlanDiff;
use crate::source::{Diagnostic, Diagnostics, SpecFile, Step, parse_manifest};

/// The schemas of the stores a spec may name, when they are known (`--app`, a running app).
pub type Schemas = BTreeMap<StoreRef, Value>;

/// The fields (top level) a Cast spec fills, with their stores.
pub type Filled = BTreeSet<(StoreRef, String)>;

/// A checked, compiled Cast spec, ready to run.
#[derive(Debug)]
pub struct CastPlan {
    /// The spec's `metadata.name`.
    pub name: String,
    /// Which of the spec's versions this is (1 when first applied), as its writes' origins
    /// name it.
    pub version: u64,
    /// Alias → input.
    pub inputs: BTreeMap<String, Input>,
    /// The edges, in spec order.
    pub edges: Vec<EdgePlan>,
    /// Evaluate the objects already present when applied.
    pub resync: bool,
    /// Ingest fields of the stores it writes that none of its edges fills: mistakes unless
    /// another spec of the app fills them (see [`CastPlan::fills`]).
    pub unfilled: Vec<Unfilled>,
    /// Grants declared for it beyond what its edges need (an app's policies).
    pub declared: Rights,
}

/// An ingest field of a written store that no edge of the spec fills, and the warning to give
/// when no other spec fills it either.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unfilled {
    /// The store written.
    pub store: StoreRef,
    /// The top-level field.
    pub field: String,
    /// Located at the store's input.
    pub warning: Diagnostic,
}

/// A checked input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    /// The store.
    pub store: StoreRef,
    /// Bound to the list of all objects' data.
    pub collect: bool,
}

/// A checked, compiled edge.
#[derive(Debug)]
pub struct EdgePlan {
    /// The edge as written.
    pub spec: EdgeSpec,
    /// The compiled `when`.
    pub when: Option<CelExpr>,
    /// The compiled `key`.
    pub key: Option<CelExpr>,
    /// Target field path → compiled value.
    pub set: Vec<(Vec<String>, ValueExpr)>,
    /// Every alias its expressions read (to bind `collect` inputs only when used).
    pub reads: BTreeSet<String>,
}

/// What an edge is made of, to tell whether it changed: its spec and its stores.
type EdgeParts<'a> = (&'a EdgeSpec, Vec<Option<&'a Input>>);

impl CastPlan {
    /// Reads, checks and compiles the Cast spec in `file`. `schemas`, when given, lets the
    /// check reject unknown stores, fields the schemas do not declare, writes to fields not
    /// marked `x-knactor-ingest`, and type mismatches. Returns the plan and its warnings.
    pub fn load(
        file: &SpecFile,
        schemas: Option<&Schemas>,
    ) -> Result<(CastPlan, Diagnostics), Diagnostics> {
        let manifest = parse_manifest::<CastSpec>(file, "Cast")?;
        let mut checker = Checker { file, schemas, problems: Vec::new(), unfilled: Vec::new() };
        let inputs = checker.inputs(&manifest.spec);
        let edges: Vec<EdgePlan> = manifest
            .spec
            .edges
            .iter()
            .enumerate()
            .filter_map(|(i, edge)| checker.edge(i, edge, &inputs))
            .collect();
        if edges.len() == manifest.spec.edges.len() {
            checker.cycles(&edges, &inputs);
            checker.coverage(&manifest.spec, &edges, &inputs);
        }
        let plan = CastPlan {
            declared: Rights::new(super::principal(&manifest.metadata.name)),
            name: manifest.metadata.name,
            version: 1,
            inputs,
            edges,
            resync: manifest.spec.resync,
            unfilled: checker.unfilled,
        };
        let diagnostics = Diagnostics(checker.problems);
        if diagnostics.has_errors() {
            return Err(diagnostics);
        }
        Ok((plan, diagnostics))
    }

    /// The fields (top level) its edges write, with their stores.
    pub fn filled(&self) -> Filled {
        filled_fields(self.edges.iter().map(|e| &e.spec), &self.inputs)
    }

    /// The distinct stores whose changes trigger edges: those of the aliases edges have in
    /// `from`.
    pub fn trigger_stores(&self) -> BTreeSet<StoreRef> {
        let aliases = self.edges.iter().flat_map(|e| &e.spec.from);
        aliases.filter_map(|alias| self.inputs.get(alias)).map(|i| i.store.clone()).collect()
    }

    /// Per store its edges may create objects in (an edge whose `from` does not read its
    /// target), the stores whose objects create them, under the same name; `*` for an edge
    /// that names its targets with a `key` of its own.
    pub fn creates(&self) -> BTreeMap<StoreRef, BTreeSet<String>> {
        let mut creates: BTreeMap<StoreRef, BTreeSet<String>> = BTreeMap::new();
        for edge in self.edges.iter().filter(|e| !e.spec.from.contains(&e.spec.to)) {
            let sources = creates.entry(self.inputs[&edge.spec.to].store.clone()).or_default();
            if edge.key.is_some() {
                sources.insert("*".to_owned());
                continue;
            }
            for alias in edge.spec.from.iter().filter(|a| !self.inputs[*a].collect) {
                sources.insert(self.inputs[alias].store.to_string());
            }
        }
        creates
    }

    /// The edges to run when an object of `alias` changes.
    pub fn edges_from<'a>(&'a self, alias: &'a str) -> impl Iterator<Item = &'a EdgePlan> + 'a {
        self.edges.iter().filter(move |e| e.spec.from.iter().any(|f| f == alias))
    }

    /// The edges added, removed and changed from `old` to `self`.
    pub fn diff(&self, old: &CastPlan) -> PlanDiff {
        PlanDiff::between(&old.parts(), &self.parts())
    }

    /// Each edge by name, with what it is made of: its spec and the stores it names.
    fn parts(&self) -> Vec<(&str, EdgeParts<'_>)> {
        let parts = self.edges.iter().map(|edge| {
            let aliases = edge.spec.from.iter().chain([&edge.spec.to]);
            let inputs = aliases.map(|a| self.inputs.get(a)).collect();
            (edge.spec.name.as_str(), (&edge.spec, inputs))
        });
        parts.collect()
    }
}

/// Collects the problems of one spec.
struct Checker<'a> {
    file: &'a SpecFile,
    schemas: Option<&'a Schemas>,
    problems: Vec<Diagnostic>,
    unfilled: Vec<Unfilled>,
}

/// A field that flows into another through an edge: the edge's `set` writes `to`
/// (`store.field`, a top-level field) from a value, or under a `when`, that reads `from`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldFlow {
    /// The field read, `store.field`.
    pub from: String,
    /// The field written, `store.field`.
    pub to: String,
    /// The edge, by its index in the spec.
    pub edge: usize,
}

/// The field flows of `edges` over `inputs`; reads of `collect` inputs (whole stores) are not
/// flows of one object's fields.
fn field_flows(edges: &[EdgePlan], inputs: &BTreeMap<String, Input>) -> Vec<FieldFlow> {
    let mut flows = Vec::new();
    for (edge, plan) in edges.iter().enumerate() {
        let Some(target) = inputs.get(&plan.spec.to) else { continue };
        let condition_reads = plan.when.as_ref().map(|w| w.field_reads()).unwrap_or_default();
        for (path, value) in &plan.set {
            let to = format!("{}.{}", target.store, path[0]);
            for (alias, field) in value.field_reads().iter().chain(&condition_reads) {
                let Some(source) = inputs.get(alias).filter(|s| !s.collect) else { continue };
                let from = format!("{}.{field}", source.store);
                flows.push(FieldFlow { from, to: to.clone(), edge });
            }
        }
    }
    flows
}

impl CastPlan {
    /// How its edges carry fields into fields (see [`FieldFlow`]).
    pub fn field_flows(&self) -> Vec<FieldFlow> {
        field_flows(&self.edges, &self.inputs)
    }

    /// The top-level fields its edges write, `store.field`, each with the first edge (by
    /// index) that writes it.
    pub fn field_writes(&self) -> BTreeMap<String, usize> {
        let mut writes = BTreeMap::new();
        for (edge, plan) in self.edges.iter().enumerate() {
            let Some(target) = self.inputs.get(&plan.spec.to) else { continue };
            for (path, _) in &plan.set {
                writes.entry(format!("{}.{}", target.store, path[0])).or_insert(edge);
            }
        }
        writes
    }
}

fn at<'s>(steps: &[Step<'s>]) -> Vec<Step<'s>> {
    let mut path = vec![Step::Key("spec")];
    path.extend_from_slice(steps);
    path
}

impl Checker<'_> {
    fn error(&mut self, steps: &[Step<'_>], message: impl Into<String>) {
        self.problems.push(self.file.error_at(&at(steps), message));
    }

    fn warning(&mut self, steps: &[Step<'_>], message: impl Into<String>) {
        self.problems.push(self.file.warning_at(&at(steps), message));
    }

    fn schema(&self, store: &StoreRef) -> Option<&Value> {
        self.schemas.and_then(|s| s.get(store))
    }

    fn inputs(&mut self, spec: &CastSpec) -> BTreeMap<String, Input> {
        let mut inputs = BTreeMap::new();
        for (alias, input) in &spec.inputs {
            let steps = [Step::Key("inputs"), Step::Key(alias)];
            if !is_alias(alias) || alias == "key" {
                let message =
                    format!("invalid alias `{alias}`: use a CEL identifier other than `key`");
                self.error(&steps, message);
                continue;
            }
            let store: StoreRef = match input.store().parse() {
                Ok(store) => store,
                Err(e) => {
                    self.error(&steps, e.to_string());
                    continue;
                }
            };
            if self.schemas.is_some() && self.schema(&store).is_none() {
                self.error(&steps, format!("unknown store `{store}`"));
                continue;
            }
            inputs.insert(alias.clone(), Input { store, collect: input.collect() });
        }
        inputs
    }

    fn edge(
        &mut self,
        i: usize,
        edge: &EdgeSpec,
        inputs: &BTreeMap<String, Input>,
    ) -> Option<EdgePlan> {
        let before = self.problems.len();
        let base = [Step::Key("edges"), Step::Index(i)];
        let field = |name: &'static str| [base[0], base[1], Step::Key(name)];
        if edge.from.is_empty() {
            self.error(&field("from"), format!("edge `{}` has no `from` alias", edge.name));
        }
        for (j, alias) in edge.from.iter().enumerate() {
            if !inputs.contains_key(alias) {
                let steps = [base[0], base[1], Step::Key("from"), Step::Index(j)];
                self.error(&steps, format!("unknown alias `{alias}`: declare it under `inputs`"));
            }
        }
        match inputs.get(&edge.to) {
            None => self.error(
                &field("to"),
                format!("unknown alias `{}`: declare it under `inputs`", edge.to),
            ),
            Some(input) if input.collect => {
                self.error(
                    &field("to"),
                    format!("`{}` is a collect input: an edge cannot write to it", edge.to),
                );
            }
            Some(_) => {}
        }
        let when = self.cel(&field("when"), edge.when.as_deref(), edge, inputs);
        let key = self.cel(&field("key"), edge.key.as_deref(), edge, inputs);
        let mut set = Vec::new();
        for (target, value) in &edge.set {
            let steps = [base[0], base[1], Step::Key("set"), Step::Key(target)];
            let path: Vec<String> = target.split('.').map(str::to_owned).collect();
            if path.iter().any(|p| p.is_empty()) {
                self.error(&steps, format!("invalid target field `{target}`"));
                continue;
            }
            match ValueExpr::compile(&value.source()) {
                Ok(compiled) => {
                    self.references(
                        &steps,
                        &compiled.identifiers(),
                        &compiled.field_reads(),
                        edge,
                        inputs,
                    );
                    self.target_field(&steps, edge, &path, &compiled, inputs);
                    set.push((path, compiled));
                }
                Err(error) => self.error(&steps, error.to_string()),
            }
        }
        if self.problems[before..].iter().any(|d| d.severity == crate::source::Severity::Error) {
            return None;
        }
        let (when, key) = (when.flatten(), key.flatten());
        let mut reads: BTreeSet<String> = set.iter().flat_map(|(_, v)| v.identifiers()).collect();
        reads.extend(when.iter().chain(&key).flat_map(CelExpr::identifiers));
        Some(EdgePlan { spec: edge.clone(), when, key, set, reads })
    }

    /// Compiles an optional CEL field and checks what it reads; `None` on error.
    fn cel(
        &mut self,
        steps: &[Step<'_>],
        source: Option<&str>,
        edge: &EdgeSpec,
        inputs: &BTreeMap<String, Input>,
    ) -> Option<Option<CelExpr>> {
        let Some(source) = source else { return Some(None) };
        match CelExpr::compile(source) {
            Ok(expr) => {
                self.references(steps, &expr.identifiers(), &expr.field_reads(), edge, inputs);
                Some(Some(expr))
            }
            Err(error) => {
                self.error(steps, error.to_string());
                None
            }
        }
    }

    /// Checks that an expression reads only bound aliases, and only fields their schemas declare.
    fn references(
        &mut self,
        steps: &[Step<'_>],
        identifiers: &BTreeSet<String>,
        reads: &BTreeSet<(String, String)>,
        edge: &EdgeSpec,
        inputs: &BTreeMap<String, Input>,
    ) {
        for ident in identifiers {
            if ident == "key" || edge.from.contains(ident) {
                continue;
            }
            match inputs.get(ident) {
                Some(input) if input.collect => {}
                Some(_) => self.error(steps, format!(
                    "`{ident}` is not in this edge's `from`, so it is not loaded: add it to `from`"
                )),
                None => self.error(steps, format!("unknown alias `{ident}`")),
            }
        }
        for (alias, field) in reads {
            let Some(input) = inputs.get(alias).filter(|i| !i.collect) else { continue };
            let Some(properties) = self.schema(&input.store).and_then(|s| s.get("properties"))
            else {
                continue;
            };
            if properties.get(field).is_none() {
                let store = &input.store;
                self.error(
                    steps,
                    format!("`{alias}.{field}`: the schema of {store} declares no field `{field}`"),
                );
            }
        }
    }

    /// Checks a write: the target field exists, is marked ingest, and has a compatible type.
    fn target_field(
        &mut self,
        steps: &[Step<'_>],
        edge: &EdgeSpec,
        path: &[String],
        value: &ValueExpr,
        inputs: &BTreeMap<String, Input>,
    ) {
        let Some(target) = inputs.get(&edge.to) else { return };
        let Some(properties) =
            self.schema(&target.store).and_then(|s| s.get("properties")).cloned()
        else {
            return;
        };
        let store = &target.store;
        let field = &path[0];
        let Some(declared) = properties.get(field) else {
            self.error(steps, format!("{store} declares no field `{field}`"));
            return;
        };
        if declared.get("x-knactor-ingest") != Some(&Value::Bool(true)) {
            self.error(steps, format!(
                "`{field}` of {store} is not marked `x-knactor-ingest: true`: only the knactor writes it"
            ));
            return;
        }
        if path.len() > 1 {
            return;
        }
        let target_type = declared.get("type").and_then(Value::as_str);
        let source_type = match value.as_field_copy() {
            Some((alias, source_field)) => inputs
                .get(&alias)
                .filter(|i| !i.collect)
                .and_then(|i| self.schema(&i.store))
                .and_then(|s| s.pointer(&format!("/properties/{source_field}/type")))
                .and_then(Value::as_str)
                .map(str::to_owned),
            None => match value {
                ValueExpr::Cel(cel) => cel.literal_type().map(str::to_owned),
                ValueExpr::Path(_) => None,
            },
        };
        if let (Some(want), Some(got)) = (target_type, source_type.as_deref())
            && !compatible(got, want)
        {
            self.error(
                steps,
                format!("type mismatch: `{field}` of {store} is {want}, but the value is {got}"),
            );
        }
    }

    /// Rejects field-level cycles: a field that, through edges, ends up writing itself.
    fn cycles(&mut self, edges: &[EdgePlan], inputs: &BTreeMap<String, Input>) {
        let flows = field_flows(edges, inputs).into_iter().map(|f| (f.from, f.to, f.edge));
        for found in crate::loops::loops(flows) {
            self.error(
                &[Step::Key("edges"), Step::Index(found.arcs[0]), Step::Key("set")],
                format!("field-level cycle: {}", found.describe()),
            );
        }
    }

    /// Warns about unused inputs, and notes ingest fields of written stores that no edge fills.
    fn coverage(&mut self, spec: &CastSpec, edges: &[EdgePlan], inputs: &BTreeMap<String, Input>) {
        let filled = filled_fields(spec.edges.iter(), inputs);
        for (alias, input) in inputs {
            let used = spec.edges.iter().any(|e| e.to == *alias || e.from.contains(alias))
                || edges.iter().any(|e| {
                    e.set.iter().any(|(_, v)| v.identifiers().contains(alias))
                        || e.when.as_ref().is_some_and(|w| w.identifiers().contains(alias))
                });
            let steps = [Step::Key("inputs"), Step::Key(alias)];
            if !used {
                self.warning(
                    &steps,
                    format!("input `{alias}` is never read or written by an edge"),
                );
                continue;
            }
            if !spec.edges.iter().any(|e| e.to == *alias) {
                continue;
            }
            let Some(properties) = self
                .schema(&input.store)
                .and_then(|s| s.get("properties"))
                .and_then(Value::as_object)
                .cloned()
            else {
                continue;
            };
            for (field, declared) in properties {
                let ingest = declared.get("x-knactor-ingest") == Some(&Value::Bool(true));
                let filled = filled.contains(&(input.store.clone(), field.clone()));
                if ingest && !filled {
                    let store = input.store.clone();
                    let message = format!(
                        "ingest field `{field}` of {store} is filled by no edge (a client may write it)"
                    );
                    let warning = self.file.warning_at(&at(&steps), message);
                    self.unfilled.push(Unfilled { store, field, warning });
                }
            }
        }
    }
}

/// The fields (top level) `edges` write, with their stores.
fn filled_fields<'a>(
    edges: impl Iterator<Item = &'a EdgeSpec>,
    inputs: &BTreeMap<String, Input>,
) -> Filled {
    let mut filled = Filled::new();
    for edge in edges {
        let Some(target) = inputs.get(&edge.to) else { continue };
        for path in edge.set.keys() {
            let field = path.split('.').next().unwrap_or(path);
            filled.insert((target.store.clone(), field.to_owned()));
        }
    }
    filled
}

/// Whether a value of JSON type `got` may be written to a field of type `want`.
fn compatible(got: &str, want: &str) -> bool {
    got == want
        || (got == "integer" && want == "number")
        || (got == "number" && want == "integer")
        || got == "null"
}

fn is_alias(alias: &str) -> bool {
    let mut chars = alias.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A plan of `edges` (lines of `spec.edges`) over the inputs `order` (checkout/orders),
/// `shipment` (shipping/shipments) and `all` (shipping/shipments, collected): for the tests of
/// the modules that take a plan.
#[cfg(test)]
pub(crate) fn test_plan(edges: &str) -> CastPlan {
    let text = format!(
        "apiVersion: knactor.dev/v1\nkind: Cast\nmetadata: {{name: t}}\nspec:\n  inputs:\n    order: checkout/orders\n    shipment: shipping/shipments\n    all: {{store: shipping/shipments, collect: true}}\n  edges:\n{edges}"
    );
    CastPlan::load(&SpecFile::from_text(std::path::Path::new("t.yaml"), text), None).unwrap().0
}
