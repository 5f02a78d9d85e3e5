//! The schemas the Redis exchange holds: every process validates a store against the one
//! Redis holds, learns a change made by another process at its next write, and Redis itself
//! checks the writes any client sends through `kn_write`.

use data_exchange::access::{Grant, Rights};
use data_exchange::redis::acl::Credential;
use data_exchange::testing::RedisServer;
use data_exchange::{ExchangeError, ObjectExchange, RedisExchange, StoreRef, Write};
use serde_json::{Value, json};

fn things() -> StoreRef {
    "k/things".parse().unwrap()
}

fn v1() -> Value {
    json!({"type": "object", "properties": {"count": {"type": "integer"}},
        "additionalProperties": false})
}

fn v2() -> Value {
    json!({"type": "object", "additionalProperties": false,
        "properties": {"count": {"type": "integer", "maximum": 10}, "label": {"type": "string"}}})
}

#[tokio::test]
async fn a_process_learns_the_schema_another_evolved_at_its_next_write() {
    let server = RedisServer::start();
    let first = RedisExchange::connect(&server.url()).await.unwrap();
    let second = RedisExchange::connect(&server.url()).await.unwrap();
    first.register(&things(), &v1()).await.unwrap();
    second.register(&things(), &v1()).await.unwrap();
    let err = second.write(&things(), Write::put("a", json!({"label": "x"}))).await.unwrap_err();
    assert!(matches!(err, ExchangeError::SchemaViolation { .. }), "v1 has no label: {err}");

    assert_eq!(first.evolve(&things(), &v2(), None).await.unwrap(), 2);
    let labelled = Write::put("a", json!({"count": 1, "label": "x"}));
    second.write(&things(), labelled).await.expect("the second process validates against v2 now");
    let err = second.write(&things(), Write::put("b", json!({"count": 11}))).await.unwrap_err();
    assert!(matches!(err, ExchangeError::SchemaViolation { .. }), "v2 caps count: {err}");
    let err = second.register(&things(), &v1()).await.unwrap_err();
    assert!(
        matches!(err, ExchangeError::SchemaDiffers { version: 2, .. }),
        "a process started from the old manifest is told: {err}"
    );
}

/// The answer of a raw `FCALL kn_write` putting `json` as object `name` of `k/things`.
async fn raw_put(conn: &mut redis::aio::MultiplexedConnection, name: &str, json: &str) -> String {
    let tag = "kn:{k/things}";
    let (status, _, _, _): (String, i64, String, Vec<String>) = redis::cmd("FCALL")
        .arg("kn_write")
        .arg(4)
        .arg(format!("{tag}:data"))
        .arg(format!("{tag}:vers"))
        .arg(format!("{tag}:seq"))
        .arg(format!("{tag}:changes"))
        .arg("put")
        .arg(name)
        .arg(json)
        .arg("any")
        .arg(100)
        .arg("k/things")
        .query_async(conn)
        .await
        .unwrap();
    status
}

#[tokio::test]
async fn redis_refuses_a_raw_write_that_breaks_the_schema_it_holds() {
    let server = RedisServer::start();
    let exchange = RedisExchange::connect(&server.url()).await.unwrap();
    exchange.register(&things(), &v1()).await.unwrap();
    exchange.load_functions().await.unwrap();
    let mut raw = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    assert_eq!(raw_put(&mut raw, "bad", r#"{"count": "many"}"#).await, "invalid");
    assert_eq!(raw_put(&mut raw, "extra", r#"{"count": 1, "label": "x"}"#).await, "invalid");
    assert_eq!(raw_put(&mut raw, "good", r#"{"count": 1}"#).await, "ok");
    let names: Vec<String> =
        exchange.list(&things()).await.unwrap().items.iter().map(|o| o.name.clone()).collect();
    assert_eq!(names, ["good"], "nothing of the refused writes was stored");

    exchange.evolve(&things(), &v2(), None).await.unwrap();
    assert_eq!(raw_put(&mut raw, "extra", r#"{"count": 1, "label": "x"}"#).await, "ok");
    assert_eq!(raw_put(&mut raw, "big", r#"{"count": 11}"#).await, "invalid");
}

#[tokio::test]
async fn a_principal_may_read_the_schema_redis_holds_but_not_change_it() {
    let server = RedisServer::start();
    let admin = RedisExchange::connect(&server.url()).await.unwrap();
    admin.register(&things(), &v1()).await.unwrap();
    admin.load_functions().await.unwrap();
    let credential = Credential { user: "knactor:k".into(), password: "pw-k".into() };
    let mut owner = Rights::new("knactor:k");
    owner.grant(things(), Grant::owner());
    admin.set_user(&credential, &owner).await.unwrap();

    let own = RedisExchange::connect_as(&server.url(), &credential).await.unwrap();
    own.register(&things(), &v1()).await.expect("the owner's process learns the schema held");
    own.write(&things(), Write::put("a", json!({"count": 1}))).await.unwrap();
    let err = own.evolve(&things(), &v2(), None).await.unwrap_err();
    assert!(matches!(err, ExchangeError::Denied(_)), "only an administrator evolves: {err}");
    let mut raw = acl_client(&server.url(), &credential).await;
    let changed: redis::RedisResult<()> = redis::cmd("HSET")
        .arg("kn:schema:{k/things}")
        .arg("json")
        .arg("{}")
        .query_async(&mut raw)
        .await;
    let refused = changed.expect_err("the principal's user may not write the schema");
    assert!(refused.to_string().to_lowercase().contains("noperm"), "{refused}");
}

async fn acl_client(url: &str, credential: &Credential) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut auth = redis::cmd("AUTH");
    auth.arg(&credential.user).arg(&credential.password);
    auth.query_async::<()>(&mut conn).await.unwrap();
    conn
}

/// Two processes registering a new store at once with different schemas: one holds its
/// schema, the other is refused; neither replaces the other's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_first_registrations_at_once_one_holds_and_the_other_is_refused() {
    let server = RedisServer::start();
    let first = RedisExchange::connect(&server.url()).await.unwrap();
    let second = RedisExchange::connect(&server.url()).await.unwrap();
    let (v1, v2) = (v1(), v2());
    for n in 0..20 {
        let store: StoreRef = format!("k/new-{n}").parse().unwrap();
        let (a, b) = tokio::join!(first.register(&store, &v1), second.register(&store, &v2));
        let refused = [&a, &b]
            .into_iter()
            .filter(|r| matches!(r, Err(ExchangeError::SchemaDiffers { version: 1, .. })))
            .count();
        assert_eq!(refused, 1, "{store}: {a:?} {b:?}");
        assert!(a.is_ok() || b.is_ok(), "{store}: {a:?} {b:?}");
    }
}

/// A schema Redis's Lua cannot check entirely (`pattern`): a process that validated against
/// the old version is told by `kn_write`, validates again against the new one, and is refused;
/// nothing is stored.
#[tokio::test]
async fn a_write_validated_against_an_old_schema_is_validated_again_by_its_writer() {
    let server = RedisServer::start();
    let (first, stale) = (
        RedisExchange::connect(&server.url()).await.unwrap(),
        RedisExchange::connect(&server.url()).await.unwrap(),
    );
    let names = |pattern: Option<&str>| {
        let mut name = json!({"type": "string"});
        if let Some(pattern) = pattern {
            name["pattern"] = json!(pattern);
        }
        json!({"type": "object", "properties": {"name": name}})
    };
    first.register(&things(), &names(None)).await.unwrap();
    stale.register(&things(), &names(None)).await.unwrap();
    first.evolve(&things(), &names(Some("^[a-z]+$")), None).await.unwrap();
    let err = stale.write(&things(), Write::put("a", json!({"name": "ABC"}))).await.unwrap_err();
    assert!(matches!(err, ExchangeError::SchemaViolation { .. }), "{err}");
    assert!(first.get(&things(), "a").await.unwrap().is_none(), "nothing was stored");
    stale.write(&things(), Write::put("a", json!({"name": "abc"}))).await.unwrap();
}
