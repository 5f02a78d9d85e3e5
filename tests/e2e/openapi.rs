//! The OpenAPI document of the HTTP API (`GET /v1/openapi.json`): every path and method it
//! names is routed, and no other method of those paths; and schemathesis (PyPI, installed by
//! scripts/schemathesis), sending what the document allows and much it does not, finds no
//! server error and no answer that breaks the document.

use std::process::Command;

use reqwest::Method;
use serde_json::{Value, json};

use crate::api::Api;
use crate::harness::{Up, hello_app, repo};

const METHODS: [&str; 5] = ["get", "put", "post", "patch", "delete"];

/// A running hello app, its API, the operator's token, and the document it serves.
fn served() -> (tempfile::TempDir, Up, Api, String, Value) {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(&hello_app(dir.path(), false), &[]);
    let (api, token) = (Api::new(&up), up.operator_token());
    let answer = api.get("/v1/openapi.json", Some(&token));
    assert_eq!(answer.status, 200, "{answer:?}");
    let document = answer.body;
    assert_eq!(document["openapi"], "3.1.0");
    (dir, up, api, token, document)
}

#[test]
fn every_path_and_method_of_the_document_is_routed_and_no_other() {
    let (_dir, _up, api, token, document) = served();
    let paths = document["paths"].as_object().unwrap();
    assert!(paths.len() >= 15, "{:?}", paths.keys());
    for (path, item) in paths {
        let concrete = path
            .replace("{knactor}", "counter")
            .replace("{store}", "texts")
            .replace("{name}", "x")
            .replace("{edge}", "e")
            .replace("{flow}", "f");
        for method in METHODS {
            let verb = method.to_uppercase().parse::<Method>().unwrap();
            let answer = api.send(verb, &concrete, Some(&token), &[], None);
            let documented = item.get(method).is_some();
            let no_route = answer.body["error"].as_str().is_some_and(|e| e.starts_with("no route"));
            let routed = answer.status != 405 && !no_route;
            assert_eq!(routed, documented, "{method} {path}: {answer:?}");
            let Some(operation) = item.get(method) else { continue };
            // Statuses listed one by one (schemathesis checks a status only against those):
            // without a token, every operation but `/healthz` answers the 401 it lists.
            let statuses = operation["responses"].as_object().unwrap();
            assert!(!statuses.contains_key("default"), "{method} {path}: list its statuses");
            if path != "/healthz" {
                let verb = method.to_uppercase().parse::<Method>().unwrap();
                let anonymous = api.send(verb, &concrete, None, &[], None);
                assert_eq!(anonymous.status, 401, "{method} {path}: {anonymous:?}");
                assert!(statuses.contains_key("401"), "{method} {path}: 401 not listed");
            }
        }
    }
}

#[test]
fn schemathesis_finds_no_server_error_and_no_answer_that_breaks_the_document() {
    let (dir, up, _api, token, mut document) = served();
    // Aim at the app's own stores, so that requests reach them rather than 404; and at lists
    // and tails that end (a watch or a follow never does).
    let parameters = &mut document["components"]["parameters"];
    parameters["knactor"]["schema"] = json!({"enum": ["counter", "greeter"]});
    parameters["store"]["schema"] = json!({"enum": ["texts", "greetings"]});
    for item in document["paths"].as_object_mut().unwrap().values_mut() {
        // Its operations, not the parameters shared by the path.
        let operations = item.as_object_mut().unwrap().values_mut().filter(|o| o.is_object());
        for operation in operations {
            // Left out rather than pinned to `false`: a negative example could send `true`.
            if let Some(parameters) = operation.get_mut("parameters").and_then(Value::as_array_mut)
            {
                parameters.retain(|p| !matches!(p["name"].as_str(), Some("watch" | "follow")));
            }
        }
    }
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, document.to_string()).unwrap();
    let st = Command::new(repo().join("scripts/schemathesis")).output().unwrap();
    assert!(st.status.success(), "scripts/schemathesis: {}", String::from_utf8_lossy(&st.stderr));
    let st = String::from_utf8(st.stdout).unwrap().trim().to_owned();
    let examples = std::env::var("KNACTOR_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "20".into());
    let run = Command::new(st)
        .arg("run")
        .arg(&file)
        .args(["--url", &up.server, "-n", &examples, "--request-timeout", "10"])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"])
        // Its body is SQL, which schemathesis cannot make; taps are streams that never end.
        .args(["--exclude-path", "/v1/query", "--exclude-path-regex", ".*/tap$"])
        .env("NO_COLOR", "1")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&run.stdout);
    let summary = said.rsplit_once("SUMMARY").map_or(&*said, |(_, s)| s);
    assert!(run.status.success(), "{said}\n{}", String::from_utf8_lossy(&run.stderr));
    eprintln!("schemathesis:{summary}");
}
