//! The Redis exchange's library runs the Cast edges that earlier versions pushed down: an
//! integrator not upgraded yet keeps its chunk in `kn:pushdown`, and every library load
//! includes it.

use data_exchange::testing::RedisServer;
use data_exchange::{ObjectExchange, RedisExchange, StoreRef, Write};
use serde_json::json;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edges_pushed_down_by_the_previous_version_keep_running() {
    let server = RedisServer::start();
    let exchange = RedisExchange::connect(&server.url()).await.unwrap();
    let (orders, shipments): (StoreRef, StoreRef) =
        ("shop/orders".parse().unwrap(), "shop/shipments".parse().unwrap());
    exchange.register(&orders, &json!({"type": "object"})).await.unwrap();
    let methods = json!({"type": "object", "properties": {
        "method": {"type": "string", "enum": ["ground", "air"]}
    }});
    exchange.register(&shipments, &methods).await.unwrap();
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
