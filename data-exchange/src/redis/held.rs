//! The schemas the Redis exchange holds. Store `k/s` has `kn:schema:{k/s}`, a hash of
//! `version`, `json` (the schema) and `checked` ("1" when the library's Lua checks every
//! keyword of it, so that `kn_write` checks every put, whoever sends it). The key is outside
//! the store's `kn:{k/s}:*` pattern: a principal's user may read it but not write it (see
//! [`super::acl`]), so only an administrator changes the schema Redis checks.

use serde_json::Value;

use super::StoreKeys;
use super::conforms::checkable_in_lua;
use crate::error::{ExchangeError, Result};
use crate::object::{Migration, StoreRef};
use crate::schema::StoreSchema;

/// The key of the schema held for `store`.
pub(crate) fn key(store: &StoreRef) -> String {
    format!("kn:schema:{{{store}}}")
}

/// The schema held for `store` and its version, if one is.
pub(super) async fn read(
    conn: &mut impl redis::aio::ConnectionLike,
    store: &StoreRef,
) -> Result<Option<(u64, Value)>> {
    let (version, json): (Option<u64>, Option<String>) =
        redis::cmd("HMGET").arg(key(store)).arg("version").arg("json").query_async(conn).await?;
    match (version, json) {
        (Some(version), Some(json)) => {
            let schema = serde_json::from_str(&json)
                .map_err(|e| ExchangeError::Corrupt(format!("the schema of {store}: {e}")))?;
            Ok(Some((version, schema)))
        }
        _ => Ok(None),
    }
}

/// The schema held for `store` and its version; when none is, `schema` becomes it, at
/// version 1 (which takes an administrator's connection, `client`).
pub(super) async fn hold(
    client: &redis::Client,
    conn: &mut impl redis::aio::ConnectionLike,
    store: &StoreRef,
    schema: &Value,
) -> Result<(u64, Value)> {
    if let Some(held) = read(conn, store).await? {
        return Ok(held);
    }
    // Another process may hold one first: then it is that one.
    let first = Evolution { schema: &StoreSchema::compile(store, schema)?, migration: None };
    replace(client, store, first, Replace::IfNone, super::DEFAULT_HISTORY).await?;
    read(conn, store).await?.ok_or_else(|| ExchangeError::Corrupt(format!("{store}: no schema")))
}

/// Whether [`replace`] replaces a schema held.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Replace {
    /// Only when none is held.
    IfNone,
    /// Whichever is held.
    Always,
}

/// A schema to hold, and how the stored objects take its shape.
#[derive(Clone, Copy)]
pub(super) struct Evolution<'a> {
    pub(super) schema: &'a StoreSchema,
    pub(super) migration: Option<&'a Migration>,
}

/// Makes the evolution's schema the one held for `store` (as `when` says) once every stored
/// object, migrated, conforms to it (else [`ExchangeError::SchemaBreaks`]), in one
/// transaction with the migrated objects' writes (`kn_write`, keeping `history` changes),
/// which a concurrent write aborts (then again): a write validated against the old schema is
/// either stored before, and migrated and checked here, or refused by `kn_write` after.
/// Returns the version held.
pub(super) async fn replace(
    client: &redis::Client,
    store: &StoreRef,
    Evolution { schema, migration }: Evolution<'_>,
    when: Replace,
    history: usize,
) -> Result<u64> {
    let (key, keys) = (key(store), StoreKeys::new(store));
    let checked = lua_checks_all(schema.source());
    // WATCH belongs to a connection: this one is ours alone.
    let mut conn = client.get_multiplexed_async_connection().await?;
    loop {
        redis::cmd("WATCH").arg(&key).arg(&keys.seq).query_async::<()>(&mut conn).await?;
        let held = read(&mut conn, store).await?;
        if let Some((version, held)) = &held
            && (held == schema.source() || when == Replace::IfNone)
        {
            redis::cmd("UNWATCH").query_async::<()>(&mut conn).await?;
            return Ok(*version);
        }
        let stored: Vec<(String, String)> =
            redis::cmd("HGETALL").arg(&keys.data).query_async(&mut conn).await?;
        let objects = stored
            .iter()
            .map(|(name, json)| Ok((name.as_str(), super::parse_data(name, json)?)))
            .collect::<Result<Vec<_>>>()?;
        let stored = objects.iter().map(|(name, data)| (*name, data));
        let migrated = match schema.fit(store, stored, migration) {
            Ok(migrated) => migrated,
            Err(e) => {
                redis::cmd("UNWATCH").query_async::<()>(&mut conn).await?;
                return Err(e);
            }
        };
        let version = held.map_or(1, |(version, _)| version + 1);
        let mut commit = redis::pipe();
        commit.atomic().hset_multiple(
            &key,
            &[
                ("version", version.to_string()),
                ("json", schema.source().to_string()),
                ("checked", if checked { "1" } else { "0" }.to_owned()),
                ("id", unique_id()),
            ],
        );
        for (name, data) in &migrated {
            let put = ("put", name.as_str(), data.to_string(), "any");
            let put = (put.0, put.1, put.2.as_str(), put.3);
            commit.add_command(super::write_call(store, &keys, put, history, version));
        }
        let committed: Option<Vec<redis::Value>> = commit.query_async(&mut conn).await?;
        if let Some(answers) = committed {
            refused_migration(store, &migrated, &answers[1..])?;
            return Ok(version);
        }
    }
}

/// An id no other schema held has (in any database of the server): what the library caches a
/// decoded schema by, as versions repeat across databases and after a `FLUSHALL`.
fn unique_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static HELD: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = HELD.fetch_add(1, Ordering::Relaxed);
    format!("{nanos:x}-{:x}-{n:x}", std::process::id())
}

/// The error when `kn_write` did not store one of the `migrated` objects (`answers`, in their
/// order) in the transaction that switched the schema: Redis does not roll a transaction back,
/// so the schema switched and that object kept its old shape.
fn refused_migration(
    store: &StoreRef,
    migrated: &[(String, Value)],
    answers: &[redis::Value],
) -> Result<()> {
    for ((name, _), answer) in migrated.iter().zip(answers) {
        let status = match answer {
            redis::Value::Array(fields) => fields.first().and_then(|s| match s {
                redis::Value::BulkString(bytes) => std::str::from_utf8(bytes).ok(),
                redis::Value::SimpleString(text) => Some(text.as_str()),
                _ => None,
            }),
            _ => None,
        };
        if !matches!(status, Some("ok" | "same")) {
            return Err(ExchangeError::Corrupt(format!(
                "{store}: the schema switched, but the migrated object `{name}` was not stored ({answer:?}): write it again"
            )));
        }
    }
    Ok(())
}

/// Whether the library's Lua checks every keyword of `schema`.
fn lua_checks_all(schema: &Value) -> bool {
    let properties = schema.get("properties").and_then(Value::as_object);
    let fields: Vec<String> = properties.into_iter().flat_map(|p| p.keys().cloned()).collect();
    checkable_in_lua(schema, &fields).is_ok()
}
