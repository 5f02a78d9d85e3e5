//! Access to the HTTP API (docs/security.md): bearer tokens per principal, default deny, and
//! the refusal of hostile requests (foreign `Origin` or `Host`, CORS-safe content types),
//! against the real binary over real HTTP.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use reqwest::Method;
use serde_json::{Value, json};

use crate::api::{Api, assert_denied};
use crate::harness::{Up, file, hello_app, knactor, repo, retail_app, smart_home_app};

/// The token of `principal` (`operator`, `viewer`, `knactor-NAME`) in `dir`.
fn token(dir: &Path, principal: &str) -> String {
    std::fs::read_to_string(dir.join(principal)).unwrap().trim().to_owned()
}

#[test]
fn every_request_but_healthz_needs_the_token_of_a_principal_with_the_right() {
    let dir = tempfile::tempdir().unwrap();
    let app = hello_app(dir.path(), true);
    let log = dir.path().join("stderr.log");
    let mut command = knactor();
    command.stderr(std::fs::File::create(&log).unwrap());
    let up = Up::start_as(command, &app, &[]);
    let api = Api::new(&up);
    let tokens = dir.path().join("data/tokens");
    let (operator, viewer) = (token(&tokens, "operator"), token(&tokens, "viewer"));
    let counter = token(&tokens, "knactor-counter");
    assert_eq!(up.operator_token(), operator, "the CLI finds the operator token");

    assert_eq!(api.get("/healthz", None).status, 200);

    // No token, a wrong one: 401 with a challenge.
    let texts = "/v1/stores/counter/texts/objects";
    for token in [None, Some("0".repeat(64).as_str()), Some("")] {
        let answer = api.get(texts, token);
        assert_denied(&answer, 401, "Unauthorized");
        assert_eq!(answer.headers["www-authenticate"], "Bearer realm=\"knactor\"");
    }

    // A knactor reads and writes its own stores.
    let put = |token: &str, store: &str| {
        let path = format!("/v1/stores/{store}/objects/t1");
        api.send(
            Method::PUT,
            &path,
            Some(token),
            &[],
            Some(("application/json", r#"{"data": {"text": "hi"}}"#)),
        )
    };
    assert_eq!(put(&counter, "counter/texts").status, 200);
    assert_eq!(api.get(texts, Some(&counter)).body["items"][0]["name"], "t1");
    // ...and no other knactor's: 403 naming principal, store and operation; nothing written.
    let answer = put(&counter, "greeter/greetings");
    assert_denied(&answer, 403, "Forbidden");
    assert_eq!(answer.body["principal"], "knactor:counter");
    assert_eq!(answer.body["store"], "greeter/greetings");
    assert_eq!(answer.body["operation"], "put");
    assert_eq!(
        answer.body["error"],
        "greeter/greetings: put denied to knactor:counter: it has no rights on this store"
    );
    let greetings = api.get("/v1/stores/greeter/greetings/objects", Some(&operator));
    assert_eq!(greetings.body["items"], json!([]), "a denied write changes nothing");
    let answer = api.get("/v1/stores/greeter/greetings/objects?watch=true", Some(&counter));
    assert_denied(&answer, 403, "Forbidden");
    assert_eq!(answer.body["operation"], "list", "a watch without a version lists first");
    let answer =
        api.get("/v1/stores/greeter/greetings/objects?watch=true&version=0", Some(&counter));
    assert_denied(&answer, 403, "Forbidden");
    assert_eq!(answer.body["operation"], "watch");
    let stores = api.get("/v1/stores", Some(&counter));
    let names: Vec<&Value> =
        stores.body["stores"].as_array().unwrap().iter().map(|s| &s["store"]).collect();
    assert_eq!(names, [&json!("counter/texts")], "a knactor lists its own stores only");
    assert!(stores.body["stores"][0]["count"].is_u64(), "and counts what it may read: {stores:?}");
    let spec = Some(("application/yaml", "apiVersion: knactor.dev/v1\nkind: Cast\n"));
    let answer = api.send(Method::POST, "/v1/specs", Some(&counter), &[], spec);
    assert_denied(&answer, 403, "Forbidden");
    assert_eq!(answer.body["operation"], "apply-spec");
    // Stopping, comparing and promoting specs and their shadows is the operator's: a diff
    // shows live fields of every store the spec writes.
    let spec_routes = [
        (Method::DELETE, "/v1/specs/anything", "delete-spec"),
        (Method::DELETE, "/v1/specs/anything/shadow", "delete-spec"),
        (Method::GET, "/v1/specs/anything/shadow", "diff-spec"),
        (Method::POST, "/v1/specs/anything/promote", "promote-spec"),
        (Method::GET, "/v1/specs/anything/edges/e/tap", "tap"),
    ];
    for (method, path, operation) in spec_routes {
        for token in [&counter, &viewer] {
            let answer = api.send(method.clone(), path, Some(token), &[], None);
            assert_denied(&answer, 403, "Forbidden");
            assert_eq!(answer.body["operation"], operation);
        }
        let answer = api.send(method, path, Some(&operator), &[], None);
        assert_denied(&answer, 404, "NotFound");
    }

    // The viewer sees stores and schemas, never objects.
    let stores = api.get("/v1/stores", Some(&viewer));
    assert_eq!(stores.status, 200);
    assert_eq!(stores.body["stores"].as_array().unwrap().len(), 2);
    let counts: Vec<&Value> =
        stores.body["stores"].as_array().unwrap().iter().map(|s| &s["count"]).collect();
    assert!(counts.iter().all(|c| c.is_null()), "a viewer learns no count: {counts:?}");
    assert!(stores.body["stores"][0]["schema"].is_object());
    for (path, operation) in [(texts.to_owned(), "list"), (format!("{texts}/t1"), "get")] {
        let answer = api.get(&path, Some(&viewer));
        assert_denied(&answer, 403, "Forbidden");
        assert_eq!(
            (&answer.body["principal"], &answer.body["operation"]),
            (&json!("viewer"), &json!(operation))
        );
        assert_eq!(answer.body["store"], "counter/texts");
    }
    let answer = api.send(Method::DELETE, &format!("{texts}/t1"), Some(&viewer), &[], None);
    assert_denied(&answer, 403, "Forbidden");

    // Each denial leaves one line in the audit log.
    let log = std::fs::read_to_string(&log).unwrap();
    let audit: Vec<&str> = log.lines().filter(|l| l.contains("knactor::audit")).collect();
    assert_eq!(audit.len(), 20, "{log}");
    assert!(
        audit.iter().any(|l| l
            .contains(r#"principal="viewer" operation="get" store="counter/texts" status=403"#)),
        "{log}"
    );
    assert!(!log.contains(&viewer) && !log.contains(&counter), "no token is logged");

    // The operator may do everything; denials are counted by principal and operation.
    assert_eq!(api.get(&format!("{texts}/t1"), Some(&operator)).status, 200);
    let metrics = api.get("/metrics", Some(&operator)).text;
    for line in [
        r#"knactor_http_denied_total{principal="viewer",operation="list"} 1"#,
        r#"knactor_http_denied_total{principal="viewer",operation="get"} 1"#,
        r#"knactor_http_denied_total{principal="viewer",operation="delete-spec"} 2"#,
        r#"knactor_http_denied_total{principal="viewer",operation="diff-spec"} 1"#,
        r#"knactor_http_denied_total{principal="viewer",operation="promote-spec"} 1"#,
        r#"knactor_http_denied_total{principal="viewer",operation="tap"} 1"#,
        r#"knactor_http_denied_total{principal="knactor:counter",operation="put"} 1"#,
        r#"knactor_http_denied_total{principal="anonymous",operation="list"} 3"#,
    ] {
        assert!(metrics.contains(line), "no `{line}` in:\n{metrics}");
    }
}

#[test]
fn tokens_are_private_kept_over_restarts_and_end_with_their_principal() {
    let dir = tempfile::tempdir().unwrap();
    let app = hello_app(dir.path(), true);
    let tokens = dir.path().join("data/tokens");
    let up = Up::start(&app, &[]);
    assert_eq!(std::fs::metadata(&tokens).unwrap().permissions().mode() & 0o777, 0o700);
    for principal in ["operator", "viewer", "knactor-counter", "knactor-greeter"] {
        let mode = std::fs::metadata(tokens.join(principal)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{principal}");
    }
    let (operator, greeter) = (token(&tokens, "operator"), token(&tokens, "knactor-greeter"));
    assert!(!up.banner.contains(&operator), "the token is never printed");
    up.kill();

    // The same tokens after a restart; the README's commands work unchanged.
    let up = Up::start(&app, &[]);
    assert_eq!(token(&tokens, "operator"), operator);
    assert_eq!(up.operator_token(), operator);
    up.ok(&["get", "counter/texts"]);
    up.kill();

    // Without the greeter, its token opens nothing.
    let counter = repo().join("apps/hello/knactors/counter.yaml");
    let manifest = format!(
        "apiVersion: knactor.dev/v1\nkind: App\nmetadata:\n  name: hello\nspec:\n  dataDir: data\n  knactors: [{}]\n",
        counter.display()
    );
    std::fs::write(app.join("app.yaml"), manifest).unwrap();
    let up = Up::start(&app, &[]);
    let api = Api::new(&up);
    assert_denied(&api.get("/v1/stores", Some(&greeter)), 401, "Unauthorized");
    assert_eq!(api.get("/v1/stores", Some(&operator)).status, 200);

    // A CLI without the record says where it looks for a token.
    let output = knactor()
        .env("XDG_CONFIG_HOME", dir.path().join("elsewhere"))
        .args(["get", "counter/texts", "--server", &up.server])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("needs a token") && stderr.contains("KNACTOR_TOKEN"), "{stderr}");
    // KNACTOR_TOKEN; --token-file, said explicitly, over KNACTOR_TOKEN.
    let output = knactor()
        .env("XDG_CONFIG_HOME", dir.path().join("elsewhere"))
        .env("KNACTOR_TOKEN", &operator)
        .args(["get", "counter/texts", "--server", &up.server])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let viewer_file = tokens.join("viewer").to_string_lossy().into_owned();
    let output = knactor()
        .env("XDG_CONFIG_HOME", dir.path().join("elsewhere"))
        .env("KNACTOR_TOKEN", &operator)
        .args(["get", "counter/texts", "--server", &up.server, "--token-file", &viewer_file])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("`viewer` may not list on store `counter/texts`"), "{stderr}");
}

/// HTTP/2 names the host in the request's authority, not in a Host header: it is checked all
/// the same.
#[test]
fn http2_requests_are_checked_by_their_authority() {
    let dir = tempfile::tempdir().unwrap();
    let app = hello_app(dir.path(), false);
    let up = Up::start(&app, &[]);
    let header =
        file(dir.path(), "header", &format!("Authorization: Bearer {}\n", up.operator_token()));
    let port = up.server.rsplit(':').next().unwrap().to_owned();
    let curl = |host: &str| {
        let output = std::process::Command::new("curl")
            .args([
                "-sS",
                "--http2-prior-knowledge",
                "-o",
                "/dev/null",
                "-w",
                "%{http_version} %{http_code}",
            ])
            .args(["-H", &format!("@{header}")])
            .args(["--connect-to", &format!("{host}:{port}:127.0.0.1:{port}")])
            .arg(format!("http://{host}:{port}/v1/stores"))
            .output()
            .unwrap();
        String::from_utf8(output.stdout).unwrap()
    };
    assert_eq!(curl("localhost"), "2 200");
    assert_eq!(curl("evil.example"), "2 400");
}

#[test]
fn cross_origin_foreign_hosts_and_simple_content_types_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let app = hello_app(dir.path(), false);
    let up = Up::start(&app, &["--allowed-host", "knactor.example"]);
    let api = Api::new(&up);
    let operator = up.operator_token();
    let token = Some(operator.as_str());
    let spec = "apiVersion: knactor.dev/v1\nkind: Cast\n";

    // A web page of another origin posting a spec (a "simple" request, no preflight).
    let evil = [("origin", "http://evil.example")];
    let answer =
        api.send(Method::POST, "/v1/specs", token, &evil, Some(("application/yaml", spec)));
    assert_denied(&answer, 403, "CrossOrigin");
    assert!(answer.body["error"].as_str().unwrap().contains("http://evil.example"));
    // The server's own origin passes (to the spec's own check).
    let own = [("origin", up.server.as_str())];
    let answer = api.send(Method::POST, "/v1/specs", token, &own, Some(("application/yaml", spec)));
    assert_eq!(answer.body["reason"], "Invalid", "{answer:?}");

    // DNS rebinding: a name that resolves here but is not the server's.
    let port = up.server.rsplit(':').next().unwrap();
    let rebound = format!("evil.example:{port}");
    let answer = api.send(Method::GET, "/v1/stores", token, &[("host", &rebound)], None);
    assert_denied(&answer, 400, "BadHost");
    assert!(answer.body["error"].as_str().unwrap().contains("--allowed-host"), "{answer:?}");
    for host in [format!("localhost:{port}"), format!("knactor.example:{port}")] {
        let answer = api.send(Method::GET, "/v1/stores", token, &[("host", &host)], None);
        assert_eq!(answer.status, 200, "{host}: {answer:?}");
    }
    // Both refusals are counted, as every denial is.
    let metrics = api.get("/metrics", token).text;
    for line in [
        r#"knactor_http_denied_total{principal="anonymous",operation="apply-spec"} 1"#,
        r#"knactor_http_denied_total{principal="anonymous",operation="list-stores"} 1"#,
    ] {
        assert!(metrics.contains(line), "no `{line}` in:\n{metrics}");
    }

    // Bodies of the types a form can send without a preflight are refused.
    for (path, method) in [
        ("/v1/specs", Method::POST),
        ("/v1/query", Method::POST),
        ("/v1/stores/counter/texts/objects/t1", Method::PUT),
        ("/v1/stores/counter/texts/objects/t1", Method::PATCH),
    ] {
        let answer = api.send(method.clone(), path, token, &[], Some(("text/plain", "{}")));
        assert_denied(&answer, 415, "UnsupportedMediaType");
        assert!(answer.body["error"].as_str().unwrap().contains("not `text/plain`"), "{answer:?}");
    }
    let answer = api.send(Method::PUT, "/v1/stores/counter/texts/objects/t1", token, &[], None);
    assert_denied(&answer, 415, "UnsupportedMediaType");
    let json = Some(("application/json; charset=utf-8", r#"{"data": {"text": "hi"}}"#));
    let answer = api.send(Method::PUT, "/v1/stores/counter/texts/objects/t1", token, &[], json);
    assert_eq!(answer.status, 200, "{answer:?}");
}

#[test]
fn a_non_loopback_address_needs_tls_or_insecure() {
    let dir = tempfile::tempdir().unwrap();
    let app = hello_app(dir.path(), false);
    let output = knactor().arg("up").arg(&app).args(["--listen", "0.0.0.0:0"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("refusing to serve the API on 0.0.0.0:")
            && stderr.contains("--tls-cert FILE --tls-key FILE")
            && stderr.contains("--insecure"),
        "{stderr}"
    );
    assert!(!dir.path().join(".knactor/tokens").exists(), "nothing is created before the refusal");

    let up = Up::start_on(knactor(), "0.0.0.0:0", &app, &["--insecure"]);
    assert!(up.banner.contains("serving on http://0.0.0.0:"), "{}", up.banner);
    let local = up.server.replace("0.0.0.0", "127.0.0.1");
    assert_eq!(
        Api { server: local, ..Api::new(&up) }.get("/v1/stores", Some(&up.operator_token())).status,
        200
    );
}

#[test]
fn tls_serves_https_with_the_given_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let app = hello_app(dir.path(), false);
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        // A server certificate, not a CA's, as rustls (unlike curl) insists.
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let tls = ["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()];
    let up = Up::start_on(knactor(), "0.0.0.0:0", &app, &tls);
    assert!(up.banner.contains("serving on https://0.0.0.0:"), "{}", up.banner);
    let port = up.server.rsplit(':').next().unwrap().to_owned();
    // The token goes in a header file, not on curl's command line.
    let header =
        file(dir.path(), "header", &format!("Authorization: Bearer {}\n", up.operator_token()));
    let curl = |extra: &[&str]| {
        let output = std::process::Command::new("curl")
            .args(["-sS", "--cacert", cert.to_str().unwrap(), "-w", "\n%{http_code}"])
            .args(extra)
            .arg(format!("https://localhost:{port}/v1/stores"))
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    };
    let answer = curl(&["-H", &format!("@{header}")]);
    assert!(answer.ends_with("\n200") && answer.contains("counter/texts"), "{answer}");
    assert!(curl(&[]).ends_with("\n401"));

    // The CLI, trusting the certificate; and refusing a server it cannot verify.
    let https = format!("https://localhost:{port}");
    let cli = |extra: &[&str]| {
        let mut command = knactor();
        command.env("KNACTOR_TOKEN", up.operator_token());
        command.args(["get", "counter/texts", "--server", &https]).args(extra).output().unwrap()
    };
    let trusted = cli(&["--ca-cert", cert.to_str().unwrap()]);
    assert!(trusted.status.success(), "{}", String::from_utf8_lossy(&trusted.stderr));
    let refused = cli(&[]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(stderr.contains(&format!("cannot reach {https}")), "{stderr}");
    let not_pem = cli(&["--ca-cert", key.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&not_pem.stderr);
    assert!(stderr.contains("no PEM certificate"), "{stderr}");
}

#[test]
fn an_integrator_token_reaches_the_fields_of_its_running_spec_only() {
    let dir = tempfile::tempdir().unwrap();
    let app = retail_app(dir.path());
    let up = Up::start(&app, &[]);
    let api = Api::new(&up);
    let tokens = app.join(".knactor/tokens");
    let (operator, integrator) =
        (token(&tokens, "operator"), token(&tokens, "integrator-checkout"));
    let mode = std::fs::metadata(tokens.join("integrator-checkout")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let send = |method: Method, path: &str, token: &str, body: Option<(&str, &str)>| {
        api.send(method, path, Some(token), &[], body)
    };
    let order = json!({"data": {
        "items": [{"sku": "lamp", "qty": 1, "price": 20}],
        "address": {"street": "1 Main St", "city": "Springfield", "country": "US"},
        "email": "ada@example.com"
    }});
    let o1 = "/v1/stores/checkout/orders/objects/o1";
    let put = send(Method::PUT, o1, &operator, Some(("application/json", &order.to_string())));
    assert_eq!(put.status, 200, "{put:?}");
    // It sees the fields its edges read, not the shopper's email.
    let seen = send(Method::GET, o1, &integrator, None);
    assert_eq!(seen.body["data"]["address"]["city"], "Springfield", "{seen:?}");
    assert!(seen.body["data"].get("email").is_none(), "{seen:?}");
    // The retail policy lets recommendation see what was ordered, and nothing else of it.
    let recommendation = token(&tokens, "knactor-recommendation");
    let seen = send(Method::GET, o1, &recommendation, None);
    assert_eq!(seen.body["data"], json!({"items": order["data"]["items"]}), "{seen:?}");
    let body = Some(("application/merge-patch+json", r#"{"items": []}"#));
    let refused = send(Method::PATCH, o1, &recommendation, body);
    assert_denied(&refused, 403, "Forbidden");
    assert_eq!(refused.body["principal"], "knactor:recommendation");
    let patch = |field: &str, value: Value| {
        let body = json!({ field: value }).to_string();
        send(Method::PATCH, o1, &integrator, Some(("application/merge-patch+json", &body)))
    };

    // Its edges set `trackingID` and `paymentID` of an order, never its `status`.
    assert_eq!(patch("trackingID", json!("T-1")).status, 200);
    let status = patch("status", json!("completed"));
    assert_denied(&status, 403, "Forbidden");
    assert_eq!(status.body["principal"], "integrator:checkout", "{status:?}");
    assert_eq!(status.body["store"], "checkout/orders");
    assert_eq!(status.body["operation"], "patch");
    assert_eq!(status.body["field"], "status");
    let stored = send(Method::GET, o1, &operator, None);
    assert_ne!(stored.body["data"]["status"], "completed", "a denied write changes nothing");
    assert_denied(&api.get("/v1/stores/cart/carts/objects", Some(&integrator)), 403, "Forbidden");
    let stores = api.get("/v1/stores", Some(&integrator));
    let listed: Vec<&str> = stores.body["stores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["store"].as_str().unwrap())
        .collect();
    assert!(listed.contains(&"checkout/orders") && !listed.contains(&"cart/carts"), "{listed:?}");

    // Re-applied without the edge that sets `trackingID`, the spec may no longer set it.
    let spec = std::fs::read_to_string(repo().join("dxg-specs/retail/checkout.yaml")).unwrap();
    let (kept, _) = spec.split_once("    - name: report-shipment").unwrap();
    let applied = send(Method::POST, "/v1/specs", &operator, Some(("application/yaml", kept)));
    assert_eq!(applied.status, 200, "{applied:?}");
    assert_denied(&patch("trackingID", json!("T-2")), 403, "Forbidden");
    assert_eq!(patch("paymentID", json!("P-1")).status, 200);
    let metrics = send(Method::GET, "/metrics", &operator, None).text;
    let denied = metrics.lines().find(|l| {
        l.starts_with("knactor_http_denied_total")
            && l.contains("integrator:checkout")
            && l.contains("\"patch\"")
    });
    assert!(denied.is_some_and(|l| l.ends_with(" 2")), "{metrics}");
}

#[test]
fn an_integrator_whose_spec_runs_elsewhere_reaches_nothing_here() {
    let dir = tempfile::tempdir().unwrap();
    let app = retail_app(dir.path());
    let up = Up::start(&app, &["--no-integrators"]);
    let api = Api::new(&up);
    let integrator = token(&app.join(".knactor/tokens"), "integrator-checkout");
    let answer = api.get("/v1/stores/checkout/orders/objects/o1", Some(&integrator));
    assert_denied(&answer, 403, "Forbidden");
    assert_eq!(answer.body["principal"], "integrator:checkout");
    assert_eq!(answer.body["operation"], "get");
    assert_eq!(answer.body["store"], "checkout/orders");
    let error = answer.body["error"].as_str().unwrap();
    assert!(error.contains("its spec does not run in this process"), "{error}");
}

#[test]
fn a_sync_spec_token_reads_and_appends_the_log_stores_of_its_flows_only() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(&smart_home_app(dir.path(), "readings.yaml"), &[]);
    let api = Api::new(&up);
    let sync = token(&dir.path().join(".knactor/tokens"), "integrator-readings");

    // It reads what its flows read, and appends where they append.
    assert_eq!(api.get("/v1/logs/motion/readings/records", Some(&sync)).status, 200);
    let motion = r#"{"ts": 1, "room": "hall", "motion": true}"#;
    let body = Some(("application/x-ndjson", motion));
    let appended = api.send(Method::POST, "/v1/logs/house/motion/records", Some(&sync), &[], body);
    assert_eq!(appended.status, 200, "{appended:?}");
    // Not a store its flows only read, not an Object store, not SQL over every store.
    let reading = r#"{"ts": 1, "room": "hall", "triggered": true, "sensitivity": 3}"#;
    let body = Some(("application/x-ndjson", reading));
    let refused =
        api.send(Method::POST, "/v1/logs/motion/readings/records", Some(&sync), &[], body);
    assert_denied(&refused, 403, "Forbidden");
    assert_eq!(refused.body["principal"], "integrator:readings");
    assert_eq!(refused.body["operation"], "append");
    assert_denied(&api.get("/v1/stores/lamp/lamps/objects", Some(&sync)), 403, "Forbidden");
    let sql = Some(("application/sql", "SELECT * FROM \"motion/readings\""));
    assert_denied(&api.send(Method::POST, "/v1/query", Some(&sync), &[], sql), 403, "Forbidden");
}

/// A Sync spec's token following a Log store's tail: a re-apply that drops the flow reading the
/// store ends the tail with the denial (counted in /metrics), not at the next request.
#[test]
fn a_followed_tail_ends_with_the_denial_when_a_re_apply_drops_the_flow_reading_it() {
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let spec = repo().join("dxg-specs/smart-home/readings.yaml");
    let up = Up::start(&smart_home_app(dir.path(), "readings.yaml"), &[]);
    let api = Api::new(&up);
    let tokens = dir.path().join(".knactor/tokens");
    let (operator, sync) = (token(&tokens, "operator"), token(&tokens, "integrator-readings"));
    let energy = "/v1/logs/lamp/energy/records";
    let append = || {
        let body = Some(("application/x-ndjson", r#"{"room": "hall", "kwh": 0.1}"#));
        let appended = api.send(Method::POST, energy, Some(&operator), &[], body);
        assert_eq!(appended.status, 200, "{appended:?}");
    };
    append();

    let within = Duration::from_secs(10);
    let url = format!("{}{energy}?follow=true", api.server);
    let mut tail = api.runtime.block_on(async {
        let mut response = api.http.get(&url).bearer_auth(&sync).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let first = tokio::time::timeout(within, response.chunk()).await;
        let first = first.expect("the first record within 10 s").unwrap().expect("a record");
        assert!(String::from_utf8_lossy(&first).contains("hall"), "{first:?}");
        response
    });

    let text = std::fs::read_to_string(&spec).unwrap();
    let (motion_only, _) = text.split_once("    - name: energy").unwrap();
    let body = Some(("application/yaml", motion_only));
    let applied = api.send(Method::POST, "/v1/specs", Some(&operator), &[], body);
    assert_eq!(applied.status, 200, "{applied:?}");
    append();
    let rest = api.runtime.block_on(async {
        let rest = async {
            let mut rest = Vec::new();
            while let Some(chunk) = tail.chunk().await.unwrap() {
                rest.extend_from_slice(&chunk);
            }
            String::from_utf8(rest).unwrap()
        };
        tokio::time::timeout(within, rest).await.expect("the tail to end within 10 s")
    });
    let last: Value = serde_json::from_str(rest.lines().last().unwrap_or_default()).unwrap();
    assert_eq!(last["reason"], "Forbidden", "{rest}");
    assert_eq!(
        (&last["principal"], &last["operation"]),
        (&json!("integrator:readings"), &json!("tail"))
    );
    let metrics = api.get("/metrics", Some(&operator)).text;
    let denied = metrics.lines().find(|l| {
        l.starts_with("knactor_http_denied_total")
            && l.contains("integrator:readings")
            && l.contains("\"tail\"")
    });
    assert!(denied.is_some_and(|l| l.ends_with(" 1")), "{metrics}");
}
