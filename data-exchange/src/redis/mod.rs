//! The Redis Object exchange.
//!
//! Layout of a store `k/s`; every key carries the hash tag `{k/s}`, so a store lives on one
//! slot and the layout also works on Redis Cluster:
//! - `kn:{k/s}:data`: hash, object name -> JSON data;
//! - `kn:{k/s}:vers`: hash, object name -> version;
//! - `kn:{k/s}:seq`: the store version;
//! - `kn:{k/s}:changes`: stream of changes, entry id `<version>-0`, capped at the history size;
//! - `kn:{k/s}:why:NAME`: hash, the origins of object `NAME`'s fields (see [`crate::origin`]):
//!   field -> "VERSION ORIGIN-JSON", stamped by `kn_write`;
//! - `kn:schema:{k/s}`: the schema the exchange holds, with its version (see [`held`]);
//! - `kn:incarnation`: names the server's data, set by the first administrator to connect and
//!   lost with the data (a server restarted without persistence): a watch resumed on data of
//!   another name has expired, and [`RedisExchange::lost_data`] tells.
//!
//! A write is one `FCALL kn_write` of the `knactor` Redis Functions library (Redis 7 or newer;
//! loaded on first use): it checks that the writer validated against the schema held (and,
//! for a schema its Lua checks entirely, validates the object again, for any client's call),
//! checks the precondition, bumps the store version, stores the object and appends the
//! change, atomically, then runs the edges handed to it (it is an
//! [`EdgeRunner`]: `codegen` compiles edges to Lua, `pushdown` loads them into the library). A
//! merge patch reads the object first, validates the merged result, and writes it
//! conditionally on the version read. A watch is a blocking `XREAD` on
//! its own connection, resumed after reconnecting.
//!
//! Edges run here write other stores from inside the call without declaring their keys, so
//! pushdown needs a single Redis server, not a Cluster.

pub mod acl;
mod codegen;
mod conforms;
mod held;
pub(crate) mod pushdown;
pub(crate) mod reads;
mod server;
mod watch;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde_json::Value;

use crate::access::Rights;
use crate::edge::EdgeRunner;
use crate::error::{ExchangeError, Result, SchemaViolation};
use crate::merge::{Known, Merged, merge_write};
use crate::object::{
    Expect, Migration, Object, ObjectExchange, ObjectList, StoreRef, WatchStream, Write, WriteOp,
    is_valid_name,
};
use crate::origin::{Origin, Origins, Stamp};
use crate::schema::{StoreSchema, next_state};

pub use server::RedisServer;

/// Changes each store's stream keeps for watchers that resume from an older version.
pub const DEFAULT_HISTORY: usize = 10_000;

/// How many times a write is validated again when the store's schema changed meanwhile.
const SCHEMA_CHANGES: usize = 3;

/// How long a command may take before the connection is considered lost.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The key naming the server's data (see the module's layout).
const INCARNATION: &str = "kn:incarnation";

/// The Object exchange on a Redis server.
pub struct RedisExchange {
    client: redis::Client,
    conn: ConnectionManager,
    schemas: RwLock<HashMap<StoreRef, Arc<StoreSchema>>>,
    history: usize,
    /// The ACL user it connects as, when not the URL's (or the default).
    user: Option<String>,
    /// The name of the server's data when an administrator's connection last looked (see
    /// [`ObjectExchange::lost_data`]).
    incarnation: std::sync::Mutex<Option<String>>,
    /// The name of the data the versions this connection last listed are of: a watch from
    /// one of them expires on data of another name.
    listed: std::sync::Mutex<Option<String>>,
}

impl std::fmt::Debug for RedisExchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisExchange")
            .field("server", &self.client.get_connection_info().addr())
            .field("history", &self.history)
            .finish_non_exhaustive()
    }
}

/// Names the server's data when nothing names it yet; returns the name it has.
async fn claim_data_name(conn: &mut ConnectionManager) -> redis::RedisResult<String> {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    let fresh = format!("{}-{}", since.unwrap_or_default().as_nanos(), std::process::id());
    let (name,): (String,) = redis::pipe()
        .cmd("SET")
        .arg(INCARNATION)
        .arg(fresh)
        .arg("NX")
        .ignore()
        .get(INCARNATION)
        .query_async(conn)
        .await?;
    Ok(name)
}

/// The name of the server's data, if it has one and `conn`'s user may read it (see
/// [`INCARNATION`]): a user made by hand without that right cannot tell, and gets `None`.
async fn read_data_name(
    conn: &mut impl redis::aio::ConnectionLike,
) -> redis::RedisResult<Option<String>> {
    match redis::cmd("GET").arg(INCARNATION).query_async(conn).await {
        Err(e) if e.code() == Some("NOPERM") => Ok(None),
        read => read,
    }
}

/// The keys of one store.
#[derive(Debug)]
pub(crate) struct StoreKeys {
    /// `kn:{k/s}`, the hash tag every key of the store starts with.
    tag: String,
    data: String,
    versions: String,
    seq: String,
    changes: String,
}

impl StoreKeys {
    fn new(store: &StoreRef) -> Self {
        let tag = format!("kn:{{{store}}}");
        StoreKeys {
            data: format!("{tag}:data"),
            versions: format!("{tag}:vers"),
            seq: format!("{tag}:seq"),
            changes: format!("{tag}:changes"),
            tag,
        }
    }

    /// The key of the origins of object `name` (a hash, field -> "VERSION ORIGIN-JSON").
    fn origins(&self, name: &str) -> String {
        format!("{}:why:{name}", self.tag)
    }
}

impl RedisExchange {
    /// Connects to the server at `url` (`redis://HOST:PORT[/DB]`).
    pub async fn connect(url: &str) -> Result<Self> {
        Self::open(redis::Client::open(url)?, None).await
    }

    /// Connects to the server at `url` as the ACL user of `credential` (see [`acl`]): what
    /// that user may not do is refused as [`ExchangeError::Denied`], naming it.
    pub async fn connect_as(url: &str, credential: &acl::Credential) -> Result<Self> {
        let client = acl::client_as(url, credential)?;
        Self::open(client, Some(credential.user.clone())).await
    }

    async fn open(client: redis::Client, user: Option<String>) -> Result<Self> {
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_max_delay(Duration::from_secs(1));
        let conn = client.get_connection_manager_with_config(config).await;
        let mut conn = conn.map_err(acl::login_error(&user))?;
        let incarnation = match user {
            None => match claim_data_name(&mut conn).await {
                Ok(name) => Some(name),
                Err(error) => {
                    // Say so: the loss of the server's data would then go unnoticed.
                    tracing::warn!(%error, "cannot name the Redis server's data (kn:incarnation): a restart that loses it will not be noticed");
                    None
                }
            },
            Some(_) => None,
        };
        let listed = match &incarnation {
            Some(name) => Some(name.clone()),
            None => read_data_name(&mut conn).await.map_err(acl::login_error(&user))?,
        };
        Ok(RedisExchange {
            client,
            conn,
            schemas: RwLock::default(),
            history: DEFAULT_HISTORY,
            user,
            incarnation: std::sync::Mutex::new(incarnation),
            listed: std::sync::Mutex::new(listed),
        })
    }

    /// Creates the ACL user of `credential`, or gives it a new password and rules, for what
    /// `rights` allow (see [`acl`]). Needs an administrator's connection.
    pub async fn set_user(&self, credential: &acl::Credential, rights: &Rights) -> Result<()> {
        acl::set_user(&mut self.conn.clone(), credential, rights, self.database()).await
    }

    /// The database it is connected to (`/DB` of its URL; 0 without).
    pub fn database(&self) -> i64 {
        self.client.get_connection_info().redis_settings().db()
    }

    /// Loads the function library (object writes and log appends), which principals' users
    /// may call but not load (their first write would otherwise fail). Needs an
    /// administrator's connection.
    pub async fn load_functions(&self) -> Result<()> {
        pushdown::load(&self.client, pushdown::Change::Nothing).await
    }

    /// The schema the server holds for `store` and its version, if it holds one.
    pub async fn held_schema(&self, store: &StoreRef) -> Result<Option<(u64, Value)>> {
        held::read(&mut self.conn.clone(), store).await
    }

    /// How many writes each edge pushed down into this server has made (by `<cast>/<edge>`):
    /// targets written or, cascading, deleted. Counted since the server's data began.
    pub async fn edge_writes(&self) -> Result<BTreeMap<String, u64>> {
        let counts: BTreeMap<String, u64> = redis::cmd("HGETALL")
            .arg("kn:edges:writes")
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(counts)
    }

    /// Whether the server has the function library (a server restarted without persistence
    /// has lost it).
    pub async fn functions_loaded(&self) -> Result<bool> {
        let libraries: Vec<redis::Value> = redis::cmd("FUNCTION")
            .arg("LIST")
            .arg("LIBRARYNAME")
            .arg(pushdown::LIBRARY_NAME)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(!libraries.is_empty())
    }

    /// Whether Redis's `default` user takes any client without a password: then anyone who
    /// reaches the server, a principal included, may act as the administrator.
    pub async fn default_user_is_open(&self) -> Result<bool> {
        let users: Vec<String> =
            redis::cmd("ACL").arg("LIST").query_async(&mut self.conn.clone()).await?;
        let open = |rules: &str| rules.split(' ').any(|r| r == "on") && rules.contains(" nopass");
        Ok(users.iter().any(|u| u.strip_prefix("user default ").is_some_and(open)))
    }

    /// Deletes the ACL users `users` that exist (their connections are closed). Needs an
    /// administrator's connection.
    pub async fn delete_users(&self, users: &[String]) -> Result<()> {
        redis::cmd("ACL")
            .arg("DELUSER")
            .arg(users)
            .query_async::<u64>(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    /// The server's ACL users.
    pub async fn users(&self) -> Result<Vec<String>> {
        Ok(redis::cmd("ACL").arg("USERS").query_async(&mut self.conn.clone()).await?)
    }

    /// Keeps `history` changes per store for resuming watchers (default [`DEFAULT_HISTORY`]).
    pub fn with_history(mut self, history: usize) -> Self {
        self.history = history.max(1);
        self
    }

    /// Maps an error of `operation` on `store` to the denial it is when Redis refused the
    /// command or its keys to the connection's user.
    fn refusal(
        &self,
        store: &StoreRef,
        operation: &'static str,
    ) -> impl Fn(ExchangeError) -> ExchangeError {
        acl::refusal(self.user.clone(), store, operation)
    }

    /// The schema this process validates `store` with: the one it registered, or, for a store
    /// another connection registered since (a knactor's manifest applied live), the one Redis
    /// holds, learnt at the first use.
    async fn schema(&self, store: &StoreRef) -> Result<Arc<StoreSchema>> {
        let known = self.schemas.read().expect("schema map poisoned").get(store).cloned();
        if let Some(schema) = known {
            return Ok(schema);
        }
        let held = held::read(&mut self.conn.clone(), store).await;
        let Some((version, schema)) = held.map_err(self.refusal(store, "read"))? else {
            return Err(ExchangeError::UnknownStore(store.clone()));
        };
        let schema = Arc::new(StoreSchema::compile(store, &schema)?.at_version(version));
        let mut schemas = self.schemas.write().expect("schema map poisoned");
        Ok(schemas.entry(store.clone()).or_insert(schema).clone())
    }

    /// Validates the writes of `store` against `schema` from now on.
    fn remember(&self, store: &StoreRef, schema: StoreSchema) {
        let mut schemas = self.schemas.write().expect("schema map poisoned");
        schemas.insert(store.clone(), Arc::new(schema));
    }

    /// Learns the schema the exchange holds for `store` now, after a write found it changed.
    async fn relearn(&self, store: &StoreRef) -> Result<()> {
        let held = held::read(&mut self.conn.clone(), store).await?;
        let Some((version, schema)) = held else {
            return Err(ExchangeError::UnknownStore(store.clone()));
        };
        tracing::info!(%store, version, "the store's schema changed; validating against it");
        self.remember(store, StoreSchema::compile(store, &schema)?.at_version(version));
        Ok(())
    }

    /// Reads one object: its data and version, atomically.
    async fn read(&self, keys: &StoreKeys, name: &str) -> Result<Option<(Value, u64)>> {
        let mut read = redis::pipe();
        read.atomic().hget(&keys.data, name).hget(&keys.versions, name);
        let (data, version): (Option<String>, Option<u64>) = reads::read(&self.conn, &read).await?;
        match (data, version) {
            (Some(data), Some(version)) => Ok(Some((parse_data(name, &data)?, version))),
            _ => Ok(None),
        }
    }

    /// Runs `kn_write`: `data` is the state to store, `None` to delete, validated against
    /// version `schema_version` of the store's schema.
    async fn store(
        &self,
        (store, schema_version): (&StoreRef, u64),
        keys: &StoreKeys,
        name: &str,
        (data, expect): (Option<Value>, Expect),
        origin: &str,
    ) -> Result<Arc<Object>> {
        let expect_arg = match expect {
            Expect::Any => "any".to_owned(),
            Expect::Absent => "absent".to_owned(),
            Expect::Present => "present".to_owned(),
            Expect::Version(v) => v.to_string(),
        };
        let json = data.as_ref().map(|d| d.to_string()).unwrap_or_default();
        let op = if data.is_some() { "put" } else { "del" };
        let write = (op, name, json.as_str(), expect_arg.as_str());
        let mut call = write_call(store, keys, write, self.history, schema_version);
        let trace = crate::trace::current().map(|t| t.to_string()).unwrap_or_default();
        call.arg(origin).arg(trace);
        let mut conn = self.conn.clone();
        let (status, version, old, failures): (String, i64, String, Vec<String>) =
            pushdown::call(&self.client, &mut conn, self.user.as_deref(), &call).await?;
        for failure in failures {
            tracing::warn!(%store, object = name, "pushed-down {failure}");
        }
        let found = u64::try_from(version).ok();
        let object = |data: Value| {
            Arc::new(Object {
                name: name.to_owned(),
                version: found.unwrap_or(0),
                data,
                trace: None,
            })
        };
        match status.as_str() {
            "ok" | "same" => match data {
                Some(data) => Ok(object(data)),
                None => Ok(object(parse_data(name, &old)?)),
            },
            "exists" => {
                Err(ExchangeError::AlreadyExists { store: store.clone(), name: name.to_owned() })
            }
            "missing" => {
                Err(ExchangeError::NotFound { store: store.clone(), name: name.to_owned() })
            }
            "conflict" => match expect {
                Expect::Version(expected) => Err(ExchangeError::Conflict {
                    store: store.clone(),
                    name: name.to_owned(),
                    expected,
                    actual: found,
                }),
                _ => Err(ExchangeError::Corrupt(format!("conflict without a version for {name}"))),
            },
            "schema" => Err(ExchangeError::SchemaChanged {
                store: store.clone(),
                name: name.to_owned(),
                version: found.unwrap_or(0),
            }),
            "invalid" => Err(ExchangeError::SchemaViolation {
                store: store.clone(),
                name: name.to_owned(),
                violation: lua_violation(&old),
            }),
            other => Err(ExchangeError::Corrupt(format!("kn_write answered `{other}`"))),
        }
    }
}

/// The `FCALL kn_write` of one write, `(op, name, json, precondition)`, to `store` (keeping
/// `history` changes) validated against version `schema_version` of its schema. Its fifth key
/// is the object's origins: the fields it changes lose theirs, or get the origin given as the
/// next argument (JSON).
pub(crate) fn write_call(
    store: &StoreRef,
    keys: &StoreKeys,
    (op, name, json, expect): (&str, &str, &str, &str),
    history: usize,
    schema_version: u64,
) -> redis::Cmd {
    let mut call = redis::cmd("FCALL");
    call.arg("kn_write")
        .arg(5)
        .arg(&keys.data)
        .arg(&keys.versions)
        .arg(&keys.seq)
        .arg(&keys.changes)
        .arg(keys.origins(name))
        .arg(op)
        .arg(name)
        .arg(json)
        .arg(expect)
        .arg(history)
        .arg(store.to_string())
        .arg(schema_version);
    call
}

/// The Lua check's "at POINTER: PROBLEM" as a violation.
fn lua_violation(answer: &str) -> SchemaViolation {
    let (pointer, message) =
        answer.strip_prefix("at ").and_then(|rest| rest.split_once(": ")).unwrap_or(("/", answer));
    let pointer = if pointer == "/" { "" } else { pointer };
    SchemaViolation { pointer: pointer.to_owned(), message: message.to_owned() }
}

fn parse_data(name: &str, json: &str) -> Result<Value> {
    serde_json::from_str(json).map_err(|e| ExchangeError::Corrupt(format!("object {name}: {e}")))
}

#[async_trait]
impl ObjectExchange for RedisExchange {
    async fn register(&self, store: &StoreRef, schema: &Value) -> Result<()> {
        let given = StoreSchema::compile(store, schema)?;
        let held = held::hold(&self.client, &mut self.conn.clone(), store, schema).await;
        let (version, held) = match held.map_err(self.refusal(store, "register")) {
            Ok(held) => held,
            // A principal's user that may not reach the store: registered all the same, each
            // use is denied.
            Err(ExchangeError::Denied(_)) => (0, schema.clone()),
            Err(e) => return Err(e),
        };
        if held != *schema {
            return Err(ExchangeError::SchemaDiffers { store: store.clone(), version });
        }
        self.remember(store, given.at_version(version));
        Ok(())
    }

    async fn evolve(
        &self,
        store: &StoreRef,
        schema: &Value,
        migration: Option<&Migration>,
    ) -> Result<u64> {
        let next = StoreSchema::compile(store, schema)?;
        if migration.is_some() {
            // The migrated objects are written by `kn_write`, inside the transaction.
            self.load_functions().await.map_err(self.refusal(store, "evolve"))?;
        }
        let evolution = held::Evolution { schema: &next, migration };
        let replace = held::Replace::Always;
        let version = held::replace(&self.client, store, evolution, replace, self.history).await;
        let version = version.map_err(self.refusal(store, "evolve"))?;
        self.remember(store, next.at_version(version));
        Ok(version)
    }

    async fn get(&self, store: &StoreRef, name: &str) -> Result<Option<Arc<Object>>> {
        self.schema(store).await?;
        let keys = StoreKeys::new(store);
        let found = self.read(&keys, name).await.map_err(self.refusal(store, "get"))?;
        Ok(found.map(|(data, version)| {
            Arc::new(Object { name: name.to_owned(), version, data, trace: None })
        }))
    }

    async fn list(&self, store: &StoreRef) -> Result<ObjectList> {
        self.schema(store).await?;
        // Read first: data lost between this read and the list's is listed under the old
        // name, and the watch from its version expires (never the other way round).
        let name = read_data_name(&mut self.conn.clone())
            .await
            .map_err(|e| self.refusal(store, "list")(e.into()))?;
        let keys = StoreKeys::new(store);
        let mut read = redis::pipe();
        read.atomic().hgetall(&keys.data).hgetall(&keys.versions).get(&keys.seq);
        let (data, versions, seq): (HashMap<String, String>, HashMap<String, u64>, Option<u64>) =
            reads::read(&self.conn, &read)
                .await
                .map_err(|e| self.refusal(store, "list")(e.into()))?;
        let mut items = data
            .into_iter()
            .map(|(name, json)| {
                let version = versions.get(&name).copied().unwrap_or(0);
                let data = parse_data(&name, &json)?;
                Ok(Arc::new(Object { name, version, data, trace: None }))
            })
            .collect::<Result<Vec<_>>>()?;
        items.sort_by(|a, b| a.name.cmp(&b.name));
        *self.listed.lock().expect("data name poisoned") = name;
        Ok(ObjectList { version: seq.unwrap_or(0), items })
    }

    async fn write(&self, store: &StoreRef, write: Write) -> Result<Arc<Object>> {
        let operation = match write.op {
            WriteOp::Put(_) => "put",
            WriteOp::Patch(_) => "patch",
            WriteOp::Delete => "delete",
        };
        self.write_unmapped(store, write).await.map_err(self.refusal(store, operation))
    }

    async fn origins(&self, store: &StoreRef, name: &str) -> Result<Option<Origins>> {
        self.schema(store).await?;
        let keys = StoreKeys::new(store);
        let mut read = redis::pipe();
        read.atomic().hget(&keys.versions, name).hgetall(keys.origins(name));
        let (version, stamps): (Option<u64>, HashMap<String, String>) =
            reads::read(&self.conn, &read)
                .await
                .map_err(|e| self.refusal(store, "get")(e.into()))?;
        if version.is_none() {
            return Ok(None);
        }
        let parse = |(field, stamp): (String, String)| {
            let corrupt =
                |e: String| ExchangeError::Corrupt(format!("origin of {name}.{field}: {e}"));
            let (version, origin) = stamp.split_once(' ').ok_or_else(|| corrupt(stamp.clone()))?;
            let version =
                version.parse().map_err(|e: std::num::ParseIntError| corrupt(e.to_string()))?;
            let origin: Origin =
                serde_json::from_str(origin).map_err(|e| corrupt(e.to_string()))?;
            Ok((field, Stamp { version, origin: Arc::new(origin) }))
        };
        stamps.into_iter().map(parse).collect::<Result<Origins>>().map(Some)
    }

    async fn watch(&self, store: &StoreRef, from: u64) -> Result<WatchStream> {
        self.schema(store).await?;
        let listed = self.listed.lock().expect("data name poisoned").clone();
        let watch = watch::watch(self.client.clone(), store.clone(), from, listed).await;
        watch.map_err(self.refusal(store, "watch"))
    }

    async fn version(&self, store: &StoreRef) -> Result<u64> {
        self.schema(store).await?;
        let read = redis::cmd("GET").arg(StoreKeys::new(store).seq).clone();
        let seq: Option<u64> = reads::read(&self.conn, &read)
            .await
            .map_err(|e| self.refusal(store, "list")(e.into()))?;
        Ok(seq.unwrap_or(0))
    }

    async fn count(&self, store: &StoreRef) -> Result<Option<u64>> {
        self.schema(store).await?;
        let read = redis::cmd("HLEN").arg(StoreKeys::new(store).data).clone();
        let objects: u64 = reads::read(&self.conn, &read)
            .await
            .map_err(|e| self.refusal(store, "list")(e.into()))?;
        Ok(Some(objects))
    }

    /// Needs an administrator's connection; a principal's cannot tell, and says `false`.
    async fn lost_data(&self) -> Result<bool> {
        if self.user.is_some() {
            return Ok(false);
        }
        let now = claim_data_name(&mut self.conn.clone()).await?;
        let mut known = self.incarnation.lock().expect("incarnation poisoned");
        let lost = known.as_ref().is_some_and(|known| *known != now);
        *known = Some(now);
        Ok(lost)
    }

    fn edge_runner(&self) -> Option<&dyn EdgeRunner> {
        Some(self)
    }
}

impl RedisExchange {
    /// [`ObjectExchange::write`], with Redis's refusals as they come; a write validated
    /// against a schema the exchange no longer holds is validated again against the new one.
    async fn write_unmapped(&self, store: &StoreRef, write: Write) -> Result<Arc<Object>> {
        if !is_valid_name(&write.name) {
            return Err(ExchangeError::InvalidName(write.name));
        }
        let mut relearned = 0;
        loop {
            let outcome = self.write_once(store, &write).await;
            let stale = match &outcome {
                Err(ExchangeError::SchemaChanged { .. }) => true,
                // Refused here: by the schema Redis holds, unless it changed meanwhile.
                Err(ExchangeError::SchemaViolation { .. }) => self.schema_changed(store).await?,
                _ => false,
            };
            if !stale || relearned == SCHEMA_CHANGES {
                return outcome;
            }
            relearned += 1;
            self.relearn(store).await?;
        }
    }

    /// Whether the schema Redis holds for `store` is not the one this process validates with.
    async fn schema_changed(&self, store: &StoreRef) -> Result<bool> {
        let held: Option<u64> = redis::cmd("HGET")
            .arg(held::key(store))
            .arg("version")
            .query_async(&mut self.conn.clone())
            .await?;
        let validating = self.schema(store).await?.version();
        Ok(held.is_some_and(|held| held != validating))
    }

    /// One try of [`write_unmapped`](Self::write_unmapped).
    async fn write_once(&self, store: &StoreRef, write: &Write) -> Result<Arc<Object>> {
        let schema = self.schema(store).await?;
        let keys = StoreKeys::new(store);
        let origin = write.origin.as_deref().map(serde_json::to_string).transpose();
        let origin = origin.map_err(|e| ExchangeError::Corrupt(format!("origin: {e}")))?;
        let origin = origin.as_deref().unwrap_or_default();
        if !matches!(write.op, WriteOp::Patch(_)) {
            let data = next_state(&schema, store, &write.name, None, &write.op)?;
            let at = (store, schema.version());
            return self.store(at, &keys, &write.name, (data, write.expect), origin).await;
        }
        // A merge patch needs the current state: read it, merge and validate here, then write
        // conditionally on the version read; a concurrent write makes us read again, unless
        // the caller asked for a version.
        let conflicts = if matches!(write.expect, Expect::Version(_)) { 1 } else { usize::MAX };
        let name = &write.name;
        let read = || async {
            let found = self.read(&keys, name).await?;
            Ok(found.map(|(data, version)| {
                Arc::new(Object { name: name.clone(), version, data, trace: None })
            }))
        };
        let merge = |current: Option<&Object>| {
            write.check(store, current.map(|o| o.version))?;
            let next = next_state(&schema, store, name, current.map(|o| &o.data), &write.op)?;
            Ok(next.expect("a patch gives a state"))
        };
        let at = (store, schema.version());
        let put = |data, expect| self.store(at, &keys, name, (Some(data), expect), origin);
        match merge_write(Known::Nothing, conflicts, read, merge, put).await? {
            Merged::Written(object) | Merged::Unchanged(object) => Ok(object),
        }
    }
}
