//! The CLI against a running app: up → put → get → get --watch → delete, on both exchanges.

use data_exchange::testing::RedisServer;
use serde_json::Value;

use crate::harness::{Up, eventually, eventually_within, file, hello_app, smart_home_app};

/// Drives the hello app through the CLI; the greeter's reconciler answers each name.
fn put_get_watch_delete(up: &Up, dir: &std::path::Path) {
    let ada = file(dir, "ada.yaml", "name: g1\ndata:\n  name: Ada\n");
    assert_eq!(up.ok(&["put", "greeter/greetings", "-f", &ada]).trim(), "g1 written (version 1)");

    let greeted = eventually("the greeting", || {
        let out = up.ok(&["get", "greeter/greetings", "g1", "-o", "json"]);
        let object: Value = serde_json::from_str(&out).unwrap();
        (object["data"]["greeting"] == "Hello, Ada!").then_some(object)
    });
    assert_eq!(greeted["name"], "g1");
    let path = up.ok(&["get", "greeter/greetings", "-o", "jsonpath=$.items[0].data.greeting"]);
    assert_eq!(path, "Hello, Ada!\n");

    let (mut watch, lines) = up.spawn(&["get", "greeter/greetings", "--watch", "-o", "json"]);
    let next = || {
        let line = lines.next_within(std::time::Duration::from_secs(20), "watch event");
        serde_json::from_str::<Value>(&line).unwrap()
    };
    let first = next();
    assert_eq!(
        (first["type"].as_str(), first["object"]["name"].as_str()),
        (Some("Added"), Some("g1"))
    );

    up.ok(&["patch", "greeter/greetings", "g1", "-p", r#"{"name": "Grace"}"#]);
    let mut events = Vec::new();
    while events.last().is_none_or(|e: &Value| e["object"]["data"]["greeting"] != "Hello, Grace!") {
        events.push(next());
    }
    assert!(events.iter().all(|e| e["type"] == "Modified"), "{events:?}");

    up.ok(&["delete", "greeter/greetings", "g1"]);
    let deleted = next();
    assert_eq!(
        (deleted["type"].as_str(), deleted["object"]["name"].as_str()),
        (Some("Deleted"), Some("g1"))
    );
    watch.kill().unwrap();
    watch.wait().unwrap();

    let gone = up.cli(&["get", "greeter/greetings", "g1"]);
    assert!(!gone.status.success());
    assert_eq!(
        String::from_utf8_lossy(&gone.stderr).trim(),
        "error: greeter/greetings: object `g1` not found"
    );
}

#[test]
fn cli_on_the_embedded_exchange() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(&hello_app(dir.path(), false), &[]);
    put_get_watch_delete(&up, dir.path());
    assert!(up.terminate().success(), "SIGTERM stops `up` cleanly");
}

#[test]
fn cli_on_redis() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(&hello_app(dir.path(), false), &["--exchange", &redis.url()]);
    put_get_watch_delete(&up, dir.path());
}

/// A `get --watch` that falls behind further than the exchange's watch history (its process
/// stopped while 20,000 changes go by) is told the watch expired, re-lists, prints what changed
/// meanwhile (a deletion included), and goes on watching.
#[test]
fn a_watch_that_expires_relists_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(&hello_app(dir.path(), false), &[]);
    let client = up.client();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let put = |names: std::ops::Range<usize>| {
        runtime.block_on(futures::future::join_all(names.map(|i| {
            // A kilobyte each, so that the pipes and sockets between fill long before the end.
            let text = format!("text {i} {}", "x".repeat(1024));
            let (client, data) = (&client, serde_json::json!({ "text": text }));
            async move { client.put("counter/texts", &format!("k{}", i % 50), data, None).await }
        })));
    };
    put(0..50);
    let said = dir.path().join("stderr");
    let mut command = crate::harness::knactor();
    command.stderr(std::fs::File::create(&said).unwrap());
    let (mut watch, lines) =
        up.spawn_as(command, &["get", "counter/texts", "--watch", "-o", "json"]);
    let within = std::time::Duration::from_secs(30);
    let event = || match lines.try_next(within) {
        Some(line) => serde_json::from_str::<Value>(&line).unwrap(),
        None => panic!("no watch event; it said: {}", std::fs::read_to_string(&said).unwrap()),
    };
    let first = event();
    assert_eq!(first["type"], "Added", "{first}");
    let pid = watch.id().to_string();
    std::process::Command::new("kill").args(["-STOP", &pid]).status().unwrap();
    for chunk in 0..40 {
        put(chunk * 500..(chunk + 1) * 500);
    }
    runtime.block_on(client.delete("counter/texts", "k0")).unwrap();
    let last =
        runtime.block_on(client.get("counter/texts", "k49")).unwrap()["data"]["text"].clone();
    std::process::Command::new("kill").args(["-CONT", &pid]).status().unwrap();
    // Whatever it printed before it fell behind, it comes to k0 deleted and k49 at its last
    // text, then goes on with the changes that follow.
    let (mut deleted, mut latest) = (false, false);
    while !(deleted && latest) {
        let e = event();
        deleted |= e["type"] == "Deleted" && e["object"]["name"] == "k0";
        latest |= e["object"]["name"] == "k49" && e["object"]["data"]["text"] == last;
    }
    runtime
        .block_on(client.put("counter/texts", "after", serde_json::json!({"text": "a"}), None))
        .unwrap();
    while event()["object"]["name"] != "after" {}
    watch.kill().unwrap();
    watch.wait().unwrap();
    let said = std::fs::read_to_string(said).unwrap();
    assert!(said.contains("the watch of counter/texts expired: re-listing"), "{said}");
}

#[test]
fn two_processes_share_a_redis_exchange() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let app = hello_app(dir.path(), false);
    let greeter = Up::start(&app, &["--exchange", &redis.url(), "--only", "greeter"]);
    let counter = Up::start(&app, &["--exchange", &redis.url(), "--only", "counter"]);
    let text = file(dir.path(), "t.yaml", "name: t1\ndata: {text: hello split world}\n");
    greeter.ok(&["put", "counter/texts", "-f", &text]);
    let name = file(dir.path(), "g.yaml", "name: g1\ndata: {name: Lin}\n");
    counter.ok(&["put", "greeter/greetings", "-f", &name]);
    eventually("both reconcilers, each in its own process", || {
        let words = greeter.ok(&["get", "counter/texts", "t1", "-o", "jsonpath=$.data.words"]);
        let hello =
            counter.ok(&["get", "greeter/greetings", "g1", "-o", "jsonpath=$.data.greeting"]);
        (words == "3\n" && hello == "Hello, Lin!\n").then_some(())
    });
}

/// `knactor get specs` lists the running specs with their versions; `knactor delete spec`
/// stops one, keeping its checkpoint, so applying it again resumes where it stopped and
/// handles what changed meanwhile.
#[test]
fn specs_are_listed_deleted_and_resumed_from_their_checkpoint() {
    use crate::harness::{eventually_within, repo, retail_app};
    use crate::retail::{get, order_data};
    use serde_json::json;
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let app = retail_app(dir.path());
    let up = Up::start(&app, &[]);
    let specs = |up: &Up| -> Value {
        serde_json::from_str(&up.ok(&["get", "specs", "-o", "json"])).unwrap()
    };
    let version = |listed: &Value, name: &str| {
        let specs = listed["specs"].as_array().unwrap();
        specs.iter().find(|s| s["name"] == name).map(|s| s["version"].as_u64().unwrap())
    };
    eventually("the app's specs to run", || version(&specs(&up), "email"));
    let table = up.ok(&["get", "specs"]);
    assert!(table.starts_with("NAME") && table.contains("checkout"), "{table}");
    let email = repo().join("dxg-specs/retail/email.yaml").to_string_lossy().into_owned();
    up.ok(&["apply", "-f", &email]);
    assert_eq!(version(&specs(&up), "email"), Some(2), "re-applied once");

    let deleted = up.ok(&["delete", "spec", "email"]);
    assert_eq!(deleted.trim(), "cast/email deleted (it was at version 2)");
    assert_eq!(version(&specs(&up), "email"), None);
    let again = up.cli(&["delete", "spec", "email"]);
    let error = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success() && error.contains("no spec `email` is running"), "{error}");

    // While it is stopped, an order completes; applied again, it confirms that order.
    let mut order = order_data(20.0);
    order["email"] = "ada@example.com".into();
    let order = json!({"name": "o1", "data": order}).to_string();
    up.ok(&["put", "checkout/orders", "-f", &file(dir.path(), "o1.json", &order)]);
    let within = Duration::from_secs(30);
    eventually_within(within, "o1 to complete", || {
        get(&up, "checkout/orders", "o1").filter(|o| o["status"] == "completed")
    });
    up.ok(&["apply", "-f", &email]);
    assert_eq!(version(&specs(&up), "email"), Some(1), "a new start");
    eventually_within(within, "o1's confirmation", || get(&up, "email/confirmations", "o1"));
}

/// A Sync spec sending house motion back into the readings it comes from passes its own check,
/// but not beside the running `readings` spec: `check --app` and `apply` refuse it, naming
/// both places, and nothing starts.
#[test]
fn a_loop_across_specs_is_refused_naming_both_specs() {
    let dir = tempfile::tempdir().unwrap();
    smart_home_app(dir.path(), "*.yaml");
    let back = file(
        dir.path(),
        "back.yaml",
        "apiVersion: knactor.dev/v1\nkind: Sync\nmetadata: {name: back}\nspec:\n  flows:\n    - name: back\n      from: house/motion\n      to: motion/readings\n      ops:\n        - rename: {motion: triggered}\n",
    );
    let app = dir.path().to_string_lossy().into_owned();
    let assert_refused = |output: std::process::Output| {
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(!output.status.success(), "{stderr}");
        assert!(stderr.contains("back.yaml:8:11: error: Sync flows of several specs feed each other in a loop: house/motion → motion/readings → house/motion, through spec `readings` (flow `motion` at "), "{stderr}");
        assert!(stderr.contains("readings.yaml:"), "{stderr}");
    };
    let alone = crate::harness::knactor().args(["check", &back]).output().unwrap();
    assert!(alone.status.success(), "{}", String::from_utf8_lossy(&alone.stderr));
    assert_refused(
        crate::harness::knactor().args(["check", "--app", &app, &back]).output().unwrap(),
    );

    let up = Up::start(dir.path(), &[]);
    assert_refused(up.cli(&["apply", "-f", &back]));
    let specs = up.ok(&["get", "specs"]);
    assert!(specs.contains("readings") && !specs.contains("back"), "{specs}");
}

/// What a newcomer trips on gets one clear line: a server not running, a store of the other
/// kind, kubectl's JSONPath template.
#[test]
fn mistakes_get_one_clear_line_each() {
    let down = crate::harness::knactor()
        .args(["get", "specs", "--server", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&down.stderr);
    assert_eq!(said.lines().count(), 1, "{said}");
    assert!(said.starts_with("error: cannot reach http://127.0.0.1:9: "), "{said}");
    assert!(said.contains("is `knactor up` running there?"), "{said}");
    assert_eq!(said.matches("127.0.0.1:9").count(), 1, "the URL once: {said}");
    let bare = crate::harness::knactor().args(["get", "--server", "127.0.0.1:9"]).output().unwrap();
    let said = String::from_utf8_lossy(&bare.stderr);
    assert!(said.contains("names no scheme: write http://127.0.0.1:9"), "{said}");

    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(&smart_home_app(dir.path(), "*.yaml"), &[]);
    let log_store = up.cli(&["get", "house/motion"]);
    let said = String::from_utf8_lossy(&log_store.stderr);
    assert!(
        said.contains("`house/motion` is a Log store, not an Object store: read it with `knactor log tail house/motion`"),
        "{said}"
    );
    let object_store = up.cli(&["log", "tail", "house/settings"]);
    let said = String::from_utf8_lossy(&object_store.stderr);
    assert!(
        said.contains("`house/settings` is an Object store, not a Log store: read it with `knactor get house/settings`"),
        "{said}"
    );
    let unknown = up.cli(&["get", "house/nothing"]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown store house/nothing"));

    let named = up.ok(&["get", "specs", "-o", "jsonpath={.specs[*].name}"]);
    assert_eq!(named, up.ok(&["get", "specs", "-o", "jsonpath=$.specs[*].name"]));
    assert!(named.contains("readings"), "{named}");
}

/// kubectl's habits: `get` alone lists the stores, Object and Log; several names; `-o name`;
/// `-o wide` shows the whole data.
#[test]
fn get_lists_stores_several_objects_names_and_wide_rows() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(&crate::harness::retail_app(dir.path()), &["--no-integrators"]);
    let stores = up.ok(&["get"]);
    assert_eq!(stores, up.ok(&["get", "stores"]));
    let header = stores.lines().next().unwrap();
    assert_eq!(header.split_whitespace().collect::<Vec<_>>(), ["STORE", "KIND", "OWNER", "COUNT"]);
    let row = |store: &str| {
        stores
            .lines()
            .find(|l| l.starts_with(store))
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
    };
    assert_eq!(row("checkout/orders "), Some(vec!["checkout/orders", "Object", "checkout", "0"]));
    assert_eq!(row("email/sent "), Some(vec!["email/sent", "Log", "email", "0"]));
    let count_at = header.find("COUNT").unwrap() + "COUNT".len();
    assert!(stores.lines().all(|l| l.len() == count_at), "counts aligned under COUNT:\n{stores}");
    let names = up.ok(&["get", "stores", "-o", "name"]);
    assert!(names.lines().any(|l| l == "checkout/orders"), "{names}");
    let refused = up.cli(&["get", "stores", "--where", "true"]);
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--where is for the objects of a store")
    );

    let long = "x".repeat(100);
    for name in ["a1", "a2", "a3"] {
        let request = format!(r#"{{"name": "{name}", "data": {{"categories": ["{long}"]}}}}"#);
        up.ok(&["put", "ad/requests", "-f", &file(dir.path(), "request.json", &request)]);
    }
    assert_eq!(up.ok(&["get", "ad/requests", "a3", "a1", "-o", "name"]), "a3\na1\n");
    let partly = up.cli(&["get", "ad/requests", "a1", "zz", "-o", "name"]);
    assert!(!partly.status.success());
    assert_eq!(String::from_utf8_lossy(&partly.stdout), "a1\n", "what was found is printed");
    let said = String::from_utf8_lossy(&partly.stderr);
    assert!(said.contains("ad/requests: not found: `zz`"), "{said}");
    let table = up.ok(&["get", "ad/requests", "a1", "a2"]);
    assert_eq!(table.lines().count(), 3, "{table}");
    assert!(table.contains('…') && !table.contains(&long), "{table}");
    assert!(up.ok(&["get", "ad/requests", "a1", "-o", "wide"]).contains(&long));
    let filtered = up.ok(&[
        "get",
        "ad/requests",
        "-o",
        "name",
        "--where",
        r#"name != "a2" && size(data.categories) == 1"#,
    ]);
    assert_eq!(filtered, "a1\na3\n");
    let bad = up.cli(&["get", "ad/requests", "--where", "data.x >"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--where"), "{bad:?}");
    let stores = up.ok(&["get", "-o", "json"]);
    let stores: Value = serde_json::from_str(&stores).unwrap();
    let requests =
        stores["stores"].as_array().unwrap().iter().find(|s| s["store"] == "ad/requests").unwrap();
    assert_eq!(
        (&requests["kind"], &requests["count"]),
        (&serde_json::json!("Object"), &serde_json::json!(3))
    );
}

#[test]
fn version_names_client_and_server_and_completions_are_printed() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(&hello_app(dir.path(), false), &[]);
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(up.ok(&["version"]), format!("client: {version}\nserver: {version}\n"));
    for shell in ["bash", "zsh", "fish"] {
        let out = crate::harness::knactor().args(["completion", shell]).output().unwrap();
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(script.contains("knactor") && script.contains("promote"), "{shell}: {script}");
    }
}

/// Each command's help offers `--server` exactly when the command talks to a running app; with
/// `KNACTOR_SERVER` set, no usage line asks for it; graph and integrate say what they take.
#[test]
fn help_offers_the_server_option_where_a_server_is_talked_to() {
    let help = |args: &[&str], server: Option<&str>| {
        let mut command = crate::harness::knactor();
        command.args(args).arg("--help").env_remove("KNACTOR_SERVER");
        if let Some(server) = server {
            command.env("KNACTOR_SERVER", server);
        }
        let out = command.output().unwrap();
        assert!(out.status.success(), "{args:?} --help");
        String::from_utf8(out.stdout).unwrap()
    };
    let talks = [
        "get", "put", "patch", "delete", "log", "query", "apply", "top", "tap", "diff", "promote",
        "version",
    ];
    let local = ["up", "check", "graph", "integrate", "deploy", "demo", "bench", "completion"];
    for command in talks {
        let text = help(&[command], None);
        assert!(text.contains("--server <URL>"), "{command} takes --server:\n{text}");
        let usage = help(&[command], Some("http://127.0.0.1:1"));
        let usage = usage.lines().find(|l| l.starts_with("Usage:")).unwrap();
        assert!(!usage.contains("--server"), "{command}: {usage}");
    }
    for command in local.iter().copied().chain([""]) {
        let args: Vec<&str> = [command].into_iter().filter(|c| !c.is_empty()).collect();
        let text = help(&args, None);
        assert!(!text.contains("--server <"), "{command} talks to no server:\n{text}");
    }
    assert!(help(&[], None).starts_with("Runs a data-centric app"), "the CLI, not the SDK");
    assert!(help(&["graph"], None).contains("Cast and Sync specs"));
    assert!(help(&["integrate"], None).contains("repeat `-f` for several"));
}

/// `knactor tap` streams what passes through an edge (the change it handled, how it went,
/// what it set) or a store, from the moment it starts; an edge that does not exist is named
/// with those that do.
#[test]
fn tap_streams_an_edge_and_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(&crate::tasks::uncomposed_retail(dir.path(), false), &[]);
    let t1 = crate::harness::repo().join("apps/retail/tasks/t1-compose.yaml");
    up.ok(&["apply", "-f", t1.to_str().unwrap()]);
    let unknown = up.cli(&["tap", "cast/checkout/nope"]);
    let said = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        said.contains(
            "no edge `nope` in `checkout`: its edges are request-payment, report-payment"
        ),
        "{said}"
    );

    // The first changes of an order (not yet priced) are skipped by the edge; the third writes.
    let (mut edge, edge_lines) =
        up.spawn(&["tap", "cast/checkout/request-payment", "--limit", "3"]);
    let (mut store, store_lines) = up.spawn(&["tap", "payment/charges", "--limit", "1"]);
    let within = std::time::Duration::from_secs(20);
    // Each prints its header once it listens.
    let header = edge_lines.next_within(within, "edge tap's header");
    assert!(header.starts_with("OUTCOME"), "{header}");
    let header = store_lines.next_within(within, "store tap's header");
    assert!(header.starts_with("EVENT"), "{header}");
    crate::retail::put_order(&up, dir.path(), "t1", 42.0);
    let rows: Vec<String> = (0..3).map(|_| edge_lines.next_within(within, "edge event")).collect();
    let written =
        rows.iter().find(|r| r.starts_with("written")).unwrap_or_else(|| panic!("{rows:?}"));
    let columns: Vec<&str> = written.split_whitespace().collect();
    assert!(columns[1].starts_with("checkout/orders/t1@"), "{written}");
    assert_eq!(columns[2], "payment/charges/t1", "{written}");
    assert!(written.contains(r#"{"amount":42,"card":"#), "{written}");
    let outcomes = ["written", "skipped", "unchanged"];
    assert!(rows.iter().all(|r| outcomes.iter().any(|o| r.starts_with(o))), "{rows:?}");
    let added = store_lines.next_within(within, "store event");
    assert!(added.starts_with("Added") && added.contains("t1"), "{added}");
    assert!(edge.wait().unwrap().success() && store.wait().unwrap().success(), "--limit ends them");
    // A tap ends when its spec does.
    let (mut open, open_lines) = up.spawn(&["tap", "cast/checkout/request-payment"]);
    let header = open_lines.next_within(within, "tap header");
    assert!(header.starts_with("OUTCOME"), "{header}");
    up.ok(&["delete", "spec", "checkout"]);
    let ended = eventually("the tap to end with its spec", || open.try_wait().unwrap());
    assert!(ended.success());
}

/// `knactor top` draws the app's edges in a terminal (tmux's), refreshes as orders flow, and
/// quits on `q`.
#[test]
fn top_shows_the_edges_live_and_quits_on_q() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(&crate::tasks::uncomposed_retail(dir.path(), false), &[]);
    let t1 = crate::harness::repo().join("apps/retail/tasks/t1-compose.yaml");
    up.ok(&["apply", "-f", t1.to_str().unwrap()]);
    let session = format!("knactor-top-{}", std::process::id());
    let tmux = |args: &[&str]| {
        std::process::Command::new("tmux")
            .args(args)
            .output()
            .expect("tmux (scripts/setup installs it)")
    };
    let top = format!(
        "XDG_CONFIG_HOME={} {} top --server {} --interval 200ms",
        crate::harness::config_home().display(),
        env!("CARGO_BIN_EXE_knactor"),
        up.server
    );
    let started = tmux(&["new-session", "-d", "-s", &session, "-x", "150", "-y", "40", &top]);
    assert!(started.status.success(), "{started:?}");
    // Ended whatever happens below.
    struct Session(String);
    impl Drop for Session {
        fn drop(&mut self) {
            let _ =
                std::process::Command::new("tmux").args(["kill-session", "-t", &self.0]).output();
        }
    }
    let _session = Session(session.clone());
    let screen = || {
        String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-t", &session]).stdout).into_owned()
    };
    // Orders keep coming until a rate shows them: the edge's row has changes per second.
    let mut placed = 0;
    let shown =
        eventually_within(std::time::Duration::from_secs(30), "a rate on the screen", || {
            placed += 1;
            crate::retail::put_order(&up, dir.path(), &format!("o{placed}"), 42.0);
            let screen = screen();
            let row = screen.lines().find(|l| l.contains("request-payment"))?;
            let changes: f64 = row.split_whitespace().nth(2)?.parse().ok()?;
            (changes > 0.0 && screen.contains("Reconcilers")).then_some(screen)
        });
    assert!(shown.contains("knactor top") && shown.contains("CHANGES/S"), "{shown}");
    tmux(&["send-keys", "-t", &session, "q"]);
    eventually("top to quit on q", || {
        (!tmux(&["has-session", "-t", &session]).status.success()).then_some(())
    });
}
