//! The schemas the Redis exchange holds. Store `k/s` has `kn:schema:{k/s}`, a hash of
//! `version`, `json` (the schema) and `checked` ("1" when the library's Lua checks every
//! keyword of it, so that `kn_write` checks every put, whoever sends it). The key is outside
//! the store's `kn:{k/s}:*` pattern: a principal's user may read it but not write it (see
//! [`super::acl`]), so only an administrator changes the schema Redis checks.

use serde_json::Value;

use super::StoreKeys;
use super::conforms::checkable_in_lua;
use crate::error::{ExchangeError, Result};
use crate::object::StoreRef;
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
    replace(client, store, &StoreSchema::compile(store, schema)?, Replace::IfNone).await?;
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

/// Makes `schema` the one held for `store` (as `when` says) once every stored object conforms
/// to it (else [`ExchangeError::SchemaBreaks`]), in one transaction that a concurrent write
/// aborts (then again): a write validated against the old schema is either stored before, and
/// checked here, or refused by `kn_write` after. Returns the version held.
pub(super) async fn replace(
    client: &redis::Client,
    store: &StoreRef,
    schema: &StoreSchema,
    when: Replace,
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
        let fits = schema.check_stored(store, objects.iter().map(|(name, data)| (*name, data)));
        if let Err(e) = fits {
            redis::cmd("UNWATCH").query_async::<()>(&mut conn).await?;
            return Err(e);
        }
        let version = held.map_or(1, |(version, _)| version + 1);
        let committed: Option<(String,)> = redis::pipe()
            .atomic()
            .hset_multiple(
                &key,
                &[
                    ("version", version.to_string()),
                    ("json", schema.source().to_string()),
                    ("checked", if checked { "1" } else { "0" }.to_owned()),
                ],
            )
            .query_async(&mut conn)
            .await?;
        if committed.is_some() {
            return Ok(version);
        }
    }
}

/// Whether the library's Lua checks every keyword of `schema`.
fn lua_checks_all(schema: &Value) -> bool {
    let properties = schema.get("properties").and_then(Value::as_object);
    let fields: Vec<String> = properties.into_iter().flat_map(|p| p.keys().cloned()).collect();
    checkable_in_lua(schema, &fields).is_ok()
}
