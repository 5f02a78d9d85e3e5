//! Runs the `knactor` binary: `knactor up` as a server process, and CLI commands against it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The binary under test, with a configuration directory of the tests' own: `knactor up`
/// records there where its operator token is, and the CLI finds it there.
pub(crate) fn knactor() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_knactor"));
    command.env("RUST_LOG", "warn").env("XDG_CONFIG_HOME", config_home());
    command.env_remove("KNACTOR_TOKEN").env_remove("KNACTOR_TOKEN_FILE");
    command.env_remove("OTEL_EXPORTER_OTLP_ENDPOINT");
    command
}

/// The `XDG_CONFIG_HOME` of every `knactor` the tests run.
pub(crate) fn config_home() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-config")
}

/// The repository's root.
pub(crate) fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

/// Writes an app directory for `apps/hello`'s knactors, with its data in `dir/data` when
/// `durable`.
pub(crate) fn hello_app(dir: &Path, durable: bool) -> PathBuf {
    let knactors = repo().join("apps/hello/knactors/*.yaml");
    let data_dir = if durable { "dataDir: data\n  " } else { "" };
    let manifest = format!(
        "apiVersion: knactor.dev/v1\nkind: App\nmetadata:\n  name: hello\nspec:\n  {data_dir}knactors: [{}]\n",
        knactors.display()
    );
    std::fs::write(dir.join("app.yaml"), manifest).unwrap();
    dir.to_owned()
}

/// Writes an app directory for `apps/smart-home`'s knactors, with the specs `specs` of
/// `dxg-specs/smart-home/` (a file name or a glob) as its integrators.
pub(crate) fn smart_home_app(dir: &Path, specs: &str) -> PathBuf {
    let manifest = format!(
        "apiVersion: knactor.dev/v1\nkind: App\nmetadata:\n  name: smart-home\nspec:\n  knactors: [{}]\n  integrators: [{}]\n",
        repo().join("apps/smart-home/knactors/*.yaml").display(),
        repo().join("dxg-specs/smart-home").join(specs).display()
    );
    std::fs::write(dir.join("app.yaml"), manifest).unwrap();
    dir.to_owned()
}

/// Writes an app directory for `apps/retail`'s knactors, with `dxg-specs/retail/` as its
/// integrators.
pub(crate) fn retail_app(dir: &Path) -> PathBuf {
    let knactors = repo().join("apps/retail/knactors/*.yaml");
    let specs = repo().join("dxg-specs/retail/*.yaml");
    let policies = repo().join("apps/retail/policies.yaml");
    let manifest = format!(
        "apiVersion: knactor.dev/v1\nkind: App\nmetadata:\n  name: retail\nspec:\n  knactors: [{}]\n  integrators: [{}]\n  policies: [{}]\n",
        knactors.display(),
        specs.display(),
        policies.display()
    );
    std::fs::write(dir.join("app.yaml"), manifest).unwrap();
    dir.to_owned()
}

/// A running `knactor up`, killed on drop.
#[derive(Debug)]
pub(crate) struct Up {
    child: Child,
    /// The API's URL, as `up` printed it.
    pub(crate) server: String,
    /// The first line it printed.
    pub(crate) banner: String,
}

impl Up {
    /// Starts `knactor up APP_DIR EXTRA...` on a free port and waits until it serves.
    pub(crate) fn start(app_dir: &Path, extra: &[&str]) -> Up {
        Up::start_as(knactor(), app_dir, extra)
    }

    /// [`Up::start`] with `command` (`knactor` with an environment of its own).
    pub(crate) fn start_as(command: Command, app_dir: &Path, extra: &[&str]) -> Up {
        Up::start_on(command, "127.0.0.1:0", app_dir, extra)
    }

    /// [`Up::start_as`] listening on `listen`.
    pub(crate) fn start_on(
        mut command: Command,
        listen: &str,
        app_dir: &Path,
        extra: &[&str],
    ) -> Up {
        command.arg("up").arg(app_dir).args(["--listen", listen]).args(extra);
        Up::spawn_server(command, " serving on ")
    }

    /// Starts `knactor integrate ARGS...` and waits until it runs; `server` is left empty.
    pub(crate) fn integrate(args: &[&str]) -> Up {
        Up::integrate_as(knactor(), args)
    }

    /// [`Up::integrate`] with `command` (`knactor` with an environment of its own).
    pub(crate) fn integrate_as(mut command: Command, args: &[&str]) -> Up {
        command.arg("integrate").args(args);
        Up::spawn_server(command, "knactor: integrating")
    }

    /// Spawns a long-running command and reads its first stdout line, which must contain
    /// `ready`; what follows ` serving on ` is the server's URL.
    fn spawn_server(mut command: Command, ready: &str) -> Up {
        // Its stderr is the test's, unless `command` sends it elsewhere.
        let mut child = command.stdout(Stdio::piped()).spawn().expect("spawn knactor up");
        let stdout = Lines::of(BufReader::new(child.stdout.take().unwrap()));
        let line = stdout.next_within(Duration::from_secs(120), "the process's first line");
        assert!(line.contains(ready), "the process did not start: {line:?}");
        let server = line.trim().rsplit_once(" serving on ").map(|(_, url)| url.to_owned());
        Up { child, server: server.unwrap_or_default(), banner: line }
    }

    /// The operator token, found where `knactor up` recorded it, as the CLI finds it.
    pub(crate) fn operator_token(&self) -> String {
        let records = knactor_cli::credentials::ServerRecords::under(&config_home());
        let file = records.token_file(&self.server).expect("knactor up recorded its token file");
        std::fs::read_to_string(file).unwrap().trim().to_owned()
    }

    /// A client of the API with the operator's token.
    pub(crate) fn client(&self) -> knactor_cli::client::Client {
        knactor_cli::client::Client::new(&self.server).with_token(Some(self.operator_token()))
    }

    /// Runs `knactor ARGS --server URL` to completion.
    pub(crate) fn cli(&self, args: &[&str]) -> Output {
        knactor().args(args).args(["--server", &self.server]).output().unwrap()
    }

    /// Runs a CLI command that must succeed, and returns its stdout.
    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let output = self.cli(args);
        assert!(
            output.status.success(),
            "knactor {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Starts a long-running CLI command (e.g. `get --watch`) with its stdout piped.
    pub(crate) fn spawn(&self, args: &[&str]) -> (Child, Lines) {
        self.spawn_as(knactor(), args)
    }

    /// [`Up::spawn`] with `command` (`knactor` with its stderr sent elsewhere, say).
    pub(crate) fn spawn_as(&self, mut command: Command, args: &[&str]) -> (Child, Lines) {
        let mut child = command
            .args(args)
            .args(["--server", &self.server])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = Lines::of(BufReader::new(child.stdout.take().unwrap()));
        (child, stdout)
    }

    /// The process id of the server.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the server with SIGKILL.
    pub(crate) fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub(crate) fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "knactor up did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The lines a process prints, read as they come by a thread of their own (to the end, so that
/// the process never writes to a closed pipe), so that a test waits for each with a deadline.
#[derive(Debug)]
pub(crate) struct Lines(mpsc::Receiver<String>);

impl Lines {
    pub(crate) fn of(reader: impl BufRead + Send + 'static) -> Lines {
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in reader.lines().map_while(Result::ok) {
                let _ = send.send(line);
            }
        });
        Lines(lines)
    }

    /// The next line, if one comes within `patience`.
    pub(crate) fn try_next(&self, patience: Duration) -> Option<String> {
        self.0.recv_timeout(patience).ok()
    }

    /// The next line; fails the test, naming `what`, when none comes within `patience`.
    pub(crate) fn next_within(&self, patience: Duration, what: &str) -> String {
        match self.0.recv_timeout(patience) {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("no {what} within {patience:?}"),
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!("no {what}: the output ended"),
        }
    }
}

/// Writes `text` to `dir/name` and returns the path as a string.
pub(crate) fn file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

/// Retries `check` until it returns `Some`, failing after 10 s.
pub(crate) fn eventually<T>(what: &str, check: impl FnMut() -> Option<T>) -> T {
    eventually_within(Duration::from_secs(10), what, check)
}

/// [`eventually`] with a deadline of `patience`.
pub(crate) fn eventually_within<T>(
    patience: Duration,
    what: &str,
    check: impl FnMut() -> Option<T>,
) -> T {
    try_within(patience, check).unwrap_or_else(|| panic!("timed out waiting for {what}"))
}

/// Polls `check` until it gives a value, or `None` once `patience` has passed.
pub(crate) fn try_within<T>(patience: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + patience;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
