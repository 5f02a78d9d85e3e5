//! SQL over Log stores with DataFusion: each store is a table named by its store ref, queried
//! as a quoted identifier (`SELECT * FROM "house/motion"`). The tables share the stores'
//! batches; nothing is copied.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::common::TableReference;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

use crate::error::{ExchangeError, Result};
use crate::object::StoreRef;

/// Runs `sql` over `stores` (ref, schema, batches).
pub(crate) async fn run(
    stores: Vec<(StoreRef, SchemaRef, Vec<RecordBatch>)>,
    sql: &str,
) -> Result<Vec<RecordBatch>> {
    let failed = |e: datafusion::error::DataFusionError| ExchangeError::Query(e.to_string());
    let ctx = SessionContext::new();
    for (store, schema, batches) in stores {
        let table = MemTable::try_new(schema, vec![batches]).map_err(failed)?;
        ctx.register_table(TableReference::bare(store.to_string()), Arc::new(table))
            .map_err(failed)?;
    }
    ctx.sql(sql).await.map_err(failed)?.collect().await.map_err(failed)
}
