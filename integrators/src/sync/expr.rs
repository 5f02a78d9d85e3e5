//! SQL expressions of Sync operators, parsed and type-checked by DataFusion, and the fused form
//! of a run of stateless operators ([`Map`]): one predicate and one projection over the input,
//! evaluated per batch with Arrow kernels, without planning a query.

use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch, RecordBatchOptions};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use datafusion::common::Column;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result as DfResult};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{Expr, ExprSchemable};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column as PhysicalColumn;
use datafusion::prelude::{SessionConfig, SessionContext};

use super::spec::OpSpec;
use super::window::WindowError;

/// A problem in one operator, found when compiling it over the schema of its input.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// The problem is in the entry `key` of the operator's map (`rename`, `derive`, `values`).
    #[error("{error}")]
    At {
        /// The entry at fault.
        key: String,
        /// What is wrong with it.
        error: Box<OpError>,
    },
    /// A column the operator names is not there.
    #[error("unknown column `{name}` (columns here: {})", .known.join(", "))]
    UnknownColumn {
        /// The column named.
        name: String,
        /// The columns at that point of the flow.
        known: Vec<String>,
    },
    /// A `rename` onto a column that exists.
    #[error("column `{0}` already exists")]
    ColumnExists(String),
    /// A SQL expression does not parse or type-check.
    #[error("in `{sql}`: {}", one_line(.source))]
    Sql {
        /// The expression as written.
        sql: String,
        /// What DataFusion found.
        #[source]
        source: DataFusionError,
    },
    /// The type of column `name` cannot be worked out.
    #[error("`{name}`: {}", one_line(.source))]
    ColumnType {
        /// The column.
        name: String,
        /// What DataFusion found.
        #[source]
        source: DataFusionError,
    },
    /// DataFusion could not plan the operator.
    #[error("{}", one_line(.0))]
    Planning(#[source] DataFusionError),
    /// A `filter` expression that is not a boolean.
    #[error("a filter must be true or false, `{sql}` is {data_type}")]
    NotBoolean {
        /// The expression as written.
        sql: String,
        /// Its type.
        data_type: DataType,
    },
    /// A stateful operator where only record-by-record ones may be.
    #[error("`{0}` is not a record-by-record operator")]
    NotRecordByRecord(&'static str),
    /// A window's width or lateness.
    #[error(transparent)]
    Window(#[from] WindowError),
    /// `lateness` without `window`.
    #[error("`lateness` needs a `window`")]
    LatenessWithoutWindow,
    /// A window over a `ts` that is not a timestamp.
    #[error("a window needs `ts` to be a timestamp, it is {0}")]
    TsNotTimestamp(DataType),
    /// An aggregate with a window grouping by `ts`.
    #[error("with a window, `ts` is the window's start: do not group by it")]
    GroupByTs,
    /// An aggregate without `values`.
    #[error("`values` needs at least one aggregate, e.g. `n: count(*)`")]
    NoAggregates,
    /// A dedupe without `by`.
    #[error("`by` needs at least one column")]
    NoDedupeKeys,
    /// Arrow cannot compare the dedupe keys.
    #[error("{0}")]
    Keys(#[source] ArrowError),
}

impl OpError {
    /// This problem, located at the entry `key` of the operator's map.
    pub(crate) fn at(self, key: &str) -> Self {
        OpError::At { key: key.to_owned(), error: Box::new(self) }
    }

    /// The entry of the operator's map at fault, if any.
    pub fn key(&self) -> Option<&str> {
        match self {
            OpError::At { key, .. } => Some(key),
            _ => None,
        }
    }

    /// An unknown column `name` among the columns of `known`.
    pub(crate) fn unknown<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> Self {
        let known = known.into_iter().map(str::to_owned).collect();
        OpError::UnknownColumn { name: name.to_owned(), known }
    }
}

/// A reference to the column `name`, exactly as spelled (no case folding, no `table.` prefix).
pub(crate) fn column(name: &str) -> Expr {
    Expr::Column(Column::new_unqualified(name))
}

/// A DataFusion error as one line (its messages may span several).
pub(crate) fn one_line(error: &datafusion::error::DataFusionError) -> String {
    error.strip_backtrace().replace('\n', " ")
}

/// A DataFusion session for Sync: identifiers are case-sensitive, as the YAML spells them, and
/// queries run on one partition (flows are already one task each).
pub fn session() -> SessionContext {
    let mut config = SessionConfig::new().with_target_partitions(1);
    config.options_mut().sql_parser.enable_ident_normalization = false;
    SessionContext::new_with_config(config)
}

/// Parses `sql` over `schema`.
pub(crate) fn parse(ctx: &SessionContext, sql: &str, schema: &DFSchema) -> Result<Expr, OpError> {
    ctx.parse_sql_expr(sql, schema).map_err(|source| OpError::Sql { sql: sql.to_owned(), source })
}

/// A run of stateless operators fused into one predicate and one projection over its input.
#[derive(Debug)]
pub struct Map {
    predicate: Option<Arc<dyn PhysicalExpr>>,
    columns: Vec<Arc<dyn PhysicalExpr>>,
    /// Whether every output column is an input column (no computation).
    plain: bool,
    schema: SchemaRef,
}

/// The output columns of a run of operators, each an expression over the run's input.
struct Fusion<'a> {
    ctx: &'a SessionContext,
    input: DFSchema,
    columns: Vec<(String, Expr)>,
    predicate: Option<Expr>,
}

impl Map {
    /// Fuses `ops` (all stateless) over records of `input`; the errors name the operator (by
    /// its index in `ops`) at fault.
    pub fn compile(
        ctx: &SessionContext,
        input: &SchemaRef,
        ops: &[OpSpec],
    ) -> Result<Map, (usize, OpError)> {
        let dfschema =
            DFSchema::try_from(input.as_ref().clone()).map_err(|e| (0, OpError::Planning(e)))?;
        let columns = input.fields().iter().map(|f| (f.name().clone(), column(f.name()))).collect();
        let mut fusion = Fusion { ctx, input: dfschema, columns, predicate: None };
        for (i, op) in ops.iter().enumerate() {
            fusion.apply(op).map_err(|e| (i, e))?;
        }
        fusion.finish().map_err(|e| (ops.len().saturating_sub(1), e))
    }

    /// The schema of the records it produces.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The records of `batch` that pass, projected. Plain columns are shared, not copied.
    pub fn apply(&self, batch: &RecordBatch) -> DfResult<RecordBatch> {
        let Some(predicate) = &self.predicate else { return self.project(batch) };
        let rows = batch.num_rows();
        let mask = predicate.evaluate(batch)?.into_array(rows)?;
        let mask = mask.as_boolean();
        if mask.true_count() == rows {
            return self.project(batch);
        }
        if self.plain {
            // Projecting shares columns: filter only the ones kept.
            return Ok(filter_record_batch(&self.project(batch)?, mask)?);
        }
        // Computed columns see only the records that pass (`b <> 0` guards `a / b`).
        self.project(&filter_record_batch(batch, mask)?)
    }

    /// The projection of every record of `batch`.
    fn project(&self, batch: &RecordBatch) -> DfResult<RecordBatch> {
        let rows = batch.num_rows();
        let columns = self
            .columns
            .iter()
            .map(|c| c.evaluate(batch).and_then(|v| v.into_array(rows)))
            .collect::<DfResult<Vec<_>>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        Ok(RecordBatch::try_new_with_options(self.schema.clone(), columns, &options)?)
    }
}

impl Fusion<'_> {
    /// The schema the next operator sees.
    fn current(&self) -> Result<DFSchema, OpError> {
        let fields = self
            .columns
            .iter()
            .map(|(name, expr)| {
                let (_, field) = expr
                    .to_field(&self.input)
                    .map_err(|source| OpError::ColumnType { name: name.clone(), source })?;
                Ok(Field::new(name, field.data_type().clone(), field.is_nullable()))
            })
            .collect::<Result<Vec<_>, OpError>>()?;
        DFSchema::try_from(Schema::new(fields)).map_err(OpError::Planning)
    }

    /// `expr`, written over the current columns, rewritten over the input.
    fn inline(&self, expr: Expr) -> Result<Expr, OpError> {
        expr.transform(|e| match &e {
            Expr::Column(c) => match self.columns.iter().find(|(name, _)| name == &c.name) {
                Some((_, inner)) => Ok(Transformed::yes(inner.clone())),
                None => Ok(Transformed::no(e)),
            },
            _ => Ok(Transformed::no(e)),
        })
        .map(|t| t.data)
        .map_err(OpError::Planning)
    }

    /// Parses `sql` over the current columns and checks it type-checks, over the input.
    fn expression(&self, sql: &str) -> Result<Expr, OpError> {
        let expr = parse(self.ctx, sql, &self.current()?)?;
        let inlined = self.inline(expr)?;
        self.ctx
            .create_physical_expr(inlined.clone(), &self.input)
            .map_err(|source| OpError::Sql { sql: sql.to_owned(), source })?;
        Ok(inlined)
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|(n, _)| n == name)
    }

    fn unknown(&self, name: &str) -> OpError {
        OpError::unknown(name, self.columns.iter().map(|(n, _)| n.as_str()))
    }

    fn apply(&mut self, op: &OpSpec) -> Result<(), OpError> {
        match op {
            OpSpec::Filter(sql) => {
                let predicate = self.expression(sql)?;
                let data_type = predicate.get_type(&self.input).map_err(OpError::Planning)?;
                if data_type != DataType::Boolean {
                    return Err(OpError::NotBoolean { sql: sql.clone(), data_type });
                }
                self.predicate = Some(match self.predicate.take() {
                    Some(before) => before.and(predicate),
                    None => predicate,
                });
            }
            OpSpec::Rename(renames) => {
                for (from, to) in renames {
                    let Some(i) = self.position(from) else {
                        return Err(self.unknown(from).at(from));
                    };
                    if from != to && self.position(to).is_some() {
                        return Err(OpError::ColumnExists(to.clone()).at(from));
                    }
                    self.columns[i].0.clone_from(to);
                }
            }
            OpSpec::Select(names) => {
                let mut columns = Vec::with_capacity(names.len());
                for name in names {
                    let Some(i) = self.position(name) else {
                        return Err(self.unknown(name));
                    };
                    columns.push(self.columns[i].clone());
                }
                self.columns = columns;
            }
            OpSpec::Drop(names) => {
                for name in names {
                    let Some(i) = self.position(name) else {
                        return Err(self.unknown(name));
                    };
                    self.columns.remove(i);
                }
            }
            OpSpec::Derive(derived) => {
                for (name, sql) in derived {
                    let expr = self.expression(sql).map_err(|e| e.at(name))?;
                    match self.position(name) {
                        Some(i) => self.columns[i].1 = expr,
                        None => self.columns.push((name.clone(), expr)),
                    }
                }
            }
            other => return Err(OpError::NotRecordByRecord(other.kind())),
        }
        Ok(())
    }

    fn finish(self) -> Result<Map, OpError> {
        let schema: &Schema = self.input.as_arrow();
        let physical = |expr: Expr| {
            self.ctx.create_physical_expr(expr, &self.input).map_err(OpError::Planning)
        };
        let mut fields = Vec::with_capacity(self.columns.len());
        let mut columns = Vec::with_capacity(self.columns.len());
        for (name, expr) in self.columns {
            let column = physical(expr)?;
            let data_type = column.data_type(schema).map_err(OpError::Planning)?;
            let nullable = column.nullable(schema).map_err(OpError::Planning)?;
            fields.push(Field::new(name, data_type, nullable));
            columns.push(column);
        }
        let predicate = self.predicate.map(physical).transpose()?;
        let plain = columns.iter().all(|c| c.is::<PhysicalColumn>());
        Ok(Map { predicate, columns, plain, schema: Arc::new(Schema::new(fields)) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{BooleanArray, Float64Array, Int64Array, StringArray};

    fn readings() -> RecordBatch {
        RecordBatch::try_from_iter([
            ("room", Arc::new(StringArray::from(vec!["hall", "study", "attic"])) as _),
            ("triggered", Arc::new(BooleanArray::from(vec![true, true, false])) as _),
            ("sensitivity", Arc::new(Int64Array::from(vec![3, 1, 5])) as _),
            ("kwh", Arc::new(Float64Array::from(vec![0.5, 1.0, 2.0])) as _),
        ])
        .unwrap()
    }

    fn ops(yaml: &str) -> Vec<OpSpec> {
        serde_yaml::with::singleton_map_recursive::deserialize(serde_yaml::Deserializer::from_str(
            yaml,
        ))
        .unwrap()
    }

    #[test]
    fn filter_rename_select_fuse_into_one_pass() {
        let batch = readings();
        let ops = ops(
            "[{filter: 'triggered AND sensitivity >= 2'}, {rename: {triggered: motion}}, {select: [room, motion]}]",
        );
        let map = Map::compile(&session(), &batch.schema(), &ops).unwrap();
        let out = map.apply(&batch).unwrap();
        let names: Vec<_> = out.schema().fields().iter().map(|f| f.name().clone()).collect();
        assert_eq!(names, ["room", "motion"]);
        assert_eq!(out.num_rows(), 1);
        assert_eq!(out.column(0).as_string::<i32>().value(0), "hall");
    }

    #[test]
    fn derived_columns_can_be_filtered_on_and_replaced() {
        let batch = readings();
        let ops = ops(
            "[{derive: {wh: 'kwh * 1000'}}, {filter: 'wh > 600'}, {derive: {wh: 'wh + 1'}}, {drop: [kwh]}]",
        );
        let map = Map::compile(&session(), &batch.schema(), &ops).unwrap();
        let out = map.apply(&batch).unwrap();
        let wh = out.column_by_name("wh").unwrap().as_primitive::<arrow::datatypes::Float64Type>();
        assert_eq!(wh.values().to_vec(), [1001.0, 2001.0]);
        assert!(out.column_by_name("kwh").is_none());
    }

    #[test]
    fn names_keep_their_case_and_filters_guard_computed_columns() {
        let batch = RecordBatch::try_from_iter([
            ("roomID", Arc::new(StringArray::from(vec!["a", "b"])) as _),
            ("n", Arc::new(Int64Array::from(vec![0, 4])) as _),
        ])
        .unwrap();
        let guarded =
            ops("[{filter: 'n <> 0'}, {derive: {share: '8 / n'}}, {select: [roomID, share]}]");
        let map = Map::compile(&session(), &batch.schema(), &guarded).unwrap();
        let out = map.apply(&batch).unwrap();
        assert_eq!(out.schema().field(0).name(), "roomID");
        assert_eq!(
            out.column(1).as_primitive::<arrow::datatypes::Int64Type>().values().to_vec(),
            [2]
        );
        let (_, e) =
            Map::compile(&session(), &batch.schema(), &ops("[{filter: 'NULL'}]")).unwrap_err();
        assert!(matches!(e, OpError::NotBoolean { .. }), "{e:?}");
    }

    #[test]
    fn mistakes_name_the_operator_and_entry() {
        let schema = readings().schema();
        let ctx = session();
        let (at, e) = Map::compile(&ctx, &schema, &ops("[{select: [room]}, {filter: 'kwh > 1'}]"))
            .unwrap_err();
        assert_eq!(at, 1);
        assert!(matches!(&e, OpError::Sql { sql, .. } if sql == "kwh > 1"), "{e:?}");
        assert!(e.to_string().contains("kwh"), "{e}");
        let (at, e) =
            Map::compile(&ctx, &schema, &ops("[{derive: {a: 'room + 1', b: '1'}}]")).unwrap_err();
        assert_eq!((at, e.key()), (0, Some("a")));
        let (_, e) =
            Map::compile(&ctx, &schema, &ops("[{filter: 'sensitivity + 1'}]")).unwrap_err();
        assert!(matches!(e, OpError::NotBoolean { .. }), "{e:?}");
        let (_, e) =
            Map::compile(&ctx, &schema, &ops("[{filter: 'sensitivity >>> ('}]")).unwrap_err();
        assert!(e.to_string().starts_with("in `sensitivity >>> (`: "), "{e}");
        let (_, e) = Map::compile(&ctx, &schema, &ops("[{rename: {nope: x}}]")).unwrap_err();
        assert_eq!(e.key(), Some("nope"));
    }
}
