//! A shadow run of a Cast plan: the live changes made after its start, evaluated by the new
//! plan, written into copies of its targets; the live targets and checkpoints untouched.

use std::sync::Arc;

use data_exchange::access::Fields;
use data_exchange::{EmbeddedExchange, ObjectExchange, Write};
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

    let copies: Arc<dyn ObjectExchange> = Arc::new(EmbeddedExchange::in_memory());
    copies.register(&dst, &json!({"type": "object"})).await.unwrap();
    let options = CastOptions { shadow: Some(copies.clone()), ..CastOptions::default() };
    let next = plan("v2", false, &schemas);
    let shadow_rights = next.shadow_rights();
    let shadow = CastIntegrator::start_with(live.clone(), next, options).await.unwrap();
    live.write(&src, Write::create("after", json!({"n": 2}))).await.unwrap();

    wait_until("the shadow's copy of `after`", async || {
        copies.get(&dst, "after").await.unwrap().is_some()
    })
    .await;
    wait_until("the live `after`", async || live.get(&dst, "after").await.unwrap().is_some()).await;
    let copy = copies.get(&dst, "after").await.unwrap().unwrap();
    assert_eq!(copy.data, json!({"n": 2, "stamp": "v2"}));
    assert_eq!(live.get(&dst, "after").await.unwrap().unwrap().data["stamp"], "v1");
    assert_eq!(live.get(&dst, "before").await.unwrap().unwrap().data["stamp"], "v1");
    assert!(
        copies.get(&dst, "before").await.unwrap().is_none(),
        "a change made before the shadow started is not its"
    );
    shadow.stop().await;
    integrator.stop().await;

    // It keeps no checkpoint: the live plan's is the only one, and it writes nothing live.
    let checkpoints = live.list(&checkpoint_store()).await.unwrap().items;
    let names: Vec<&str> = checkpoints.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, [checkpoint_name("copy")]);
    assert_eq!(shadow_rights.principal(), "shadow:copy");
    assert!(shadow_rights.grants().all(|(_, g)| g.write.is_none() && !g.delete));
    assert!(shadow_rights.on(&checkpoint_store()).is_none());
    let read = shadow_rights.on(&src).and_then(|g| g.read.clone());
    assert_eq!(read, Some(Fields::only(["n"])), "it reads what the spec reads");
}
