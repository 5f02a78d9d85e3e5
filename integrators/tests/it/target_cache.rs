//! The target cache: an integrator writes the targets it wrote recently without reading them
//! first; past the cache's capacity it reads them again, with the same results.

use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use data_exchange::{EmbeddedExchange, ObjectExchange, StoreRef, Write};
use integrators::cast::{CastIntegrator, CastOptions, CastPlan, DEFAULT_TARGET_CACHE};
use integrators::source::SpecFile;
use serde_json::{Value, json};

use crate::wait_until;

const SPEC: &str = "apiVersion: knactor.dev/v1\nkind: Cast\nmetadata: {name: copy}\nspec:\n  inputs: {order: shop/orders, shipment: shop/shipments}\n  edges:\n    - name: copy\n      from: [order]\n      to: shipment\n      set: {total: order.total}\n";

/// Writes orders `a`, `b`, then `a` again through an integrator keeping `capacity` targets;
/// answers how many targets it read and the shipments it wrote.
async fn copy_orders(capacity: NonZeroUsize) -> (u64, Vec<Value>) {
    let exchange: Arc<dyn ObjectExchange> = Arc::new(EmbeddedExchange::in_memory());
    let (orders, shipments): (StoreRef, StoreRef) =
        ("shop/orders".parse().unwrap(), "shop/shipments".parse().unwrap());
    for store in [&orders, &shipments] {
        exchange.register(store, &json!({"type": "object"})).await.unwrap();
    }
    let plan = CastPlan::load(&SpecFile::from_text(Path::new("copy.yaml"), SPEC), None).unwrap().0;
    let options = CastOptions { target_cache: capacity, ..CastOptions::default() };
    let cast = CastIntegrator::start_with(exchange.clone(), plan, options).await.unwrap();
    for (name, total) in [("a", 1), ("b", 2), ("a", 3)] {
        exchange.write(&orders, Write::put(name, json!({"total": total}))).await.unwrap();
    }
    let written = async || -> Vec<Value> {
        let list = exchange.list(&shipments).await.unwrap();
        list.items.iter().map(|o| o.data.clone()).collect()
    };
    let want = [json!({"total": 3}), json!({"total": 2})];
    wait_until("the shipments", async || written().await == want).await;
    let written = written().await;
    let reads = cast.stats().target_reads.load(Ordering::Relaxed);
    cast.stop().await;
    (reads, written)
}

#[tokio::test]
async fn targets_past_the_cache_are_read_again_with_the_same_results() {
    let (cached_reads, cached) = copy_orders(DEFAULT_TARGET_CACHE).await;
    let (evicting_reads, evicting) = copy_orders(NonZeroUsize::MIN).await;
    assert_eq!(cached, [json!({"total": 3}), json!({"total": 2})]);
    assert_eq!(evicting, cached);
    // The first target is read (nothing is known of the store yet); with room for every
    // target, `a` is written again from the cache.
    assert_eq!(cached_reads, 1);
    // With room for one, `b` pushed `a` out: writing `a` again takes a second read.
    assert_eq!(evicting_reads, 2);
}
