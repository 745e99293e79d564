//! Upload files a crashed process left behind. An `UploadForm` file needs
//! a name while the handler runs (PHP's `tmp_name`: an application may
//! open it by path), so it can outlive a process killed before dropping it.
//! Its name says whose it is: `nene-upload.{pid}.{start}.…`, with the
//! process's start time from `/proc/{pid}/stat`, which tells a process
//! from a later one given the same pid (in a container nene is often pid 1
//! at every start). At start-up, files whose owner is no longer running
//! are deleted; files of a live process (another instance sharing the
//! directory) and files of other names are left alone.

use std::path::Path;
use std::sync::OnceLock;

/// The prefix of this process's upload files: `nene-upload.{pid}.{start}.`,
/// or, where `/proc` cannot say when the process started (not Linux),
/// `nene-upload-`, whose files are never swept.
pub(crate) fn upload_file_prefix() -> &'static str {
    static PREFIX: OnceLock<String> = OnceLock::new();
    PREFIX.get_or_init(|| {
        let pid = std::process::id();
        match process_start(pid) {
            Some(start) => format!("nene-upload.{pid}.{start}."),
            None => "nene-upload-".to_string(),
        }
    })
}

/// What the sweep removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Files removed.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// Deletes the upload files in `dir` whose owning process has stopped.
/// Errors on single files are skipped (a file another sweep removed first);
/// an unreadable directory sweeps nothing.
pub fn sweep_leftover_uploads(dir: &Path) -> Swept {
    let mut swept = Swept::default();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return swept;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some((pid, start)) = name.to_str().and_then(owner) else {
            continue;
        };
        if process_start(pid) == Some(start) {
            continue;
        }
        let bytes = entry.metadata().map_or(0, |metadata| metadata.len());
        if std::fs::remove_file(entry.path()).is_ok() {
            swept.files += 1;
            swept.bytes += bytes;
        }
    }
    swept
}

/// The owner a file name records: `nene-upload.{pid}.{start}.{random}`.
fn owner(name: &str) -> Option<(u32, u64)> {
    let mut parts = name.strip_prefix("nene-upload.")?.splitn(3, '.');
    let pid = parts.next()?.parse().ok()?;
    let start = parts.next()?.parse().ok()?;
    parts.next()?;
    Some((pid, start))
}

/// When process `pid` started, in clock ticks since boot (field 22 of
/// `/proc/{pid}/stat`); `None` when it is not running or `/proc` is absent.
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces and
    // parentheses itself: the fields after it follow the last `)`.
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Field 3 is the first after the name, so field 22 is the 20th.
    after_name.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_start_time_and_its_prefix_names_it() {
        let start = process_start(std::process::id()).expect("/proc on Linux");
        assert_eq!(
            upload_file_prefix(),
            format!("nene-upload.{}.{start}.", std::process::id())
        );
        assert_eq!(
            owner(&format!("{}abc123", upload_file_prefix())),
            Some((std::process::id(), start))
        );
    }

    #[test]
    fn only_files_of_stopped_owners_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let mine = dir.path().join(format!("{}live", upload_file_prefix()));
        // pid 4194304 is above Linux's highest (2^22), so never running.
        let dead = dir.path().join("nene-upload.4194304.12345.dead");
        // This process's pid with another start time: an earlier process
        // that had the same pid (a container's pid 1 before a restart).
        let earlier = dir
            .path()
            .join(format!("nene-upload.{}.1.earlier", std::process::id()));
        let unrelated = dir.path().join("nene-upload-oldstyle");
        let other = dir.path().join("notes.txt");
        for (path, size) in [
            (&mine, 3),
            (&dead, 5),
            (&earlier, 7),
            (&unrelated, 1),
            (&other, 1),
        ] {
            std::fs::write(path, vec![b'x'; size]).unwrap();
        }
        assert_eq!(
            sweep_leftover_uploads(dir.path()),
            Swept {
                files: 2,
                bytes: 12
            }
        );
        assert!(mine.exists() && unrelated.exists() && other.exists());
        assert!(!dead.exists() && !earlier.exists());
    }
}
