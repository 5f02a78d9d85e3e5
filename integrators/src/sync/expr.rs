//! SQL expressions of Sync operators, parsed and type-checked by DataFusion, and the fused form
//! of a run of stateless operators ([`Map`]): one predicate and one projection over the input,
//! evaluated per batch with Arrow kernels, without planning a query.

use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch, RecordBatchOptions};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::Column;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result as DfResult};
use datafusion::logical_expr::{Expr, ExprSchemable};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column as PhysicalColumn;
use datafusion::prelude::{SessionConfig, SessionContext};

use super::spec::OpSpec;

/// A problem in one operator; `key` names the entry of a `rename` or `derive` map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpError {
    /// The entry of the operator's map at fault, if any.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl OpError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        OpError { key: None, message: message.into() }
    }

    pub(crate) fn at(key: &str, message: impl Into<String>) -> Self {
        OpError { key: Some(key.to_owned()), message: message.into() }
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

/// Parses `sql` over `schema`, as DataFusion reports it.
pub(crate) fn parse(ctx: &SessionContext, sql: &str, schema: &DFSchema) -> Result<Expr, String> {
    ctx.parse_sql_expr(sql, schema).map_err(|e| format!("in `{sql}`: {}", one_line(&e)))
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
        let dfschema = DFSchema::try_from(input.as_ref().clone())
            .map_err(|e| (0, OpError::new(one_line(&e))))?;
        let columns = input.fields().iter().map(|f| (f.name().clone(), column(f.name()))).collect();
        let mut fusion = Fusion { ctx, input: dfschema, columns, predicate: None };
        for (i, op) in ops.iter().enumerate() {
            fusion.apply(op).map_err(|e| (i, e))?;
        }
        fusion.finish().map_err(|e| (ops.len().saturating_sub(1), OpError::new(e)))
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
    fn current(&self) -> Result<DFSchema, String> {
        let fields = self
            .columns
            .iter()
            .map(|(name, expr)| {
                let (_, field) = expr
                    .to_field(&self.input)
                    .map_err(|e| format!("`{name}`: {}", one_line(&e)))?;
                Ok(Field::new(name, field.data_type().clone(), field.is_nullable()))
            })
            .collect::<Result<Vec<_>, String>>()?;
        DFSchema::try_from(Schema::new(fields)).map_err(|e| one_line(&e))
    }

    /// `expr`, written over the current columns, rewritten over the input.
    fn inline(&self, expr: Expr) -> Result<Expr, String> {
        expr.transform(|e| match &e {
            Expr::Column(c) => match self.columns.iter().find(|(name, _)| name == &c.name) {
                Some((_, inner)) => Ok(Transformed::yes(inner.clone())),
                None => Ok(Transformed::no(e)),
            },
            _ => Ok(Transformed::no(e)),
        })
        .map(|t| t.data)
        .map_err(|e| one_line(&e))
    }

    /// Parses `sql` over the current columns and checks it type-checks, over the input.
    fn expression(&self, sql: &str) -> Result<Expr, String> {
        let expr = parse(self.ctx, sql, &self.current()?)?;
        let inlined = self.inline(expr)?;
        self.ctx
            .create_physical_expr(inlined.clone(), &self.input)
            .map_err(|e| format!("in `{sql}`: {}", one_line(&e)))?;
        Ok(inlined)
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|(n, _)| n == name)
    }

    fn unknown(&self, name: &str) -> String {
        let known: Vec<&str> = self.columns.iter().map(|(n, _)| n.as_str()).collect();
        format!("unknown column `{name}` (columns here: {})", known.join(", "))
    }

    fn apply(&mut self, op: &OpSpec) -> Result<(), OpError> {
        match op {
            OpSpec::Filter(sql) => {
                let predicate = self.expression(sql).map_err(OpError::new)?;
                let data_type =
                    predicate.get_type(&self.input).map_err(|e| OpError::new(one_line(&e)))?;
                if data_type != DataType::Boolean {
                    return Err(OpError::new(format!(
                        "a filter must be true or false, `{sql}` is {data_type}"
                    )));
                }
                self.predicate = Some(match self.predicate.take() {
                    Some(before) => before.and(predicate),
                    None => predicate,
                });
            }
            OpSpec::Rename(renames) => {
                for (from, to) in renames {
                    let Some(i) = self.position(from) else {
                        return Err(OpError::at(from, self.unknown(from)));
                    };
                    if from != to && self.position(to).is_some() {
                        return Err(OpError::at(from, format!("column `{to}` already exists")));
                    }
                    self.columns[i].0.clone_from(to);
                }
            }
            OpSpec::Select(names) => {
                let mut columns = Vec::with_capacity(names.len());
                for name in names {
                    let Some(i) = self.position(name) else {
                        return Err(OpError::new(self.unknown(name)));
                    };
                    columns.push(self.columns[i].clone());
                }
                self.columns = columns;
            }
            OpSpec::Drop(names) => {
                for name in names {
                    let Some(i) = self.position(name) else {
                        return Err(OpError::new(self.unknown(name)));
                    };
                    self.columns.remove(i);
                }
            }
            OpSpec::Derive(derived) => {
                for (name, sql) in derived {
                    let expr = self.expression(sql).map_err(|m| OpError::at(name, m))?;
                    match self.position(name) {
                        Some(i) => self.columns[i].1 = expr,
                        None => self.columns.push((name.clone(), expr)),
                    }
                }
            }
            other => {
                return Err(OpError::new(format!(
                    "`{}` is not a record-by-record operator",
                    other.kind()
                )));
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<Map, String> {
        let schema: &Schema = self.input.as_arrow();
        let physical =
            |expr: Expr| self.ctx.create_physical_expr(expr, &self.input).map_err(|e| one_line(&e));
        let mut fields = Vec::with_capacity(self.columns.len());
        let mut columns = Vec::with_capacity(self.columns.len());
        for (name, expr) in self.columns {
            let column = physical(expr)?;
            let data_type = column.data_type(schema).map_err(|e| one_line(&e))?;
            let nullable = column.nullable(schema).map_err(|e| one_line(&e))?;
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
        assert!(e.message.contains("true or false"), "{e:?}");
    }

    #[test]
    fn mistakes_name_the_operator_and_entry() {
        let schema = readings().schema();
        let ctx = session();
        let (at, e) = Map::compile(&ctx, &schema, &ops("[{select: [room]}, {filter: 'kwh > 1'}]"))
            .unwrap_err();
        assert_eq!(at, 1);
        assert!(e.message.contains("kwh"), "{e:?}");
        let (at, e) =
            Map::compile(&ctx, &schema, &ops("[{derive: {a: 'room + 1', b: '1'}}]")).unwrap_err();
        assert_eq!((at, e.key.as_deref()), (0, Some("a")));
        let (_, e) =
            Map::compile(&ctx, &schema, &ops("[{filter: 'sensitivity + 1'}]")).unwrap_err();
        assert!(e.message.contains("true or false"), "{e:?}");
        let (_, e) =
            Map::compile(&ctx, &schema, &ops("[{filter: 'sensitivity >>> ('}]")).unwrap_err();
        assert!(e.message.contains("sensitivity >>> ("), "{e:?}");
        let (_, e) = Map::compile(&ctx, &schema, &ops("[{rename: {nope: x}}]")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("nope"));
    }
}
