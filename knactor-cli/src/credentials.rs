//! How the CLI finds the token it sends (docs/security.md): `KNACTOR_TOKEN`, else the file of
//! `--token-file`, else the operator token of the server's app, which `knactor up` recorded for
//! its URL in a per-user directory ([`ServerRecords`]).
//!
//! A record holds the path of the token file, never the token: the token stays in the one
//! place `knactor up` keeps it (0600, in the app's data directory). It also names the `knactor
//! up` process that made it, and is used only while that process runs: the port it serves on
//! is then its own, so the token cannot go to another program that took the port after it
//! ended.

use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use knactor::private_file::write_draft;

/// The environment variable holding a token.
pub const TOKEN_ENV: &str = "KNACTOR_TOKEN";

/// The token to send to `server`: from `token_file` (`--token-file`, said explicitly), else
/// from `KNACTOR_TOKEN`, else from the operator token file that a running `knactor up`
/// recorded for `server`; `None` when there is none.
pub fn find_token(server: &str, token_file: Option<&Path>) -> anyhow::Result<Option<String>> {
    let from_env = || std::env::var(TOKEN_ENV).ok().filter(|t| !t.trim().is_empty());
    let path = match token_file {
        Some(path) => path.to_owned(),
        None => match from_env() {
            Some(token) => return Ok(Some(token.trim().to_owned())),
            None => match ServerRecords::for_user().and_then(|r| r.token_file(server)) {
                Some(path) => path,
                None => return Ok(None),
            },
        },
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading the token file {}", path.display()))?;
    Ok(Some(text.trim().to_owned()))
}

/// A process, told apart from a later one given the same id: its id and its start time (in
/// clock ticks since boot, from `/proc/PID/stat`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Process {
    id: u32,
    started: u64,
}

impl Process {
    /// This process (`None` without `/proc`).
    fn current() -> Option<Self> {
        let id = std::process::id();
        Some(Process { id, started: start_time(id)? })
    }

    /// Whether it still runs.
    fn runs(self) -> bool {
        start_time(self.id) == Some(self.started)
    }
}

/// The start time of process `id`, the 22nd field of `/proc/ID/stat` (the 20th after the
/// command's name, which is in parentheses and may hold spaces).
fn start_time(id: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{id}/stat")).ok()?;
    let (_, after_name) = stat.rsplit_once(')')?;
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// Per server URL, where its operator token is: one small file per URL in
/// `$XDG_CONFIG_HOME/knactor/servers/` (default `~/.config/knactor/servers/`), 0600 in a 0700
/// directory.
#[derive(Clone, Debug)]
pub struct ServerRecords {
    dir: PathBuf,
}

impl ServerRecords {
    /// The records of this user (`None` when neither `XDG_CONFIG_HOME` nor `HOME` is set).
    pub fn for_user() -> Option<Self> {
        let config = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".config")))?;
        Some(Self::under(&config))
    }

    /// The records under the configuration directory `config` (what `XDG_CONFIG_HOME` names).
    pub fn under(config: &Path) -> Self {
        ServerRecords { dir: config.join("knactor").join("servers") }
    }

    /// Records that the operator token of `server`, which this process serves, is in
    /// `token_file`, replacing any older record of that URL at once (a reader sees the old
    /// record or the new one).
    pub fn record(&self, server: &str, token_file: &Path) -> anyhow::Result<()> {
        let context = || format!("recording the token file in {}", self.dir.display());
        let Some(process) = Process::current() else {
            anyhow::bail!(
                "no /proc to name this process by: the CLI would not know the record is current"
            );
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .with_context(context)?;
        let path = self.path(server);
        let token_file = std::path::absolute(token_file).with_context(context)?;
        let record = format!("{}\n{} {}\n", token_file.display(), process.id, process.started);
        let draft = write_draft(&path, record.as_bytes()).with_context(context)?;
        std::fs::rename(&draft, &path).with_context(context)?;
        Ok(())
    }

    /// The token file recorded for `server`, while the process that recorded it runs; a
    /// record left by a process that ended is removed.
    pub fn token_file(&self, server: &str) -> Option<PathBuf> {
        let text = std::fs::read_to_string(self.path(server)).ok()?;
        let (token_file, process) = text.trim_end_matches('\n').rsplit_once('\n')?;
        let (id, started) = process.split_once(' ')?;
        let process = Process { id: id.parse().ok()?, started: started.parse().ok()? };
        if !process.runs() {
            let _ = std::fs::remove_file(self.path(server));
            return None;
        }
        Some(PathBuf::from(token_file))
    }

    fn path(&self, server: &str) -> PathBuf {
        self.dir.join(file_name(server))
    }
}

/// `server` (without a trailing `/`) as a file name: bytes other than letters, digits, `.`,
/// `-` and `_` as `%XX`.
fn file_name(server: &str) -> String {
    let mut name = String::new();
    for byte in server.trim_end_matches('/').bytes() {
        match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'_' => name.push(byte as char),
            other => name.push_str(&format!("%{other:02X}")),
        }
    }
    name
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn a_record_names_the_token_file_of_its_server() {
        let config = tempfile::tempdir().unwrap();
        let records = ServerRecords::under(config.path());
        assert_eq!(records.token_file("http://127.0.0.1:7700"), None);
        records.record("http://127.0.0.1:7700/", Path::new("/apps/a/operator")).unwrap();
        records.record("http://127.0.0.1:7701", Path::new("/apps/b/operator")).unwrap();
        let a = records.token_file("http://127.0.0.1:7700").unwrap();
        assert_eq!(a, Path::new("/apps/a/operator"));
        let b = records.token_file("http://127.0.0.1:7701/").unwrap();
        assert_eq!(b, Path::new("/apps/b/operator"));
        let file = config.path().join("knactor/servers/http%3A%2F%2F127.0.0.1%3A7700");
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);

        // A record whose process ended is stale (here: this id with another start time, as
        // when the id of an ended process is given to a new one).
        let text = std::fs::read_to_string(&file).unwrap();
        let (path, _) = text.trim_end().rsplit_once('\n').unwrap();
        std::fs::write(&file, format!("{path}\n{} 1\n", std::process::id())).unwrap();
        assert_eq!(records.token_file("http://127.0.0.1:7700"), None);
        assert!(!file.exists(), "the stale record is removed");
    }
}
