//! Files only their owner may read, written whole before anyone sees them: tokens, and the
//! CLI's records of where they are.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Writes `contents`, synced, to a new 0600 file beside `target` under a name no other writer
/// uses (this process's id and a counter), and returns its path: the caller then links or
/// renames it into place, so that `target` is never seen half written.
pub fn write_draft(target: &Path, contents: &[u8]) -> std::io::Result<PathBuf> {
    static DRAFTS: AtomicU64 = AtomicU64::new(0);
    let name = target.file_name().unwrap_or_default().display();
    let n = DRAFTS.fetch_add(1, Ordering::Relaxed);
    let draft = target.with_file_name(format!(".{name}.{}.{n}", std::process::id()));
    let mut file =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&draft)?;
    file.write_all(contents)?;
    file.sync_all()?;
    Ok(draft)
}
