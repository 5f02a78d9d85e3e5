//! Apps on the Kubernetes apiserver: the example demos, unchanged, with their Object stores as
//! custom resources on a real kube-apiserver (their Log stores stay embedded).

use data_exchange::testing::{fresh_namespace, shared_kube_apiserver};

use crate::demo::{RETAIL_CHECKS, SMART_HOME_CHECKS, assert_passed, demo_with};
use crate::harness::knactor;

/// Runs `knactor demo ARGS... --exchange kube://?namespace=NS` in a namespace of its own, as
/// the shared apiserver's admin.
fn kube_demo(args: &[&str]) -> String {
    let server = shared_kube_apiserver();
    let url = format!("kube://?namespace={}", fresh_namespace("demo"));
    let mut command = knactor();
    command.env("KUBECONFIG", server.kubeconfig());
    demo_with(command, &[args, &["--exchange", &url]].concat())
}

#[test]
fn the_retail_demo_runs_on_kubernetes() {
    let summary = kube_demo(&["retail", "--orders", "30"]);
    assert_passed(&summary, &RETAIL_CHECKS);
    assert!(summary.contains("stuck:                  0"), "{summary}");
}

#[test]
fn the_smart_home_demo_runs_on_kubernetes() {
    let summary = kube_demo(&["smart-home", "--minutes", "120"]);
    assert_passed(&summary, &SMART_HOME_CHECKS);
}
