//! Redis's Lua against Rust, on random documents, with a real `redis-server`, the one at
//! `KNACTOR_FUZZ_REDIS` (a URL; `scripts/fuzz` starts one, and stops it when the run ends,
//! which this process cannot: libFuzzer ends it with `exit`):
//! - the schema check `kn_write` runs for any client agrees with the Rust validator, for a
//!   schema using every keyword the Lua side checks;
//! - edges pushed down into Redis write what the integrator's evaluator would: the same target
//!   fields, and errors on the same edges.

#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use data_exchange::schema::StoreSchema;
use data_exchange::{EdgeRunner, ObjectExchange, RedisExchange, StoreRef, Write};
use integrators::cast::{CastPlan, Evaluator, TargetWrite, pushdown};
use integrators::source::SpecFile;
use knactor_fuzz::{Doc, FIELDS, merge_patch, object_schema, runtime, same_json};
use libfuzzer_sys::fuzz_target;
use redis::aio::MultiplexedConnection;
use serde_json::{Map, Value, json};

const SPEC: &str = r#"
apiVersion: knactor.dev/v1
kind: Cast
metadata: {name: fuzz}
spec:
  inputs: {order: fuzz/orders, shipment: fuzz/shipments}
  edges:
    - {name: method, from: [order], to: shipment, when: has(order.total),
       set: {method: 'order.total > 100 ? "air" : "ground"'}}
    - {name: copy, from: [order], to: shipment, set: {items: $.order.items, address: order.address}}
    - {name: cost, from: [order], to: shipment, when: has(order.total) && has(order.rate),
       set: {cost: order.total * order.rate + 4.99}}
    - {name: label, from: [order], to: shipment, when: has(order.name),
       set: {label: 'order.name + "-" + order.city'}}
    - {name: express, from: [order], to: shipment,
       set: {express: '!(order.total <= 50) && (order.priority == "high" || order.total / 2 >= 25)'}}
    - {name: first, from: [order], to: shipment, set: {first: '$.order.items[0].sku'}}
"#;

/// The fields of orders the edges read.
const ORDER_FIELDS: &[&str] =
    &["total", "rate", "name", "city", "priority", "items", "address", "sku"];

fn shipments_schema() -> Value {
    let ingest = |schema: Value| {
        let mut schema = schema;
        schema["x-knactor-ingest"] = Value::Bool(true);
        schema
    };
    json!({"type": "object", "properties": {
        "method": ingest(json!({"type": "string", "enum": ["ground", "air"]})),
        "items": ingest(json!({"type": "array", "maxItems": 5})),
        "address": ingest(json!({"type": "object", "required": ["city"]})),
        "cost": ingest(json!({"type": "number", "minimum": 0})),
        "label": ingest(json!({"type": "string", "maxLength": 20})),
        "express": ingest(json!({"type": "boolean"})),
        "first": ingest(json!({"type": "string"})),
    }})
}

fn orders_schema() -> Value {
    let fields: Map<String, Value> =
        ORDER_FIELDS.iter().map(|f| (f.to_string(), json!({}))).collect();
    json!({"type": "object", "properties": fields})
}

struct Redis {
    exchange: RedisExchange,
    raw: MultiplexedConnection,
    plan: CastPlan,
    things: StoreSchema,
    shipments: StoreSchema,
}

fn store(name: &str) -> StoreRef {
    name.parse().unwrap()
}

/// The `redis-server` of the run, flushed, with the stores registered and the edges pushed
/// down.
fn redis() -> &'static Redis {
    static REDIS: OnceLock<Redis> = OnceLock::new();
    REDIS.get_or_init(|| {
        let url = std::env::var("KNACTOR_FUZZ_REDIS")
            .expect("KNACTOR_FUZZ_REDIS: the URL of a redis-server of the run's own (scripts/fuzz starts one)");
        runtime().block_on(async {
            let exchange = RedisExchange::connect(&url).await.unwrap();
            let mut admin = redis::Client::open(url.as_str()).unwrap();
            let _: () = redis::cmd("FLUSHALL").query(&mut admin).expect("the run's own Redis");
            let mut schemas = integrators::cast::Schemas::new();
            schemas.insert(store("fuzz/orders"), orders_schema());
            schemas.insert(store("fuzz/shipments"), shipments_schema());
            schemas.insert(store("fuzz/things"), object_schema(false));
            for (store, schema) in &schemas {
                exchange.register(store, schema).await.unwrap();
            }
            exchange.load_functions().await.unwrap();
            let file = SpecFile::from_text(Path::new("fuzz.yaml"), SPEC);
            let (plan, _) = CastPlan::load(&file, Some(&schemas)).expect("the fuzz spec checks");
            let edges: Vec<_> = plan
                .edges
                .iter()
                .map(|edge| pushdown::describe(&plan, edge).expect("every edge pushes down"))
                .collect();
            let run = exchange.run_edges("fuzz", &edges).await.unwrap();
            assert!(run.refused.is_empty(), "Redis runs every edge: {:?}", run.refused);
            let raw =
                redis::Client::open(url).unwrap().get_multiplexed_async_connection().await.unwrap();
            let things =
                StoreSchema::compile(&store("fuzz/things"), &object_schema(false)).unwrap();
            let shipments =
                StoreSchema::compile(&store("fuzz/shipments"), &shipments_schema()).unwrap();
            Redis { exchange, raw, plan, things, shipments }
        })
    })
}

/// A raw `FCALL kn_write` putting `data` as object `name` of `store`, as any client may send
/// it: its status and the pushed-down edges' failures.
async fn raw_put(redis: &Redis, store: &str, name: &str, data: &Value) -> (String, Vec<String>) {
    let tag = format!("kn:{{{store}}}");
    let (status, _, _, failures): (String, i64, String, Vec<String>) = redis::cmd("FCALL")
        .arg("kn_write")
        .arg(4)
        .arg(format!("{tag}:data"))
        .arg(format!("{tag}:vers"))
        .arg(format!("{tag}:seq"))
        .arg(format!("{tag}:changes"))
        .arg("put")
        .arg(name)
        .arg(data.to_string())
        .arg("any")
        .arg(100)
        .arg(store)
        .query_async(&mut redis.raw.clone())
        .await
        .unwrap();
    (status, failures)
}

#[derive(Debug, Arbitrary)]
struct Input {
    thing: Doc,
    order: Doc,
}

fuzz_target!(|input: Input| {
    let redis = redis();
    runtime().block_on(async {
        let thing = input.thing.to_json(FIELDS);
        let (status, _) = raw_put(redis, "fuzz/things", "t", &thing).await;
        let rust = redis.things.validate(&thing);
        assert_eq!(
            status != "invalid",
            rust.is_ok(),
            "Lua said {status} of {thing}; Rust: {rust:?}"
        );

        // Both deleted first: an order written as it was would be no change, and run no edge.
        let shipments = store("fuzz/shipments");
        for store in [store("fuzz/orders"), shipments.clone()] {
            let _ = redis.exchange.write(&store, Write::delete("o")).await;
        }
        let order = Value::Object(input.order.to_object(ORDER_FIELDS));
        let (status, failures) = raw_put(redis, "fuzz/orders", "o", &order).await;
        assert!(status == "ok" || status == "same", "the order is written: {status}");
        let (wanted, failed) = evaluate(redis, &order);
        let written = redis.exchange.get(&shipments, "o").await.unwrap();
        let written = written.map_or(json!({}), |o| o.data.clone());
        assert!(same_json(&written, &wanted), "for {order}, Redis wrote {written}, Rust {wanted}");
        let mut lua_failed: Vec<String> = failures.iter().map(|f| failed_edge(f)).collect();
        lua_failed.sort();
        assert_eq!(lua_failed, failed, "failures for {order}: {failures:?}");
    });
});

/// What the integrator would make of `order`: the shipment, and the edges that fail (an
/// evaluation error, or a write the target's schema refuses), sorted.
fn evaluate(redis: &Redis, order: &Value) -> (Value, Vec<String>) {
    let evaluator = Evaluator::default();
    let mut shipment = json!({});
    let mut failed = Vec::new();
    for edge in &redis.plan.edges {
        let bindings = vec![("order".to_owned(), order.clone())];
        match evaluator.evaluate(edge, "o", bindings, false) {
            Ok(Some(TargetWrite::Merge { patch, .. })) => {
                let merged = merge_patch(&shipment, &patch);
                match redis.shipments.validate(&merged) {
                    Ok(()) => shipment = merged,
                    Err(_) => failed.push(format!("fuzz/{}", edge.spec.name)),
                }
            }
            Ok(_) => {}
            Err(_) => failed.push(format!("fuzz/{}", edge.spec.name)),
        }
    }
    failed.sort();
    (shipment, failed)
}

/// The edge a pushed-down failure names: `edge NAME on OBJECT: why`.
fn failed_edge(failure: &str) -> String {
    let rest = failure.strip_prefix("edge ").unwrap_or(failure);
    rest.split(" on ").next().unwrap_or(rest).to_owned()
}
