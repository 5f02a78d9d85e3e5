//! Hostile input to the HTTP API, sent as an attacker would: each request gets a clear 4xx in
//! the API's JSON error form (docs/http-api.md) that does not echo what it was sent, nothing
//! stored changes, and the server stays healthy.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::api::{Answer, Api, assert_denied};
use crate::harness::{Up, eventually_within, hello_app, smart_home_app, try_within};

const TEXTS: &str = "/v1/stores/counter/texts/objects";

/// A running hello app, its API, and the operator's token.
struct Target {
    _dir: tempfile::TempDir,
    up: Up,
    api: Api,
    token: String,
}

impl Target {
    fn hello() -> Target {
        let dir = tempfile::tempdir().unwrap();
        let up = Up::start(&hello_app(dir.path(), false), &[]);
        let (api, token) = (Api::new(&up), up.operator_token());
        Target { _dir: dir, up, api, token }
    }

    fn send(&self, method: Method, path: &str, headers: &[(&'static str, &str)]) -> Answer {
        self.api.send(method, path, Some(&self.token), headers, None)
    }

    fn put(&self, name: &str, content_type: &str, body: Vec<u8>) -> Answer {
        let path = format!("{TEXTS}/{name}");
        self.api.send_bytes(Method::PUT, &path, Some(&self.token), &[], Some((content_type, body)))
    }

    /// The stored texts, by name and version.
    fn texts(&self) -> Vec<(String, u64)> {
        let list = self.send(Method::GET, TEXTS, &[]);
        assert_eq!(list.status, 200, "{list:?}");
        let items = list.body["items"].as_array().unwrap();
        items
            .iter()
            .map(|o| (o["name"].as_str().unwrap().into(), o["version"].as_u64().unwrap()))
            .collect()
    }

    /// Waits until the counter has counted the words of text `name`.
    fn counted(&self, name: &str) {
        crate::harness::eventually(&format!("{name} counted"), || {
            let text = self.send(Method::GET, &format!("{TEXTS}/{name}"), &[]);
            text.body["data"]["words"].is_u64().then_some(())
        });
    }

    fn healthy(&self) {
        let health = self.api.get("/healthz", None);
        assert_eq!((health.status, health.text.as_str()), (200, "ok\n"));
    }
}

/// Asserts a refusal that is short (echoes nothing large back) and in the JSON error form.
#[track_caller]
fn assert_refused(answer: &Answer, status: u16, reason: &str) {
    assert_denied(answer, status, reason);
    assert!(answer.text.len() < 1024, "a short answer, got {} bytes", answer.text.len());
}

#[test]
fn malformed_bodies_are_refused_and_change_nothing() {
    let target = Target::hello();
    let json = "application/json";
    let stored = target.put("a", json, br#"{"data": {"text": "one two"}}"#.to_vec());
    assert_eq!(stored.status, 200, "{stored:?}");
    target.counted("a");
    let before = target.texts();
    let deep = format!(
        r#"{{"data": {{"text": "x", "n": {}1{}}}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let mut invalid_utf8 = br#"{"data": {"text": "caf"#.to_vec();
    invalid_utf8.extend([0xC3, 0x28]);
    invalid_utf8.extend(br#""}}"#);
    let cases: [(&str, &str, Vec<u8>, u16, &str); 6] = [
        ("truncated JSON", json, br#"{"data": {"text": "#.to_vec(), 400, "BadRequest"),
        (
            "a form",
            "application/x-www-form-urlencoded",
            b"data=1".to_vec(),
            415,
            "UnsupportedMediaType",
        ),
        ("nested 10,000 deep", json, deep.into_bytes(), 400, "BadRequest"),
        (
            "a number past f64",
            json,
            br#"{"data": {"text": "x", "words": 1e400}}"#.to_vec(),
            400,
            "BadRequest",
        ),
        ("invalid UTF-8", json, invalid_utf8, 400, "BadRequest"),
        (
            "an unknown field",
            json,
            br#"{"data": {"text": "x"}, "owner": "me"}"#.to_vec(),
            400,
            "BadRequest",
        ),
    ];
    for (what, content_type, body, status, reason) in cases {
        let answer = target.put("b", content_type, body);
        assert_eq!(answer.status, status, "{what}: {answer:?}");
        assert_refused(&answer, status, reason);
    }
    // A body that says it is 3 MiB is refused before it is read.
    let path = format!("{TEXTS}/b");
    let large = target.api.raw("PUT", &path, &target.token, br#"{"data": {"text": ""#, 3 << 20);
    assert_refused(&large, 413, "TooLarge");
    // Past i64 but within f64, an integer is a JSON number like any other: `words` must be
    // an integer of the schema, and is.
    let big = target.put(
        "c",
        json,
        br#"{"data": {"text": "x", "words": 18446744073709551616}}"#.to_vec(),
    );
    assert!(big.status == 200 || big.status == 422, "{big:?}");
    if big.status == 200 {
        target.send(Method::DELETE, &format!("{TEXTS}/c"), &[]);
    }
    assert_eq!(target.texts().len(), before.len(), "nothing else was stored");
    assert!(target.texts().contains(&before[0]), "a unchanged");
    target.healthy();
}

#[test]
fn bad_names_preconditions_routes_and_versions_get_clear_errors() {
    let target = Target::hello();
    let json = "application/json";
    let body = || br#"{"data": {"text": "one"}}"#.to_vec();
    assert_eq!(target.put("a", json, body()).status, 200);
    target.counted("a");
    let before = target.texts();
    let long = "n".repeat(10_000);
    for name in [".", "..", "%2E%2E", "a%00b", "a%2Fb", &long] {
        let path = format!("{TEXTS}/{name}");
        let answer = target.api.raw("PUT", &path, &target.token, &body(), body().len());
        assert_refused(&answer, 400, "BadRequest");
    }
    let put = |headers: &[(&'static str, &str)]| {
        let path = format!("{TEXTS}/a");
        let body = Some((json, r#"{"data": {"text": "two"}}"#));
        target.api.send(Method::PUT, &path, Some(&target.token), headers, body)
    };
    for header in
        [("if-none-match", "5"), ("if-match", "abc"), ("if-match", "99999999999999999999")]
    {
        assert_refused(&put(&[header]), 400, "BadRequest");
    }
    // Create-only is for a PUT: a DELETE of something missing with it once broke the store.
    for name in ["a", "missing"] {
        let path = format!("{TEXTS}/{name}");
        let delete = target.send(Method::DELETE, &path, &[("if-none-match", "*")]);
        assert_refused(&delete, 400, "BadRequest");
    }
    assert_eq!(target.send(Method::GET, &format!("{TEXTS}/a"), &[]).status, 200, "store alive");
    // Not quietly ignored: this would delete the live spec, not its shadow.
    let ignored = target.send(Method::DELETE, "/v1/specs/x?shadow=true", &[]);
    assert_refused(&ignored, 400, "BadRequest");
    let unknown = target.send(Method::GET, &format!("{TEXTS}?wacth=true"), &[]);
    assert_refused(&unknown, 400, "BadRequest");
    assert!(unknown.body["error"].as_str().unwrap().contains("wacth"), "{unknown:?}");
    let ahead = target.send(Method::GET, &format!("{TEXTS}?watch=true&version=999999"), &[]);
    assert_refused(&ahead, 400, "BadRequest");
    assert!(ahead.body["error"].as_str().unwrap().contains("ahead"), "{ahead:?}");
    assert_refused(&target.send(Method::GET, "/v1/nowhere", &[]), 404, "NotFound");
    let not_allowed = target.send(Method::DELETE, "/v1/version", &[]);
    assert_refused(&not_allowed, 405, "MethodNotAllowed");
    assert_eq!(not_allowed.headers["allow"], "GET,HEAD", "RFC 9110: a 405 says what is allowed");
    assert_eq!(target.texts(), before, "nothing changed");
    target.healthy();
}

/// The resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// What each file process `pid` holds open is (connections included), sorted.
fn open_files(pid: u32) -> Vec<String> {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap();
    let mut files: Vec<String> = fds
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .map(|target| target.display().to_string())
        .collect();
    files.sort();
    files
}

#[test]
fn a_thousand_watches_opened_and_dropped_leave_the_server_as_it_was() {
    let target = Target::hello();
    let pid = target.up.pid();
    let url = format!("{}{TEXTS}?watch=true", target.api.server);
    let open = |count: usize| {
        target.api.runtime.block_on(async {
            let watches =
                (0..count).map(|_| target.api.http.get(&url).bearer_auth(&target.token).send());
            let watches = futures::future::join_all(watches).await;
            let open = watches.iter().filter(|w| w.as_ref().is_ok_and(|w| w.status() == 200));
            assert_eq!(open.count(), count, "every watch opened");
            // Dropped here, each with its connection.
        })
    };
    // `knactor up` says where it serves before the API's runtime has started: an answer
    // shows it has, so that its files are counted in the baseline.
    target.healthy();
    let files = open_files(pid);
    // No change comes: each watch ends when its connection does, not at the next change.
    let round = || {
        open(1_000);
        let mut now = Vec::new();
        let closed = || {
            now = open_files(pid);
            (now.len() <= files.len() + 2).then_some(())
        };
        if try_within(Duration::from_secs(20), closed).is_none() {
            panic!("the watches' connections are still open: {now:?}, against {files:?} before");
        }
        rss_kib(pid)
    };
    let (first, second) = (round(), round());
    target.healthy();
    let wrote =
        target.put("after", "application/json", br#"{"data": {"text": "still here"}}"#.to_vec());
    assert_eq!(wrote.status, 200, "{wrote:?}");
    // The allocator keeps what the first round freed, for the next: a second round takes no
    // more.
    assert!(
        second < first + (16 << 10),
        "RSS {first} KiB after 1,000 watches, {second} after 2,000"
    );
}

/// A Cast spec for the hello app whose one edge has condition `when`.
fn spec_with(when: &str) -> String {
    let when = serde_json::to_string(when).unwrap();
    format!(
        "apiVersion: knactor.dev/v1\nkind: Cast\nmetadata: {{name: hostile}}\nspec:\n  inputs: {{t: counter/texts, g: greeter/greetings}}\n  edges:\n    - name: e\n      from: [t]\n      to: g\n      when: {when}\n      set: {{name: t.text}}\n"
    )
}

#[test]
fn specs_that_would_crash_or_pin_the_server_are_refused_at_apply() {
    let target = Target::hello();
    let apply = |text: String| {
        let body = Some(("application/yaml", text.as_str()));
        target.api.send(Method::POST, "/v1/specs?file=hostile.yaml", Some(&target.token), &[], body)
    };
    let hundred = format!("[{}]", vec!["1"; 101].join(","));
    let cases = [
        // 27 KB of `+`: parsing or evaluating it would overflow a worker's stack.
        (spec_with(&vec!["t.text"; 3_000].join(" + ")), "more than the 4096 allowed"),
        (spec_with(&vec!["t"; 600].join("+")), "more than the 512 allowed"),
        (spec_with(&format!("t // '\n{}// '", "+ t ".repeat(600))), "more than the 512 allowed"),
        (spec_with(&format!("t{}", " in t".repeat(600))), "more than the 512 allowed"),
        (
            spec_with(&format!("{hundred}.all(x, {hundred}.all(y, {hundred}.all(z, x == y)))")),
            "iterations",
        ),
        (spec_with("t.all(a, t.all(b, t.all(c, t.all(d, true))))"), "nests 4 loops"),
        (spec_with("t.text.matches('[')"), "invalid `matches` pattern"),
        (
            format!(
                "apiVersion: knactor.dev/v1\nkind: Cast\nspec: {}1{}\n",
                "[".repeat(20_000),
                "]".repeat(20_000)
            ),
            "nested deeper than 100 levels",
        ),
    ];
    for (spec, refusal) in cases {
        let answer = apply(spec);
        assert_eq!(answer.status, 422, "{answer:?}");
        let said = answer.text.to_string();
        assert!(said.contains(refusal), "{refusal}: {said:.600}");
        assert!(said.contains("hostile.yaml:"), "located: {said:.600}");
        assert!(said.len() < 4096, "the answer does not echo the spec: {} bytes", said.len());
    }
    let specs = target.send(Method::GET, "/v1/specs", &[]);
    assert_eq!(specs.body, json!({"specs": []}), "none runs");
    target.healthy();
}

#[test]
fn a_log_record_with_a_time_out_of_range_is_refused_and_the_store_still_reads() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(&smart_home_app(dir.path(), "*.yaml"), &["--no-integrators"]);
    let (api, token) = (Api::new(&up), up.operator_token());
    let records = "/v1/logs/motion/readings/records";
    let append = |line: Value| {
        let body = Some(("application/x-ndjson", line.to_string()));
        let body = body.as_ref().map(|(t, b)| (*t, b.as_str()));
        api.send(Method::POST, records, Some(&token), &[], body)
    };
    let good = append(json!({"room": "hall", "triggered": true}));
    assert_eq!(good.status, 200, "{good:?}");
    let far = append(json!({"room": "hall", "triggered": true, "ts": -99_999_999_999_999_999i64}));
    assert_refused(&far, 422, "Invalid");
    assert!(far.text.contains("years 1 to 9999"), "{far:?}");
    let tail = api.get(records, Some(&token));
    assert_eq!(tail.status, 200, "{tail:?}");
    let lines: Vec<Value> = tail.text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1, "only the good record: {}", tail.text);
}

/// `/healthz` says when the exchange does not answer (Redis down), and recovers with it.
#[test]
fn the_health_check_says_when_redis_is_down() {
    let mut redis = data_exchange::testing::RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(&hello_app(dir.path(), false), &["--exchange", &redis.url()]);
    let api = Api::new(&up);
    assert_eq!(api.get("/healthz", None).status, 200);
    redis.kill();
    let down = api.get("/healthz", None);
    assert_refused(&down, 503, "Unavailable");
    assert_eq!(down.body["error"], "the exchange does not answer", "no detail to anyone");
    redis.restart();
    eventually_within(Duration::from_secs(20), "healthz ok again", || {
        (api.get("/healthz", None).status == 200).then_some(())
    });
}
