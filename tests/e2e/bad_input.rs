//! Bad input gets a clear, located error and a non-zero exit, and changes nothing.

use crate::harness::{Up, file, hello_app, knactor};

fn stderr(output: &std::process::Output) -> String {
    assert!(!output.status.success(), "expected a failure");
    String::from_utf8_lossy(&output.stderr).trim().to_owned()
}

#[test]
fn malformed_or_unknown_manifest_fields_are_located() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app.yaml");
    std::fs::write(&app, "apiVersion: knactor.dev/v1\nkind: App\nmetadata: {name: x\n").unwrap();
    let out = knactor().args(["up"]).arg(dir.path()).output().unwrap();
    let message = stderr(&out);
    assert!(message.starts_with(&format!("{}:4:1: error: ", app.display())), "{message}");

    std::fs::create_dir(dir.path().join("k")).unwrap();
    std::fs::write(
        dir.path().join("k/one.yaml"),
        "apiVersion: knactor.dev/v1\nkind: Knactor\nmetadata: {name: one}\nspec:\n  stores:\n    - name: s\n      schema: {}\n      expires: 3\n",
    )
    .unwrap();
    std::fs::write(
        &app,
        "apiVersion: knactor.dev/v1\nkind: App\nmetadata: {name: x}\nspec:\n  knactors: [k/*.yaml]\n",
    )
    .unwrap();
    let out = knactor().args(["up"]).arg(dir.path()).output().unwrap();
    let message = stderr(&out);
    let want = format!(
        "{}:8:7: error: spec.stores[0]: unknown field `expires`",
        dir.path().join("k/one.yaml").display()
    );
    assert!(message.starts_with(&want), "{message}");
}

#[test]
fn bad_objects_are_rejected_and_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(&hello_app(dir.path(), false), &[]);
    let good = file(dir.path(), "good.yaml", "name: t1\ndata: {text: one}\n");
    up.ok(&["put", "counter/texts", "-f", &good]);
    let before = up.ok(&["get", "counter/texts", "-o", "json"]);

    let wrong_type = file(dir.path(), "wrong.yaml", "name: t1\ndata: {text: 42}\n");
    let message = stderr(&up.cli(&["put", "counter/texts", "-f", &wrong_type]));
    assert_eq!(
        message,
        "error: counter/texts: object `t1` rejected: at /text: 42 is not of type \"string\""
    );

    let malformed = file(dir.path(), "bad.yaml", "name: t1\ndata: {text: [\n");
    let message = stderr(&up.cli(&["put", "counter/texts", "-f", &malformed]));
    assert!(message.starts_with(&format!("{malformed}:3:1: error: ")), "{message}");

    let unknown = file(dir.path(), "unknown.yaml", "name: t1\ndata: {}\nlabels: {}\n");
    let message = stderr(&up.cli(&["put", "counter/texts", "-f", &unknown]));
    assert!(
        message.starts_with(&format!("{unknown}:3:1: error: unknown field `labels`")),
        "{message}"
    );

    let message = stderr(&up.cli(&["patch", "counter/texts", "t1", "-p", "{text:"]));
    assert!(message.starts_with("error: the patch is not valid JSON"), "{message}");
    let message = stderr(&up.cli(&["get", "counter", "-o", "json"]));
    assert!(message.contains("invalid store `counter`"), "{message}");
    let message = stderr(&up.cli(&["get", "counter/texts", "-o", "xml"]));
    assert!(message.contains("unknown output `xml`"), "{message}");

    assert_eq!(up.ok(&["get", "counter/texts", "-o", "json"]), before, "nothing changed");
}

#[test]
fn an_unreachable_server_is_one_clear_line() {
    let port = data_exchange::testing::free_port();
    let out = knactor()
        .args(["get", "counter/texts", "--server", &format!("http://127.0.0.1:{port}")])
        .output()
        .unwrap();
    let message = stderr(&out);
    assert!(
        message.starts_with(&format!("error: cannot reach http://127.0.0.1:{port}")),
        "{message}"
    );
    assert_eq!(message.lines().count(), 1, "{message}");
}
