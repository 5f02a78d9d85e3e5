//! `knactor bench`: each benchmark runs from the CLI and reports its figures (small sizes here;
//! the figures themselves are in docs/BENCHMARKS.md).

use serde_json::Value;

use crate::harness::{knactor, repo};

/// Runs `knactor bench ARGS... --json` from the repository and returns its figures.
fn bench(args: &[&str]) -> Vec<Value> {
    let out = knactor().current_dir(repo()).arg("bench").args(args).arg("--json").output().unwrap();
    assert!(
        out.status.success(),
        "knactor bench {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `p50 ≤ p99 ≤ max` for `prefix`, all positive.
fn ordered(figures: &Value, prefix: &str, unit: &str) {
    let at = |q: &str| figures[format!("{prefix}_{q}_{unit}")].as_f64().unwrap();
    assert!(0.0 < at("p50") && at("p50") <= at("p99"), "{figures}");
    if let Some(max) = figures[format!("{prefix}_max_{unit}")].as_f64() {
        assert!(at("p99") <= max, "{figures}");
    }
}

#[test]
fn propagation_compares_grpc_embedded_redis_and_pushdown_hop_by_hop() {
    let setups = bench(&["propagation", "--samples", "50", "--warmup", "5"]);
    let names: Vec<&str> = setups.iter().map(|s| s["setup"].as_str().unwrap()).collect();
    let expected =
        ["tcp-loopback", "grpc", "knactor-embedded", "knactor-redis", "knactor-redis-pushdown"];
    assert_eq!(names, expected);
    for setup in &setups {
        assert_eq!(setup["samples"], 50);
        ordered(setup, "one_way", "us");
        ordered(setup, "round_trip", "us");
        let figure = |key: &str| setup[key].as_f64().unwrap();
        let parts: f64 = ["c_i", "i", "i_s"].iter().map(|p| figure(&format!("{p}_p50_us"))).sum();
        assert!(parts > 0.0, "{setup}");
        for part in ["c_i", "i", "i_s"] {
            let p50 = figure(&format!("{part}_p50_us"));
            assert!(p50 <= figure("round_trip_max_us"), "{part}: {setup}");
        }
        // The answer comes back after the order got there.
        assert!(figure("one_way_p50_us") <= figure("round_trip_p50_us"), "{setup}");
        let paper = match setup["setup"].as_str().unwrap().starts_with("knactor") {
            true => "one_way_p50_us",
            false => "round_trip_p50_us",
        };
        assert_eq!(figure("paper_p50_us"), figure(paper), "the paper's measure: {setup}");
    }
    // Figures that contradict each other are a broken measure: the TCP round trip is the
    // floor under gRPC's call, and the exchange in the process is nearer than Redis.
    let p50 = |i: usize, way: &str| setups[i][format!("{way}_p50_us")].as_f64().unwrap();
    for way in ["one_way", "round_trip"] {
        assert!(p50(0, way) < p50(1, way), "tcp-loopback under grpc, {way}: {setups:?}");
        assert!(
            p50(2, way) < p50(3, way),
            "knactor-embedded under knactor-redis, {way}: {setups:?}"
        );
    }
}

#[test]
fn sync_measures_flows_beside_their_baselines() {
    let rows = bench(&["sync", "--records", "100000"]);
    let what: Vec<&str> = rows.iter().map(|r| r["what"].as_str().unwrap()).collect();
    let expected = [
        "filter + rename + select",
        "windowed aggregate",
        "8 flows, unconsolidated",
        "8 flows, consolidated",
    ];
    assert_eq!(what, expected);
    for row in &rows {
        assert_eq!(row["records"], 131_072, "whole batches of 65,536: {row}");
        assert!(row["records_per_s"].as_f64().unwrap() > 0.0, "{row}");
    }
    let consolidated = &rows[3];
    assert_eq!(consolidated["baseline_records_per_s"], rows[2]["records_per_s"]);
    assert!(consolidated["ratio"].as_f64().unwrap() > 0.0, "{consolidated}");
    assert!(rows[2]["ratio"].is_null(), "the unconsolidated run has no baseline");
}

#[test]
fn throughput_runs_each_exchange_at_each_concurrency() {
    let runs = bench(&["throughput", "--orders", "30", "--concurrency", "1,8"]);
    let shape: Vec<(&str, u64)> = runs
        .iter()
        .map(|r| (r["exchange"].as_str().unwrap(), r["concurrency"].as_u64().unwrap()))
        .collect();
    let expected = [
        ("embedded", 1),
        ("embedded", 8),
        ("redis", 1),
        ("redis", 8),
        ("redis-pushdown", 1),
        ("redis-pushdown", 8),
    ];
    assert_eq!(shape, expected);
    for run in &runs {
        assert!(run["orders_per_s"].as_f64().unwrap() > 0.0, "{run}");
        ordered(run, "latency", "ms");
    }
}

#[test]
fn scale_measures_each_size_and_draws_charts() {
    let charts = tempfile::tempdir().unwrap();
    let dir = charts.path().to_str().unwrap();
    let sizes =
        bench(&["scale", "--stores", "10,30", "--samples", "30", "--warmup", "3", "--charts", dir]);
    assert_eq!(sizes.iter().map(|s| s["edges"].as_u64().unwrap()).collect::<Vec<_>>(), [9, 27]);
    for size in &sizes {
        ordered(size, "propagation", "us");
        assert!(size["rss_mib"].as_f64().unwrap() > 1.0, "{size}");
    }
    for chart in ["bench-scale-latency.svg", "bench-scale-memory.svg", "bench-scale-cpu.svg"] {
        let svg = std::fs::read_to_string(charts.path().join(chart)).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("stores"), "{chart}");
    }
}
