//! Sync specs in a running app: exactly-once delivery across `kill -9`, bad specs rejected with
//! their location while the running flow goes on.

use std::path::Path;

use serde_json::{Value, json};

use crate::harness::{Up, eventually, file, knactor};

/// An app with `motion/readings` and `house/motion` Log stores and `sync.yaml` between them.
fn sync_app(dir: &Path) -> String {
    let properties = "          seq: {type: integer}\n          room: {type: string}\n";
    file(
        dir,
        "motion.yaml",
        &format!(
            "apiVersion: knactor.dev/v1\nkind: Knactor\nmetadata: {{name: motion}}\nspec:\n  stores:\n    - name: readings\n      exchange: log\n      schema:\n        type: object\n        properties:\n{properties}          triggered: {{type: boolean}}\n          sensitivity: {{type: integer}}\n"
        ),
    );
    file(
        dir,
        "house.yaml",
        &format!(
            "apiVersion: knactor.dev/v1\nkind: Knactor\nmetadata: {{name: house}}\nspec:\n  stores:\n    - name: motion\n      exchange: log\n      schema:\n        type: object\n        properties:\n{properties}          motion: {{type: boolean}}\n"
        ),
    );
    file(dir, "sync.yaml", &motion_sync("triggered AND sensitivity >= 2"));
    file(
        dir,
        "app.yaml",
        "apiVersion: knactor.dev/v1\nkind: App\nmetadata: {name: m}\nspec:\n  dataDir: data\n  knactors: [motion.yaml, house.yaml]\n  integrators: [sync.yaml]\n",
    )
}

fn motion_sync(filter: &str) -> String {
    format!(
        "apiVersion: knactor.dev/v1\nkind: Sync\nmetadata:\n  name: motion-to-house\nspec:\n  flows:\n    - name: motion\n      from: motion/readings\n      to: house/motion\n      ops:\n        - filter: \"{filter}\"\n        - rename: {{triggered: motion}}\n        - select: [ts, seq, room, motion]\n"
    )
}

/// `n` readings numbered from `first`, as JSON lines.
fn readings(first: u64, n: u64) -> String {
    (first..first + n)
        .map(|seq| {
            format!(
                "{{\"seq\": {seq}, \"room\": \"r{}\", \"triggered\": {}, \"sensitivity\": {}}}\n",
                seq % 5,
                seq % 2 == 0,
                seq % 4
            )
        })
        .collect()
}

fn seqs(up: &Up, sql: &str) -> Vec<u64> {
    let rows: Vec<Value> = serde_json::from_str(&up.ok(&["query", sql, "-o", "json"])).unwrap();
    rows.iter().map(|r| r["seq"].as_u64().unwrap()).collect()
}

fn count(up: &Up, store: &str) -> usize {
    let sql = format!(r#"SELECT count(*) AS n FROM "{store}""#);
    let rows: Value = serde_json::from_str(&up.ok(&["query", &sql, "-o", "json"])).unwrap();
    rows[0]["n"].as_u64().unwrap() as usize
}

/// Kills `knactor up` with SIGKILL while records stream through a flow, restarts it, and
/// checks that the destination holds each expected record exactly once.
#[test]
fn a_flow_delivers_exactly_once_across_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let app = sync_app(dir.path());
    let up = Up::start(Path::new(&app).parent().unwrap(), &[]);
    let server = up.server.clone();
    let writer = std::thread::spawn(move || {
        // Appends until the server is gone.
        for i in 0.. {
            let batch = file(
                Path::new(&std::env::temp_dir()),
                &format!("kn-sync-{}-{i}.jsonl", std::process::id()),
                &readings(i * 200, 200),
            );
            let out = knactor()
                .args(["log", "append", "motion/readings", "-f", &batch, "--server", &server])
                .output()
                .unwrap();
            let _ = std::fs::remove_file(&batch);
            if !out.status.success() {
                return i;
            }
        }
        unreachable!()
    });
    eventually("records flowing", || (count(&up, "house/motion") > 500).then_some(()));
    up.kill();
    let appends = writer.join().unwrap();
    assert!(appends > 3, "the server was killed while records streamed");

    let up = Up::start(Path::new(&app).parent().unwrap(), &[]);
    let source = seqs(&up, r#"SELECT seq FROM "motion/readings" ORDER BY seq"#);
    let mut expected: Vec<u64> =
        source.iter().copied().filter(|s| s % 2 == 0 && s % 4 >= 2).collect();
    // A last reading that passes the filter: once it is delivered, so is every record before it
    // (a flow keeps its source's order), duplicates included.
    let last = 1_000_002;
    let batch = file(Path::new(&app).parent().unwrap(), "last.jsonl", &readings(last, 1));
    up.ok(&["log", "append", "motion/readings", "-f", &batch]);
    expected.push(last);
    let delivered = eventually("the flow to catch up", || {
        let delivered = seqs(&up, r#"SELECT seq FROM "house/motion" ORDER BY seq"#);
        delivered.contains(&last).then_some(delivered)
    });
    assert_eq!(delivered.len(), expected.len(), "no record lost or duplicated");
    assert_eq!(delivered, expected);
}

/// `knactor delete spec` stops a Sync spec keeping its checkpoint: applied again, it delivers
/// what was appended meanwhile, and nothing twice.
#[test]
fn a_deleted_sync_spec_resumes_from_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let app = sync_app(dir.path());
    let app_dir = Path::new(&app).parent().unwrap();
    let up = Up::start(app_dir, &[]);
    let append = |first: u64| {
        let batch = file(app_dir, &format!("readings-{first}.jsonl"), &readings(first, 8));
        up.ok(&["log", "append", "motion/readings", "-f", &batch]);
    };
    let delivered = || seqs(&up, r#"SELECT seq FROM "house/motion" ORDER BY seq"#);
    // Of each 8 readings from a multiple of 8, the 3rd and the 7th pass the filter.
    let up_to = |last: u64| {
        eventually(&format!("reading {last} delivered"), || {
            delivered().contains(&last).then_some(())
        })
    };
    append(0);
    up_to(6);
    let deleted = up.ok(&["delete", "spec", "motion-to-house"]);
    assert_eq!(deleted.trim(), "sync/motion-to-house deleted (it was at version 1)");
    append(8);
    up.ok(&["apply", "-f", app_dir.join("sync.yaml").to_str().unwrap()]);
    append(16);
    // Records reach the flow in order: once the last is delivered, so are those before.
    up_to(22);
    assert_eq!(delivered(), [2, 6, 10, 14, 18, 22], "each once, across the stop");
}

/// A Sync spec with a bad SQL expression or an unknown column is rejected with its location,
/// by `knactor check` and by `knactor apply`, and the running flow continues.
#[test]
fn bad_sync_specs_are_rejected_and_the_flow_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let app = sync_app(dir.path());
    let app_dir = Path::new(&app).parent().unwrap().to_owned();
    let good = app_dir.join("sync.yaml");
    let out = knactor()
        .args(["check", good.to_str().unwrap(), "--app", app_dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (Sync `motion-to-house`, 1 flow)"));

    let bad_sql = file(&app_dir, "bad-sql.yaml", &motion_sync("triggered AND sensitivity >>> 2"));
    let unknown = file(&app_dir, "unknown.yaml", &motion_sync("triggered AND loudness >= 2"));
    for (spec, needle) in [(&bad_sql, ">>>"), (&unknown, "loudness")] {
        let out =
            knactor().args(["check", spec, "--app", app_dir.to_str().unwrap()]).output().unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.starts_with(&format!("{spec}:11:19: error: filter: ")), "{stderr}");
        assert!(stderr.contains(needle), "{stderr}");
    }

    let up = Up::start(&app_dir, &[]);
    let first = file(&app_dir, "first.jsonl", &readings(0, 8));
    up.ok(&["log", "append", "motion/readings", "-f", &first]);
    eventually("the first records", || (count(&up, "house/motion") == 2).then_some(()));
    let out = up.cli(&["apply", "-f", &unknown]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("loudness"));
    let more = file(&app_dir, "more.jsonl", &readings(8, 8));
    up.ok(&["log", "append", "motion/readings", "-f", &more]);
    eventually("the running flow to go on", || (count(&up, "house/motion") == 4).then_some(()));

    let variant = file(&app_dir, "variant.yaml", &motion_sync("sensitivity >= 2 AND triggered"));
    let applied = up.ok(&["apply", "-f", &variant]);
    assert_eq!(
        applied.trim(),
        "sync/motion-to-house configured: flows added: -; removed: -; changed: motion"
    );
}

/// A new filter tried as a shadow: it reads the same live records from where the live flow
/// last checkpointed, appending to a copy of the destination; the diff names the records only
/// it appends. Promoted, it appends to the live destination from the next record on.
#[test]
fn a_sync_spec_runs_as_a_shadow_then_is_promoted() {
    let dir = tempfile::tempdir().unwrap();
    let app = sync_app(dir.path());
    let app_dir = Path::new(&app).parent().unwrap().to_owned();
    let up = Up::start(&app_dir, &[]);
    let first = file(&app_dir, "first.jsonl", &readings(0, 8));
    up.ok(&["log", "append", "motion/readings", "-f", &first]);
    eventually("the first records", || (count(&up, "house/motion") == 2).then_some(()));

    // Live: triggered (even) with sensitivity (seq % 4) >= 2; the shadow drops `triggered`.
    let wider = file(&app_dir, "wider.yaml", &motion_sync("sensitivity >= 2"));
    let started = up.ok(&["apply", "-f", &wider, "--shadow"]);
    assert_eq!(
        started.trim(),
        "sync/motion-to-house shadow started beside the live spec; against it: flows added: -; removed: -; changed: motion"
    );
    let more = file(&app_dir, "more.jsonl", &readings(8, 16));
    up.ok(&["log", "append", "motion/readings", "-f", &more]);
    let diff = eventually("both sides to have read every record", || {
        let diff: Value =
            serde_json::from_str(&up.ok(&["diff", "spec", "motion-to-house", "-o", "json"]))
                .unwrap();
        let records = diff["records"][0].clone();
        (records["live"] == 4 && records["shadow"] == 8).then_some(records)
    });
    assert_eq!(
        (&diff["store"], &diff["missing"], &diff["extra"]),
        (&json!("house/motion"), &json!(0), &json!(4))
    );
    let extra: Vec<&Value> =
        diff["only_shadow"].as_array().unwrap().iter().map(|r| &r["seq"]).collect();
    assert_eq!(extra, [&json!(11), &json!(15), &json!(19), &json!(23)], "the untriggered readings");
    assert_eq!(count(&up, "house/motion"), 6, "the shadow appended nothing live");

    let promoted = up.ok(&["promote", "spec", "motion-to-house"]);
    assert!(
        promoted.starts_with(
            "sync/motion-to-house configured: flows added: -; removed: -; changed: motion"
        ),
        "{promoted}"
    );
    let last = file(&app_dir, "last.jsonl", &readings(24, 8));
    up.ok(&["log", "append", "motion/readings", "-f", &last]);
    eventually("the promoted flow's records", || (count(&up, "house/motion") == 10).then_some(()));
    let after = seqs(&up, r#"SELECT seq FROM "house/motion" WHERE seq >= 8 ORDER BY seq"#);
    assert_eq!(after, [10, 14, 18, 22, 26, 27, 30, 31], "each record by one version");
}

/// `knactor tap sync/SPEC/FLOW` shows what a flow appends, as it appends it.
#[test]
fn a_flow_is_tapped() {
    let dir = tempfile::tempdir().unwrap();
    let app = sync_app(dir.path());
    let app_dir = Path::new(&app).parent().unwrap().to_owned();
    let up = Up::start(&app_dir, &[]);
    let (mut tap, lines) =
        up.spawn(&["tap", "sync/motion-to-house/motion", "--limit", "1", "-o", "json"]);
    // The tap listens once its request is answered; appends until it shows one.
    let within = std::time::Duration::from_secs(20);
    let deadline = std::time::Instant::now() + within;
    let mut first = 0;
    let event = loop {
        assert!(std::time::Instant::now() < deadline, "the tap showed nothing");
        let batch = file(&app_dir, "batch.jsonl", &readings(first, 8));
        up.ok(&["log", "append", "motion/readings", "-f", &batch]);
        first += 8;
        if let Some(line) = lines.try_next(std::time::Duration::from_millis(500)) {
            break line;
        }
    };
    let event: Value = serde_json::from_str(&event).unwrap();
    assert_eq!((&event["flow"], &event["to"]), (&json!("motion"), &json!("house/motion")));
    // Two of each batch (a slow flow may append two batches at once).
    let count = event["count"].as_u64().unwrap();
    let records = event["records"].as_array().unwrap();
    let seqs: Vec<u64> = records.iter().map(|r| r["seq"].as_u64().unwrap() % 8).collect();
    assert!(count >= 2 && count.is_multiple_of(2) && seqs.len() as u64 == count.min(10), "{event}");
    let kept = seqs.iter().all(|s| [2, 6].contains(s));
    assert!(kept, "the triggered readings with sensitivity >= 2: {event}");
    assert!(tap.wait().unwrap().success());
    let unknown = up.cli(&["tap", "sync/motion-to-house/nope"]);
    let said = String::from_utf8_lossy(&unknown.stderr);
    assert!(said.contains("no flow `nope` in `motion-to-house`: its flows are motion"), "{said}");
}
