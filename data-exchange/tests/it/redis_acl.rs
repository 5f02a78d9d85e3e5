//! Redis itself holds each principal to its stores: a deny matrix of principals × stores ×
//! operations, on connections made as each principal's ACL user, with and without the scoped
//! handle in front (which adds the field and delete rights Redis cannot see).

use std::collections::BTreeMap;
use std::time::Duration;

use data_exchange::access::{Fields, Grant, Rights};
use data_exchange::redis::acl::Credential;
use data_exchange::testing::RedisServer;
use data_exchange::testing::deny_matrix::{Samples, probe_redis_users};
use data_exchange::{ObjectExchange, RedisExchange, StoreRef};
use serde_json::json;

fn store(s: &str) -> StoreRef {
    s.parse().unwrap()
}

fn stores() -> [StoreRef; 3] {
    [store("a/x"), store("b/y"), store("c/z")]
}

/// Knactor `a` owns `a/x`; the integrator reads field `f` of `a/x` and writes field `f` of
/// `b/y`, where it may also delete; the viewer has no store.
fn principals() -> Vec<Rights> {
    let mut knactor = Rights::new("knactor:a");
    knactor.grant(store("a/x"), Grant::owner());
    let mut integrator = Rights::new("integrator:i");
    integrator.grant(store("a/x"), Grant::read_only(Fields::only(["f"])));
    let writes = Fields::only(["f"]);
    integrator.grant(store("b/y"), Grant { write: Some(writes), delete: true, ..Grant::read() });
    vec![knactor, integrator, Rights::new("viewer")]
}

#[tokio::test]
async fn every_principal_reaches_its_stores_only_on_its_own_redis_user() {
    let server = RedisServer::start();
    let admin = RedisExchange::connect(&server.url()).await.unwrap();
    let schema = json!({"type": "object", "properties": {"f": {}, "g": {}}});
    let schemas: BTreeMap<StoreRef, _> = stores().map(|s| (s, schema.clone())).into();
    let matrix = schemas.iter().map(|(s, schema)| (s.clone(), Samples::of(s, schema))).collect();
    for store in schemas.keys() {
        admin.register(store, &schema).await.unwrap();
    }
    let (by_redis, by_handle) =
        probe_redis_users(&server.url(), &admin, &principals(), &schemas, &matrix).await;
    // 3 principals × 3 stores × (get, list, watch, delete, and a read, a put and a patch per
    // field).
    assert_eq!(by_redis.allowed + by_redis.denied, 3 * 3 * 10);
    println!("redis users alone: {by_redis:?}; with the scoped handle: {by_handle:?}");
    assert!(by_handle.denied > by_redis.denied, "the handle adds field and delete rights");
    assert_eq!(by_handle.allowed + by_handle.denied, 3 * 3 * 10);
}

#[tokio::test]
async fn a_wrong_password_is_refused_at_connect_naming_the_user_not_the_password() {
    let server = RedisServer::start();
    let admin = RedisExchange::connect(&server.url()).await.unwrap();
    let right = Credential { user: "knactor:a".into(), password: "right-one".into() };
    admin.set_user(&right, &principals()[0]).await.unwrap();
    let wrong = Credential { password: "wrong-one".into(), ..right };
    let url = server.url();
    let connect = RedisExchange::connect_as(&url, &wrong);
    let outcome = tokio::time::timeout(Duration::from_secs(30), connect).await;
    let error = outcome.expect("no answer within 30 s").unwrap_err().to_string();
    assert!(error.contains("knactor:a") && !error.contains("wrong-one"), "{error}");
}

#[tokio::test]
async fn an_edge_is_not_pushed_down_where_a_writer_of_its_source_may_not_write_its_target() {
    use data_exchange::EdgeRunner;
    use data_exchange::edge::{Edge, Expr, Literal};
    let server = RedisServer::start();
    let admin = RedisExchange::connect(&server.url()).await.unwrap();
    for store in stores() {
        admin.register(&store, &json!({"type": "object"})).await.unwrap();
    }
    let edge = |name: &str, target: &str| {
        Edge::new(name, vec![("x".to_owned(), store("a/x"))], store(target))
            .unwrap()
            .with_set(vec!["f".to_owned()], Expr::Literal(Literal::Double(1.0)))
            .unwrap()
    };
    let to_y = edge("to-y", "b/y");
    let run = admin.run_edges("c", std::slice::from_ref(&to_y)).await.unwrap();
    assert_eq!(run.running, ["to-y"], "no restricted user yet: {run:?}");

    // knactor:a writes a/x, and may not write b/y: its writes could not run the edge.
    let knactor = principals().remove(0);
    let credential = Credential { user: "knactor:a".into(), password: "pw".into() };
    admin.set_user(&credential, &knactor).await.unwrap();
    let run = admin.run_edges("c", &[to_y]).await.unwrap();
    assert!(run.running.is_empty(), "{run:?}");
    let (edge_name, why) = &run.refused[0];
    assert_eq!(edge_name, "to-y");
    assert!(why.contains("knactor:a") && why.contains("b/y"), "{why}");
    // An edge into a store that user writes runs there.
    let run = admin.run_edges("c", &[edge("to-x", "a/x")]).await.unwrap();
    assert_eq!(run.running, ["to-x"], "{run:?}");
}

#[tokio::test]
async fn an_open_default_user_is_noticed() {
    let server = RedisServer::start();
    let admin = RedisExchange::connect(&server.url()).await.unwrap();
    assert!(admin.default_user_is_open().await.unwrap(), "a fresh Redis takes anyone");
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("ACL")
        .arg("SETUSER")
        .arg("default")
        .arg(">s3cret")
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    assert!(!admin.default_user_is_open().await.unwrap());
}

#[tokio::test]
async fn a_user_selects_a_database_only_when_its_app_is_on_another_than_0() {
    use redis::IntoConnectionInfo;
    let server = RedisServer::start();
    let knactor = &principals()[0];
    let a_x = store("a/x");
    for db in [0, 3] {
        let url = format!("{}/{db}", server.url());
        let admin = RedisExchange::connect(&url).await.unwrap();
        assert_eq!(admin.database(), db);
        admin.load_functions().await.unwrap();
        admin.register(&a_x, &json!({"type": "object"})).await.unwrap();
        let credential = Credential { user: format!("app@{db}"), password: format!("pw-{db}") };
        admin.set_user(&credential, knactor).await.unwrap();
        let user = RedisExchange::connect_as(&url, &credential).await.unwrap();
        user.register(&a_x, &json!({"type": "object"})).await.unwrap();
        user.write(&a_x, data_exchange::Write::put("o", json!({}))).await.unwrap();

        let info = url.as_str().into_connection_info().unwrap();
        let settings = info.redis_settings().clone();
        let settings = settings.set_username(&credential.user).set_password(&credential.password);
        let client = redis::Client::open(info.set_redis_settings(settings)).unwrap();
        let mut raw = client.get_multiplexed_async_connection().await.unwrap();
        let select: redis::RedisResult<()> =
            redis::cmd("SELECT").arg(1).query_async(&mut raw).await;
        assert_eq!(select.is_ok(), db != 0, "database {db}: {select:?}");
    }
}

/// A Sync-like principal on Redis's Log stores: it tails the store it reads and appends (with
/// its checkpoint) to the one it writes, through the library's append function, and Redis
/// refuses it the rest, named as a denial; nothing refused is appended.
#[tokio::test]
async fn a_principal_appends_and_tails_only_the_log_stores_its_user_reaches() {
    use data_exchange::ExchangeError;
    use data_exchange::log::ingest::Ingest;
    use data_exchange::log::{Checkpoint, LogExchange, RedisLog};
    use futures::StreamExt;

    let server = RedisServer::start();
    let url = server.url();
    let (readings, alerts, secrets) = (store("home/readings"), store("home/alerts"), store("k/s"));
    let schema = json!({"type": "object", "properties": {"n": {"type": "integer"}}});
    let admin = RedisLog::connect(&url).await.unwrap();
    for store in [&readings, &alerts, &secrets] {
        admin.register(store, &schema).await.unwrap();
    }
    admin.append_json(&readings, &[json!({"n": 1}), json!({"n": 2})]).await.unwrap();
    admin.append_json(&secrets, &[json!({"n": 7})]).await.unwrap();

    let mut rights = Rights::new("integrator:alerts");
    rights.grant(readings.clone(), Grant::read());
    rights.grant(alerts.clone(), Grant::owner());
    let credential = Credential { user: "home/integrator:alerts".into(), password: "p!".into() };
    RedisExchange::connect(&url).await.unwrap().set_user(&credential, &rights).await.unwrap();
    let user = RedisLog::connect_as(&url, &credential).await.unwrap();
    for store in [&readings, &alerts, &secrets] {
        user.register(store, &schema).await.unwrap();
    }

    let mut tail = user.tail(&readings, 0).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), tail.next()).await;
    let first = first.expect("no records within 5 s").expect("a batch").unwrap();
    assert_eq!((first.offset, first.batch.num_rows()), (0, 2));
    let checkpoint = Checkpoint { key: "sync.alerts".into(), value: "2".into() };
    let alert = Ingest::new(&alerts, &schema).unwrap().decode(&[json!({"n": 2})]).unwrap();
    assert_eq!(user.append_checkpointed(&alerts, alert, &checkpoint).await.unwrap(), 0);
    assert_eq!(user.checkpoint(&alerts, "sync.alerts").await.unwrap().as_deref(), Some("2"));
    assert_eq!(user.append_json(&alerts, &[json!({"n": 3})]).await.unwrap(), 1);

    let assert_denied = |outcome: Result<(), ExchangeError>, store: &StoreRef| {
        let error = outcome.expect_err("refused");
        let message = error.to_string();
        assert!(matches!(error, ExchangeError::Denied(_)), "{message}");
        assert!(message.starts_with(&format!("{store}: ")), "{message}");
        assert!(message.contains("denied to home/integrator:alerts"), "{message}");
    };
    let record = [json!({"n": 9})];
    assert_denied(user.append_json(&readings, &record).await.map(drop), &readings);
    assert_denied(user.append_json(&secrets, &record).await.map(drop), &secrets);
    assert_denied(user.end(&secrets).await.map(drop), &secrets);
    assert_denied(user.tail(&secrets, 0).await.map(drop), &secrets);
    assert_eq!((admin.end(&readings).await.unwrap(), admin.end(&secrets).await.unwrap()), (2, 1));
    assert_eq!(admin.end(&alerts).await.unwrap(), 2);
}
