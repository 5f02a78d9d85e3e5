//! Cast edges pushed down into Redis give the results of integrators running them: each
//! demo's summary is the same either way, in one process or split across several.

use data_exchange::testing::RedisServer;

use crate::demo::{demo, outcome};
use crate::split::split_run_matches_one_process;

/// Runs the demo of `app` on two Redis servers, with and without `--pushdown`.
fn pushdown_matches_integrators(app: &str, demo_args: &[&str]) {
    let (plain, pushed) = (RedisServer::start(), RedisServer::start());
    let integrated = demo(&[&[app, "--exchange", &plain.url()][..], demo_args].concat());
    let url = pushed.url();
    let pushed_down = demo(&[&[app, "--exchange", &url, "--pushdown"][..], demo_args].concat());
    assert_eq!(
        outcome(&pushed_down),
        outcome(&integrated),
        "pushed down:\n{pushed_down}\nintegrators:\n{integrated}"
    );
}

#[test]
fn retail_demo_gives_the_same_results_pushed_down() {
    pushdown_matches_integrators("retail", &["--orders", "60", "--seed", "4"]);
}

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
