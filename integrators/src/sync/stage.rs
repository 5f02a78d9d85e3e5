//! The operators that keep state between batches or reorder them: `aggregate`, `dedupe`,
//! `sort` and `limit`, each a [`Stage`] after the fused stateless operators.
//!
//! Every batch in a flow carries its [`Origin`]: where in a source it began. A stage holding
//! records for open windows reports the earliest origin it holds, so that a restarted flow can
//! rebuild that state by replaying its sources from there ("silently": replayed records feed
//! state but nothing is emitted twice).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use arrow::array::{BooleanArray, RecordBatch, UInt32Array};
use arrow::compute::{
    LexicographicalComparator, SortColumn, SortOptions, filter_record_batch, take_record_batch,
};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::row::{RowConverter, SortField};
use datafusion::common::{DFSchema, Result as DfResult};
use datafusion::logical_expr::{Expr, SortExpr};
use datafusion::prelude::SessionContext;
use serde_json::{Value, json};

use super::expr::{Map, OpError, column, parse};
use super::spec::{AggregateSpec, DedupeSpec, OpSpec, SortSpec};
use super::window::{Clock, Window};

/// Where a batch began: the index of its source in the flow's `from`, and the offset.
pub type Origin = (usize, u64);

/// Records moving through a flow.
#[derive(Clone, Debug)]
pub struct Piece {
    /// The records.
    pub batch: RecordBatch,
    /// Where the earliest of them came from.
    pub origin: Origin,
}

/// One compiled operator (or fused run of stateless operators) of a flow.
#[derive(Debug)]
pub enum Stage {
    /// Stateless operators, fused.
    Map(Map),
    /// `sort`.
    Sort(Sort),
    /// `aggregate`.
    Aggregate(Box<Aggregate>),
    /// `dedupe`.
    Dedupe(Dedupe),
    /// `limit`.
    Limit(Limit),
}

impl Stage {
    /// Compiles the stateful `op` over records of `input`.
    pub fn compile(ctx: &SessionContext, input: &SchemaRef, op: &OpSpec) -> Result<Stage, OpError> {
        match op {
            OpSpec::Sort(spec) => Sort::compile(input, spec).map(Stage::Sort),
            OpSpec::Aggregate(spec) => {
                Aggregate::compile(ctx, input, spec).map(|a| Stage::Aggregate(Box::new(a)))
            }
            OpSpec::Dedupe(spec) => Dedupe::compile(input, spec).map(Stage::Dedupe),
            OpSpec::Limit(n) => Ok(Stage::Limit(Limit { limit: *n, emitted: 0 })),
            other => Map::compile(ctx, input, std::slice::from_ref(other))
                .map(Stage::Map)
                .map_err(|(_, e)| e),
        }
    }

    /// The schema of the records it emits.
    pub fn schema(&self, input: &SchemaRef) -> SchemaRef {
        match self {
            Stage::Map(map) => map.schema().clone(),
            Stage::Aggregate(aggregate) => aggregate.schema.clone(),
            Stage::Sort(_) | Stage::Dedupe(_) | Stage::Limit(_) => input.clone(),
        }
    }

    /// Feeds `piece`; returns what it emits. A `silent` piece is being replayed: it only
    /// rebuilds state.
    pub async fn push(&mut self, piece: Piece, silent: bool) -> DfResult<Vec<Piece>> {
        let Piece { batch, origin } = piece;
        let one = |batch: RecordBatch| Ok(vec![Piece { batch, origin }]);
        match self {
            Stage::Map(map) => one(map.apply(&batch)?),
            Stage::Sort(sort) => one(sort.apply(&batch)?),
            Stage::Aggregate(aggregate) => aggregate.push(Piece { batch, origin }).await,
            Stage::Dedupe(dedupe) => one(dedupe.push(&batch, origin)?),
            Stage::Limit(limit) if silent => one(batch),
            Stage::Limit(limit) => one(limit.apply(batch)),
        }
    }

    /// Lowers `origins` (source → offset) to the earliest origin of the records it holds.
    pub fn holds(&self, origins: &mut BTreeMap<usize, u64>) {
        let mut hold = |(source, offset): Origin| {
            let at = origins.entry(source).or_insert(offset);
            *at = (*at).min(offset);
        };
        match self {
            Stage::Aggregate(aggregate) => aggregate.held.iter().for_each(|h| hold(h.origin)),
            Stage::Dedupe(dedupe) => {
                dedupe.windows.values().for_each(|w| w.origins.iter().for_each(|o| hold(*o)))
            }
            _ => {}
        }
    }

    /// The state to checkpoint, if any.
    pub fn save(&self) -> Option<Value> {
        match self {
            Stage::Aggregate(aggregate) if aggregate.window.is_some() => {
                Some(json!(aggregate.clock))
            }
            Stage::Dedupe(dedupe) if dedupe.window.is_some() => Some(json!(dedupe.clock)),
            Stage::Limit(limit) => Some(json!(limit.emitted)),
            _ => None,
        }
    }

    /// Restores state saved by [`Stage::save`].
    pub fn restore(&mut self, state: &Value) {
        let clock = || serde_json::from_value(state.clone()).unwrap_or_default();
        match self {
            Stage::Aggregate(aggregate) => aggregate.clock = clock(),
            Stage::Dedupe(dedupe) => dedupe.clock = clock(),
            Stage::Limit(limit) => limit.emitted = state.as_u64().unwrap_or(0),
            _ => {}
        }
    }

    /// Records dropped because their window had closed.
    pub fn late(&self) -> u64 {
        match self {
            Stage::Aggregate(aggregate) => aggregate.late,
            Stage::Dedupe(dedupe) => dedupe.late,
            _ => 0,
        }
    }
}

fn column_index(input: &SchemaRef, name: &str) -> Result<usize, OpError> {
    input
        .index_of(name)
        .map_err(|_| OpError::unknown(name, input.fields().iter().map(|f| f.name().as_str())))
}

/// The window of an operator and the index of `ts`, which must be a timestamp.
fn window_of(
    input: &SchemaRef,
    window: Option<&str>,
    lateness: Option<&str>,
) -> Result<Option<(Window, usize)>, OpError> {
    let Some(width) = window else {
        if lateness.is_some() {
            return Err(OpError::LatenessWithoutWindow);
        }
        return Ok(None);
    };
    let window = Window::parse(width, lateness)?;
    let ts = column_index(input, "ts")?;
    match input.field(ts).data_type() {
        DataType::Timestamp(..) => Ok(Some((window, ts))),
        other => Err(OpError::TsNotTimestamp(other.clone())),
    }
}

/// `sort`: orders each emitted batch.
#[derive(Debug)]
pub struct Sort {
    columns: Vec<usize>,
    descending: bool,
}

impl Sort {
    fn compile(input: &SchemaRef, spec: &SortSpec) -> Result<Sort, OpError> {
        let columns = spec.by.iter().map(|c| column_index(input, c)).collect::<Result<_, _>>()?;
        Ok(Sort { columns, descending: spec.descending })
    }

    fn apply(&self, batch: &RecordBatch) -> DfResult<RecordBatch> {
        let options = SortOptions { descending: self.descending, nulls_first: false };
        let columns: Vec<SortColumn> = self
            .columns
            .iter()
            .map(|&i| SortColumn { values: batch.column(i).clone(), options: Some(options) })
            .collect();
        let order = LexicographicalComparator::try_new(&columns)?;
        // A stable sort: records that compare equal keep their order (e.g. window order).
        let mut indices: Vec<u32> = (0..batch.num_rows() as u32).collect();
        indices.sort_by(|&a, &b| order.compare(a as usize, b as usize));
        Ok(take_record_batch(batch, &UInt32Array::from(indices))?)
    }
}

/// `limit`: the first N records of the flow.
#[derive(Debug)]
pub struct Limit {
    limit: u64,
    emitted: u64,
}

impl Limit {
    fn apply(&mut self, batch: RecordBatch) -> RecordBatch {
        let room = self.limit.saturating_sub(self.emitted).min(batch.num_rows() as u64);
        self.emitted += room;
        batch.slice(0, room as usize)
    }
}

/// A batch held for windows that are still open; `ts` holds window starts.
#[derive(Debug)]
struct Held {
    batch: RecordBatch,
    starts: Vec<i64>,
    origin: Origin,
}

/// `aggregate`: group by columns (and window), compute aggregate expressions.
pub struct Aggregate {
    ctx: SessionContext,
    group: Vec<Expr>,
    values: Vec<Expr>,
    order: Vec<SortExpr>,
    schema: SchemaRef,
    window: Option<(Window, usize)>,
    clock: Clock,
    held: Vec<Held>,
    late: u64,
}

impl std::fmt::Debug for Aggregate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aggregate")
            .field("group", &self.group)
            .field("values", &self.values)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl Aggregate {
    fn compile(
        ctx: &SessionContext,
        input: &SchemaRef,
        spec: &AggregateSpec,
    ) -> Result<Aggregate, OpError> {
        let window = window_of(input, spec.window.as_deref(), spec.lateness.as_deref())?;
        let dfschema = DFSchema::try_from(input.as_ref().clone()).map_err(OpError::Planning)?;
        let mut group = Vec::new();
        if window.is_some() {
            group.push(column("ts"));
        }
        for name in &spec.by {
            column_index(input, name)?;
            if window.is_some() && name == "ts" {
                return Err(OpError::GroupByTs);
            }
            group.push(column(name));
        }
        if spec.values.is_empty() {
            return Err(OpError::NoAggregates);
        }
        let empty = RecordBatch::new_empty(input.clone());
        let mut values = Vec::new();
        for (name, sql) in &spec.values {
            let expr = parse(ctx, sql, &dfschema).map_err(|e| e.at(name))?.alias(name);
            // Planning the aggregate alone locates a mistake at its own entry.
            ctx.read_batch(empty.clone())
                .and_then(|df| df.aggregate(group.clone(), vec![expr.clone()]))
                .map_err(|source| OpError::Sql { sql: sql.clone(), source }.at(name))?;
            values.push(expr);
        }
        let planned = ctx
            .read_batch(empty)
            .and_then(|df| df.aggregate(group.clone(), values.clone()))
            .map_err(OpError::Planning)?;
        let schema = Arc::new(planned.schema().as_arrow().clone());
        let order = group.iter().map(|g| g.clone().sort(true, false)).collect();
        Ok(Aggregate {
            ctx: ctx.clone(),
            group,
            values,
            order,
            schema,
            window,
            clock: Clock::default(),
            held: Vec::new(),
            late: 0,
        })
    }

    /// Aggregates `batches` (of one batch, or of the closed windows), ordered by group.
    async fn aggregate(&self, batches: Vec<RecordBatch>, origin: Origin) -> DfResult<Vec<Piece>> {
        if batches.iter().all(|b| b.num_rows() == 0) {
            return Ok(Vec::new());
        }
        let df = self.ctx.read_batches(batches)?;
        let df = df.aggregate(self.group.clone(), self.values.clone())?.sort(self.order.clone())?;
        let batches = df.collect().await?;
        let batch = arrow::compute::concat_batches(&self.schema, &batches)?;
        let batch = RecordBatch::try_new(self.schema.clone(), batch.columns().to_vec())?;
        Ok(vec![Piece { batch, origin }])
    }

    async fn push(&mut self, piece: Piece) -> DfResult<Vec<Piece>> {
        let Some((window, ts)) = self.window else {
            return self.aggregate(vec![piece.batch], piece.origin).await;
        };
        let (starts, max) = window.starts(&piece.batch, ts)?;
        let on_time: BooleanArray =
            starts.iter().map(|&s| Some(!self.clock.is_late(&window, s))).collect();
        let kept = on_time.true_count();
        self.late += (starts.len() - kept) as u64;
        if kept > 0 {
            let batch = filter_record_batch(&Window::stamp(&piece.batch, ts, &starts)?, &on_time)?;
            let starts =
                starts.iter().zip(on_time.values()).filter(|(_, k)| *k).map(|(s, _)| *s).collect();
            self.held.push(Held { batch, starts, origin: piece.origin });
        }
        let Some(closed) = self.clock.advance(&window, max) else { return Ok(Vec::new()) };
        // Split what is held into the closed windows' records and the rest.
        let mut done = Vec::new();
        let mut origin = None::<Origin>;
        let mut open = Vec::new();
        for held in std::mem::take(&mut self.held) {
            let closing: BooleanArray = held.starts.iter().map(|&s| Some(s < closed)).collect();
            match closing.true_count() {
                0 => open.push(held),
                n => {
                    origin = Some(origin.map_or(held.origin, |o| o.min(held.origin)));
                    if n == held.starts.len() {
                        done.push(held.batch);
                        continue;
                    }
                    done.push(filter_record_batch(&held.batch, &closing)?);
                    let staying = arrow::compute::not(&closing)?;
                    let batch = filter_record_batch(&held.batch, &staying)?;
                    let starts = held.starts.iter().filter(|&&s| s >= closed).copied().collect();
                    open.push(Held { batch, starts, origin: held.origin });
                }
            }
        }
        self.held = open;
        match origin {
            Some(origin) => self.aggregate(done, origin).await,
            None => Ok(Vec::new()),
        }
    }
}

/// The keys seen in one open window of a `dedupe`.
#[derive(Debug, Default)]
struct Seen {
    keys: HashSet<Box<[u8]>>,
    origins: HashSet<Origin>,
}

/// `dedupe`: drops records whose `by` columns were already seen in their window (or batch).
#[derive(Debug)]
pub struct Dedupe {
    columns: Vec<usize>,
    converter: RowConverter,
    window: Option<(Window, usize)>,
    clock: Clock,
    windows: BTreeMap<i64, Seen>,
    late: u64,
}

impl Dedupe {
    fn compile(input: &SchemaRef, spec: &DedupeSpec) -> Result<Dedupe, OpError> {
        if spec.by.is_empty() {
            return Err(OpError::NoDedupeKeys);
        }
        let columns: Vec<usize> =
            spec.by.iter().map(|c| column_index(input, c)).collect::<Result<_, _>>()?;
        let fields =
            columns.iter().map(|&i| SortField::new(input.field(i).data_type().clone())).collect();
        let converter = RowConverter::new(fields).map_err(OpError::Keys)?;
        let window = window_of(input, spec.window.as_deref(), spec.lateness.as_deref())?;
        Ok(Dedupe {
            columns,
            converter,
            window,
            clock: Clock::default(),
            windows: BTreeMap::new(),
            late: 0,
        })
    }

    fn push(&mut self, batch: &RecordBatch, origin: Origin) -> DfResult<RecordBatch> {
        let keys: Vec<_> = self.columns.iter().map(|&i| batch.column(i).clone()).collect();
        let rows = self.converter.convert_columns(&keys)?;
        let Some((window, ts)) = self.window else {
            let mut seen = HashSet::new();
            let first: BooleanArray =
                rows.iter().map(|r| Some(seen.insert(r.data().to_vec()))).collect();
            return Ok(filter_record_batch(batch, &first)?);
        };
        let (starts, max) = window.starts(batch, ts)?;
        let mut keep = Vec::with_capacity(starts.len());
        for (row, start) in rows.iter().zip(starts) {
            if self.clock.is_late(&window, start) {
                self.late += 1;
                keep.push(Some(false));
                continue;
            }
            let seen = self.windows.entry(start).or_default();
            seen.origins.insert(origin);
            keep.push(Some(seen.keys.insert(row.data().into())));
        }
        if let Some(closed) = self.clock.advance(&window, max) {
            self.windows = self.windows.split_off(&closed);
        }
        Ok(filter_record_batch(batch, &BooleanArray::from(keep))?)
    }
}
