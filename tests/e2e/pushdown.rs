//! Cast edges pushed down into Redis give the results of integrators running them: each
//! demo's summary is the same either way, in one process or split across several.

use std::collections::BTreeMap;

use data_exchange::testing::RedisServer;

use crate::demo::{EDGES_RUN_IN_REDIS, demo, edge_writes, outcome};
use crate::split::split_run_matches_one_process;

/// Runs the demo of `app` on two Redis servers, with and without `--pushdown`; returns the
/// writes each edge made in Redis, as the pushed-down run's summary counts them.
fn pushdown_matches_integrators(app: &str, demo_args: &[&str]) -> BTreeMap<String, u64> {
    let (plain, pushed) = (RedisServer::start(), RedisServer::start());
    let integrated = demo(&[&[app, "--exchange", &plain.url()][..], demo_args].concat());
    let url = pushed.url();
    let pushed_down = demo(&[&[app, "--exchange", &url, "--pushdown"][..], demo_args].concat());
    assert_eq!(
        outcome(&pushed_down),
        outcome(&integrated),
        "pushed down:\n{pushed_down}\nintegrators:\n{integrated}"
    );
    assert!(!integrated.contains(EDGES_RUN_IN_REDIS), "{integrated}");
    edge_writes(&pushed_down)
}

/// The same results, and Redis ran the edges: one payment requested per order, one report of
/// its outcome, one shipment requested and one confirmation per paid order.
#[test]
fn retail_demo_gives_the_same_results_pushed_down() {
    let writes = pushdown_matches_integrators("retail", &["--orders", "60", "--seed", "4"]);
    let (paid, declined) = (writes["checkout/report-payment"], writes["checkout/report-decline"]);
    assert_eq!(writes["checkout/request-payment"], 60, "{writes:?}");
    assert_eq!(paid + declined, 60, "{writes:?}");
    assert!(paid > 0 && declined > 0, "the seed gives both outcomes: {writes:?}");
    for edge in ["checkout/request-shipment", "checkout/report-shipment", "email/confirm-order"] {
        assert_eq!(writes[edge], paid, "{edge}: {writes:?}");
    }
}

/// The smart home pushes down one edge, which copies the house's settings, written once as the
/// app starts: the integrator may have handled that write before it hands the edge over, so
/// Redis may have nothing left to run (the counts are not checked).
#[test]
fn smart_home_demo_gives_the_same_results_pushed_down() {
    pushdown_matches_integrators("smart-home", &["--minutes", "120", "--seed", "5"]);
}

#[test]
fn retail_split_with_edges_pushed_down_by_knactor_integrate_gives_the_results_of_one() {
    let storefront = "frontend,loadgenerator,cart,productcatalog,currency,recommendation,ad";
    let back_office = "checkout,payment,shipping,email";
    let banner = split_run_matches_one_process(
        "retail",
        [storefront, back_office],
        &["--orders", "60", "--seed", "4"],
        &["--pushdown"],
    );
    assert!(banner.contains("pushed down"), "{banner}");
}
