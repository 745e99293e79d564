//! The SQLite session database holds every session id and its data: it is
//! created readable by nene alone (0600; SQLite gives its `-wal` and `-shm`
//! files the database's mode), and a database file, `-wal` or `-shm` that
//! others may read stops start-up, as a save_path others can enter does for
//! file sessions. An error, not a warning: a warning in a start-up log is
//! easily missed while every session stays exposed, and one `chmod` fixes it.

use std::fs::OpenOptions;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Creates `path` (0600) when it does not exist and its directory does, and
/// checks that it and its `-wal` and `-shm` files are private. The message
/// names the file and the command that fixes it.
pub(super) fn make_private(path: &Path) -> Result<(), String> {
    let shown = path.display();
    let parent_exists = path
        .parent()
        .is_none_or(|parent| parent.as_os_str().is_empty() || parent.is_dir());
    if parent_exists {
        // Fails with AlreadyExists after the first start; any other failure
        // (a directory nene cannot write) sqlx reports on the first
        // statement, a 503, as it always did.
        let _ = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path);
    }
    for file in [
        path.to_path_buf(),
        with_suffix(path, "-wal"),
        with_suffix(path, "-shm"),
    ] {
        let Ok(metadata) = std::fs::metadata(&file) else {
            continue;
        };
        let mode = metadata.mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "the SQLite session database {} has mode {mode:04o}; it holds session ids and their data, \
                 so it must be readable by nene alone: chmod 0600 {shown} {shown}-wal {shown}-shm",
                file.display()
            ));
        }
    }
    Ok(())
}

/// `path` with `suffix` appended to its file name, as SQLite names its
/// side files.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}
