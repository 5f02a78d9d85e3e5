//! A Cast integrator acts with its plan's rights only: it sees the fields its edges reference,
//! writes the fields its edges set on their targets, and no more after a re-apply drops an
//! edge.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use data_exchange::error::Denial;
use data_exchange::{EmbeddedExchange, ExchangeError, ObjectExchange, StoreRef, Write};
use futures::StreamExt;
use integrators::cast::{CastIntegrator, CastPlan, Schemas};
use integrators::source::SpecFile;
use serde_json::json;

fn orders() -> StoreRef {
    "checkout/orders".parse().unwrap()
}

fn quotes() -> StoreRef {
    "shipping/quotes".parse().unwrap()
}

fn schemas() -> Schemas {
    let ingest = json!({"type": "string", "x-knactor-ingest": true});
    let order = json!({"type": "object", "properties": {
        "item": {"type": "string"}, "shippingCost": ingest, "paymentID": ingest, "carrier": ingest
    }});
    let quote = json!({"type": "object", "properties": {
        "cost": {"type": "string"}, "carrier": {"type": "string"}
    }});
    BTreeMap::from([(orders(), order), (quotes(), quote)])
}

/// A spec whose edge sets `shippingCost`, and `carrier` too when `with_carrier`.
fn plan(with_carrier: bool) -> CastPlan {
    let carrier = if with_carrier {
        "    - name: carrier\n      from: [quote]\n      to: order\n      set: {carrier: quote.carrier}\n"
    } else {
        ""
    };
    let text = format!(
        "apiVersion: knactor.dev/v1\nkind: Cast\nmetadata: {{name: quote}}\nspec:\n  inputs: {{quote: shipping/quotes, order: checkout/orders}}\n  edges:\n    - name: cost\n      from: [quote]\n      to: order\n      set: {{shippingCost: quote.cost}}\n{carrier}"
    );
    let file = SpecFile::from_text(Path::new("quote.yaml"), text);
    CastPlan::load(&file, Some(&schemas())).unwrap_or_else(|e| panic!("{e}")).0
}

async fn exchange() -> Arc<dyn ObjectExchange> {
    let exchange: Arc<dyn ObjectExchange> = Arc::new(EmbeddedExchange::in_memory());
    for (store, schema) in schemas() {
        exchange.register(&store, &schema).await.unwrap();
    }
    exchange.write(&orders(), Write::create("o1", json!({"item": "lamp"}))).await.unwrap();
    exchange
}

/// Waits for the order to carry `field`, failing after 10 s.
async fn await_field(exchange: &dyn ObjectExchange, field: &str) -> serde_json::Value {
    let mut watch = exchange.watch(&orders(), 0).await.unwrap();
    let wait = async {
        while let Some(event) = watch.next().await {
            let data = event.unwrap().object().data.clone();
            if data.get(field).is_some() {
                return data;
            }
        }
        panic!("the watch of checkout/orders ended");
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .unwrap_or_else(|_| panic!("no order with `{field}` within 10 s"))
}

/// The operation and field of a denial to `integrator:quote`.
fn denied(outcome: Result<impl std::fmt::Debug, ExchangeError>) -> (&'static str, Option<String>) {
    match outcome {
        Err(ExchangeError::Denied(denial)) => {
            let Denial { operation, field, principal, .. } = *denial;
            assert_eq!(principal.as_deref(), Some("integrator:quote"));
            (operation, field)
        }
        other => panic!("expected a denial, got {other:?}"),
    }
}

#[tokio::test]
async fn an_integrator_that_writes_shipping_cost_may_not_write_payment_id() {
    let exchange = exchange().await;
    let integrator = CastIntegrator::start(exchange.clone(), plan(false)).await.unwrap();
    let quote = Write::create("o1", json!({"cost": "8.99", "carrier": "ups"}));
    exchange.write(&quotes(), quote).await.unwrap();
    let order = await_field(&*exchange, "shippingCost").await;
    assert_eq!(order, json!({"item": "lamp", "shippingCost": "8.99"}));

    let handle = integrator.exchange();
    let payment = handle.write(&orders(), Write::patch("o1", json!({"paymentID": "p-1"}))).await;
    assert_eq!(denied(payment), ("patch", Some("paymentID".into())));
    // A whole-object write of what it sees, with the payment added; naming `item`, which it
    // cannot see, is refused before anything is compared.
    let whole = json!({"shippingCost": order["shippingCost"], "paymentID": "p-1"});
    let replace = handle.write(&orders(), Write::put("o1", whole)).await;
    assert_eq!(denied(replace), ("put", Some("paymentID".into())));
    let blind = handle.write(&orders(), Write::put("o1", order.clone())).await;
    assert_eq!(denied(blind), ("put", Some("item".into())));
    assert_eq!(denied(handle.write(&orders(), Write::delete("o1")).await), ("delete", None));
    let quote_written = handle.write(&quotes(), Write::patch("o1", json!({"cost": "0"}))).await;
    assert_eq!(denied(quote_written), ("patch", None));
    let stored = exchange.get(&orders(), "o1").await.unwrap().unwrap();
    assert_eq!(stored.data, order, "a denied write changes nothing");
    integrator.stop().await;
}

#[tokio::test]
async fn an_integrator_sees_only_the_fields_its_edges_reference_and_keeps_the_others() {
    let exchange = exchange().await;
    let integrator = CastIntegrator::start(exchange.clone(), plan(false)).await.unwrap();
    let quote = Write::create("o1", json!({"cost": "8.99", "carrier": "ups"}));
    exchange.write(&quotes(), quote).await.unwrap();
    let order = await_field(&*exchange, "shippingCost").await;
    assert_eq!(order["item"], "lamp", "the edge's write keeps the fields it does not see");

    let handle = integrator.exchange();
    let seen = |store| async move { handle.get(&store, "o1").await.unwrap().unwrap().data.clone() };
    assert_eq!(seen(quotes()).await, json!({"cost": "8.99"}), "`quote.cost` is all it reads");
    assert_eq!(seen(orders()).await, json!({"shippingCost": "8.99"}), "and what it sets");
    let listed = handle.list(&orders()).await.unwrap().items;
    assert_eq!(listed[0].data, json!({"shippingCost": "8.99"}));
    integrator.stop().await;
}

#[tokio::test]
async fn re_applying_a_spec_without_an_edge_takes_that_edges_rights_away() {
    let exchange = exchange().await;
    let integrator = CastIntegrator::start(exchange.clone(), plan(true)).await.unwrap();
    let quote = Write::create("o1", json!({"cost": "8.99", "carrier": "ups"}));
    exchange.write(&quotes(), quote).await.unwrap();
    await_field(&*exchange, "carrier").await;
    let handle = integrator.exchange().clone();
    let carrier = || Write::patch("o1", json!({"carrier": "dhl"}));
    handle.write(&orders(), carrier()).await.expect("the carrier edge's field is writable");

    let diff = integrator.apply(plan(false)).await.unwrap();
    assert_eq!(diff.removed, ["carrier"]);
    assert_eq!(denied(handle.write(&orders(), carrier()).await), ("patch", Some("carrier".into())));
    let cost = Write::patch("o1", json!({"shippingCost": "9.99"}));
    handle.write(&orders(), cost).await.expect("the remaining edge's field is still writable");
    integrator.stop().await;
}
