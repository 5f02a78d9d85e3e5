//! The web console at `/ui`, in headless Chromium driven by Playwright (tests/console): it
//! refuses a bad token, draws the retail app's graph, shows an order as it flows, opens and
//! follows its provenance, says when the server is gone and when it is back, forgets the
//! session at sign-out, and shows a viewer the graph but no objects.

use std::io::{BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::Method;

use crate::api::Api;
use crate::harness::{Lines, Up, knactor, repo, retail_app};

/// The browser the test drives: `KNACTOR_CHROMIUM`, else Debian's (scripts/setup installs it).
fn chromium() -> String {
    std::env::var("KNACTOR_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned())
}

#[test]
fn the_console_shows_an_order_flow_and_its_provenance_in_a_browser() {
    let installed = Command::new(repo().join("scripts/playwright")).output().unwrap();
    assert!(installed.status.success(), "scripts/playwright: {installed:?}");
    let playwright = String::from_utf8(installed.stdout).unwrap().trim().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let app = retail_app(dir.path());
    // `--keep`: the order stays once completed (retention would collect it), to be opened.
    let mut up = Some(Up::start(&app, &["--keep"]));
    let server = up.as_ref().unwrap().server.clone();
    let token = up.as_ref().unwrap().operator_token();
    let viewer = std::fs::read_to_string(app.join(".knactor/tokens/viewer")).unwrap();
    // The page's own files: served without a token, and with a policy that runs no inline
    // script and loads nothing from elsewhere.
    let page = Api::new(up.as_ref().unwrap()).send(Method::GET, "/ui", None, &[], None);
    assert_eq!(page.status, 200, "{page:?}");
    let policy = page.headers["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("script-src 'self'") && policy.contains("connect-src 'self'"));
    assert!(page.text.contains("/ui/console.js"), "{}", page.text);

    let shots = tempfile::tempdir().unwrap();
    // The token goes in the environment, never on a command line.
    let mut browser = Command::new("node")
        .arg(repo().join("tests/console/console.mjs"))
        .env("KNACTOR_URL", &server)
        .env("KNACTOR_TOKEN", &token)
        .env("KNACTOR_VIEWER_TOKEN", viewer.trim())
        .env("PLAYWRIGHT_CORE", &playwright)
        .env("CHROMIUM", chromium())
        .env("SCREENSHOTS", shots.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node runs the browser test (scripts/setup installs Node.js's packages)");
    let mut answer = browser.stdin.take().unwrap();
    let asks = Lines::of(BufReader::new(browser.stdout.take().unwrap()));
    let listen = server.trim_start_matches("http://").to_owned();
    loop {
        let line = asks.try_next(Duration::from_secs(120));
        match line.as_deref() {
            Some("stop") => up.take().unwrap().kill(),
            Some("start") => up = Some(Up::start_on(knactor(), &listen, &app, &["--keep"])),
            Some("done") => break,
            Some(other) => panic!("the browser test said {other:?}"),
            None => {
                let _ = browser.kill();
                let status = browser.wait().unwrap();
                panic!("the browser test stopped ({status}) before it was done: see its stderr");
            }
        }
        writeln!(answer, "{} done", line.unwrap()).unwrap();
    }
    drop(answer); // Its end of stdin: the script's last read returns.
    assert!(browser.wait().unwrap().success());
    for shot in ["console.png", "console-why.png"] {
        let size = std::fs::metadata(shots.path().join(shot)).map(|m| m.len()).unwrap_or(0);
        assert!(size > 10_000, "{shot}: {size} bytes");
    }
    if let Ok(keep) = std::env::var("KNACTOR_CONSOLE_SHOTS") {
        for shot in ["console.png", "console-why.png"] {
            std::fs::copy(shots.path().join(shot), std::path::Path::new(&keep).join(shot)).unwrap();
        }
    }
}
