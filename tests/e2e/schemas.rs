//! The exchange holds each store's schema: `knactor up` from a manifest whose schema differs
//! is refused, `--evolve-schemas` changes it once the stored objects fit, and nothing stored
//! is lost either way.

use std::path::Path;

use crate::harness::{Up, eventually, file, knactor};

/// An app of one knactor, `counter` of apps/hello, durable, whose `texts` store has
/// `properties` besides `text`, and requires `required`.
fn counter_app(dir: &Path, required: &str, properties: &str) -> String {
    let manifest = format!(
        "apiVersion: knactor.dev/v1\nkind: Knactor\nmetadata:\n  name: counter\nspec:\n  reconciler: hello.counter\n  stores:\n    - name: texts\n      schema:\n        type: object\n        additionalProperties: false\n        required: [{required}]\n        properties:\n          text: {{ type: string }}\n          words: {{ type: integer }}\n          characters: {{ type: integer }}\n{properties}"
    );
    file(dir, "counter.yaml", &manifest);
    let app = "apiVersion: knactor.dev/v1\nkind: App\nmetadata:\n  name: hello\nspec:\n  dataDir: data\n  knactors: [counter.yaml]\n";
    file(dir, "app.yaml", app);
    dir.to_string_lossy().into_owned()
}

/// Runs `knactor up APP EXTRA...`, which must fail, and returns its stderr.
fn refused(app: &str, extra: &[&str]) -> String {
    let output = knactor().args(["up", app, "--listen", "127.0.0.1:0"]).args(extra).output();
    let output = output.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "up started: {stderr}");
    stderr
}

#[test]
fn a_changed_manifest_is_refused_until_the_schema_is_evolved_and_the_objects_fit_it() {
    let dir = tempfile::tempdir().unwrap();
    let app = counter_app(dir.path(), "text", "");
    let up = Up::start(dir.path(), &[]);
    up.ok(&[
        "put",
        "counter/texts",
        "-f",
        &file(dir.path(), "t1.json", r#"{"name": "t1", "data": {"text": "a b"}}"#),
    ]);
    eventually("t1 to be counted", || {
        let t1 = up.ok(&["get", "counter/texts", "t1", "-o", "jsonpath=$.data.words"]);
        (t1.trim() == "2").then_some(())
    });
    up.terminate();

    // A language is required now: t1 has none.
    counter_app(dir.path(), "text, lang", "          lang: { type: string }\n");
    let stderr = refused(&app, &[]);
    assert!(
        stderr.contains(
            "counter/texts: the exchange holds another schema for this store (version 1)"
        ) && stderr.contains("--evolve-schemas"),
        "{stderr}"
    );
    let stderr = refused(&app, &["--evolve-schemas"]);
    assert!(stderr.contains("the new schema does not fit 1 stored object: `t1`"), "{stderr}");

    // An optional language fits t1.
    counter_app(dir.path(), "text", "          lang: { type: string }\n");
    let up = Up::start(dir.path(), &["--evolve-schemas"]);
    let t2 = r#"{"name": "t2", "data": {"text": "bonjour", "lang": "fr"}}"#;
    up.ok(&["put", "counter/texts", "-f", &file(dir.path(), "t2.json", t2)]);
    let words = up.ok(&["get", "counter/texts", "t1", "-o", "jsonpath=$.data.words"]);
    assert_eq!(words.trim(), "2", "t1 is kept");
    up.terminate();
    let up = Up::start(dir.path(), &[]);
    let lang = up.ok(&["get", "counter/texts", "t2", "-o", "jsonpath=$.data.lang"]);
    assert_eq!(lang.trim(), "fr", "the manifest is the schema held now: it starts as it is");
}

/// Two processes of one app on Redis, the second started from another copy of the manifest
/// (a newer schema): it is refused, naming the store and the version Redis holds, and the
/// first goes on; started from the same copy, it runs beside the first.
#[test]
fn a_second_process_from_another_manifest_is_refused_on_redis() {
    let redis = data_exchange::testing::RedisServer::start();
    let (first_dir, second_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    counter_app(first_dir.path(), "text", "");
    let on_redis = ["--exchange", &redis.url()];
    let first = Up::start(first_dir.path(), &on_redis);

    let second = counter_app(second_dir.path(), "text", "          lang: { type: string }\n");
    let stderr = refused(&second, &on_redis);
    assert!(
        stderr.contains(
            "counter/texts: the exchange holds another schema for this store (version 1)"
        ),
        "{stderr}"
    );
    let t1 = r#"{"name": "t1", "data": {"text": "still here"}}"#;
    first.ok(&["put", "counter/texts", "-f", &file(first_dir.path(), "t1.json", t1)]);

    counter_app(second_dir.path(), "text", "");
    let second = Up::start(second_dir.path(), &on_redis);
    let words = || {
        let t1 = second.ok(&["get", "counter/texts", "t1", "-o", "jsonpath=$.data.words"]);
        (t1.trim() == "2").then_some(())
    };
    eventually("t1, counted, seen by the second process", words);
}
