//! Edges run by the Redis exchange: the schema check they run agrees with the exchange's own
//! validation, and upgrades are safe both ways: the edges earlier versions pushed down keep
//! running (an integrator not upgraded yet keeps its chunk in `kn:pushdown`, and every library
//! load includes it), and the previous version's library runs the edges this version pushes
//! down (a client of that version may load the library last).

use std::collections::BTreeMap;

use data_exchange::edge::{BinaryOp, Expr, Index, Literal, Path, Step, UnaryOp};
use data_exchange::schema::StoreSchema;
use data_exchange::testing::RedisServer;
use data_exchange::{Edge, EdgesRun, ObjectExchange, RedisExchange, StoreRef, Write};
use serde_json::{Value, json};

/// An edge as the previous version pushed it down: closures for lazy operands, whole paths, no
/// generated schema check. It ships by `sea` below 100, which the schema forbids.
const EARLIER_CHUNK: &str = r#"edge { name = "old/ship", from = { { alias = "order", store = "shop/orders" } }, target = "shop/shipments", cascade = false, schema = "{\"properties\":{\"method\":{\"enum\":[\"ground\",\"air\"],\"type\":\"string\"}},\"type\":\"object\"}",
  key = function(key, b) return key end,
  patch = function(key, b)
if not C.when(C.gt(C.select(b["order"], "total"), (0.0))) then return nil end
local patch = {}
C.set(patch, {"method"}, C.cond(C.gt(C.select(b["order"], "total"), (100.0)), function() return "air" end, function() return "sea" end))
C.set(patch, {"total"}, C.path(b["order"], {"total"}))
return patch
end }
"#;

/// A private Redis with `stores` registered.
async fn open<const N: usize>(
    stores: [(&str, Value); N],
) -> (RedisServer, RedisExchange, [StoreRef; N]) {
    let server = RedisServer::start();
    let exchange = RedisExchange::connect(&server.url()).await.unwrap();
    let refs = stores.map(|(name, schema)| (name.parse::<StoreRef>().unwrap(), schema));
    for (store, schema) in &refs {
        exchange.register(store, schema).await.unwrap();
    }
    (server, exchange, refs.map(|(store, _)| store))
}

#[test]
fn only_the_redis_exchange_runs_edges() {
    assert!(data_exchange::EmbeddedExchange::in_memory().edge_runner().is_none());
}

/// Runs `edges` for `owner` on `exchange`, which runs edges.
async fn run(exchange: &RedisExchange, owner: &str, edges: &[Edge]) -> EdgesRun {
    let runner = exchange.edge_runner().expect("the Redis exchange runs edges");
    runner.run_edges(owner, edges).await.unwrap()
}

/// `$.<alias>.<fields>...`.
fn path(alias: &str, fields: &[&str]) -> Expr {
    let steps = fields.iter().map(|f| Step::Field((*f).to_owned())).collect();
    Expr::Path(Path { alias: alias.to_owned(), steps })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edges_pushed_down_by_the_previous_version_keep_running() {
    let methods = json!({"type": "object", "properties": {
        "method": {"type": "string", "enum": ["ground", "air"]}
    }});
    let (server, exchange, [orders, shipments]) =
        open([("shop/orders", json!({"type": "object"})), ("shop/shipments", methods)]).await;
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("HSET")
        .arg("kn:pushdown")
        .arg("cast.old")
        .arg(EARLIER_CHUNK)
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    // The first write finds no library and loads it from the chunks Redis holds.
    for (name, total) in [("big", 150), ("small", 5)] {
        exchange.write(&orders, Write::put(name, json!({ "total": total }))).await.unwrap();
    }
    let big = exchange.get(&shipments, "big").await.unwrap().unwrap();
    assert_eq!(big.data, json!({"method": "air", "total": 150}));
    let small = exchange.get(&shipments, "small").await.unwrap();
    assert_eq!(small, None, "`sea` breaks the schema: nothing is written");
}

/// Every keyword the Lua side checks, nested.
fn target_schema() -> Value {
    json!({"type": "object", "required": ["kind"], "additionalProperties": false, "properties": {
        "kind": {"enum": ["a", "b", null]},
        "version": {"const": 2},
        "count": {"type": "integer", "minimum": 0, "exclusiveMaximum": 10},
        "ratio": {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 1},
        "name": {"type": "string", "minLength": 2, "maxLength": 4},
        "tags": {"type": "array", "minItems": 1, "maxItems": 2, "items": {"type": "string"}},
        "card": {"type": "object", "required": ["sku"], "properties": {"sku": {"type": "string"}},
                 "additionalProperties": {"type": "number"}},
        "any": true,
    }})
}

/// The target each write makes is checked in Lua exactly as the exchange validates writes:
/// it is written when, and only when, the schema holds; and it is written exactly, numbers of
/// 17 digits and empty lists included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pushed_down_schema_check_agrees_with_the_exchange() {
    let (_server, exchange, [sources, targets]) =
        open([("t/sources", json!({"type": "object"})), ("t/targets", target_schema())]).await;
    let fields = ["kind", "version", "count", "ratio", "name", "tags", "card", "any", "extra"];
    let mut edge = Edge::new("t/copy", vec![("src".into(), sources.clone())], targets.clone());
    for field in fields {
        edge = edge.and_then(|e| e.with_set(vec![field.into()], path("src", &["doc", field])));
    }
    let pushed = run(&exchange, "test", &[edge.unwrap()]).await;
    assert_eq!(pushed.running, ["t/copy"], "{:?}", pushed.refused);
    let reference = StoreSchema::compile(&targets, &target_schema()).unwrap();
    let docs = [
        json!({"kind": "a"}),
        json!({"kind": "c"}),
        json!({"count": 1}),
        json!({"kind": "b", "version": 2, "count": 0, "ratio": 1, "name": "éé", "tags": ["x"]}),
        json!({"kind": "a", "version": 2.0}),
        json!({"kind": "a", "version": 3}),
        json!({"kind": "a", "count": 1.5}),
        json!({"kind": "a", "count": -1}),
        json!({"kind": "a", "count": 10}),
        json!({"kind": "a", "count": 9}),
        json!({"kind": "a", "ratio": 0}),
        json!({"kind": "a", "ratio": 0.5}),
        json!({"kind": "a", "ratio": 1.5}),
        json!({"kind": "a", "ratio": "half"}),
        json!({"kind": "a", "name": "é"}),
        json!({"kind": "a", "name": "ééééé"}),
        json!({"kind": "a", "name": "abcd"}),
        json!({"kind": "a", "name": 12}),
        json!({"kind": "a", "tags": []}),
        json!({"kind": "a", "tags": ["x", "y", "z"]}),
        json!({"kind": "a", "tags": ["x", 1]}),
        json!({"kind": "a", "tags": {"0": "x"}}),
        json!({"kind": "a", "card": {"sku": "s"}}),
        json!({"kind": "a", "card": {"sku": "s", "price": 2.5}}),
        json!({"kind": "a", "card": {"sku": "s", "note": "x"}}),
        json!({"kind": "a", "card": {"price": 2.5}}),
        json!({"kind": "a", "card": []}),
        json!({"kind": "a", "any": [1, {"x": null}]}),
        json!({"kind": "a", "extra": 1}),
        json!({"kind": "a", "ratio": 0.30000000000000004}),
        json!({"kind": "a", "any": []}),
        json!({"kind": "b", "any": {"deep": [1.0000000000000002, {}, 123456789012345678u64]}}),
    ];
    for (n, doc) in docs.iter().enumerate() {
        let name = format!("doc-{n}");
        let mut target = json!({});
        json_patch::merge(&mut target, doc);
        let valid = reference.validate(&target).is_ok();
        exchange.write(&sources, Write::put(&name, json!({ "doc": doc }))).await.unwrap();
        let written = exchange.get(&targets, &name).await.unwrap();
        assert_eq!(written.is_some(), valid, "{doc}: valid is {valid}, written {written:?}");
        if let Some(written) = written {
            assert!(same(&written.data, &target), "{doc} written as {}", written.data);
        }
    }
}

/// Equal as Lua holds JSON: numbers as doubles (`2.0` is `2`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same(a, b))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// An edge whose Lua Redis cannot compile (too deeply nested) is refused, and the library and
/// the chunks Redis holds stay as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_redis_cannot_compile_changes_nothing() {
    let (server, exchange, [sources, targets]) =
        open([("t/sources", json!({"type": "object"})), ("t/targets", json!({"type": "object"}))])
            .await;
    let edge = |name: &str, value: Expr| {
        let edge = Edge::new(name, vec![("src".into(), sources.clone())], targets.clone());
        edge.and_then(|e| e.with_set(vec!["copy".into()], value)).unwrap()
    };
    run(&exchange, "good", &[edge("t/copy", path("src", &["n"]))]).await;
    let deep = (0..300).fold(path("src", &["n"]), |e, _| Expr::Unary(UnaryOp::Not, Box::new(e)));
    let runner = exchange.edge_runner().unwrap();
    let refused = runner.run_edges("bad", &[edge("t/broken", deep)]).await;
    assert!(refused.is_err(), "{refused:?}");
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let owners: Vec<String> =
        redis::cmd("HKEYS").arg("kn:pushdown").query_async(&mut conn).await.unwrap();
    assert_eq!(owners, ["good"]);
    exchange.write(&sources, Write::put("a", json!({"n": 1}))).await.unwrap();
    let copied = exchange.get(&targets, "a").await.unwrap().unwrap();
    assert_eq!(copied.data, json!({"copy": 1}), "the library still runs the good edge");
}

/// The library of the previous version, as it was when that version was current.
const PREVIOUS_LIBRARY: &str = include_str!("previous_library.lua");

/// During an upgrade, a client of the previous version may load the library last, with its own
/// code and the chunks Redis holds: the edges this version pushed down keep running in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_previous_library_runs_the_edges_this_version_pushes_down() {
    let methods = json!({"type": "object", "properties": {
        "method": {"type": "string", "enum": ["ground", "air"]}
    }});
    let (server, exchange, [orders, shipments]) =
        open([("shop/orders", json!({"type": "object"})), ("shop/shipments", methods)]).await;
    // `has(order.total) && order.total > 0`, setting `method` to
    // `order.total > 100 ? "air" : "ground"`.
    let order = || Box::new(Expr::Alias("order".into()));
    let total = || Box::new(Expr::Select(order(), "total".into()));
    let number = |n: f64| Box::new(Expr::Literal(Literal::Double(n)));
    let string = |s: &str| Box::new(Expr::Literal(Literal::String(s.into())));
    let when = Expr::And(
        Box::new(Expr::Has(order(), "total".into())),
        Box::new(Expr::Binary(BinaryOp::Gt, total(), number(0.0))),
    );
    let big = Box::new(Expr::Binary(BinaryOp::Gt, total(), number(100.0)));
    let method = Expr::Cond(big, string("air"), string("ground"));
    // Every other kind of expression: `$.order.items[0].sku`, `order.items[1].sku`,
    // `{"total": order.total, "refund": -order.total}`, `["a", order.total + 1]`, and a
    // nested target field, `meta.flag: !has(order.gift)`.
    let first = Path {
        alias: "order".into(),
        steps: vec![Step::Field("items".into()), Step::Index(0), Step::Field("sku".into())],
    };
    let items = Box::new(Expr::Select(order(), "items".into()));
    let second = Expr::Select(Box::new(Expr::Index(items, Index::Position(1))), "sku".into());
    let summary = Expr::Map(vec![
        ("total".into(), *total()),
        ("refund".into(), Expr::Unary(UnaryOp::Neg, total())),
    ]);
    let tags = Expr::List(vec![*string("a"), Expr::Binary(BinaryOp::Add, total(), number(1.0))]);
    let flag = Expr::Unary(UnaryOp::Not, Box::new(Expr::Has(order(), "gift".into())));
    let edge = Edge::new("ship/ship", vec![("order".into(), orders.clone())], shipments.clone())
        .and_then(|e| e.with_when(when))
        .and_then(|e| e.with_set(vec!["method".into()], method))
        .and_then(|e| e.with_set(vec!["first".into()], Expr::Path(first)))
        .and_then(|e| e.with_set(vec!["second".into()], second))
        .and_then(|e| e.with_set(vec!["summary".into()], summary))
        .and_then(|e| e.with_set(vec!["tags".into()], tags))
        .and_then(|e| e.with_set(vec!["meta".into(), "flag".into()], flag))
        .unwrap();
    assert_eq!(run(&exchange, "cast.ship", &[edge]).await.running, ["ship/ship"]);

    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let chunks: BTreeMap<String, String> =
        redis::cmd("HGETALL").arg("kn:pushdown").query_async(&mut conn).await.unwrap();
    let edges: Vec<&str> = chunks.values().map(String::as_str).collect();
    let library = PREVIOUS_LIBRARY.replacen("-- @EDGES@", &edges.join("\n"), 1);
    redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg("REPLACE")
        .arg(format!("#!lua name=knactor\n{library}"))
        .query_async::<String>(&mut conn)
        .await
        .unwrap();
    for (name, total) in [("big", 150), ("small", 5), ("none", 0)] {
        let items = json!([{"sku": "lamp"}, {"sku": "desk"}]);
        let order = json!({ "total": total, "items": items });
        exchange.write(&orders, Write::put(name, order)).await.unwrap();
    }
    let method = async |name: &str| {
        let shipment = exchange.get(&shipments, name).await.unwrap()?;
        Some(shipment.data["method"].as_str().unwrap().to_owned())
    };
    assert_eq!(method("big").await.as_deref(), Some("air"));
    assert_eq!(method("small").await.as_deref(), Some("ground"));
    assert_eq!(method("none").await, None);
    let big = exchange.get(&shipments, "big").await.unwrap().unwrap();
    let expected = json!({"method": "air", "first": "lamp", "second": "desk",
        "summary": {"total": 150, "refund": -150}, "tags": ["a", 151], "meta": {"flag": true}});
    assert_eq!(big.data, expected, "the previous library computes every kind of expression");
}
