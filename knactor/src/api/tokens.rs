//! The API's principals and their bearer tokens (docs/security.md).
//!
//! Each principal has one random 256-bit token, kept in a file of its own (mode 0600) in a
//! directory only its owner can enter (0700): `operator`, `viewer`, `knactor-NAME` and
//! `integrator-SPEC`. Tokens are created at the app's first start and reused after.

use std::fmt;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use crate::private_file::write_draft;
use subtle::ConstantTimeEq as _;

/// Who sends a request.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Principal {
    /// May do everything, including applying specs (the CLI).
    Operator,
    /// Lists stores and their schemas, never objects or records.
    Viewer,
    /// Reads and writes the stores of the knactor of this name, and nothing else.
    Knactor(String),
    /// Reads and writes the stores and fields of the Cast spec of this name, as its running
    /// version's edges do, and nothing else.
    Integrator(String),
}

impl Principal {
    /// The name of the file holding this principal's token.
    pub fn file_name(&self) -> String {
        match self {
            Principal::Operator => "operator".to_owned(),
            Principal::Viewer => "viewer".to_owned(),
            Principal::Knactor(name) => format!("knactor-{name}"),
            Principal::Integrator(name) => format!("integrator-{name}"),
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::Operator => f.write_str("operator"),
            Principal::Viewer => f.write_str("viewer"),
            Principal::Knactor(name) => write!(f, "knactor:{name}"),
            Principal::Integrator(name) => write!(f, "integrator:{name}"),
        }
    }
}

/// Why the tokens could not be read or created.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// A file or directory could not be read, written or created.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// A token file holds something other than a token.
    #[error("{}: not a knactor token (64 hex digits); remove it to get a new one", .0.display())]
    Malformed(PathBuf),
    /// The system's random source failed.
    #[error("no random bytes for a token: {0}")]
    Random(String),
}

/// The tokens of an app's principals.
#[derive(Clone)]
pub struct Tokens {
    entries: Vec<(Principal, String)>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the tokens themselves.
        let principals: Vec<String> = self.entries.iter().map(|(p, _)| p.to_string()).collect();
        f.debug_struct("Tokens").field("principals", &principals).finish()
    }
}

impl Tokens {
    /// The tokens of the operator, the viewer and each of `app` (its knactors and
    /// integrators), read from `dir`, or created there when missing (`dir` 0700, each file
    /// 0600). Safe against another process doing the same at the same time: a token file
    /// appears whole or not at all.
    pub fn load_or_create(
        dir: &Path,
        app: impl IntoIterator<Item = Principal>,
    ) -> Result<Tokens, TokenError> {
        private_dir(dir)?;
        let mut entries = Vec::new();
        for principal in principals(app) {
            let path = dir.join(principal.file_name());
            let token = match read_token(&path)? {
                Some(token) => token,
                None => create_token(&path)?,
            };
            entries.push((principal, token));
        }
        Ok(Tokens { entries })
    }

    /// The secret kept in `dir/name` (e.g. a Redis password), read, or created there when
    /// missing, like a token (`dir` 0700, the file 0600).
    pub fn secret(dir: &Path, name: &str) -> Result<String, TokenError> {
        private_dir(dir)?;
        let path = dir.join(name);
        match read_token(&path)? {
            Some(secret) => Ok(secret),
            None => create_token(&path),
        }
    }

    /// Fresh tokens for the operator, the viewer and each of `app`, kept in memory only (for
    /// an app whose API nobody outside the process calls).
    pub fn ephemeral(app: impl IntoIterator<Item = Principal>) -> Result<Tokens, TokenError> {
        let entries = principals(app)
            .map(|principal| Ok((principal, random_token()?)))
            .collect::<Result<_, TokenError>>()?;
        Ok(Tokens { entries })
    }

    /// The principal whose token `presented` is. Compares with every token, each in constant
    /// time, so that how long it takes tells nothing about any token.
    pub fn principal(&self, presented: &str) -> Option<&Principal> {
        let mut found = None;
        for (principal, token) in &self.entries {
            if bool::from(token.as_bytes().ct_eq(presented.as_bytes())) {
                found = Some(principal);
            }
        }
        found
    }

    /// The token of `principal`, if it is one of the app's.
    pub fn token(&self, principal: &Principal) -> Option<&str> {
        self.entries.iter().find(|(p, _)| p == principal).map(|(_, t)| t.as_str())
    }
}

/// Creates `dir` (and its parents) if missing, and makes it 0700.
fn private_dir(dir: &Path) -> Result<(), TokenError> {
    let io = |source| TokenError::Io { path: dir.to_owned(), source };
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)
}

/// The operator, the viewer, then `app`'s principals.
fn principals(app: impl IntoIterator<Item = Principal>) -> impl Iterator<Item = Principal> {
    [Principal::Operator, Principal::Viewer].into_iter().chain(app)
}

/// 256 random bits from the operating system's CSPRNG, as 64 hex digits.
fn random_token() -> Result<String, TokenError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| TokenError::Random(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn is_token(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The token in `path`, made 0600 if it was not; `None` when there is no such file.
fn read_token(path: &Path) -> Result<Option<String>, TokenError> {
    let io = |source| TokenError::Io { path: path.to_owned(), source };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    let token = text.trim();
    if !is_token(token) {
        return Err(TokenError::Malformed(path.to_owned()));
    }
    let mode = std::fs::metadata(path).map_err(io)?.permissions().mode();
    if mode & 0o077 != 0 {
        tracing::warn!(
            file = %path.display(),
            "the token file was readable by others; it is now 0600 (remove it for a new token)"
        );
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    Ok(Some(token.to_owned()))
}

/// Writes a new token to `path`, unless another process just did: then that one is read.
fn create_token(path: &Path) -> Result<String, TokenError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| TokenError::Io { path, source }
    };
    let token = random_token()?;
    // Written whole under a name of its own, then linked into place: linking fails if the file
    // exists, so two processes starting at once agree on one token.
    let draft = write_draft(path, format!("{token}\n").as_bytes()).map_err(io(path))?;
    let linked = std::fs::hard_link(&draft, path);
    std::fs::remove_file(&draft).map_err(io(&draft))?;
    match linked {
        Ok(()) => Ok(token),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            read_token(path)?.ok_or_else(|| TokenError::Malformed(path.to_owned()))
        }
        Err(e) => Err(io(path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn knactors(names: &[&str]) -> Vec<Principal> {
        names.iter().map(|n| Principal::Knactor((*n).to_owned())).collect()
    }

    #[test]
    fn tokens_are_created_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path().join("tokens");
        let first = Tokens::load_or_create(&dir, knactors(&["a", "b"])).unwrap();
        let again = Tokens::load_or_create(&dir, knactors(&["a", "b"])).unwrap();
        for principal in [Principal::Operator, Principal::Viewer, Principal::Knactor("b".into())] {
            let token = first.token(&principal).unwrap();
            assert!(is_token(token));
            assert_eq!(again.token(&principal), Some(token));
            assert_eq!(first.principal(token), Some(&principal));
            let mode = std::fs::metadata(dir.join(principal.file_name())).unwrap().permissions();
            assert_eq!(mode.mode() & 0o777, 0o600);
        }
        assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        assert_ne!(first.token(&Principal::Operator), first.token(&Principal::Viewer));
        assert_eq!(first.principal("not-a-token"), None);
        assert_eq!(first.principal(""), None);
        // A knactor no longer in the app has no token any more.
        let fewer = Tokens::load_or_create(&dir, knactors(&["a"])).unwrap();
        let b = first.token(&Principal::Knactor("b".into())).unwrap();
        assert_eq!(fewer.principal(b), None);
    }

    #[test]
    fn a_loose_token_file_is_tightened_and_junk_refused() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = Tokens::load_or_create(dir.path(), []).unwrap();
        let viewer = dir.path().join("viewer");
        std::fs::set_permissions(&viewer, std::fs::Permissions::from_mode(0o644)).unwrap();
        let again = Tokens::load_or_create(dir.path(), []).unwrap();
        assert_eq!(again.token(&Principal::Viewer), tokens.token(&Principal::Viewer));
        assert_eq!(std::fs::metadata(&viewer).unwrap().permissions().mode() & 0o777, 0o600);
        std::fs::write(&viewer, "hunter2\n").unwrap();
        let error = Tokens::load_or_create(dir.path(), []).unwrap_err();
        assert!(matches!(error, TokenError::Malformed(_)), "{error}");
    }
}
