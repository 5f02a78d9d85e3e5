//! `knactor up` with a data directory, killed with SIGKILL: every acknowledged write survives.

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
