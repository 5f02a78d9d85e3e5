//! The `knactor` Redis Functions library: `kn_write` (every object write), the edges run
//! inside it (the [`EdgeRunner`] of the Redis exchange), and `kn_append` (every append to a Log
//! store).
//!
//! The library is assembled from the files of `lua/`, one job each, in this order: `init.lua`
//! opens `init`, which builds everything on the first call; `json.lua` (codec), `merge.lua`
//! (merge patch), `schema.lua` (the JSON Schema subset), `cel.lua` (the CEL operators compiled
//! edges call), `write.lua` (one object write), `edges.lua` (running edges after a write),
//! then `register.lua`, where the edges' chunks go and the functions are registered. The files are
//! pieces of that one function, kept local so that Redis allows them, not Lua chunks that
//! load on their own.
//!
//! Each owner's edges are kept as one Lua chunk in the hash `kn:pushdown` (owner -> chunk), and
//! the library is always loaded from what that hash holds, so any client can rebuild it. A
//! change of the chunks is a transaction: `WATCH` the hash, read it, then load the library with
//! the change and write the change in one `MULTI`, which does nothing if anybody changed the
//! hash meanwhile; else again. A library loaded apart from that commit could, for a moment,
//! lack a chunk another client had just committed, and the writes of that moment would miss its
//! edges. A new chunk is first compiled in a library of another name, so that one Redis cannot
//! load changes nothing.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;

use super::RedisExchange;
use super::codegen::{key_function, lua_string, patch_function};
use super::conforms::{checkable_in_lua, conforms};
use crate::edge::{Edge, EdgeRunner, EdgesRun};
use crate::error::{ExchangeError, Result};
use crate::object::ObjectExchange;
use crate::schema::StoreSchema;
use crate::store::StoreRef;

/// The library's code, with `-- @EDGES@` where the chunks go, and `@FUNCTION@` and `@APPEND@`
/// for the names of its functions.
const LIBRARY: &str = concat!(
    include_str!("lua/init.lua"),
    include_str!("lua/json.lua"),
    include_str!("lua/merge.lua"),
    include_str!("lua/schema.lua"),
    include_str!("lua/cel.lua"),
    include_str!("lua/write.lua"),
    include_str!("lua/edges.lua"),
    include_str!("lua/register.lua"),
);
/// Owner -> Lua chunk of its edges.
const CHUNKS: &str = "kn:pushdown";
/// The library, and a library of the same code under other names, loaded only to compile it.
const LOADED: Names = Names { library: LIBRARY_NAME, function: "kn_write", append: APPEND };
const COMPILED: Names =
    Names { library: "knactor_compile", function: "kn_write_compile", append: "kn_append_compile" };

/// The library's name.
pub(crate) const LIBRARY_NAME: &str = "knactor";

/// The function that appends to a Log store.
pub(crate) const APPEND: &str = "kn_append";

/// The names a library is loaded under.
struct Names {
    library: &'static str,
    function: &'static str,
    append: &'static str,
}

/// The library's source with `chunks` in place of `@EDGES@`, under `names`.
fn library(chunks: &BTreeMap<String, String>, names: &Names) -> String {
    let edges: Vec<&str> = chunks.values().map(String::as_str).collect();
    let code = LIBRARY.replacen("-- @EDGES@", &edges.join("\n"), 1);
    let code = code.replacen("'@FUNCTION@'", &format!("'{}'", names.function), 1);
    let code = code.replacen("'@APPEND@'", &format!("'{}'", names.append), 1);
    format!("#!lua name={}\n{code}", names.library)
}

#[async_trait]
impl EdgeRunner for RedisExchange {
    async fn run_edges(&self, owner: &str, edges: &[Edge]) -> Result<EdgesRun> {
        let mut outcome = EdgesRun::default();
        let mut chunk = String::new();
        let users = self.other_users().await?;
        for edge in edges {
            if let Some(why) = self.stranded_writer(&users, edge).await? {
                outcome.refused.push((edge.name().to_owned(), why));
                continue;
            }
            let target = edge.target();
            let checked = match self.schema(target).await {
                Ok(schema) => checkable_in_lua(schema.source(), &edge.fields())
                    .map(|()| schema)
                    .map_err(|why| format!("the target {target}: {why}")),
                Err(_) => Err(format!("the target {target} is not registered here")),
            };
            match checked {
                Ok(schema) => {
                    chunk.push_str(&render(edge, &schema));
                    outcome.running.push(edge.name().to_owned());
                }
                Err(why) => outcome.refused.push((edge.name().to_owned(), why)),
            }
        }
        let chunk = (!chunk.is_empty()).then_some(chunk);
        load(&self.client, Change::Owner(owner, chunk)).await?;
        let running = edges.iter().filter(|e| outcome.running.iter().any(|r| r == e.name()));
        let sources: BTreeSet<&StoreRef> =
            running.flat_map(|e| e.sources().iter().map(|(_, store)| store)).collect();
        for source in sources {
            outcome.from.insert(source.clone(), self.version(source).await?);
        }
        Ok(outcome)
    }
}

impl RedisExchange {
    /// Whether edges are pushed down into this server: then every write runs them, as its
    /// writer, so writers need the rights of their edges' targets too.
    pub async fn runs_pushed_down_edges(&self) -> Result<bool> {
        let chunks: u64 =
            redis::cmd("HLEN").arg(CHUNKS).query_async(&mut self.conn.clone()).await?;
        Ok(chunks > 0)
    }

    /// The server's ACL users but the one this connection is.
    async fn other_users(&self) -> Result<Vec<String>> {
        let me: String =
            redis::cmd("ACL").arg("WHOAMI").query_async(&mut self.conn.clone()).await?;
        Ok(self.users().await?.into_iter().filter(|user| *user != me).collect())
    }

    /// Why `edge` cannot run here: a pushed-down edge writes its target inside the write of
    /// its source, as that write's user, so one of `users` that may write a source but not
    /// the target would have the edge fail there (the edge then runs in its integrator).
    async fn stranded_writer(&self, users: &[String], edge: &Edge) -> Result<Option<String>> {
        for user in users {
            if !self.may_write(user, edge.target()).await? {
                for (_, source) in edge.sources() {
                    if self.may_write(user, source).await? {
                        return Ok(Some(format!(
                            "the Redis user `{user}` writes {source} but may not write {}",
                            edge.target()
                        )));
                    }
                }
            }
        }
        Ok(None)
    }

    /// Whether Redis lets `user` call `kn_write` on `store`.
    async fn may_write(&self, user: &str, store: &StoreRef) -> Result<bool> {
        let keys = super::StoreKeys::new(store);
        let answer: String = redis::cmd("ACL")
            .arg("DRYRUN")
            .arg(user)
            .arg("FCALL")
            .arg(LOADED.function)
            .arg(4)
            .arg(&keys.data)
            .arg(&keys.versions)
            .arg(&keys.seq)
            .arg(&keys.changes)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(answer == "OK")
    }
}

/// One edge as the library registers it, with its target's schema, that schema's version, and
/// the check generated from it.
fn render(edge: &Edge, target: &StoreSchema) -> String {
    let schema = target.source();
    let from: Vec<String> = edge
        .sources()
        .iter()
        .map(|(alias, store)| {
            format!(
                "{{ alias = {}, store = {} }}",
                lua_string(alias),
                lua_string(&store.to_string())
            )
        })
        .collect();
    format!(
        "edge {{ name = {}, from = {{ {} }}, target = {}, cascade = {}, schema = {}, version = {},\n  conforms = {},\n  key = {},\n  patch = {} }}\n",
        lua_string(edge.name()),
        from.join(", "),
        lua_string(&edge.target().to_string()),
        edge.cascade(),
        lua_string(&schema.to_string()),
        lua_string(&target.version().to_string()),
        conforms(schema),
        key_function(edge),
        patch_function(edge),
    )
}

/// What to do with an owner's chunk.
pub(super) enum Change<'a> {
    /// Load the library as the hash has it.
    Nothing,
    /// Set (`Some`) or remove (`None`) `owner`'s chunk.
    Owner(&'a str, Option<String>),
}

/// Applies `change` and loads the library (see the module doc). A chunk Redis cannot load is
/// an error, and changes nothing.
pub(super) async fn load(client: &redis::Client, change: Change<'_>) -> Result<()> {
    // WATCH belongs to a connection: this one is ours alone.
    let mut conn = client.get_multiplexed_async_connection().await?;
    loop {
        redis::cmd("WATCH").arg(CHUNKS).query_async::<()>(&mut conn).await?;
        let mut chunks: BTreeMap<String, String> =
            redis::cmd("HGETALL").arg(CHUNKS).query_async(&mut conn).await?;
        let mut commit = redis::pipe();
        commit.atomic();
        match &change {
            Change::Nothing => {}
            Change::Owner(owner, Some(chunk)) => {
                chunks.insert((*owner).to_owned(), chunk.clone());
                commit.hset(CHUNKS, *owner, chunk).ignore();
            }
            Change::Owner(owner, None) => {
                chunks.remove(*owner);
                commit.hdel(CHUNKS, *owner).ignore();
            }
        }
        if let Change::Owner(_, Some(_)) = &change
            && let Err(e) = compile(&mut conn, &chunks).await
        {
            redis::cmd("UNWATCH").query_async::<()>(&mut conn).await?;
            return Err(e);
        }
        commit.cmd("FUNCTION").arg("LOAD").arg("REPLACE").arg(library(&chunks, &LOADED));
        // The library's name, or nothing when the hash changed since WATCH.
        let loaded: Option<(String,)> = commit.query_async(&mut conn).await?;
        if loaded.is_some() {
            return Ok(());
        }
    }
}

/// Loads the library with `chunks` under other names, to see that Redis compiles it, and
/// deletes it again.
async fn compile(
    conn: &mut redis::aio::MultiplexedConnection,
    chunks: &BTreeMap<String, String>,
) -> Result<()> {
    redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg("REPLACE")
        .arg(library(chunks, &COMPILED))
        .query_async::<String>(conn)
        .await?;
    redis::cmd("FUNCTION").arg("DELETE").arg(COMPILED.library).query_async::<()>(conn).await?;
    Ok(())
}

/// Whether `error` says the library is not loaded.
fn is_missing_library(error: &redis::RedisError) -> bool {
    error.to_string().contains("Function not found")
}

/// Sends `call`, an `FCALL` of a function of the library, on `conn`; when the server lacks the
/// library, loads it first, as an administrator (`user` is `None`) may. A principal's user may
/// not load it: its call fails, saying what to do.
pub(crate) async fn call<T: redis::FromRedisValue>(
    client: &redis::Client,
    conn: &mut impl redis::aio::ConnectionLike,
    user: Option<&str>,
    call: &redis::Cmd,
) -> Result<T> {
    match call.query_async(conn).await {
        Err(e) if is_missing_library(&e) => {
            if let Some(user) = user {
                let error = format!(
                    "the knactor function library is not loaded on this Redis, and {user} may not load it: start (or restart) a process of the app as the administrator"
                );
                return Err(ExchangeError::Backend { backend: "redis", error: error.into() });
            }
            load(client, Change::Nothing).await?;
            Ok(call.query_async(conn).await?)
        }
        reply => Ok(reply?),
    }
}
