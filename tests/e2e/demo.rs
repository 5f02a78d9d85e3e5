//! `knactor demo`: the example apps run, driven, and checked from a fresh clone's commands.

use std::collections::BTreeMap;

use crate::harness::{knactor, repo};

/// Runs `knactor demo ARGS...` from the repository, which must succeed; returns its summary.
pub(crate) fn demo(args: &[&str]) -> String {
    demo_with(knactor(), args)
}

/// Runs `knactor demo ARGS...` as `knactor` (a command with its environment) says.
pub(crate) fn demo_with(mut knactor: std::process::Command, args: &[&str]) -> String {
    let out = knactor.current_dir(repo()).arg("demo").args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "knactor demo {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A demo's summary without the lines that hold timings.
pub(crate) fn outcome(summary: &str) -> Vec<&str> {
    let same = |line: &&str| !line.contains(" ms") && !line.starts_with(EDGES_RUN_IN_REDIS);
    summary.lines().skip(1).filter(same).collect()
}

/// How a demo with `--pushdown` starts the line counting the writes of the edges in Redis.
pub(crate) const EDGES_RUN_IN_REDIS: &str = "  edges run in Redis: ";

/// The writes of each edge in Redis, as a pushed-down demo's summary counts them.
pub(crate) fn edge_writes(summary: &str) -> BTreeMap<String, u64> {
    let line = summary.lines().find_map(|line| line.strip_prefix(EDGES_RUN_IN_REDIS));
    let line = line.unwrap_or_else(|| panic!("no count of the edges run in Redis:\n{summary}"));
    let (_, by_edge) = line.trim_end_matches(')').split_once(" (").unwrap();
    by_edge
        .split(", ")
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (edge, n) = part.rsplit_once(' ').unwrap();
            (edge.to_owned(), n.parse().unwrap())
        })
        .collect()
}

/// Asserts that a demo's summary holds each of `checks`.
pub(crate) fn assert_passed(summary: &str, checks: &[&str]) {
    for line in checks {
        assert!(summary.contains(line), "missing `{line}` in:\n{summary}");
    }
}

pub(crate) const SMART_HOME_CHECKS: [&str; 4] = [
    "✓ lamps followed occupancy every minute",
    "✓ no lamp on during sleep hours (0 lamp-minutes)",
    "✓ energy per room equals the lamps' draw",
    "✓ every motion reading above the sensitivity reached the house",
];

pub(crate) const RETAIL_CHECKS: [&str; 6] = [
    "✓ every valid order paid and shipped with a tracking ID",
    "✓ every invalid card declined",
    "✓ no order stuck",
    "✓ every completed order confirmed by email",
    "✓ every order priced from the catalog",
    "✓ every page showed an ad and recommendations outside the cart",
];

/// Ten simulated hours from 18:00 cross the sleep hours.
#[test]
fn the_smart_home_demo_runs_through_the_night() {
    let summary = demo(&["smart-home", "--minutes", "600", "--seed", "7"]);
    assert_passed(&summary, &SMART_HOME_CHECKS);
    assert!(summary.starts_with("smart-home: 600 simulated minutes"), "{summary}");
}

#[test]
fn the_smart_home_demo_runs_on_redis() {
    let redis = data_exchange::testing::RedisServer::start();
    let summary = demo(&["smart-home", "--minutes", "360", "--exchange", &redis.url()]);
    assert_passed(&summary, &SMART_HOME_CHECKS);
}

#[test]
fn the_retail_demo_pays_ships_or_declines_every_order() {
    let summary = demo(&["retail", "--orders", "300", "--seed", "3"]);
    assert_passed(&summary, &RETAIL_CHECKS);
    assert!(summary.contains("stuck:                  0"), "{summary}");
}

#[test]
fn the_retail_demo_runs_on_redis() {
    let redis = data_exchange::testing::RedisServer::start();
    let summary = demo(&["retail", "--orders", "100", "--exchange", &redis.url()]);
    assert_passed(&summary, &RETAIL_CHECKS);
}

#[test]
fn an_unknown_demo_names_the_known_ones() {
    let out = knactor().arg("demo").arg("garden").output().unwrap();
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "error: no demo `garden` (demos: retail, smart-home)"
    );
}

#[test]
fn a_demo_refuses_an_exchange_holding_an_earlier_run() {
    let redis = data_exchange::testing::RedisServer::start();
    demo(&["retail", "--orders", "5", "--exchange", &redis.url()]);
    let again = knactor()
        .current_dir(repo())
        .args(["demo", "retail", "--orders", "5", "--exchange", &redis.url()])
        .output()
        .unwrap();
    assert!(!again.status.success());
    // After the warning that the test's Redis lets anyone in as its `default` user.
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert_eq!(
        stderr.trim().lines().last(),
        Some(
            "error: loadgenerator/users already holds 5 shoppers from an earlier run: run the demo on a fresh exchange"
        ),
        "{stderr}"
    );
}
