//! The errors of the data exchange.

use std::fmt;

use crate::store::{InvalidStoreRef, StoreRef};

/// Who was refused what: the store, the operation, and the field or principal when known.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{store}: {operation}{} denied{}: {reason}",
    field.as_ref().map(|f| format!(" of field `{f}`")).unwrap_or_default(),
    principal.as_ref().map(|p| format!(" to {p}")).unwrap_or_default())]
pub struct Denial {
    /// The store.
    pub store: StoreRef,
    /// What was attempted.
    pub operation: &'static str,
    /// The top-level field of `.data` a refused write would have changed, when that is what
    /// was refused.
    pub field: Option<String>,
    /// Who was refused, when the exchange can tell.
    pub principal: Option<String>,
    /// Why, as the exchange or the server says it.
    pub reason: String,
}

impl From<Denial> for ExchangeError {
    fn from(denial: Denial) -> Self {
        ExchangeError::Denied(Box::new(denial))
    }
}

/// `Result` with [`ExchangeError`] as its default error.
pub type Result<T, E = ExchangeError> = std::result::Result<T, E>;

/// Everything an exchange operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// The exchange URL names no known backend.
    #[error(
        "unsupported exchange `{0}`: expected `embedded`, `redis://HOST:PORT[/DB]` or `kube[://?context=C&namespace=NS]`"
    )]
    UnsupportedUrl(String),
    /// The exchange asked for needs a part this build left out.
    #[error("{what} is not available in this build (data-exchange's `{feature}` feature is off)")]
    NotBuilt {
        /// What was asked for.
        what: String,
        /// The cargo feature that builds it.
        feature: &'static str,
    },
    /// A store ref is not of the form `<knactor>/<store>` with valid names.
    #[error(transparent)]
    InvalidStoreRef(#[from] InvalidStoreRef),
    /// The store was never registered.
    #[error("unknown store {0}")]
    UnknownStore(StoreRef),
    /// The store's schema is not a valid JSON Schema.
    #[error("invalid JSON Schema for {store}: {message}")]
    InvalidSchema {
        /// The store.
        store: StoreRef,
        /// What is wrong.
        message: String,
    },
    /// The object does not exist.
    #[error("{store}: object `{name}` not found")]
    NotFound {
        /// The store.
        store: StoreRef,
        /// The object.
        name: String,
    },
    /// A create found the object already there.
    #[error("{store}: object `{name}` already exists")]
    AlreadyExists {
        /// The store.
        store: StoreRef,
        /// The object.
        name: String,
    },
    /// A conditional write found another version; nothing was written.
    #[error("{store}: conflict on `{name}`: expected version {expected}, found {}",
        actual.map_or("none".to_owned(), |v| v.to_string()))]
    Conflict {
        /// The store.
        store: StoreRef,
        /// The object.
        name: String,
        /// The version the write expected.
        expected: u64,
        /// The version found (`None`: the object does not exist).
        actual: Option<u64>,
    },
    /// The object is not valid against its store's schema; nothing was written.
    #[error("{store}: object `{name}` rejected: {violation}")]
    SchemaViolation {
        /// The store.
        store: StoreRef,
        /// The object.
        name: String,
        /// The failing field and why.
        violation: SchemaViolation,
    },
    /// The exchange holds a schema for the Log store whose records have another shape (Arrow
    /// fields and types) than those of the one registered (a Log store's schema cannot
    /// change). Nothing was changed.
    #[error(
        "{store}: the exchange holds another record shape for this Log store (its schema's fields or types differ); a Log store's schema cannot change: start from the manifest that schema came from"
    )]
    LogSchemaDiffers {
        /// The store.
        store: StoreRef,
    },
    /// The exchange holds another schema for the store than the one registered: a process
    /// would validate the store differently from the others. Nothing was changed.
    #[error(
        "{store}: the exchange holds another schema for this store (version {version}) than the one given"
    )]
    SchemaDiffers {
        /// The store.
        store: StoreRef,
        /// The version of the schema the exchange holds.
        version: u64,
    },
    /// A new schema that objects already stored break; the old one stays.
    #[error(
        "{store}: the new schema does not fit {count} stored object{}: `{name}` {violation}",
        if *count == 1 { "" } else { "s" }
    )]
    SchemaBreaks {
        /// The store.
        store: StoreRef,
        /// The first object that breaks it.
        name: String,
        /// How.
        violation: Box<SchemaViolation>,
        /// How many objects break it.
        count: usize,
    },
    /// A migration could not rewrite a stored object; the schema stays as it was.
    #[error("{store}: the migration failed on object `{name}`: {message}")]
    Migration {
        /// The store.
        store: StoreRef,
        /// The object.
        name: String,
        /// Why.
        message: String,
    },
    /// The store's schema changed while a write was validated; the write was not made. The
    /// exchanges retry such a write against the new schema, so it surfaces only when the
    /// schema keeps changing.
    #[error("{store}: the schema changed (to version {version}) while object `{name}` was written")]
    SchemaChanged {
        /// The store.
        store: StoreRef,
        /// The object.
        name: String,
        /// The schema version the exchange holds now.
        version: u64,
    },
    /// An object name is empty, too long, `.` or `..`, or has characters outside letters,
    /// digits, '-', '_', '.'.
    #[error(
        "invalid object name {}: {}",
        crate::store::quoted_name(.0),
        crate::store::name_problem(.0).unwrap_or_default()
    )]
    InvalidName(String),
    /// The principal the exchange acts as may not do this to the store (or its credentials
    /// are not accepted); nothing was changed.
    #[error(transparent)]
    Denied(Box<Denial>),
    /// A put or patch carried something other than a JSON object.
    #[error("{store}: object `{name}`: data must be a JSON object")]
    NotAnObject {
        /// The store.
        store: StoreRef,
        /// The object.
        name: String,
    },
    /// A watch asked for changes the exchange no longer holds: re-list, then watch again.
    #[error("watch of {store} from version {from} expired: re-list")]
    Expired {
        /// The store.
        store: StoreRef,
        /// The version the watch resumed from.
        from: u64,
        /// The exchange lost its data (a Redis server restarted without persistence): the
        /// versions a re-list gives are of data written anew, none of it handled before.
        lost: bool,
    },
    /// A record of an append is not valid; nothing of the append was written.
    #[error("{store}: record {line}{}: {message}", field.as_ref().map(|f| format!(" at {f}")).unwrap_or_default())]
    InvalidRecord {
        /// The store.
        store: StoreRef,
        /// 1-based position of the record in the append (its line in a JSON-lines file).
        line: usize,
        /// JSON pointer of the failing field, when known.
        field: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// A store's JSON Schema has a shape that has no Arrow equivalent.
    #[error("{store}: the schema cannot be stored as Arrow records: {message}")]
    UnsupportedLogSchema {
        /// The store.
        store: StoreRef,
        /// What has no Arrow equivalent.
        message: String,
    },
    /// A SQL query failed to plan or run.
    #[error("query: {0}")]
    Query(String),
    /// The server behind the exchange failed, refused a command, or could not be reached.
    #[error("{backend}: {error}")]
    Backend {
        /// The kind of server (`redis`, `kube`).
        backend: &'static str,
        /// What its client reported (its message is this error's; it is not repeated as a
        /// source).
        error: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The exchange keeps no origins of fields (`knactor why`).
    #[error(
        "this exchange keeps no record of who wrote each field: provenance needs the embedded or the Redis exchange"
    )]
    NoProvenance,
    /// The embedded exchange's durable storage failed.
    #[error("storage: {0}")]
    Storage(String),
    /// Stored data could not be decoded.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
}

impl ExchangeError {
    /// Whether the error says the request itself was wrong (as opposed to the exchange failing).
    pub fn is_client_error(&self) -> bool {
        !matches!(self, Self::Backend { .. } | Self::Storage(_) | Self::Corrupt(_))
    }
}

#[cfg(feature = "redis")]
impl From<::redis::RedisError> for ExchangeError {
    fn from(e: ::redis::RedisError) -> Self {
        ExchangeError::Backend { backend: "redis", error: Box::new(e) }
    }
}

macro_rules! storage_errors {
    ($($ty:ty),*) => {$(
        impl From<$ty> for ExchangeError {
            fn from(e: $ty) -> Self {
                ExchangeError::Storage(e.to_string())
            }
        }
    )*};
}

storage_errors!(std::io::Error);
#[cfg(feature = "durable")]
storage_errors!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);
#[cfg(feature = "log")]
storage_errors!(arrow::error::ArrowError);

/// Why an object does not conform to its schema: the failing field and the first problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaViolation {
    /// JSON pointer of the failing field within the object's data (`""` for the root).
    pub pointer: String,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for SchemaViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pointer = if self.pointer.is_empty() { "/" } else { &self.pointer };
        write!(f, "at {pointer}: {}", self.message)
    }
}
