//! The SDK a knactor is written with: a [`Reconciler`] reacts to changes of the knactor's own
//! stores, through a [`Context`] that can reach only those stores.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use data_exchange::access::{Rights, ScopedExchange};
use data_exchange::{
    ExchangeError, LogExchange, Object, ObjectExchange, ObjectList, StoreRef, Write,
};
use serde_json::Value;

/// What a reconciler reports about its errors: anything, logged and retried with backoff.
pub type ReconcileError = Box<dyn std::error::Error + Send + Sync>;

/// What the runtime does after a reconcile succeeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing more until the object changes again.
    Done,
    /// Reconcile the object again after this delay, even if it does not change.
    RequeueAfter(Duration),
}

/// The object a reconcile is about: which store, which name, and its latest state.
#[derive(Clone, Debug)]
pub struct Change {
    /// The store's name within the knactor (e.g. `shipments`).
    pub store: String,
    /// The object's name.
    pub name: String,
    /// The object's latest state; `None` when it was deleted.
    pub object: Option<Arc<Object>>,
}

/// A knactor's logic: brings the world in line with the state of the knactor's own stores.
///
/// The runtime never runs two reconciles of the same object at once; changes that arrive
/// during a reconcile are coalesced into one follow-up with the latest state.
#[async_trait]
pub trait Reconciler: Send + Sync + 'static {
    /// Reconciles one object.
    async fn reconcile(&self, ctx: &Context, change: &Change) -> Result<Action, ReconcileError>;
}

/// Reconciler implementations by the name manifests give in `spec.reconciler`.
#[derive(Clone, Default)]
pub struct Registry {
    reconcilers: BTreeMap<String, Arc<dyn Reconciler>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.reconcilers.keys()).finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `reconciler` as `name` (e.g. `retail.shipping`).
    pub fn register(&mut self, name: &str, reconciler: impl Reconciler) -> &mut Self {
        self.reconcilers.insert(name.to_owned(), Arc::new(reconciler));
        self
    }

    /// The reconciler registered as `name`.
    pub fn get(&self, name: &str) -> Option<Arc<dyn Reconciler>> {
        self.reconcilers.get(name).cloned()
    }

    /// The registered names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.reconcilers.keys().map(String::as_str)
    }
}

/// Errors of a knactor's store handles.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The knactor tried to reach a store that is not its own.
    #[error("knactor `{knactor}` has no store `{store}`: a knactor reaches only its own stores")]
    NotOwned {
        /// The knactor.
        knactor: String,
        /// The store it asked for.
        store: String,
    },
    /// The knactor asked for a store of another knactor that no policy grants it.
    #[error("no policy grants knactor `{knactor}` the store `{store}` (see docs/security.md)")]
    NotGranted {
        /// The knactor.
        knactor: String,
        /// The store it asked for.
        store: String,
    },
    /// The exchange refused or failed.
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
}

/// What a reconcile can reach: the knactor's own stores, and the stores of others its app's
/// policies grant it (as far as they grant), nothing else.
#[derive(Clone)]
pub struct Context {
    knactor: String,
    stores: Arc<HashMap<String, StoreRef>>,
    granted: Arc<BTreeSet<StoreRef>>,
    exchange: Arc<dyn ObjectExchange>,
    logs: Arc<HashMap<String, StoreRef>>,
    log: Option<Arc<dyn LogExchange>>,
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context").field("knactor", &self.knactor).finish_non_exhaustive()
    }
}

impl Context {
    /// A context for `knactor`, owner of `stores` on `exchange`.
    pub fn new(knactor: &str, stores: Vec<StoreRef>, exchange: Arc<dyn ObjectExchange>) -> Self {
        let stores = stores.into_iter().map(|s| (s.store().to_owned(), s)).collect();
        let (logs, log, granted) = (Arc::default(), None, Arc::default());
        let stores = Arc::new(stores);
        Context { knactor: knactor.to_owned(), stores, granted, exchange, logs, log }
    }

    /// The same context, held to `rights` (the knactor's own, and what policies grant it): the
    /// Object stores of other knactors they name become reachable with [`Context::granted`].
    pub fn with_rights(mut self, rights: Rights) -> Self {
        let others = rights.grants().map(|(store, _)| store);
        let others = others.filter(|store| store.knactor() != self.knactor);
        self.granted = Arc::new(others.cloned().collect());
        self.exchange = Arc::new(ScopedExchange::new(self.exchange, rights));
        self
    }

    /// The same context, also owner of the Log stores `logs` on `log`.
    pub fn with_logs(mut self, logs: Vec<StoreRef>, log: Arc<dyn LogExchange>) -> Self {
        self.logs = Arc::new(logs.into_iter().map(|s| (s.store().to_owned(), s)).collect());
        self.log = Some(log);
        self
    }

    /// A handle on the knactor's Log store `name`; any other store is refused.
    pub fn log(&self, name: &str) -> Result<LogHandle, StoreError> {
        match (self.logs.get(name), &self.log) {
            (Some(store), Some(log)) => Ok(LogHandle { store: store.clone(), log: log.clone() }),
            _ => {
                Err(StoreError::NotOwned { knactor: self.knactor.clone(), store: name.to_owned() })
            }
        }
    }

    /// The knactor's name.
    pub fn knactor(&self) -> &str {
        &self.knactor
    }

    /// A handle on the knactor's store `name`; any other store is refused.
    pub fn store(&self, name: &str) -> Result<StoreHandle, StoreError> {
        match self.stores.get(name) {
            Some(store) => {
                Ok(StoreHandle { store: store.clone(), exchange: self.exchange.clone() })
            }
            None => {
                Err(StoreError::NotOwned { knactor: self.knactor.clone(), store: name.to_owned() })
            }
        }
    }

    /// A handle on `store` (`knactor/store`) of another knactor, as far as a policy grants it:
    /// what the grant does not allow is refused, and fields it does not let the knactor read
    /// are left out of what the handle returns.
    pub fn granted(&self, store: &str) -> Result<StoreHandle, StoreError> {
        let not_granted =
            || StoreError::NotGranted { knactor: self.knactor.clone(), store: store.to_owned() };
        let store: StoreRef = store.parse().map_err(|_| not_granted())?;
        match self.granted.contains(&store) {
            true => Ok(StoreHandle { store, exchange: self.exchange.clone() }),
            false => Err(not_granted()),
        }
    }
}

/// Reads and writes one of the knactor's own stores, or a store a policy grants it.
#[derive(Clone)]
pub struct StoreHandle {
    store: StoreRef,
    exchange: Arc<dyn ObjectExchange>,
}

impl fmt::Debug for StoreHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("StoreHandle").field(&self.store.to_string()).finish()
    }
}

impl StoreHandle {
    /// The store's ref.
    pub fn store_ref(&self) -> &StoreRef {
        &self.store
    }

    /// The object `name`, if it exists.
    pub async fn get(&self, name: &str) -> Result<Option<Arc<Object>>, StoreError> {
        Ok(self.exchange.get(&self.store, name).await?)
    }

    /// All objects of the store.
    pub async fn list(&self) -> Result<ObjectList, StoreError> {
        Ok(self.exchange.list(&self.store).await?)
    }

    /// Applies `write` (see [`Write`]'s constructors).
    pub async fn write(&self, write: Write) -> Result<Arc<Object>, StoreError> {
        Ok(self.exchange.write(&self.store, write).await?)
    }

    /// Merge-patches the existing object `name`: the usual way to fill in status fields.
    pub async fn patch(&self, name: &str, patch: Value) -> Result<Arc<Object>, StoreError> {
        self.write(Write::patch(name, patch)).await
    }
}

/// Appends to one of the knactor's own Log stores.
#[derive(Clone)]
pub struct LogHandle {
    store: StoreRef,
    log: Arc<dyn LogExchange>,
}

impl fmt::Debug for LogHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("LogHandle").field(&self.store.to_string()).finish()
    }
}

impl LogHandle {
    /// Appends JSON records, all or none (each checked against the store's schema); returns
    /// the offset of the first.
    pub async fn append(&self, records: &[Value]) -> Result<u64, StoreError> {
        Ok(self.log.append_json(&self.store, records).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use data_exchange::{EmbeddedExchange, EmbeddedLog};
    use serde_json::json;

    #[tokio::test]
    async fn a_store_of_another_knactor_is_reached_as_far_as_a_policy_grants_it() {
        use data_exchange::access::{Fields, Grant};
        let exchange = Arc::new(EmbeddedExchange::in_memory());
        let (orders, carts): (StoreRef, StoreRef) =
            ("checkout/orders".parse().unwrap(), "cart/carts".parse().unwrap());
        for store in [&orders, &carts] {
            exchange.register(store, &json!({"type": "object"})).await.unwrap();
        }
        let order = json!({"items": ["lamp"], "email": "ada@example.com"});
        exchange.write(&orders, Write::create("o1", order)).await.unwrap();
        let mut rights = Rights::new("knactor:recommendation");
        rights.grant(orders.clone(), Grant::read_only(Fields::only(["items"])));
        let ctx = Context::new("recommendation", Vec::new(), exchange).with_rights(rights);

        let granted = ctx.granted("checkout/orders").unwrap();
        let seen = granted.get("o1").await.unwrap().unwrap();
        assert_eq!(seen.data, json!({"items": ["lamp"]}), "the email is not granted");
        let write = granted.patch("o1", json!({"items": []})).await;
        assert!(matches!(write, Err(StoreError::Exchange(ExchangeError::Denied(_)))), "{write:?}");
        for store in ["cart/carts", "nonsense"] {
            assert!(matches!(ctx.granted(store), Err(StoreError::NotGranted { .. })), "{store}");
        }
    }

    #[tokio::test]
    async fn a_reconciler_appends_to_its_own_log_stores_only() {
        let log = Arc::new(EmbeddedLog::in_memory());
        let sent: StoreRef = "email/sent".parse().unwrap();
        let schema =
            json!({"type": "object", "required": ["to"], "properties": {"to": {"type": "string"}}});
        log.register(&sent, &schema).await.unwrap();
        let ctx = Context::new("email", Vec::new(), Arc::new(EmbeddedExchange::in_memory()))
            .with_logs(vec![sent.clone()], log.clone());
        let sent_log = ctx.log("sent").unwrap();
        assert_eq!(sent_log.append(&[json!({"to": "ada@example.com"})]).await.unwrap(), 0);
        assert!(matches!(sent_log.append(&[json!({})]).await, Err(StoreError::Exchange(_))));
        assert_eq!(log.end(&sent).await.unwrap(), 1);
        assert!(matches!(ctx.log("other"), Err(StoreError::NotOwned { .. })));
        assert!(
            matches!(ctx.store("sent"), Err(StoreError::NotOwned { .. })),
            "a Log store is not an Object store"
        );
    }
}
