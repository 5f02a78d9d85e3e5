//! Redis itself holds each principal to its stores: a deny matrix of principals × stores ×
//! operations, on connections made as each principal's ACL user, with and without the scoped
//! handle in front (which adds the field and delete rights Redis cannot see).

use std::sync::Arc;
use std::time::Duration;

use data_exchange::access::{Fields, Grant, Rights, ScopedExchange};
use data_exchange::redis::acl::{self, Credential};
use data_exchange::testing::RedisServer;
use data_exchange::{ExchangeError, ObjectExchange, RedisExchange, StoreRef, Write};
use serde_json::json;

const OPERATIONS: [&str; 6] = ["get", "list", "watch", "put", "patch", "delete"];

fn store(s: &str) -> StoreRef {
    s.parse().unwrap()
}

fn stores() -> [StoreRef; 3] {
    [store("a/x"), store("b/y"), store("c/z")]
}

/// Knactor `a` owns `a/x`; the integrator reads `a/x` and writes field `f` of `b/y`, where it
/// may also delete; the viewer has no store.
fn principals() -> Vec<Rights> {
    let mut knactor = Rights::new("knactor:a");
    knactor.grant(store("a/x"), Grant::owner());
    let mut integrator = Rights::new("integrator:i");
    integrator.grant(store("a/x"), Grant::read());
    let writes = Fields::Only(["f".to_owned()].into());
    integrator.grant(store("b/y"), Grant { write: Some(writes), delete: true, ..Grant::read() });
    vec![knactor, integrator, Rights::new("viewer")]
}

/// Makes `o` exist in every store, as the administrator.
async fn reset(admin: &RedisExchange) {
    for store in stores() {
        admin.write(&store, Write::put("o", json!({"f": 0, "g": 0}))).await.unwrap();
    }
}

/// Runs `operation` on object `o` of `store` (a put or a patch changing `field` only).
async fn run(
    exchange: &dyn ObjectExchange,
    store: &StoreRef,
    operation: &str,
    field: &str,
) -> Result<(), ExchangeError> {
    match operation {
        "get" => exchange.get(store, "o").await.map(drop),
        "list" => exchange.list(store).await.map(drop),
        "watch" => exchange.watch(store, 0).await.map(drop),
        "put" => {
            let mut data = json!({"f": 0, "g": 0});
            data[field] = json!(1);
            exchange.write(store, Write::put("o", data)).await.map(drop)
        }
        "patch" => exchange.write(store, Write::patch("o", json!({field: 1}))).await.map(drop),
        "delete" => exchange.write(store, Write::delete("o")).await.map(drop),
        other => unreachable!("{other}"),
    }
}

/// Checks one cell: allowed cells work, forbidden ones are denied to `principal`.
fn check(
    outcome: Result<(), ExchangeError>,
    allowed: bool,
    principal: &str,
    cell: &str,
    counts: &mut [usize; 2],
) {
    match (outcome, allowed) {
        (Ok(()), true) => counts[0] += 1,
        (Err(ExchangeError::Denied(denial)), false) => {
            assert_eq!(denial.principal.as_deref(), Some(principal), "{cell}");
            counts[1] += 1;
        }
        (outcome, _) => panic!(
            "{cell}: expected {}, got {outcome:?}",
            ["denied", "allowed"][usize::from(allowed)]
        ),
    }
}

#[tokio::test]
async fn every_principal_reaches_its_stores_only_on_its_own_redis_user() {
    let server = RedisServer::start();
    let admin = RedisExchange::connect(&server.url()).await.unwrap();
    for store in stores() {
        admin.register(&store, &json!({"type": "object"})).await.unwrap();
    }
    let client = redis::Client::open(server.url()).unwrap();
    let mut admin_conn = client.get_multiplexed_async_connection().await.unwrap();
    // The write function is loaded by the administrator's first write.
    reset(&admin).await;
    let (mut raw, mut scoped) = ([0, 0], [0, 0]);
    for rights in principals() {
        let principal = rights.principal().to_owned();
        let credential =
            Credential { user: principal.clone(), password: format!("pw-{principal}") };
        acl::set_user(&mut admin_conn, &credential, &rights).await.unwrap();
        let user = Arc::new(RedisExchange::connect_as(&server.url(), &credential).await.unwrap());
        for store in stores() {
            user.register(&store, &json!({"type": "object"})).await.unwrap();
        }
        let handle = ScopedExchange::new(user.clone(), rights.clone());
        for store in stores() {
            let grant = rights.on(&store);
            let reads = grant.is_some_and(|g| g.read);
            let writes = grant.is_some_and(|g| g.write.is_some());
            for operation in OPERATIONS {
                // Redis sees keys: reading them, or writing them in any way.
                let by_redis =
                    if ["get", "list", "watch"].contains(&operation) { reads } else { writes };
                for field in ["f", "g"] {
                    reset(&admin).await;
                    let cell = format!("{principal} {operation} {store} .{field} (raw)");
                    let outcome = run(&*user, &store, operation, field).await;
                    check(outcome, by_redis, &principal, &cell, &mut raw);
                    reset(&admin).await;
                    let fields = grant.and_then(|g| g.write.as_ref());
                    let by_handle = match operation {
                        "get" | "list" | "watch" => reads,
                        "delete" => grant.is_some_and(|g| g.delete),
                        _ => fields.is_some_and(|f| *f == Fields::All || field == "f"),
                    };
                    let cell = format!("{principal} {operation} {store} .{field} (scoped)");
                    let outcome = run(&handle, &store, operation, field).await;
                    check(outcome, by_handle, &principal, &cell, &mut scoped);
                }
            }
        }
    }
    // 3 principals × 3 stores × 6 operations × 2 fields, each way.
    assert_eq!(raw[0] + raw[1], 108);
    println!("redis users alone: {} allowed, {} denied", raw[0], raw[1]);
    println!("with the scoped handle: {} allowed, {} denied", scoped[0], scoped[1]);
    assert!(raw[1] > 0 && scoped[1] > raw[1], "the handle adds field and delete rights");
}

#[tokio::test]
async fn a_wrong_password_is_refused_at_connect_naming_the_user_not_the_password() {
    let server = RedisServer::start();
    let client = redis::Client::open(server.url()).unwrap();
    let mut admin = client.get_multiplexed_async_connection().await.unwrap();
    let right = Credential { user: "knactor:a".into(), password: "right-one".into() };
    acl::set_user(&mut admin, &right, &principals()[0]).await.unwrap();
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
