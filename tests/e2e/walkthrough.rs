//! docs/walkthrough.md, run as written: the app its `knactor up` line names, then each
//! `$ knactor ...` line of its examples, whose output must be the lines shown under it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{Up, knactor, repo};

/// A command of the page and what it prints: diagnostics and errors on stderr, the rest on
/// stdout.
struct Step {
    command: String,
    stdout: Vec<String>,
    stderr: Vec<String>,
}

/// Whether a line of output is one `knactor` prints on stderr.
fn is_stderr(line: &str) -> bool {
    line.starts_with("error:") || line.contains(": warning: ") || line.contains(": error: ")
}

/// The app directory of the page's `knactor up DIR` line, and its steps.
fn read_page(text: &str) -> (String, Vec<Step>) {
    let up = text.lines().find_map(|l| l.trim().strip_prefix("knactor up "));
    let app = up.expect("a `knactor up DIR` line").split_whitespace().next().unwrap().to_owned();
    let mut steps: Vec<Step> = Vec::new();
    // Inside a block: whether it is an example (a block without a language).
    let mut block: Option<bool> = None;
    for line in text.lines() {
        if line.starts_with("```") {
            block = match block {
                Some(_) => None,
                None => Some(line == "```"),
            };
            continue;
        }
        if block != Some(true) {
            continue;
        }
        if let Some(command) = line.strip_prefix("$ knactor ") {
            let command = command.to_owned();
            steps.push(Step { command, stdout: Vec::new(), stderr: Vec::new() });
        } else if let Some(step) = steps.last_mut() {
            let stream = if is_stderr(line) { &mut step.stderr } else { &mut step.stdout };
            stream.push(line.to_owned());
        }
    }
    (app, steps)
}

/// A copy of the app at `app` (relative to the repository) in `root`: its manifest, beside the
/// rest of its parent directory, linked, so that the tokens `knactor up` keeps there stay out
/// of the repository.
fn app_copy(root: &Path, app: &str) -> PathBuf {
    let (original, copy) = (repo().join(app), root.join(app));
    std::fs::create_dir_all(&copy).unwrap();
    std::fs::copy(original.join("app.yaml"), copy.join("app.yaml")).unwrap();
    for sibling in std::fs::read_dir(original.parent().unwrap()).unwrap() {
        let sibling = sibling.unwrap().path();
        if sibling != original {
            let link = copy.parent().unwrap().join(sibling.file_name().unwrap());
            std::os::unix::fs::symlink(&sibling, link).unwrap();
        }
    }
    copy
}

fn lines(bytes: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(bytes).lines().map(str::to_owned).collect()
}

#[test]
fn the_walkthrough_runs_as_written() {
    let text = std::fs::read_to_string(repo().join("docs/walkthrough.md")).unwrap();
    let (app, steps) = read_page(&text);
    assert!(steps.len() >= 10, "the page's examples: {} commands", steps.len());
    let root = tempfile::tempdir().unwrap();
    let up = Up::start(&app_copy(root.path(), &app), &[]);
    for step in steps {
        let args: Vec<&str> = step.command.split_whitespace().collect();
        // What an order's reconcilers do takes a moment: a `get` is read again until it shows.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut command: Command = knactor();
            let out = command
                .current_dir(repo())
                .args(&args)
                .args(["--server", &up.server])
                .output()
                .unwrap();
            let (stdout, stderr) = (lines(&out.stdout), lines(&out.stderr));
            if stdout == step.stdout && stderr == step.stderr {
                break;
            }
            assert!(
                args[0] == "get" && Instant::now() < deadline,
                "`knactor {}` printed\n{}\n{}\nwhere docs/walkthrough.md shows\n{}\n{}",
                step.command,
                stdout.join("\n"),
                stderr.join("\n"),
                step.stdout.join("\n"),
                step.stderr.join("\n"),
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
