//! `knactor up` with a data directory, killed with SIGKILL: every acknowledged write survives.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::harness::{Up, hello_app};

#[test]
fn kill_9_after_acknowledged_writes_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let app = hello_app(dir.path(), true);
    let up = Up::start(&app, &[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = up.client();
    let last = runtime.block_on(async {
        let mut last = 0;
        for i in 0..200 {
            let data = json!({ "text": format!("text number {i}") });
            let written = client.put("counter/texts", &format!("t{i}"), data, None).await.unwrap();
            last = written["version"].as_u64().unwrap();
        }
        last
    });
    up.kill();

    let up = Up::start(&app, &[]);
    let list: Value =
        serde_json::from_str(&up.ok(&["get", "counter/texts", "-o", "json"])).unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 200);
    for i in 0..200 {
        let item = items.iter().find(|o| o["name"] == format!("t{i}")).unwrap();
        assert_eq!(item["data"]["text"], format!("text number {i}"));
    }
    assert!(list["version"].as_u64().unwrap() >= last, "the store version did not go back");
}

#[test]
fn a_second_up_on_a_data_directory_in_use_names_it_and_its_process() {
    let dir = tempfile::tempdir().unwrap();
    let app = hello_app(dir.path(), true);
    let up = Up::start(&app, &[]);
    let second = crate::harness::knactor()
        .args(["up", app.to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!second.status.success());
    let said = String::from_utf8_lossy(&second.stderr);
    let data = app.join("data");
    let expected = format!(
        "the data directory {} is in use by process {} (one `knactor up` per data directory)",
        data.display(),
        up.pid()
    );
    assert!(said.contains(&expected), "{said}");
}

/// Kills `knactor up` (its data on disk) with SIGKILL while four writers have writes in flight,
/// `KNACTOR_CRASH_ROUNDS` times (3 in CI), starting it again each time: every write it
/// acknowledged is there after the last restart, whole, and at least at the version it was
/// acknowledged with.
#[test]
fn kill_9_with_writes_in_flight_loses_no_acknowledged_write() {
    let rounds: usize =
        std::env::var("KNACTOR_CRASH_ROUNDS").map_or(3, |r| r.parse().expect("a number"));
    let dir = tempfile::tempdir().unwrap();
    let app = hello_app(dir.path(), true);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let acknowledged = Arc::new(Mutex::new(BTreeMap::new()));
    let mut random = fastrand::Rng::new();
    for round in 0..rounds {
        let up = Up::start(&app, &[]);
        let client = up.client();
        let writers: Vec<_> = (0..4)
            .map(|writer| {
                let (client, acknowledged) = (client.clone(), acknowledged.clone());
                runtime.spawn(async move {
                    for i in 0.. {
                        let name = format!("r{round}-w{writer}-{i}");
                        let text = format!("round {round} writer {writer} text {i}");
                        let data = json!({ "text": text });
                        // A write in flight when the process dies fails: it was not acknowledged.
                        let Ok(written) = client.put("counter/texts", &name, data, None).await
                        else {
                            return;
                        };
                        let version = written["version"].as_u64().unwrap();
                        acknowledged.lock().unwrap().insert(name, (text, version));
                    }
                })
            })
            .collect();
        // Let writes flow for a random while, then kill in the middle of them.
        std::thread::sleep(std::time::Duration::from_millis(random.u64(100..600)));
        up.kill();
        for writer in writers {
            runtime.block_on(writer).unwrap();
        }
    }
    let up = Up::start(&app, &[]);
    let list: Value =
        serde_json::from_str(&up.ok(&["get", "counter/texts", "-o", "json"])).unwrap();
    let stored: BTreeMap<&str, &Value> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["name"].as_str().unwrap(), o))
        .collect();
    let acknowledged = acknowledged.lock().unwrap();
    for round in 0..rounds {
        let prefix = format!("r{round}-");
        let acked = acknowledged.keys().filter(|name| name.starts_with(&prefix)).count();
        assert!(acked > 0, "writes were acknowledged in round {round}");
    }
    for (name, (text, version)) in acknowledged.iter() {
        let object = stored.get(name.as_str()).unwrap_or_else(|| panic!("{name} lost"));
        assert_eq!(object["data"]["text"], *text, "{name} whole");
        assert!(object["version"].as_u64().unwrap() >= *version, "{name} not older");
    }
    eprintln!("{} acknowledged writes over {rounds} kills, none lost", acknowledged.len());
}
