//! [`ScopedLog`]: a Log exchange handle held to one principal's [`Rights`], as
//! [`ScopedExchange`](crate::access::ScopedExchange) is for Object stores. Records are
//! appended whole, so a grant's fields do not apply here: a store is read (its schema, end,
//! records and checkpoints), appended to, or not reached at all.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use futures::StreamExt;
use serde_json::Value;

use super::{Checkpoint, LogExchange, RecordStream, Trim};
use crate::access::{Grant, Rights, RightsCell};
use crate::error::{ExchangeError, Result};
use crate::store::StoreRef;

/// A Log exchange reachable only as a principal's rights allow; a refusal is
/// [`ExchangeError::Denied`] and changes nothing. SQL queries, which read every store, are
/// refused. The rights can be replaced while it is in use (a Sync spec's, when re-applied).
#[derive(Debug)]
pub struct ScopedLog {
    inner: Arc<dyn LogExchange>,
    rights: Arc<RightsCell>,
}

impl ScopedLog {
    /// `inner`, reachable only as `rights` allow.
    pub fn new(inner: Arc<dyn LogExchange>, rights: Rights) -> Self {
        ScopedLog { inner, rights: Arc::new(RightsCell::new(rights)) }
    }

    /// The rights it holds to now.
    pub fn rights(&self) -> Arc<Rights> {
        self.rights.get()
    }

    /// Holds it to `rights` from now on.
    pub fn set_rights(&self, rights: Rights) {
        self.rights.set(rights);
    }

    fn may_read(&self, store: &StoreRef, operation: &'static str) -> Result<()> {
        self.rights.get().check(store, operation, None, Grant::reads).map(drop)
    }

    fn may_append(&self, store: &StoreRef) -> Result<()> {
        self.rights.get().check(store, "append", None, |g| g.write.is_some()).map(drop)
    }
}

#[async_trait]
impl LogExchange for ScopedLog {
    /// Only a store's owner may register it.
    async fn register(&self, store: &StoreRef, schema: &Value) -> Result<()> {
        self.rights.get().check(store, "register", None, |g| *g == Grant::owner())?;
        self.inner.register(store, schema).await
    }

    fn arrow_schema(&self, store: &StoreRef) -> Result<SchemaRef> {
        self.may_read(store, "get")?;
        self.inner.arrow_schema(store)
    }

    async fn append_json(&self, store: &StoreRef, records: &[Value]) -> Result<u64> {
        self.may_append(store)?;
        self.inner.append_json(store, records).await
    }

    async fn append(&self, store: &StoreRef, batch: RecordBatch) -> Result<u64> {
        self.may_append(store)?;
        self.inner.append(store, batch).await
    }

    async fn append_checkpointed(
        &self,
        store: &StoreRef,
        batch: RecordBatch,
        checkpoint: &Checkpoint,
    ) -> Result<u64> {
        self.may_append(store)?;
        self.inner.append_checkpointed(store, batch, checkpoint).await
    }

    async fn checkpoint(&self, store: &StoreRef, key: &str) -> Result<Option<String>> {
        self.may_read(store, "get")?;
        self.inner.checkpoint(store, key).await
    }

    async fn checkpoints(&self, store: &StoreRef) -> Result<Vec<(String, String)>> {
        self.may_read(store, "get")?;
        self.inner.checkpoints(store).await
    }

    /// No principal trims a store: the runtime does, with what every flow still needs.
    async fn trim(&self, store: &StoreRef, _trim: &Trim) -> Result<u64> {
        self.rights.get().check(store, "trim", None, |_| false).map(|_| 0)
    }

    async fn end(&self, store: &StoreRef) -> Result<u64> {
        self.may_read(store, "list")?;
        self.inner.end(store).await
    }

    /// Each batch is shown as the rights at its time allow: rights that no longer read the
    /// store (a re-applied spec's) end the tail with the denial.
    async fn tail(&self, store: &StoreRef, from: u64) -> Result<RecordStream> {
        self.may_read(store, "tail")?;
        let tail = self.inner.tail(store, from).await?;
        let open = Some((tail, self.rights.clone(), store.clone()));
        let shown = futures::stream::unfold(open, |open| async move {
            let (mut tail, cell, store) = open?;
            let batch = tail.next().await?;
            if batch.is_ok()
                && let Err(denied) = cell.get().check(&store, "tail", None, Grant::reads)
            {
                return Some((Err(denied), None));
            }
            Some((batch, Some((tail, cell, store))))
        });
        Ok(shown.boxed())
    }

    async fn query(&self, _sql: &str) -> Result<Vec<RecordBatch>> {
        let principal = self.rights.get().principal().to_owned();
        Err(ExchangeError::Query(format!(
            "{principal} may not run SQL queries: a query can read every Log store"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EmbeddedLog;
    use crate::access::Fields;
    use serde_json::json;

    #[tokio::test]
    async fn a_flow_reads_its_sources_and_appends_to_its_destination_only() {
        let inner: Arc<dyn LogExchange> = Arc::new(EmbeddedLog::in_memory());
        let store = |s: &str| s.parse::<StoreRef>().unwrap();
        let schema = json!({"type": "object", "properties": {"n": {"type": "integer"}}});
        for s in ["a/in", "b/out", "c/other"] {
            inner.register(&store(s), &schema).await.unwrap();
        }
        let mut rights = Rights::new("integrator:s");
        rights.grant(store("a/in"), Grant::read());
        rights.grant(store("b/out"), Grant { write: Some(Fields::All), ..Grant::read() });
        let log = ScopedLog::new(inner.clone(), rights);
        log.append_json(&store("b/out"), &[json!({"n": 1})]).await.unwrap();
        drop(log.tail(&store("a/in"), 0).await.unwrap());
        let denied = |e: ExchangeError| matches!(e, ExchangeError::Denied(_));
        assert!(denied(log.append_json(&store("a/in"), &[json!({"n": 1})]).await.unwrap_err()));
        assert!(denied(log.tail(&store("c/other"), 0).await.err().unwrap()));
        assert!(denied(log.arrow_schema(&store("c/other")).unwrap_err()));
        assert!(matches!(log.query("SELECT 1").await, Err(ExchangeError::Query(_))));
        assert_eq!(inner.end(&store("a/in")).await.unwrap(), 0, "a denied append adds nothing");
    }

    #[tokio::test]
    async fn a_tail_ends_with_the_denial_once_its_rights_no_longer_read_the_store() {
        let inner: Arc<dyn LogExchange> = Arc::new(EmbeddedLog::in_memory());
        let store: StoreRef = "a/in".parse().unwrap();
        let schema = json!({"type": "object", "properties": {"n": {"type": "integer"}}});
        inner.register(&store, &schema).await.unwrap();
        let mut rights = Rights::new("integrator:s");
        rights.grant(store.clone(), Grant::read());
        let log = ScopedLog::new(inner.clone(), rights);
        let mut tail = log.tail(&store, 0).await.unwrap();
        let within = std::time::Duration::from_secs(5);
        inner.append_json(&store, &[json!({"n": 1})]).await.unwrap();
        let first = tokio::time::timeout(within, tail.next()).await.expect("a batch within 5 s");
        assert!(matches!(first, Some(Ok(_))));
        log.set_rights(Rights::new("integrator:s"));
        inner.append_json(&store, &[json!({"n": 2})]).await.unwrap();
        let ended = tokio::time::timeout(within, tail.next()).await.expect("an end within 5 s");
        assert!(matches!(ended, Some(Err(ExchangeError::Denied(_)))), "{ended:?}");
        let after = tokio::time::timeout(within, tail.next()).await.expect("the end within 5 s");
        assert!(after.is_none(), "a denied tail ends");
    }
}
