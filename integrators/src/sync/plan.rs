//! Checking a Sync spec into a [`SyncPlan`]: store refs, operators, SQL expressions (parsed and
//! type-checked by DataFusion against the stores' schemas) and each flow's output against its
//! destination, every problem reported at its file:line:column.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, new_null_array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use data_exchange::StoreRef;
use data_exchange::access::Rights;
use data_exchange::log::arrow_schema;
use datafusion::error::Result as DfResult;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

use super::expr::{Map, OpError, session};
use super::spec::{FlowSpec, OpSpec, SyncSpec};
use super::stage::Stage;
use super::window::Window;
use crate::cast::{Schemas, principal};
use crate::diff::PlanDiff;
use crate::source::{Diagnostic, Diagnostics, SpecFile, Step, parse_manifest};

/// A checked Sync spec, ready to run.
#[derive(Debug)]
pub struct SyncPlan {
    /// The spec's `metadata.name`.
    pub name: String,
    /// The flows, in spec order.
    pub flows: Vec<FlowPlan>,
    /// Grants declared for it beyond what its flows need (an app's policies).
    pub declared: Rights,
}

/// A checked flow.
#[derive(Debug)]
pub struct FlowPlan {
    /// The flow as written.
    pub spec: FlowSpec,
    /// The stores read, in `from` order.
    pub sources: Vec<StoreRef>,
    /// The store appended to.
    pub to: StoreRef,
    /// The schema every source's records are brought to (the first source's column order).
    pub input: SchemaRef,
    /// How many leading operators are stateless: the part flows may share.
    pub prefix: usize,
    /// The key of the flow's checkpoint in its destination.
    pub checkpoint: String,
    /// How its output becomes records of `to`.
    pub conform: Conform,
}

impl FlowPlan {
    /// The leading stateless operators.
    pub fn prefix_ops(&self) -> &[OpSpec] {
        &self.spec.ops[..self.prefix]
    }

    /// Fresh stages for the operators after the prefix, over the prefix's output `schema`,
    /// each with the operators it runs as written (to match saved state to its stage).
    pub fn stages(
        &self,
        ctx: &SessionContext,
        schema: &SchemaRef,
    ) -> Result<Vec<StageOf>, OpError> {
        compile_stages(ctx, schema, &self.spec.ops[self.prefix..])
            .map(|(stages, _)| stages)
            .map_err(|(_, e)| e)
    }

    /// Whether a running `other` can go on as `self`: the same spec (name, sources,
    /// destination, operators) over the same store schemas.
    pub fn runs_as(&self, other: &FlowPlan) -> bool {
        self.spec == other.spec
            && self.input == other.input
            && self.conform.schema() == other.conform.schema()
    }

    /// A source's batch with the flow's input schema (columns reordered by name).
    pub fn align(&self, batch: &RecordBatch) -> DfResult<RecordBatch> {
        if batch.schema().fields() == self.input.fields() {
            return Ok(batch.clone());
        }
        let columns = self
            .input
            .fields()
            .iter()
            .map(|f| batch.column_by_name(f.name()).cloned().expect("checked: same columns"))
            .collect();
        Ok(RecordBatch::try_new(self.input.clone(), columns)?)
    }
}

/// A compiled stage and the operators it runs, as JSON.
pub type StageOf = (Stage, String);

/// Compiles `ops` over `input`: runs of stateless operators fused, each other operator its own
/// stage (with its operators as JSON). Returns the stages and the schema they produce, or the
/// index of the failing op.
fn compile_stages(
    ctx: &SessionContext,
    input: &SchemaRef,
    ops: &[OpSpec],
) -> Result<(Vec<StageOf>, SchemaRef), (usize, OpError)> {
    let mut stages = Vec::new();
    let mut schema = input.clone();
    let mut i = 0;
    while i < ops.len() {
        let run = ops[i..].iter().take_while(|op| op.is_stateless()).count();
        let covered = &ops[i..i + run.max(1)];
        let stage = if run > 0 {
            Stage::Map(Map::compile(ctx, &schema, covered).map_err(|(j, e)| (i + j, e))?)
        } else {
            Stage::compile(ctx, &schema, &ops[i]).map_err(|e| (i, e))?
        };
        i += covered.len();
        schema = stage.schema(&schema);
        stages.push((stage, serde_json::to_string(covered).unwrap_or_default()));
    }
    Ok((stages, schema))
}

/// One destination column: where it comes from in a flow's output.
#[derive(Clone, Debug)]
enum Fill {
    Column(usize),
    Cast(usize),
    Nulls,
    Now,
}

/// Why a flow's output does not fit its destination.
#[derive(Debug, thiserror::Error)]
pub enum ConformError {
    /// The flow produces a column the destination does not have.
    #[error("the flow produces column `{column}`, which `{to}` does not have (its columns: {})", .known.join(", "))]
    Extra {
        /// The column produced.
        column: String,
        /// The destination.
        to: StoreRef,
        /// The destination's columns.
        known: Vec<String>,
    },
    /// The flow produces a column with a type the destination cannot hold.
    #[error("column `{column}` is {produced} but `{to}` holds {held}")]
    Type {
        /// The column.
        column: String,
        /// Its type in the flow's output.
        produced: DataType,
        /// The destination.
        to: StoreRef,
        /// Its type in the destination.
        held: DataType,
    },
    /// The destination requires a column the flow does not produce.
    #[error("`{to}` requires column `{column}`, which the flow does not produce")]
    Missing {
        /// The column.
        column: String,
        /// The destination.
        to: StoreRef,
    },
}

/// How a flow's output batches become batches of its destination's schema.
#[derive(Clone, Debug)]
pub struct Conform {
    schema: SchemaRef,
    fills: Vec<Fill>,
}

impl Conform {
    /// Whether it stamps `ts` with the time of the append (the flow does not give it).
    pub fn stamps_ts(&self) -> bool {
        self.fills.iter().any(|fill| matches!(fill, Fill::Now))
    }

    /// Matches `output` to `destination` by column name.
    fn new(
        output: &Schema,
        destination: SchemaRef,
        to: &StoreRef,
    ) -> Result<Conform, ConformError> {
        if let Some(extra) =
            output.fields().iter().find(|f| destination.field_with_name(f.name()).is_err())
        {
            return Err(ConformError::Extra {
                column: extra.name().clone(),
                to: to.clone(),
                known: destination.fields().iter().map(|f| f.name().clone()).collect(),
            });
        }
        let mut fills = Vec::new();
        for field in destination.fields() {
            let fill = match output.index_of(field.name()) {
                Ok(i) if output.field(i).data_type() == field.data_type() => Fill::Column(i),
                Ok(i) if widens(output.field(i).data_type(), field.data_type()) => Fill::Cast(i),
                Ok(i) => {
                    return Err(ConformError::Type {
                        column: field.name().clone(),
                        produced: output.field(i).data_type().clone(),
                        to: to.clone(),
                        held: field.data_type().clone(),
                    });
                }
                Err(_) if field.name() == arrow_schema::TS => Fill::Now,
                Err(_) if field.is_nullable() => Fill::Nulls,
                Err(_) => {
                    let column = field.name().clone();
                    return Err(ConformError::Missing { column, to: to.clone() });
                }
            };
            fills.push(fill);
        }
        Ok(Conform { schema: destination, fills })
    }

    /// `batch` as a batch of the destination's schema.
    pub fn apply(&self, batch: &RecordBatch) -> DfResult<RecordBatch> {
        let rows = batch.num_rows();
        let columns = self
            .fills
            .iter()
            .zip(self.schema.fields())
            .map(|(fill, field)| -> DfResult<ArrayRef> {
                Ok(match fill {
                    Fill::Column(i) => batch.column(*i).clone(),
                    Fill::Cast(i) => cast(batch.column(*i), field.data_type())?,
                    Fill::Nulls => new_null_array(field.data_type(), rows),
                    Fill::Now => {
                        let now =
                            arrow::array::TimestampMillisecondArray::from_value(now_millis(), rows);
                        cast(&now, field.data_type())?
                    }
                })
            })
            .collect::<DfResult<Vec<_>>>()?;
        let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(rows));
        Ok(RecordBatch::try_new_with_options(self.schema.clone(), columns, &options)?)
    }

    /// The destination schema.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }
}

/// Whether values of type `from` can be stored as `to` without losing anything: numbers
/// widen, strings and timestamps change representation, nulls go anywhere.
fn widens(from: &DataType, to: &DataType) -> bool {
    let string =
        |t: &DataType| matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
    use DataType::{Float64, Int8, Int16, Int32, Int64, Null, Timestamp, UInt8, UInt16, UInt32};
    match (from, to) {
        (Null, _) => true,
        // A coarser unit converts exactly; a finer one would be truncated.
        (Timestamp(from, _), Timestamp(to, _)) => from <= to,
        (f, t) if string(f) && string(t) => true,
        (Int8 | Int16 | Int32 | UInt8 | UInt16 | UInt32, Int64) => true,
        (f, Float64) => f.is_numeric(),
        _ => false,
    }
}

fn now_millis() -> i64 {
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    now.as_millis() as i64
}

/// The store-level flows of `flows`: (source, destination, flow index), one per source.
fn store_flows(flows: &[FlowPlan]) -> Vec<(StoreRef, StoreRef, usize)> {
    let per_source = flows.iter().enumerate().flat_map(|(i, flow)| {
        flow.sources.iter().map(move |source| (source.clone(), flow.to.clone(), i))
    });
    per_source.collect()
}

impl SyncPlan {
    /// How its flows carry records from store to store: (source, destination, flow index).
    pub fn store_flows(&self) -> Vec<(StoreRef, StoreRef, usize)> {
        store_flows(&self.flows)
    }

    /// Reads and checks the Sync spec in `file`. `schemas` (the JSON Schemas of the Log stores)
    /// lets the check resolve columns and types; without them only the form of the spec and
    /// the syntax of its expressions are checked, and the plan cannot run.
    pub fn load(file: &SpecFile, schemas: Option<&Schemas>) -> Result<SyncPlan, Diagnostics> {
        let manifest = parse_manifest::<SyncSpec>(file, "Sync")?;
        let mut checker = Checker { file, problems: Vec::new(), ctx: session() };
        let arrow = schemas.map(|schemas| checker.arrow_schemas(schemas));
        let mut flows = Vec::new();
        let mut names = BTreeSet::new();
        for (i, flow) in manifest.spec.flows.iter().enumerate() {
            if !names.insert(flow.name.as_str()) {
                checker.error(
                    &[Step::Key("flows"), Step::Index(i), Step::Key("name")],
                    format!("two flows are named `{}`", flow.name),
                );
            }
            if let Some(plan) = checker.flow(&manifest.metadata.name, i, flow, arrow.as_ref()) {
                flows.push(plan);
            }
        }
        if flows.len() == manifest.spec.flows.len() {
            checker.cycles(&flows);
        }
        let diagnostics = Diagnostics(checker.problems);
        let declared = Rights::new(principal(&manifest.metadata.name));
        diagnostics.into_result(SyncPlan { name: manifest.metadata.name, flows, declared })
    }

    /// The flows added, removed and changed from `old` to `self`.
    pub fn diff(&self, old: &SyncPlan) -> PlanDiff {
        PlanDiff::between(&old.parts(), &self.parts())
    }

    fn parts(&self) -> Vec<(&str, &FlowSpec)> {
        self.flows.iter().map(|f| (f.spec.name.as_str(), &f.spec)).collect()
    }
}

/// Collects the problems of one spec.
struct Checker<'a> {
    file: &'a SpecFile,
    problems: Vec<Diagnostic>,
    ctx: SessionContext,
}

/// The Arrow schemas of the Log stores that map to Arrow.
type ArrowSchemas = BTreeMap<StoreRef, SchemaRef>;

impl Checker<'_> {
    fn error(&mut self, steps: &[Step<'_>], message: impl Into<String>) {
        let mut path = vec![Step::Key("spec")];
        path.extend_from_slice(steps);
        self.problems.push(self.file.error_at(&path, message));
    }

    fn arrow_schemas(&mut self, schemas: &Schemas) -> ArrowSchemas {
        schemas
            .iter()
            .filter_map(|(store, schema)| {
                let arrow = arrow_schema::to_arrow(schema).ok()?;
                Some((store.clone(), Arc::new(arrow)))
            })
            .collect()
    }

    fn store(
        &mut self,
        steps: &[Step<'_>],
        text: &str,
        arrow: Option<&ArrowSchemas>,
    ) -> Option<StoreRef> {
        let store: StoreRef = match text.parse() {
            Ok(store) => store,
            Err(e) => {
                self.error(steps, e.to_string());
                return None;
            }
        };
        if arrow.is_some_and(|a| !a.contains_key(&store)) {
            self.error(steps, format!("unknown Log store `{store}`"));
            return None;
        }
        Some(store)
    }

    fn flow(
        &mut self,
        spec: &str,
        i: usize,
        flow: &FlowSpec,
        arrow: Option<&ArrowSchemas>,
    ) -> Option<FlowPlan> {
        let before = self.problems.len();
        let base = [Step::Key("flows"), Step::Index(i)];
        let at = |key: &'static str| [base[0], base[1], Step::Key(key)];
        let refs = flow.from.refs();
        if refs.is_empty() {
            self.error(&at("from"), "a flow reads at least one store");
        }
        let mut sources = Vec::new();
        for (j, text) in refs.iter().enumerate() {
            let steps = match refs.len() {
                1 => at("from").to_vec(),
                _ => vec![base[0], base[1], Step::Key("from"), Step::Index(j)],
            };
            if let Some(store) = self.store(&steps, text, arrow) {
                if sources.contains(&store) {
                    self.error(&steps, format!("`{store}` is read twice"));
                    continue;
                }
                sources.push(store);
            }
        }
        let to = self.store(&at("to"), &flow.to, arrow);
        if let Some(to) = &to
            && sources.contains(to)
        {
            self.error(&at("to"), format!("the flow writes `{to}`, which it reads"));
        }
        self.syntax(&base, flow);
        let (Some(arrow), Some(to), true) = (arrow, to, self.problems.len() == before) else {
            return None;
        };
        let input = self.union(&base, &sources, arrow)?;
        let (_, output) = match compile_stages(&self.ctx, &input, &flow.ops) {
            Ok(compiled) => compiled,
            Err((j, e)) => {
                let op = &flow.ops[j];
                let mut steps =
                    vec![base[0], base[1], Step::Key("ops"), Step::Index(j), Step::Key(op.kind())];
                if let Some(key) = e.key() {
                    if matches!(op, OpSpec::Aggregate(_)) {
                        steps.push(Step::Key("values"));
                    }
                    steps.push(Step::Key(key));
                }
                self.error(&steps, format!("{}: {e}", op.kind()));
                return None;
            }
        };
        let conform = match Conform::new(&output, arrow[&to].clone(), &to) {
            Ok(conform) => conform,
            Err(e) => {
                self.error(&at("to"), e.to_string());
                return None;
            }
        };
        let prefix = flow.ops.iter().take_while(|op| op.is_stateless()).count();
        let checkpoint = format!("sync/{spec}/{}", flow.name);
        Some(FlowPlan { spec: flow.clone(), sources, to, input, prefix, checkpoint, conform })
    }

    /// The schema shared by all sources: the same columns with the same types.
    fn union(
        &mut self,
        base: &[Step<'_>; 2],
        sources: &[StoreRef],
        arrow: &ArrowSchemas,
    ) -> Option<SchemaRef> {
        let first = arrow[&sources[0]].clone();
        let mut fields: Vec<Field> = first.fields().iter().map(|f| f.as_ref().clone()).collect();
        for other in &sources[1..] {
            let schema = &arrow[other];
            let same = schema.fields().len() == fields.len()
                && fields.iter().all(|f| {
                    schema.field_with_name(f.name()).is_ok_and(|o| o.data_type() == f.data_type())
                });
            if !same {
                let message = format!(
                    "`{other}` and `{}` have different columns: a union reads stores of one schema",
                    sources[0]
                );
                self.error(&[base[0], base[1], Step::Key("from")], message);
                return None;
            }
            for field in &mut fields {
                let nullable = field.is_nullable()
                    || schema.field_with_name(field.name()).is_ok_and(|o| o.is_nullable());
                field.set_nullable(nullable);
            }
        }
        Some(Arc::new(Schema::new(fields)))
    }

    /// Checks what can be checked without schemas: durations and SQL syntax.
    fn syntax(&mut self, base: &[Step<'_>; 2], flow: &FlowSpec) {
        for (j, op) in flow.ops.iter().enumerate() {
            let steps = [base[0], base[1], Step::Key("ops"), Step::Index(j), Step::Key(op.kind())];
            let mut sql: Vec<(Option<&str>, &str)> = Vec::new();
            let mut windows = Vec::new();
            match op {
                OpSpec::Filter(text) => sql.push((None, text)),
                OpSpec::Derive(derived) => {
                    sql.extend(derived.iter().map(|(k, v)| (Some(k.as_str()), v.as_str())))
                }
                OpSpec::Aggregate(a) => {
                    sql.extend(a.values.iter().map(|(k, v)| (Some(k.as_str()), v.as_str())));
                    windows.push((a.window.as_deref(), a.lateness.as_deref()));
                }
                OpSpec::Dedupe(d) => windows.push((d.window.as_deref(), d.lateness.as_deref())),
                _ => {}
            }
            for (key, text) in sql {
                let parsed = Parser::new(&GenericDialect {})
                    .try_with_sql(text)
                    .and_then(|mut p| p.parse_expr());
                if let Err(e) = parsed {
                    let mut steps = steps.to_vec();
                    if matches!(op, OpSpec::Aggregate(_)) {
                        steps.push(Step::Key("values"));
                    }
                    steps.extend(key.map(Step::Key));
                    self.error(&steps, format!("{}: in `{text}`: {e}", op.kind()));
                }
            }
            for (window, lateness) in windows {
                let checked = match window {
                    Some(width) => Window::parse(width, lateness).map(|_| ()),
                    None => Ok(()),
                };
                if let Err(message) = checked {
                    let at =
                        [steps[0], steps[1], steps[2], steps[3], steps[4], Step::Key("window")];
                    self.error(&at, format!("{}: {message}", op.kind()));
                }
            }
        }
    }

    /// Flows that feed each other in a loop would never stop.
    fn cycles(&mut self, flows: &[FlowPlan]) {
        for found in crate::loops::loops(store_flows(flows)) {
            // One flow into its own source is refused where it is checked, as a flow.
            if found.nodes.len() < 2 {
                continue;
            }
            let message = format!(
                "flows feed each other in a loop through {}",
                found.nodes.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            );
            self.error(&[Step::Key("flows"), Step::Index(found.arcs[0]), Step::Key("to")], message);
        }
    }
}
