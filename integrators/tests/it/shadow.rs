//! A shadow run of a Cast plan: the live changes made after its start, evaluated by the new
//! plan, written into copies of its targets; the live targets and checkpoints untouched.

use std::sync::Arc;

use data_exchange::access::Fields;
use data_exchange::{EmbeddedExchange, ExchangeError, ObjectExchange, Write};
use integrators::cast::{CastIntegrator, CastOptions, checkpoint_name, checkpoint_store};
use serde_json::json;

use super::reload::{exchange, plan, stores};
use super::wait_until;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_handles_the_changes_after_its_start_into_copies_of_its_targets() {
    let (src, dst, schemas) = stores();
    let live = exchange(&schemas).await;
    let integrator =
        CastIntegrator::start(live.clone(), plan("v1", false, &schemas)).await.unwrap();
    live.write(&src, Write::create("before", json!({"n": 1}))).await.unwrap();
    wait_until("the live `before`", async || live.get(&dst, "before").await.unwrap().is_some())
        .await;
    // The live integrator stops: what changes from now on is the shadow's doing, or not.
    integrator.stop().await;
    let checkpoint = checkpoint_name("copy");
    let saved = live.get(&checkpoint_store(), &checkpoint).await.unwrap().unwrap();

    let copies: Arc<dyn ObjectExchange> = Arc::new(EmbeddedExchange::in_memory());
    copies.register(&dst, &json!({"type": "object"})).await.unwrap();
    let options = CastOptions { shadow: Some(copies.clone()), ..CastOptions::default() };
    let shadow = CastIntegrator::start_with(live.clone(), plan("v2", false, &schemas), options)
        .await
        .unwrap();
    live.write(&src, Write::create("after", json!({"n": 2}))).await.unwrap();
    wait_until("the shadow's copy of `after`", async || {
        copies.get(&dst, "after").await.unwrap().is_some()
    })
    .await;
    let copy = copies.get(&dst, "after").await.unwrap().unwrap();
    assert_eq!(copy.data, json!({"n": 2, "stamp": "v2"}));
    assert!(
        copies.get(&dst, "before").await.unwrap().is_none(),
        "a change made before the shadow started is not its"
    );

    // It acts as its own principal, which reads the source and may write nothing live.
    let handle = shadow.exchange().clone();
    let rights = handle.rights();
    assert_eq!(rights.principal(), "shadow:copy");
    assert_eq!(rights.on(&src).and_then(|g| g.read.clone()), Some(Fields::only(["n"])));
    assert!(rights.on(&dst).is_none() && rights.on(&checkpoint_store()).is_none());
    let write = handle.write(&dst, Write::put("after", json!({"n": 9}))).await;
    assert!(matches!(write, Err(ExchangeError::Denied(_))), "{write:?}");
    shadow.stop().await;

    assert!(live.get(&dst, "after").await.unwrap().is_none(), "nothing written live");
    let kept = live.get(&checkpoint_store(), &checkpoint).await.unwrap().unwrap();
    assert_eq!(kept.version, saved.version, "the live checkpoint is untouched");
    let names: Vec<String> = live
        .list(&checkpoint_store())
        .await
        .unwrap()
        .items
        .iter()
        .map(|o| o.name.clone())
        .collect();
    assert_eq!(names, [checkpoint], "it keeps none of its own");
}
