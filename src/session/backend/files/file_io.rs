//! File I/O that trusts nothing in the directory: open without following
//! links and without blocking, use only regular files nene owns with one
//! link, replace a session whole (temp file and rename), and refuse a
//! save_path others can enter.

use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::session::backend::{Stored, Unreadable};

use super::paths::SessionFiles;

/// Refuses a save_path that anyone but nene can read or enter. The file
/// names there are the session ids: a directory listing is a list of
/// sessions to take over, and write access lets anyone plant sessions. This
/// is an error and not a warning because a warning in a start-up log is
/// easily missed while every session would stay exposed; one `chmod` fixes
/// it for good.
pub(super) fn check_private(save_path: &Path, metadata: &fs::Metadata) -> io::Result<()> {
    let mode = metadata.mode() & 0o7777;
    let owner = metadata.uid();
    let euid = effective_uid();
    if owner == euid && mode & 0o077 == 0 {
        return Ok(());
    }
    let shown = save_path.display();
    let chown = if owner == euid {
        String::new()
    } else {
        format!(" and chown {euid} {shown}")
    };
    Err(io::Error::new(
        ErrorKind::PermissionDenied,
        format!(
            "session.save_path {shown} has mode {mode:04o} and owner uid {owner}; \
             its file names are session ids, so it must be private to nene (uid {euid}): \
             chmod 0700 {shown}{chown}"
        ),
    ))
}

pub(super) fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Why a file under a session's name is not taken for one of nene's own.
/// nene only ever makes regular files with one link in a directory only it
/// can write to; anything else was put there by someone else, and following
/// it would let them choose a session's content or make nene write (or
/// block) where they point.
#[derive(Debug, thiserror::Error)]
pub(super) enum Refused {
    /// A symlink, refused by `O_NOFOLLOW` (ELOOP).
    #[error("refused: a symbolic link")]
    Symlink,
    /// A FIFO, socket, device or directory.
    #[error("refused: not a regular file")]
    NotRegular,
    /// A file of another user (nene made every file here itself).
    #[error("refused: owned by uid {owner}, not by nene's uid {euid}")]
    ForeignOwner {
        /// The file's owner.
        owner: u32,
        /// nene's effective uid.
        euid: u32,
    },
    /// A hard link to a file that also lives elsewhere.
    #[error("refused: {0} hard links where nene makes one")]
    HardLinked(u64),
}

impl From<Refused> for io::Error {
    fn from(refused: Refused) -> io::Error {
        io::Error::new(ErrorKind::InvalidData, refused)
    }
}

/// The refusal an error carries, if it is one.
pub(super) fn refusal(error: &io::Error) -> Option<&Refused> {
    error.get_ref()?.downcast_ref()
}

/// How [`open_own`] opens a file.
#[derive(Clone, Copy, Debug)]
pub(super) enum Access {
    /// An existing file, read-only (reads, `exists`, touch, gc's lock checks).
    Read,
    /// A new temp file, failing if the name is taken.
    CreateNew,
    /// A lock file, created when missing and never truncated.
    Lock,
}

/// Opens a file of a session without following a symlink or blocking, and
/// only if it is nene's own (see [`Refused`]); returns it with its metadata
/// from the open file, so nothing can be swapped in between.
pub(super) fn open_own(path: &Path, access: Access) -> io::Result<(File, fs::Metadata)> {
    let mut options = OpenOptions::new();
    match access {
        Access::Read => options.read(true),
        Access::CreateNew => options.write(true).create_new(true).mode(0o600),
        Access::Lock => options.write(true).create(true).truncate(false).mode(0o600),
    };
    // O_NOFOLLOW: a symlink in the last component fails (ELOOP) instead of
    // being read, touched or created through. O_NONBLOCK: a FIFO opens (or
    // fails) at once instead of holding a blocking-pool thread in open()
    // until a writer appears; the check below then refuses it. Neither
    // changes anything for a regular file.
    options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    let file = options
        .open(path)
        .map_err(|error| match error.raw_os_error() {
            Some(libc::ELOOP) => Refused::Symlink.into(),
            // Opening a FIFO without a reader, or a socket, for writing.
            Some(libc::ENXIO) => Refused::NotRegular.into(),
            _ => error,
        })?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(Refused::NotRegular.into());
    }
    let euid = effective_uid();
    if metadata.uid() != euid {
        return Err(Refused::ForeignOwner {
            owner: metadata.uid(),
            euid,
        }
        .into());
    }
    // Zero links is fine: a write renamed a new file over this one (or a
    // lock holder removed it) after we opened it; what we read is still a
    // whole file nene made, and the lock code re-checks the name.
    if metadata.nlink() > 1 {
        return Err(Refused::HardLinked(metadata.nlink()).into());
    }
    Ok((file, metadata))
}

pub(super) fn is_expired(modified: SystemTime, ttl: Duration) -> bool {
    // An mtime in the future (clock stepped back) counts as fresh.
    SystemTime::now()
        .duration_since(modified)
        .is_ok_and(|age| age > ttl)
}

/// The data of a session file that exists and has not expired. Metadata and
/// bytes come from the same open file, so a concurrent rename cannot pair
/// one file's age with another's content.
/// A file that is not nene's own is a [`Refused`] error; one over
/// `max_size` is [`Stored::Unreadable`], not read.
pub(super) fn read_fresh(path: &Path, ttl: Duration, max_size: u64) -> io::Result<Stored> {
    let (file, metadata) = match open_own(path, Access::Read) {
        Ok(opened) => opened,
        Err(error) if error.kind() == ErrorKind::NotFound => return Ok(Stored::Missing),
        Err(error) => return Err(error),
    };
    if is_expired(metadata.modified()?, ttl) {
        return Ok(Stored::Missing);
    }
    let too_large = |size: u64| {
        Ok(Stored::Unreadable(Unreadable::TooLarge {
            size,
            max: max_size,
        }))
    };
    if metadata.len() > max_size {
        return too_large(metadata.len());
    }
    let mut data = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    // Bounded again while reading: the file may grow after the fstat.
    file.take(max_size + 1).read_to_end(&mut data)?;
    if data.len() as u64 > max_size {
        return too_large(data.len() as u64);
    }
    Ok(Stored::Data(Bytes::from(data)))
}

/// Replaces the session file with `data` or leaves the old one untouched.
pub(super) fn write_atomically(files: &SessionFiles, data: &[u8], fsync: bool) -> io::Result<()> {
    let temp = files.temp();
    let (mut file, _) = open_own(&temp, Access::CreateNew)
        .map_err(|e| io::Error::new(e.kind(), format!("creating the temp file: {e}")))?;
    // Without fsync, a crash of the process leaves the old or the new file
    // whole (the rename is atomic), but a power loss can leave the new name
    // pointing at an empty file, which reads as no session. With it, every
    // write costs a disk flush (milliseconds under load: a hot session
    // drops from thousands of writes a second to hundreds). The directory
    // is never fsynced: after a power loss the rename may be lost and the
    // previous session read instead, never a torn one.
    let written = file
        .write_all(data)
        .and_then(|()| if fsync { file.sync_all() } else { Ok(()) })
        .map_err(|e| io::Error::new(e.kind(), format!("writing the temp file: {e}")));
    drop(file);
    let replaced = written.and_then(|()| {
        fs::rename(&temp, &files.data)
            .map_err(|e| io::Error::new(e.kind(), format!("replacing the session file: {e}")))
    });
    if replaced.is_err()
        && let Err(error) = fs::remove_file(&temp)
        && error.kind() != ErrorKind::NotFound
    {
        // gc removes stale temp files.
        tracing::warn!("could not remove a temp file of {}: {error}", files.shown);
    }
    replaced
}

/// Rewrites the session file in place, as PHP's files handler does, for
/// PHP's locking: the flock PHP holds is on this inode, so it must stay the
/// same file. Called under that lock.
pub(super) fn write_in_place(files: &SessionFiles, data: &[u8], fsync: bool) -> io::Result<()> {
    let (mut file, _) = open_own(&files.data, Access::Lock)?;
    file.set_len(0)?;
    file.write_all(data)?;
    if fsync {
        file.sync_all()?;
    }
    Ok(())
}

/// Restarts the expiry of a fresh session. Missing is fine; an expired file is
/// left alone, since reviving it would bring back data reads already called
/// gone; so is a file that is not nene's own, which reads as no session. The
/// mtime is set through the open file (futimens), never through the name, so
/// a symlink swapped in meanwhile is not followed either.
pub(super) fn touch_fresh(path: &Path, ttl: Duration) -> io::Result<()> {
    let (file, metadata) = match open_own(path, Access::Read) {
        Ok(opened) => opened,
        Err(error) if error.kind() == ErrorKind::NotFound => return Ok(()),
        Err(error) if refusal(&error).is_some() => return Ok(()),
        Err(error) => return Err(error),
    };
    if is_expired(metadata.modified()?, ttl) {
        return Ok(());
    }
    // Read-only is enough: the owner may set the times of its own file.
    file.set_modified(SystemTime::now())
}

pub(super) fn remove_if_present(path: &Path) -> io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == ErrorKind::NotFound => Ok(false),
        Err(error) => Err(error),
    }
}

/// Writes and removes a throwaway file: the only check that sees read-only
/// mounts, ACLs and full inode tables as well as permission bits. The name
/// matches gc's temp pattern, so even a crash in between leaves no litter.
pub(super) fn probe_writable(dir: &Path) -> io::Result<()> {
    let probe = dir.join(format!(".sess_{PROBE}.{:016x}.tmp", fastrand::u64(..)));
    open_own(&probe, Access::CreateNew)?;
    fs::remove_file(&probe)
}

/// What `probe_writable` puts where a temp file has the session's id.
pub(super) const PROBE: &str = "probe";

/// With PHP's `N;` layout, the subdirectory a session lives in, made (0700,
/// with its parents) when missing. PHP needs them made beforehand
/// (`mod_files.sh`); nene makes them as sessions are first written.
pub(super) fn make_session_directory(dir: &Path) -> io::Result<()> {
    match fs::symlink_metadata(dir) {
        Ok(metadata) if metadata.is_dir() => Ok(()),
        Ok(_) => Err(io::Error::new(
            ErrorKind::NotADirectory,
            "a session subdirectory is not a directory",
        )),
        Err(error) if error.kind() == ErrorKind::NotFound => {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
        }
        Err(error) => Err(error),
    }
}
