//! Log stores through the CLI: append a JSON-lines file, tail, query with SQL; bad records
//! rejected by line and field with nothing appended; a durable log survives `kill -9`.

use serde_json::{Value, json};

use crate::harness::{Up, file};

/// An app with one Log store, `motion/readings`.
fn motion_app(dir: &std::path::Path, durable: bool) -> std::path::PathBuf {
    file(
        dir,
        "motion.yaml",
        "apiVersion: knactor.dev/v1\nkind: Knactor\nmetadata: {name: motion}\nspec:\n  stores:\n    - name: readings\n      exchange: log\n      schema:\n        type: object\n        required: [room]\n        properties:\n          room: {type: string}\n          triggered: {type: boolean}\n          sensitivity: {type: integer, minimum: 0}\n",
    );
    let data_dir = if durable { "  dataDir: data\n" } else { "" };
    file(
        dir,
        "app.yaml",
        &format!(
            "apiVersion: knactor.dev/v1\nkind: App\nmetadata: {{name: m}}\nspec:\n{data_dir}  knactors: [motion.yaml]\n"
        ),
    );
    dir.to_owned()
}

const READINGS: &str = r#"{"room": "hall", "triggered": true, "sensitivity": 3, "ts": "2026-11-25T10:00:00Z"}
{"room": "study", "triggered": false, "sensitivity": 1, "ts": 1795600860000}

{"room": "hall", "triggered": true, "sensitivity": 1}
"#;

#[test]
fn append_tail_and_query() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(&motion_app(dir.path(), false), &[]);
    let readings = file(dir.path(), "readings.jsonl", READINGS);
    assert_eq!(
        up.ok(&["log", "append", "motion/readings", "-f", &readings]).trim(),
        "3 records appended at offset 0"
    );

    let tail = up.ok(&["log", "tail", "motion/readings", "--from", "1"]);
    let rooms: Vec<Value> =
        tail.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["room"].clone()).collect();
    assert_eq!(rooms, [json!("study"), json!("hall")]);

    let sql = r#"SELECT room, count(*) AS n FROM "motion/readings" WHERE triggered AND sensitivity >= 2 GROUP BY room"#;
    let rows: Value = serde_json::from_str(&up.ok(&["query", sql, "-o", "json"])).unwrap();
    assert_eq!(rows, json!([{"room": "hall", "n": 1}]));
    let csv =
        up.ok(&["query", r#"SELECT room FROM "motion/readings" ORDER BY ts LIMIT 1"#, "-o", "csv"]);
    assert_eq!(csv, "room\nhall\n");
    let table = up.ok(&["query", r#"SELECT count(*) AS n FROM "motion/readings""#]);
    assert!(table.contains("| n |") && table.contains("| 3 |"), "{table}");
}

#[test]
fn a_bad_record_rejects_the_whole_append() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(&motion_app(dir.path(), false), &[]);
    let bad = file(
        dir.path(),
        "bad.jsonl",
        "{\"room\": \"a\"}\n\n{\"room\": \"b\", \"sensitivity\": -2}\n",
    );
    let out = up.cli(&["log", "append", "motion/readings", "-f", &bad]);
    assert!(!out.status.success());
    let message = String::from_utf8_lossy(&out.stderr);
    assert!(message.starts_with("error: motion/readings: record 3 at /sensitivity:"), "{message}");
    let count = up.ok(&["query", r#"SELECT count(*) AS n FROM "motion/readings""#, "-o", "json"]);
    assert_eq!(
        serde_json::from_str::<Value>(&count).unwrap(),
        json!([{"n": 0}]),
        "nothing appended"
    );
    let out = up.cli(&["query", "SELECT nope FROM \"motion/readings\"", "-o", "json"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"), "a bad query names its problem");
}

#[test]
fn a_durable_log_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let app = motion_app(dir.path(), true);
    let up = Up::start(&app, &[]);
    let readings = file(dir.path(), "readings.jsonl", READINGS);
    for _ in 0..20 {
        up.ok(&["log", "append", "motion/readings", "-f", &readings]);
    }
    up.kill();
    let up = Up::start(&app, &[]);
    let count = up.ok(&["query", r#"SELECT count(*) AS n FROM "motion/readings""#, "-o", "json"]);
    assert_eq!(serde_json::from_str::<Value>(&count).unwrap(), json!([{"n": 60}]));
}

#[test]
fn log_stores_on_redis() {
    let redis = data_exchange::testing::RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(&motion_app(dir.path(), false), &["--exchange", &redis.url()]);
    let readings = file(dir.path(), "readings.jsonl", READINGS);
    up.ok(&["log", "append", "motion/readings", "-f", &readings]);
    up.ok(&["log", "append", "motion/readings", "-f", &readings]);
    let tail = up.ok(&["log", "tail", "motion/readings", "--from", "2"]);
    assert_eq!(tail.lines().count(), 4);
    let count = up.ok(&["query", r#"SELECT count(*) AS n FROM "motion/readings""#, "-o", "json"]);
    assert_eq!(serde_json::from_str::<Value>(&count).unwrap(), json!([{"n": 6}]));
}
