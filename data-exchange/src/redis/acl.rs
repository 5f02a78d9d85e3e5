//! One Redis ACL user per principal (DESIGN §11): its key patterns reach only the stores its
//! [`Rights`] name, read-only where it may only read, and its commands are those the exchange
//! sends, nothing else (no `KEYS`, `SCAN`, `EVAL`, `FUNCTION`, `CONFIG`, `ACL` or `FLUSHALL`).
//! Users are server-wide: their names say the app, the database and the principal (see
//! `knactor::logins`). Only a user of a database other than 0 may `SELECT`, and Redis cannot
//! hold it to its own: it reaches its key patterns in every database.
//!
//! Redis checks keys, not fields or objects: a user that may write a store may write any
//! field of any of its objects with raw commands, bypassing the schema as well; field and
//! object rights hold for writes made through the exchange ([`ScopedExchange`]). The commands
//! a Redis function sends are checked against the user calling it, so an edge pushed down into
//! Redis would write its target as the writer of its source: the library of pushed-down edges
//! is loaded by an administrator's connection, and a principal's user cannot load one.
//!
//! [`ScopedExchange`]: crate::access::ScopedExchange

use std::fmt;

use crate::access::Rights;
use crate::error::{Denial, ExchangeError, Result};
use crate::store::StoreRef;

/// What reading a store takes: `GET` (a store's version, a log's end), `HGET`/`HGETALL`
/// (objects, log checkpoints), `HMGET` (the schema held), `XREAD` (changes, log tails),
/// `XRANGE`/`XREVRANGE` (log entries), `MULTI`/`EXEC` (an atomic read of data and versions).
const READ_COMMANDS: &[&str] = &[
    "get",
    "hget",
    "hgetall",
    "hkeys",
    "hlen",
    "hmget",
    "xread",
    "xrange",
    "xrevrange",
    "multi",
    "exec",
    "discard",
];

/// What writing takes: the `kn_write` and `kn_append` functions and the commands they send. No
/// `EVAL` or `SCRIPT`: a principal runs no Lua of its own.
const WRITE_COMMANDS: &[&str] = &["fcall", "hset", "hdel", "incr", "xadd", "set"];

/// What every connection sends: its handshake and health checks (a principal's connection
/// does not name its client library: `CLIENT SETINFO` is not granted, and Redis 7.0 lacks it),
/// and `SELECT` on a database other than 0.
const CONNECTION_COMMANDS: &[&str] = &["ping", "hello", "auth"];

/// A Redis user's name and password. Never printed: `Debug` shows the user only.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// The ACL user (the principal, e.g. `knactor:checkout`).
    pub user: String,
    /// Its password.
    pub password: String,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential").field("user", &self.user).finish_non_exhaustive()
    }
}

/// The keys of `store`, as an ACL key pattern.
fn key_pattern(store: &StoreRef) -> String {
    format!("kn:{{{store}}}:*")
}

/// The ACL rules of a user of database `db` that may do what `rights` allow, store by store:
/// `~PATTERN` on the stores it writes, `%R~PATTERN` on those it only reads, no channel, and the
/// commands the exchange sends.
pub fn rules(rights: &Rights, db: i64) -> Vec<String> {
    let mut rules: Vec<String> =
        ["reset", "on", "resetchannels", "-@all"].map(str::to_owned).into();
    let writes = rights.grants().any(|(_, g)| g.write.is_some() || g.delete);
    let commands = CONNECTION_COMMANDS
        .iter()
        .chain((db != 0).then_some(&"select"))
        .chain(READ_COMMANDS)
        .chain(writes.then_some(WRITE_COMMANDS).into_iter().flatten());
    rules.extend(commands.map(|c| format!("+{c}")));
    for (store, grant) in rights.grants() {
        let pattern = key_pattern(store);
        if grant.write.is_some() || grant.delete {
            rules.push(format!("~{pattern}"));
        } else if grant.reads() {
            rules.push(format!("%R~{pattern}"));
        } else {
            continue;
        }
        // The schema Redis checks the store's writes against: read, never written.
        rules.push(format!("%R~{}", super::held::key(store)));
    }
    // The name of the server's data, which a watch that resumes compares.
    rules.push(format!("%R~{}", super::INCARNATION));
    rules
}

/// Creates the ACL user of `credential` for database `db`, or replaces its password and rules,
/// on the server `admin` is connected to as a user that may run `ACL SETUSER`.
pub(super) async fn set_user(
    admin: &mut impl redis::aio::ConnectionLike,
    credential: &Credential,
    rights: &Rights,
    db: i64,
) -> Result<()> {
    let mut command = redis::cmd("ACL");
    command.arg("SETUSER").arg(&credential.user).arg(rules(rights, db));
    // The password goes last, after `reset`, which clears the old ones.
    command.arg(format!(">{}", credential.password));
    command.query_async::<()>(admin).await.map_err(ExchangeError::from)
}

/// A client of the server at `url` that logs in as the user of `credential` (and does not name
/// its client library: `CLIENT SETINFO` is not granted).
pub(crate) fn client_as(url: &str, credential: &Credential) -> Result<redis::Client> {
    use redis::IntoConnectionInfo;
    let info = url.into_connection_info()?;
    let settings = info.redis_settings().clone();
    let settings = settings
        .set_username(&credential.user)
        .set_password(&credential.password)
        .set_skip_set_lib_name();
    Ok(redis::Client::open(info.set_redis_settings(settings))?)
}

/// Maps a failed login as `user` to an error that names it.
pub(crate) fn login_error(user: &Option<String>) -> impl Fn(redis::RedisError) -> ExchangeError {
    move |e| match (user, e.kind()) {
        (Some(user), redis::ErrorKind::AuthenticationFailed) => ExchangeError::Backend {
            backend: "redis",
            error: format!("the server does not accept the credentials of {user}: {e}").into(),
        },
        _ => e.into(),
    }
}

/// Maps an error of `operation` on `store` to the denial it is when Redis refused the command
/// or its keys to `user` (the connection's, `None` for the URL's or the default).
pub(crate) fn refusal(
    user: Option<String>,
    store: &StoreRef,
    operation: &'static str,
) -> impl Fn(ExchangeError) -> ExchangeError + use<> {
    let store = store.clone();
    move |e| match &e {
        ExchangeError::Backend { error, .. }
            if error.downcast_ref::<redis::RedisError>().is_some_and(is_refusal) =>
        {
            let (principal, reason) = (user.clone(), error.to_string());
            Denial { store: store.clone(), operation, field: None, principal, reason }.into()
        }
        _ => e,
    }
}

/// Whether `error` is Redis refusing the command or its keys to the connection's user.
fn is_refusal(error: &redis::RedisError) -> bool {
    if error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoPerm) {
        return true;
    }
    // A refusal inside a transaction aborts it, with the refusal among its errors; a command
    // a function sends is refused inside it, as the function's error.
    let message = error.to_string();
    ["NoPerm", "NOPERM", "can't run this command"].iter().any(|m| message.contains(m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::{Fields, Grant};

    #[test]
    fn a_user_reaches_the_stores_of_its_rights_only_and_reads_only_where_it_reads() {
        let mut rights = Rights::new("integrator:c");
        rights.grant("k/a".parse().unwrap(), Grant::read());
        let writes = Grant { write: Some(Fields::Only(["x".to_owned()].into())), ..Grant::read() };
        rights.grant("k/b".parse().unwrap(), writes);
        let rules = rules(&rights, 0);
        assert_eq!(rules[..4], ["reset", "on", "resetchannels", "-@all"]);
        assert!(!rules.contains(&"+select".to_owned()), "database 0 needs no SELECT");
        assert!(super::rules(&rights, 3).contains(&"+select".to_owned()));
        let keys: Vec<&str> = rules.iter().filter(|r| r.contains('~')).map(|r| &**r).collect();
        let schemas = ["%R~kn:schema:{k/a}", "%R~kn:schema:{k/b}"];
        assert_eq!(
            keys,
            ["%R~kn:{k/a}:*", schemas[0], "~kn:{k/b}:*", schemas[1], "%R~kn:incarnation"],
            "schemas read-only"
        );
        assert!(rules.contains(&"+fcall".to_owned()));
        for wide in ["keys", "scan", "function", "eval", "script", "acl", "config", "flush"] {
            let granted = |r: &String| r.strip_prefix('+').is_some_and(|c| c.starts_with(wide));
            assert!(!rules.iter().any(granted), "{wide} in {rules:?}");
        }
    }

    #[test]
    fn a_reader_gets_no_write_command() {
        let mut rights = Rights::new("viewer");
        rights.grant("k/a".parse().unwrap(), Grant::read());
        let rules = rules(&rights, 0);
        assert!(!rules.iter().any(|r| r == "+fcall" || r == "+hset"), "{rules:?}");
    }

    #[test]
    fn a_credential_never_shows_its_password() {
        let credential = Credential { user: "knactor:a".into(), password: "s3cret".into() };
        assert!(!format!("{credential:?}").contains("s3cret"));
    }
}
