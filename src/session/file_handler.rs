//! File sessions: PHP's `files` save handler, done safely. Each session is one
//! file `sess_{id}` in `session.save_path`, replaced whole on every write
//! (temp file, rename) so neither a concurrent reader nor a crashed process
//! ever leaves half a session; with `session.save_path_fsync` the temp file
//! is also fsynced first, so that a power loss cannot either. A session
//! expires `session.gc_maxlifetime` after the file's mtime, whether or not gc
//! has run yet. A request locks its session with `flock` on a separate
//! `sess_{id}.lock` file: that excludes other requests in this process and
//! other processes sharing the directory.
//!
//! The directory is trusted only when it is private to nene (owner, mode
//! 0700), and nothing in it is followed: every file is opened without
//! following symlinks and without blocking, then must be a regular file
//! nene owns with a single link. gc touches only names nene itself makes.

use std::fs::{self, DirBuilder, File, OpenOptions, TryLockError};
use std::io::{self, ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;

use super::error::SessionError;
use super::handler::{DEFAULT_MAX_SESSION_BYTES, HeldLock, SessionHandler, SessionLock, Stored};
use super::id::{SessionId, SessionIdFormat, log_tag_of};
use super::unreadable::Unreadable;

/// The backend name in logs and errors.
const BACKEND: &str = "files";
/// How long `lock` waits for another request by default: long enough for a
/// slow request to finish, short enough that a stuck one cannot hold every
/// later request for the same session forever.
const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(10);
/// The first pause between lock attempts; doubled after each busy attempt.
const FIRST_LOCK_BACKOFF: Duration = Duration::from_millis(1);
/// The longest pause between lock attempts, so a freed lock is noticed soon.
const MAX_LOCK_BACKOFF: Duration = Duration::from_millis(50);
/// Tries at re-opening a lock file that was removed under us before giving
/// the turn back to the (sleeping) wait loop.
const RELINK_TRIES: usize = 3;
/// The `sid_bits_per_character` values whose alphabets gc accepts in names
/// when the handler was not told the configured format: all there are.
const ID_BITS_PER_CHARACTER: [u8; 3] = [4, 5, 6];

/// Session storage in one directory of files.
#[derive(Debug)]
pub struct FileSessionHandler {
    /// `session.save_path`: every session file, temp file and lock file lives
    /// here, so a rename replaces a session atomically (same file system) and
    /// gc has one place to sweep.
    dir: PathBuf,
    /// `session.gc_maxlifetime`: a file whose mtime is older than this is an
    /// expired session, for reads as much as for gc.
    ttl: Duration,
    /// How long `lock` waits for the current holder before it gives up with
    /// [`SessionError::LockTimeout`].
    lock_wait: Duration,
    /// Flush each new session file to disk before it replaces the old one.
    fsync: bool,
    /// The configured id format, when known: gc then takes only names of
    /// exactly that format for its own. Without it, gc takes names of any
    /// format nene can be configured with.
    id_format: Option<SessionIdFormat>,
    /// `session.max_size`: a larger file is not read.
    max_size: u64,
}

impl FileSessionHandler {
    /// A handler storing sessions in `save_path`, created (with its parents,
    /// mode 0700) when missing. An existing directory must be owned by the
    /// effective user, have no group or other permission bits, and be
    /// writable; the error names the path otherwise (a PermissionDenied
    /// error says how to fix the mode or owner).
    pub fn new(save_path: &Path, ttl: Duration) -> Result<FileSessionHandler, io::Error> {
        let shown = save_path.display();
        match fs::metadata(save_path) {
            Ok(metadata) if metadata.is_dir() => check_private(save_path, &metadata)?,
            Ok(_) => {
                return Err(io::Error::new(
                    ErrorKind::NotADirectory,
                    format!("session.save_path {shown} is not a directory"),
                ));
            }
            Err(error) if error.kind() == ErrorKind::NotFound => {
                DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(save_path)
                    .map_err(|error| {
                        io::Error::new(
                            error.kind(),
                            format!("cannot create session.save_path {shown}: {error}"),
                        )
                    })?;
            }
            Err(error) => {
                return Err(io::Error::new(
                    error.kind(),
                    format!("cannot use session.save_path {shown}: {error}"),
                ));
            }
        }
        probe_writable(save_path).map_err(|error| {
            io::Error::new(
                error.kind(),
                format!("session.save_path {shown} is not writable: {error}"),
            )
        })?;
        Ok(FileSessionHandler {
            dir: save_path.to_path_buf(),
            ttl,
            lock_wait: DEFAULT_LOCK_WAIT,
            fsync: false,
            id_format: None,
            max_size: DEFAULT_MAX_SESSION_BYTES,
        })
    }

    /// The same handler, with gc taking only names of ids in `format` (the
    /// configured `sid_length` and `sid_bits_per_character`) for sessions.
    pub fn with_id_format(mut self, format: SessionIdFormat) -> FileSessionHandler {
        self.id_format = Some(format);
        self
    }

    /// [`Self::with_id_format`] for the configured id settings; an invalid
    /// pair is refused by the session store at start-up with its own
    /// message, so here it only leaves gc on every format nene accepts.
    pub fn with_id_format_if_valid(
        self,
        sid_length: usize,
        bits_per_character: u8,
    ) -> FileSessionHandler {
        match SessionIdFormat::new(sid_length, bits_per_character) {
            Ok(format) => self.with_id_format(format),
            Err(_) => self,
        }
    }

    /// The same handler with a different bound on how long `lock` waits for
    /// another request (10 s by default).
    pub fn with_lock_wait(mut self, lock_wait: Duration) -> FileSessionHandler {
        self.lock_wait = lock_wait;
        self
    }

    /// The same handler, leaving session files over `max_size` bytes
    /// unread (`session.max_size`).
    pub fn with_max_size(mut self, max_size: u64) -> FileSessionHandler {
        self.max_size = max_size;
        self
    }

    /// The same handler, fsyncing every session file before the rename
    /// (`session.save_path_fsync`; off by default, like PHP).
    pub fn with_fsync(mut self, fsync: bool) -> FileSessionHandler {
        self.fsync = fsync;
        self
    }

    fn files(&self, id: &SessionId) -> SessionFiles {
        SessionFiles::new(&self.dir, id.as_str())
    }
}

#[async_trait]
impl SessionHandler for FileSessionHandler {
    fn name(&self) -> &'static str {
        BACKEND
    }

    async fn lock(&self, id: &SessionId) -> Result<SessionLock, SessionError> {
        let files = self.files(id);
        let started = tokio::time::Instant::now();
        let deadline = started + self.lock_wait;
        let mut backoff = FIRST_LOCK_BACKOFF;
        // Kept open between attempts so a wait costs one try_lock per round,
        // not an open as well.
        let mut opened: Option<File> = None;
        loop {
            let lock_path = files.lock.clone();
            let attempt = blocking("lock", {
                let files = files.clone();
                move || try_lock_file(&lock_path, opened).map_err(|e| files.error("lock", e))
            })
            .await?;
            match attempt {
                Attempt::Acquired(file) => {
                    return Ok(SessionLock::held(Box::new(FileLock { file, files })));
                }
                Attempt::Busy(file) => opened = file,
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(SessionError::LockTimeout {
                    id_tag: id.log_tag(),
                    waited: now - started,
                });
            }
            // try_lock in a loop rather than the blocking File::lock: a
            // blocked flock would hold a blocking-pool thread and could not
            // be bounded or cancelled.
            tokio::time::sleep(backoff.min(deadline - now)).await;
            backoff = (backoff * 2).min(MAX_LOCK_BACKOFF);
        }
    }

    async fn read(&self, id: &SessionId) -> Result<Stored, SessionError> {
        let files = self.files(id);
        let ttl = self.ttl;
        let max_size = self.max_size;
        blocking("read", move || {
            match read_fresh(&files.data, ttl, max_size) {
                Ok(stored) => Ok(stored),
                Err(error) => match refusal(&error) {
                    Some(refused) => {
                        // No session rather than an error: the visitor gets a
                        // fresh session, and whoever planted the file gets nothing
                        // from it. Named by tag, never by id.
                        tracing::warn!(
                            "ignoring the session file {}: {refused}; it counts as no session",
                            files.shown
                        );
                        Ok(Stored::Missing)
                    }
                    None => Err(files.error("read", error)),
                },
            }
        })
        .await
    }

    async fn write(&self, id: &SessionId, data: Bytes) -> Result<(), SessionError> {
        let files = self.files(id);
        let fsync = self.fsync;
        blocking("write", move || {
            write_atomically(&files, &data, fsync).map_err(|e| files.error("write", e))
        })
        .await
    }

    async fn touch(&self, id: &SessionId) -> Result<(), SessionError> {
        let files = self.files(id);
        let ttl = self.ttl;
        blocking("touch", move || {
            touch_fresh(&files.data, ttl).map_err(|e| files.error("touch", e))
        })
        .await
    }

    async fn destroy(&self, id: &SessionId) -> Result<(), SessionError> {
        let files = self.files(id);
        blocking("destroy", move || {
            remove_if_present(&files.data).map_err(|e| files.error("destroy", e))?;
            // A lock held right now (usually by the request destroying the
            // session) is left to its holder: releasing it removes the file.
            remove_unused_lock_file(&files).map_err(|e| files.error("destroy", e))?;
            Ok(())
        })
        .await
    }

    async fn exists(&self, id: &SessionId) -> Result<bool, SessionError> {
        let files = self.files(id);
        let ttl = self.ttl;
        blocking("exists", move || {
            match open_own(&files.data, Access::Read) {
                Ok((_, metadata)) => Ok(!is_expired(
                    metadata.modified().map_err(|e| files.error("exists", e))?,
                    ttl,
                )),
                Err(error) if error.kind() == ErrorKind::NotFound => Ok(false),
                // `read` warns about it; to `exists` it is simply not a session.
                Err(error) if refusal(&error).is_some() => Ok(false),
                Err(error) => Err(files.error("exists", error)),
            }
        })
        .await
    }

    /// Counts removed sessions only; stale temp files and unused lock files
    /// are swept too but are housekeeping, not sessions.
    async fn gc(&self) -> Result<u64, SessionError> {
        let dir = self.dir.clone();
        let ttl = self.ttl;
        let id_format = self.id_format;
        blocking("gc", move || collect_garbage(&dir, ttl, id_format)).await
    }

    async fn ping(&self) -> Result<(), SessionError> {
        let dir = self.dir.clone();
        blocking("ping", move || {
            let failed = |error: io::Error| SessionError::Backend {
                backend: BACKEND,
                operation: "ping",
                message: format!("{}: {error}", dir.display()),
            };
            if !fs::metadata(&dir).map_err(failed)?.is_dir() {
                return Err(failed(io::Error::new(
                    ErrorKind::NotADirectory,
                    "not a directory",
                )));
            }
            probe_writable(&dir).map_err(failed)
        })
        .await
    }
}

/// A held session lock: the open, flocked `sess_{id}.lock`.
struct FileLock {
    /// The lock itself. flock belongs to this open file description, so
    /// closing it (dropping the `File`, even without `release`) frees the
    /// session for the next request or process.
    file: File,
    /// Where the session lives, so `release` can remove the lock file of a
    /// session that is gone (destroyed, or never written) instead of leaving
    /// one file behind per visitor.
    files: SessionFiles,
}

#[async_trait]
impl HeldLock for FileLock {
    async fn release(self: Box<Self>) -> Result<(), SessionError> {
        let FileLock { file, files } = *self;
        blocking("unlock", move || {
            // Tidy while the lock is still ours: nobody can lock this file
            // between the check and the removal.
            if let Err(error) = remove_lock_file_if_session_gone(&file, &files) {
                // Harmless: gc removes unused lock files.
                tracing::debug!("keeping lock file of {}: {error}", files.shown);
            }
            file.unlock().map_err(|e| files.error("unlock", e))
        })
        .await
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any + Send> {
        self
    }
}

/// The files of one session, and how messages name them.
#[derive(Clone, Debug)]
struct SessionFiles {
    /// The directory, for temp files next to the data (a rename is only
    /// atomic within one file system).
    dir: PathBuf,
    /// `sess_{id}`, the stem of every file of this session.
    name: String,
    /// `sess_{id}`: the data, replaced whole by every write.
    data: PathBuf,
    /// `sess_{id}.lock`: what `lock` flocks. Not the data file, because a
    /// write renames a new inode over it and a lock on the old one would no
    /// longer exclude anybody.
    lock: PathBuf,
    /// The data path with the id replaced by its log tag: errors name the
    /// file without writing any part of a session id into logs.
    shown: String,
}

impl SessionFiles {
    fn new(dir: &Path, id: &str) -> SessionFiles {
        let name = format!("sess_{id}");
        SessionFiles {
            dir: dir.to_path_buf(),
            data: dir.join(&name),
            lock: dir.join(format!("{name}.lock")),
            shown: dir
                .join(format!("sess_#{}", log_tag_of(id)))
                .display()
                .to_string(),
            name,
        }
    }

    /// A fresh temp file name for a write: hidden, unique per write, and
    /// recognisable by gc (`.sess_*.tmp`) when a crash leaves it behind.
    fn temp(&self) -> PathBuf {
        self.dir
            .join(format!(".{}.{:016x}.tmp", self.name, rand::random::<u64>()))
    }

    fn error(&self, operation: &'static str, error: io::Error) -> SessionError {
        SessionError::Backend {
            backend: BACKEND,
            operation,
            message: format!("{}: {error}", self.shown),
        }
    }
}

/// Runs file work on the blocking pool: file system calls may stall (slow
/// disks, NFS) and must not stall the runtime's workers.
async fn blocking<T, F>(operation: &'static str, work: F) -> Result<T, SessionError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, SessionError> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| SessionError::Backend {
            backend: BACKEND,
            operation,
            message: format!("file task did not finish: {error}"),
        })?
}

/// Refuses a save_path that anyone but nene can read or enter. The file
/// names there are the session ids: a directory listing is a list of
/// sessions to take over, and write access lets anyone plant sessions. This
/// is an error and not a warning because a warning in a start-up log is
/// easily missed while every session would stay exposed; one `chmod` fixes
/// it for good.
fn check_private(save_path: &Path, metadata: &fs::Metadata) -> io::Result<()> {
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

fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Why a file under a session's name is not taken for one of nene's own.
/// nene only ever makes regular files with one link in a directory only it
/// can write to; anything else was put there by someone else, and following
/// it would let them choose a session's content or make nene write (or
/// block) where they point.
#[derive(Debug, thiserror::Error)]
enum Refused {
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
fn refusal(error: &io::Error) -> Option<&Refused> {
    error.get_ref()?.downcast_ref()
}

/// How [`open_own`] opens a file.
#[derive(Clone, Copy, Debug)]
enum Access {
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
fn open_own(path: &Path, access: Access) -> io::Result<(File, fs::Metadata)> {
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

fn is_expired(modified: SystemTime, ttl: Duration) -> bool {
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
fn read_fresh(path: &Path, ttl: Duration, max_size: u64) -> io::Result<Stored> {
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
fn write_atomically(files: &SessionFiles, data: &[u8], fsync: bool) -> io::Result<()> {
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

/// Restarts the expiry of a fresh session. Missing is fine; an expired file is
/// left alone, since reviving it would bring back data reads already called
/// gone; so is a file that is not nene's own, which reads as no session. The
/// mtime is set through the open file (futimens), never through the name, so
/// a symlink swapped in meanwhile is not followed either.
fn touch_fresh(path: &Path, ttl: Duration) -> io::Result<()> {
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

fn remove_if_present(path: &Path) -> io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == ErrorKind::NotFound => Ok(false),
        Err(error) => Err(error),
    }
}

/// Writes and removes a throwaway file: the only check that sees read-only
/// mounts, ACLs and full inode tables as well as permission bits. The name
/// matches gc's temp pattern, so even a crash in between leaves no litter.
fn probe_writable(dir: &Path) -> io::Result<()> {
    let probe = dir.join(format!(".sess_{PROBE}.{:016x}.tmp", rand::random::<u64>()));
    open_own(&probe, Access::CreateNew)?;
    fs::remove_file(&probe)
}

/// What `probe_writable` puts where a temp file has the session's id.
const PROBE: &str = "probe";

/// The outcome of one non-blocking try at a session lock.
enum Attempt {
    /// The lock is ours, on the file the lock path names now.
    Acquired(File),
    /// Someone else holds it; the open file (if still useful) for the next try.
    Busy(Option<File>),
}

fn open_lock_file(path: &Path) -> io::Result<File> {
    open_own(path, Access::Lock).map(|(file, _)| file)
}

/// One try at the lock in `path`, opening (creating) it unless `opened`.
fn try_lock_file(path: &Path, opened: Option<File>) -> io::Result<Attempt> {
    let mut file = match opened {
        Some(file) => file,
        None => open_lock_file(path)?,
    };
    for _ in 0..RELINK_TRIES {
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Ok(Attempt::Busy(Some(file))),
            Err(TryLockError::Error(error)) => return Err(error),
        }
        if is_still_linked(&file, path)? {
            return Ok(Attempt::Acquired(file));
        }
        // The previous holder removed this lock file (its session was gone)
        // after we opened it: the lock that counts is on whatever file the
        // path names now.
        file = open_lock_file(path)?;
    }
    Ok(Attempt::Busy(None))
}

/// Whether `path` still names the open `file` (and not a newer file, or nothing).
fn is_still_linked(file: &File, path: &Path) -> io::Result<bool> {
    let open = file.metadata()?;
    match fs::symlink_metadata(path) {
        Ok(named) => Ok(named.dev() == open.dev() && named.ino() == open.ino()),
        Err(error) if error.kind() == ErrorKind::NotFound => Ok(false),
        Err(error) => Err(error),
    }
}

/// Removes the lock file whose lock `file` holds, when its session is gone.
/// Only a holder removes a lock file; a waiter that opened it before sees it
/// unlinked once it gets the lock, and starts over on the path.
fn remove_lock_file_if_session_gone(file: &File, files: &SessionFiles) -> io::Result<bool> {
    match fs::symlink_metadata(&files.data) {
        Ok(_) => return Ok(false),
        Err(error) if error.kind() == ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    if !is_still_linked(file, &files.lock)? {
        return Ok(false);
    }
    remove_if_present(&files.lock)
}

/// Removes the lock file of a gone session unless someone holds it now.
fn remove_unused_lock_file(files: &SessionFiles) -> io::Result<bool> {
    let file = match open_own(&files.lock, Access::Read) {
        Ok((file, _)) => file,
        Err(error) if error.kind() == ErrorKind::NotFound => return Ok(false),
        Err(error) => return Err(error),
    };
    match file.try_lock() {
        Ok(()) => remove_lock_file_if_session_gone(&file, files),
        Err(TryLockError::WouldBlock) => Ok(false),
        Err(TryLockError::Error(error)) => Err(error),
    }
}

/// Removes the session if it expired and no request holds it. The check and
/// the removal happen under the session's lock, so a request cannot write a
/// fresh file in between and lose it.
fn remove_if_expired(files: &SessionFiles, ttl: Duration) -> io::Result<bool> {
    let lock = match try_lock_file(&files.lock, None)? {
        Attempt::Acquired(lock) => lock,
        Attempt::Busy(_) => return Ok(false),
    };
    let removed = match fs::symlink_metadata(&files.data) {
        Ok(metadata) if metadata.is_file() && is_expired(metadata.modified()?, ttl) => {
            remove_if_present(&files.data)?
        }
        Ok(_) => false,
        Err(error) if error.kind() == ErrorKind::NotFound => false,
        Err(error) => return Err(error),
    };
    remove_lock_file_if_session_gone(&lock, files)?;
    Ok(removed)
}

/// What a directory entry is to gc.
enum Entry<'a> {
    /// `sess_{id}`.
    Session(&'a str),
    /// `sess_{id}.lock`.
    Lock(&'a str),
    /// `.sess_{id}.{16 hex digits}.tmp`, left by a write that crashed or is
    /// in flight (or `.sess_probe.….tmp`, by the writability probe).
    Temp,
    /// Anything else, even if it starts with `sess_` (an admin's
    /// `sess_important_backup`): not ours, left alone.
    Other,
}

/// Names gc may act on are exactly the names nene makes, with an `{id}`
/// that parses as a session id (`format`, or any format nene accepts).
fn classify(name: &str, format: Option<SessionIdFormat>) -> Entry<'_> {
    if let Some(rest) = name.strip_prefix(".sess_")
        && let Some(rest) = rest.strip_suffix(".tmp")
        && let Some((id, random)) = rest.rsplit_once('.')
        && random.len() == 16
        && random
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && (id == PROBE || is_session_id(id, format))
    {
        return Entry::Temp;
    }
    let Some(rest) = name.strip_prefix("sess_") else {
        return Entry::Other;
    };
    if let Some(id) = rest.strip_suffix(".lock")
        && is_session_id(id, format)
    {
        Entry::Lock(id)
    } else if is_session_id(rest, format) {
        Entry::Session(rest)
    } else {
        Entry::Other
    }
}

/// Whether `text` is an id nene could have issued: of `format` when known,
/// else of any length and alphabet [`SessionIdFormat`] allows. Both are
/// fixed alphabets without `_` or `.`, of 22 characters at least.
fn is_session_id(text: &str, format: Option<SessionIdFormat>) -> bool {
    match format {
        Some(format) => format.parse(text).is_some(),
        None => ID_BITS_PER_CHARACTER.into_iter().any(|bits| {
            SessionIdFormat::new(text.len(), bits).is_ok_and(|format| format.parse(text).is_some())
        }),
    }
}

/// Sweeps the directory: expired sessions, stale temp files, then lock files
/// of sessions that no longer exist. Entries that vanish or fail on the way
/// are skipped; the next run tries again.
fn collect_garbage(
    dir: &Path,
    ttl: Duration,
    id_format: Option<SessionIdFormat>,
) -> Result<u64, SessionError> {
    let entries = fs::read_dir(dir).map_err(|error| SessionError::Backend {
        backend: BACKEND,
        operation: "gc",
        message: format!("{}: {error}", dir.display()),
    })?;
    let mut removed_sessions = 0;
    let mut lock_ids = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        // DirEntry::metadata does not follow symlinks: only our own regular
        // files are ever removed.
        let Ok(metadata) = entry.metadata() else {
            continue;
        };
        if !metadata.is_file() {
            continue;
        }
        let expired = metadata.modified().is_ok_and(|m| is_expired(m, ttl));
        match classify(name, id_format) {
            Entry::Session(id) if expired => {
                let files = SessionFiles::new(dir, id);
                match remove_if_expired(&files, ttl) {
                    Ok(true) => removed_sessions += 1,
                    Ok(false) => {}
                    Err(error) => tracing::debug!("gc skipped {}: {error}", files.shown),
                }
            }
            Entry::Temp if expired => {
                if let Err(error) = remove_if_present(&entry.path()) {
                    tracing::debug!("gc skipped a temp file in {}: {error}", dir.display());
                }
            }
            Entry::Lock(id) => lock_ids.push(id.to_string()),
            Entry::Session(_) | Entry::Temp | Entry::Other => {}
        }
    }
    for id in lock_ids {
        let files = SessionFiles::new(dir, &id);
        if let Err(error) = remove_unused_lock_file(&files) {
            tracing::debug!("gc skipped the lock file of {}: {error}", files.shown);
        }
    }
    Ok(removed_sessions)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    use super::*;
    use crate::session::SessionIdFormat;

    const TTL: Duration = Duration::from_secs(60);

    fn new_id() -> SessionId {
        SessionIdFormat::new(32, 5).unwrap().generate()
    }

    /// A handler on `dir`, made private first as an admin would (tempfile
    /// creates directories 0755 under the usual umask).
    fn handler(dir: &Path) -> FileSessionHandler {
        if dir.exists() {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).unwrap();
        }
        FileSessionHandler::new(dir, TTL).unwrap()
    }

    fn session_path(dir: &Path, id: &SessionId) -> PathBuf {
        dir.join(format!("sess_{}", id.as_str()))
    }

    fn lock_path(dir: &Path, id: &SessionId) -> PathBuf {
        dir.join(format!("sess_{}.lock", id.as_str()))
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    /// Sets the file's mtime `by` into the past, as if unused for that long.
    fn age(path: &Path, by: Duration) {
        let file = OpenOptions::new().write(true).open(path).unwrap();
        file.set_modified(SystemTime::now() - by).unwrap();
    }

    fn temp_files(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.ends_with(".tmp"))
            .collect()
    }

    #[tokio::test]
    async fn a_written_session_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let sessions = handler(dir.path());
        let id = new_id();
        sessions
            .write(&id, Bytes::from_static(b"{\"user\":42}"))
            .await
            .unwrap();
        let read = sessions.read(&id).await.unwrap().data();
        assert_eq!(read.as_deref(), Some(&b"{\"user\":42}"[..]));
        assert!(sessions.exists(&id).await.unwrap());
        sessions
            .write(&id, Bytes::from_static(b"second"))
            .await
            .unwrap();
        let read = sessions.read(&id).await.unwrap().data();
        assert_eq!(read.as_deref(), Some(&b"second"[..]));
        assert_eq!(sessions.name(), "files");
        sessions.ping().await.unwrap();
    }

    #[tokio::test]
    async fn a_new_save_path_is_private_and_so_are_its_files() {
        let root = tempfile::tempdir().unwrap();
        let save_path = root.path().join("var/lib/nene/sessions");
        let sessions = handler(&save_path);
        assert_eq!(mode(&save_path), 0o700);
        assert_eq!(mode(&root.path().join("var")), 0o700);
        let id = new_id();
        sessions
            .write(&id, Bytes::from_static(b"secret"))
            .await
            .unwrap();
        assert_eq!(mode(&session_path(&save_path, &id)), 0o600);
        let lock = sessions.lock(&id).await.unwrap();
        assert_eq!(mode(&lock_path(&save_path, &id)), 0o600);
        lock.release().await.unwrap();
    }

    #[tokio::test]
    async fn a_save_path_others_can_enter_is_refused_and_left_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        for shared in [0o750, 0o755, 0o701, 0o1777] {
            fs::set_permissions(dir.path(), fs::Permissions::from_mode(shared)).unwrap();
            let error = FileSessionHandler::new(dir.path(), TTL).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::PermissionDenied);
            let message = error.to_string();
            assert!(
                message.contains(&*dir.path().to_string_lossy()),
                "{message}"
            );
            assert!(message.contains(&format!("{shared:04o}")), "{message}");
            assert!(message.contains("chmod 0700"), "{message}");
            assert_eq!(mode(dir.path()), shared & 0o777);
        }
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
        handler(dir.path());
        assert_eq!(mode(dir.path()), 0o700);
    }

    #[tokio::test]
    async fn a_save_path_of_another_user_is_refused_with_chown_advice() {
        if effective_uid() != 0 {
            return; // Only root can give a directory away.
        }
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::chown(dir.path(), Some(65534), None).unwrap();
        let error = FileSessionHandler::new(dir.path(), TTL).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::PermissionDenied);
        let message = error.to_string();
        assert!(message.contains("uid 65534"), "{message}");
        assert!(message.contains("chmod 0700"), "{message}");
        assert!(message.contains("chown 0"), "{message}");
    }

    #[tokio::test]
    async fn files_that_nene_did_not_make_are_no_session() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let sessions = handler(dir.path());
        let target = outside.path().join("outside.json");
        fs::write(&target, br#"{"user":"admin"}"#).unwrap();
        let before = fs::metadata(&target).unwrap().modified().unwrap();

        let symlinked = new_id();
        std::os::unix::fs::symlink(&target, session_path(dir.path(), &symlinked)).unwrap();
        let hard_linked = new_id();
        fs::hard_link(&target, session_path(dir.path(), &hard_linked)).unwrap();
        let fifo = new_id();
        let fifo_path = std::ffi::CString::new(
            session_path(dir.path(), &fifo)
                .into_os_string()
                .into_encoded_bytes(),
        )
        .unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo_path.as_ptr(), 0o600) }, 0);
        let directory = new_id();
        fs::create_dir(session_path(dir.path(), &directory)).unwrap();

        std::thread::sleep(Duration::from_millis(20));
        for id in [&symlinked, &hard_linked, &fifo, &directory] {
            let started = Instant::now();
            assert_eq!(sessions.read(id).await.unwrap(), Stored::Missing);
            assert!(!sessions.exists(id).await.unwrap());
            sessions.touch(id).await.unwrap();
            assert!(started.elapsed() < Duration::from_secs(1));
        }
        assert_eq!(fs::read(&target).unwrap(), br#"{"user":"admin"}"#);
        assert_eq!(fs::metadata(&target).unwrap().modified().unwrap(), before);

        // A write replaces the planted name, never what it points to.
        sessions
            .write(&symlinked, Bytes::from_static(b"mine"))
            .await
            .unwrap();
        assert_eq!(fs::read(&target).unwrap(), br#"{"user":"admin"}"#);
        let read = sessions.read(&symlinked).await.unwrap().data();
        assert_eq!(read.as_deref(), Some(&b"mine"[..]));
    }

    #[tokio::test]
    async fn a_planted_lock_symlink_is_an_error_and_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let sessions = handler(dir.path()).with_lock_wait(Duration::from_millis(100));
        let id = new_id();
        let target = outside.path().join("created-by-nene");
        std::os::unix::fs::symlink(&target, lock_path(dir.path(), &id)).unwrap();
        let Err(error) = sessions.lock(&id).await else {
            panic!("locked through a symlink");
        };
        assert!(error.to_string().contains("symbolic link"), "{error}");
        assert!(!error.to_string().contains(id.as_str()), "{error}");
        assert!(!target.exists());
    }

    #[tokio::test]
    async fn a_session_file_over_max_size_is_unreadable_and_not_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let max = 64 * 1024;
        let sessions = handler(dir.path()).with_max_size(max);
        let id = new_id();
        let file = File::create(session_path(dir.path(), &id)).unwrap();
        file.set_len(max + 1).unwrap();
        assert_eq!(
            sessions.read(&id).await.unwrap(),
            Stored::Unreadable(Unreadable::TooLarge { size: max + 1, max })
        );
        file.set_len(max).unwrap();
        let read = sessions.read(&id).await.unwrap().data().unwrap();
        assert_eq!(read.len() as u64, max);
    }

    #[test]
    fn gc_knows_only_the_names_nene_makes() {
        let id = "0123456789abcdefghijklmnopqrstuv";
        let format = SessionIdFormat::new(32, 5).unwrap();
        for known in [None, Some(format)] {
            assert!(matches!(
                classify(&format!("sess_{id}"), known),
                Entry::Session(_)
            ));
            assert!(matches!(
                classify(&format!("sess_{id}.lock"), known),
                Entry::Lock(_)
            ));
            assert!(matches!(
                classify(&format!(".sess_{id}.00000000000000aa.tmp"), known),
                Entry::Temp
            ));
            assert!(matches!(
                classify(".sess_probe.0123456789abcdef.tmp", known),
                Entry::Temp
            ));
            for foreign in [
                "sess_important_backup".to_string(),
                "sess_important_backup.lock".to_string(),
                "sess_backup".to_string(),
                format!("sess_{id}.bak"),
                format!("sess_{id}.lock.old"),
                format!(".sess_{id}.tmp"),
                format!(".sess_{id}.00000000000000aa.tmp.keep"),
                ".sess_notes.00000000000000aa.tmp".to_string(),
                "notes.txt".to_string(),
            ] {
                assert!(
                    matches!(classify(&foreign, known), Entry::Other),
                    "{foreign}"
                );
            }
        }
        // Known, the configured format is the only one: a 26-character id
        // is still an id nene could issue with other settings, not these.
        let short = &id[..26];
        assert!(matches!(
            classify(&format!("sess_{short}"), None),
            Entry::Session(_)
        ));
        assert!(matches!(
            classify(&format!("sess_{short}"), Some(format)),
            Entry::Other
        ));
    }

    #[tokio::test]
    async fn a_save_path_that_is_a_file_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        fs::write(&file, b"").unwrap();
        let error = FileSessionHandler::new(&file, TTL).unwrap_err();
        assert!(
            error.to_string().contains(&*file.to_string_lossy()),
            "{error}"
        );
        let below = file.join("sessions");
        let error = FileSessionHandler::new(&below, TTL).unwrap_err();
        assert!(
            error.to_string().contains(&*below.to_string_lossy()),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_missing_session_reads_as_none() {
        let dir = tempfile::tempdir().unwrap();
        let sessions = handler(dir.path());
        let id = new_id();
        assert_eq!(sessions.read(&id).await.unwrap(), Stored::Missing);
        assert!(!sessions.exists(&id).await.unwrap());
        sessions.touch(&id).await.unwrap();
        assert!(!session_path(dir.path(), &id).exists());
    }

    #[tokio::test]
    async fn an_expired_session_is_gone_before_gc_runs() {
        let dir = tempfile::tempdir().unwrap();
        let sessions = handler(dir.path());
        let id = new_id();
        sessions
            .write(&id, Bytes::from_static(b"old"))
            .await
            .unwrap();
        age(&session_path(dir.path(), &id), TTL + Duration::from_secs(1));
        assert_eq!(sessions.read(&id).await.unwrap(), Stored::Missing);
        assert!(!sessions.exists(&id).await.unwrap());
        // A touch (lazy_write after an empty read) must not revive it.
        sessions.touch(&id).await.unwrap();
        assert_eq!(sessions.read(&id).await.unwrap(), Stored::Missing);
    }

    #[tokio::test]
    async fn touch_restarts_the_expiry_without_rewriting() {
        let dir = tempfile::tempdir().unwrap();
        let sessions = handler(dir.path());
        let id = new_id();
        let path = session_path(dir.path(), &id);
        sessions
            .write(&id, Bytes::from_static(b"unchanged"))
            .await
            .unwrap();
        age(&path, TTL / 2);
        let inode = fs::metadata(&path).unwrap().ino();
        sessions.touch(&id).await.unwrap();
        let metadata = fs::metadata(&path).unwrap();
        let age = SystemTime::now()
            .duration_since(metadata.modified().unwrap())
            .unwrap_or_default();
        assert!(age < Duration::from_secs(5), "mtime is {age:?} old");
        assert_eq!(metadata.ino(), inode, "touch replaced the file");
        let read = sessions.read(&id).await.unwrap().data();
        assert_eq!(read.as_deref(), Some(&b"unchanged"[..]));
    }

    #[tokio::test]
    async fn destroy_removes_the_session_and_its_lock_file() {
        let dir = tempfile::tempdir().unwrap();
        let sessions = handler(dir.path());
        let id = new_id();
        sessions
            .write(&id, Bytes::from_static(b"bye"))
            .await
            .unwrap();
        sessions.lock(&id).await.unwrap().release().await.unwrap();
        assert!(lock_path(dir.path(), &id).exists());

        sessions.destroy(&id).await.unwrap();
        assert_eq!(sessions.read(&id).await.unwrap(), Stored::Missing);
        assert!(!session_path(dir.path(), &id).exists());
        assert!(!lock_path(dir.path(), &id).exists());
        sessions.destroy(&id).await.unwrap();

        // Destroyed by the request that holds the lock: the release removes
        // the lock file.
        sessions
            .write(&id, Bytes::from_static(b"again"))
            .await
            .unwrap();
        let lock = sessions.lock(&id).await.unwrap();
        sessions.destroy(&id).await.unwrap();
        assert!(lock_path(dir.path(), &id).exists());
        lock.release().await.unwrap();
        assert!(!lock_path(dir.path(), &id).exists());

        // A visitor whose session was never written leaves no lock file.
        let visitor = new_id();
        sessions
            .lock(&visitor)
            .await
            .unwrap()
            .release()
            .await
            .unwrap();
        assert!(!lock_path(dir.path(), &visitor).exists());
    }

    #[tokio::test]
    async fn gc_removes_only_what_expired_and_nobody_uses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path();
        let sessions = handler(path);
        let old = TTL + Duration::from_secs(1);

        let fresh = new_id();
        sessions
            .write(&fresh, Bytes::from_static(b"fresh"))
            .await
            .unwrap();
        sessions
            .lock(&fresh)
            .await
            .unwrap()
            .release()
            .await
            .unwrap();
        let expired = new_id();
        sessions
            .write(&expired, Bytes::from_static(b"expired"))
            .await
            .unwrap();
        age(&session_path(path, &expired), old);
        let expired_in_use = new_id();
        sessions
            .write(&expired_in_use, Bytes::from_static(b"in use"))
            .await
            .unwrap();
        age(&session_path(path, &expired_in_use), old);
        let in_use = sessions.lock(&expired_in_use).await.unwrap();

        let stale_temp = path.join(format!(".sess_{}.00000000000000aa.tmp", new_id().as_str()));
        fs::write(&stale_temp, b"half").unwrap();
        age(&stale_temp, old);
        let fresh_temp = path.join(format!(".sess_{}.00000000000000bb.tmp", new_id().as_str()));
        fs::write(&fresh_temp, b"in flight").unwrap();
        let orphan_lock = lock_path(path, &new_id());
        fs::write(&orphan_lock, b"").unwrap();
        let held_id = new_id();
        let held_lock = File::create(lock_path(path, &held_id)).unwrap();
        held_lock.lock().unwrap();
        let stranger = path.join("notes.txt");
        fs::write(&stranger, b"not a session").unwrap();
        age(&stranger, old);

        assert_eq!(sessions.gc().await.unwrap(), 1);

        assert!(!session_path(path, &expired).exists());
        assert!(!lock_path(path, &expired).exists());
        assert!(session_path(path, &fresh).exists());
        assert!(lock_path(path, &fresh).exists());
        assert!(session_path(path, &expired_in_use).exists());
        assert!(!stale_temp.exists());
        assert!(fresh_temp.exists());
        assert!(!orphan_lock.exists());
        assert!(lock_path(path, &held_id).exists());
        assert!(stranger.exists());
        let read = sessions.read(&fresh).await.unwrap().data();
        assert_eq!(read.as_deref(), Some(&b"fresh"[..]));

        in_use.release().await.unwrap();
        drop(held_lock);
        assert_eq!(sessions.gc().await.unwrap(), 1);
        assert!(!session_path(path, &expired_in_use).exists());
        assert!(!lock_path(path, &expired_in_use).exists());
        assert!(!lock_path(path, &held_id).exists());
    }

    #[tokio::test]
    async fn a_second_request_waits_for_the_lock_until_the_first_releases() {
        let dir = tempfile::tempdir().unwrap();
        let sessions = Arc::new(handler(dir.path()));
        let id = new_id();
        let events = Arc::new(Mutex::new(Vec::new()));

        let first = sessions.lock(&id).await.unwrap();
        let waiter = tokio::spawn({
            let (sessions, id, events) = (sessions.clone(), id.clone(), events.clone());
            async move {
                let second = sessions.lock(&id).await.unwrap();
                events.lock().unwrap().push("second acquired");
                second.release().await.unwrap();
            }
        });
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(!waiter.is_finished(), "the second lock did not wait");
        events.lock().unwrap().push("first releasing");
        first.release().await.unwrap();
        waiter.await.unwrap();
        assert_eq!(
            *events.lock().unwrap(),
            ["first releasing", "second acquired"]
        );
    }

    #[tokio::test]
    async fn a_lock_held_elsewhere_times_out_after_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let id = new_id();
        // Another nene instance on the same save_path, and another process's
        // plain flock: both must keep this handler out.
        let other_instance = handler(dir.path());
        let sessions = handler(dir.path()).with_lock_wait(Duration::from_millis(200));

        let held = other_instance.lock(&id).await.unwrap();
        let started = Instant::now();
        let Err(error) = sessions.lock(&id).await else {
            panic!("took a lock another instance holds");
        };
        let waited = started.elapsed();
        match error {
            SessionError::LockTimeout { id_tag, .. } => {
                assert_eq!(id_tag, id.log_tag());
                assert!(!id.as_str().contains(&id_tag));
            }
            other => panic!("expected LockTimeout, got {other:?}"),
        }
        assert!(
            waited >= Duration::from_millis(200),
            "gave up after {waited:?}"
        );
        assert!(waited < Duration::from_secs(2), "gave up after {waited:?}");
        held.release().await.unwrap();

        let foreign = open_lock_file(&lock_path(dir.path(), &id)).unwrap();
        foreign.lock().unwrap();
        assert!(matches!(
            sessions.lock(&id).await,
            Err(SessionError::LockTimeout { .. })
        ));
        foreign.unlock().unwrap();
        sessions.lock(&id).await.unwrap().release().await.unwrap();
    }

    #[tokio::test]
    async fn a_lock_dropped_without_release_frees_the_session() {
        let dir = tempfile::tempdir().unwrap();
        let sessions = handler(dir.path()).with_lock_wait(Duration::from_secs(2));
        let id = new_id();
        drop(sessions.lock(&id).await.unwrap());
        sessions.lock(&id).await.unwrap().release().await.unwrap();
    }

    #[tokio::test]
    async fn a_failed_write_keeps_the_old_session_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let sessions = handler(dir.path());
        let id = new_id();
        sessions
            .write(&id, Bytes::from_static(b"old"))
            .await
            .unwrap();

        // Fails after the temp file is written, even as root: the session's
        // name is taken by a directory, so the rename fails.
        let blocked = new_id();
        let blocked_path = session_path(dir.path(), &blocked);
        fs::create_dir(&blocked_path).unwrap();
        fs::write(blocked_path.join("old"), b"old").unwrap();
        let error = sessions
            .write(&blocked, Bytes::from_static(b"new"))
            .await
            .unwrap_err();
        let SessionError::Backend {
            backend, message, ..
        } = &error
        else {
            panic!("expected a backend error, got {error:?}");
        };
        assert_eq!(*backend, "files");
        assert!(
            message.contains(&*dir.path().to_string_lossy()),
            "{message}"
        );
        assert!(
            !message.contains(blocked.as_str()),
            "{message} leaks the id"
        );
        assert_eq!(fs::read(blocked_path.join("old")).unwrap(), b"old");
        assert_eq!(temp_files(dir.path()), Vec::<String>::new());

        // A read-only directory; permission bits do not stop root.
        if unsafe { libc::geteuid() } != 0 {
            fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o500)).unwrap();
            let result = sessions.write(&id, Bytes::from_static(b"new")).await;
            fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
            assert!(matches!(result, Err(SessionError::Backend { .. })));
        }
        let read = sessions.read(&id).await.unwrap().data();
        assert_eq!(read.as_deref(), Some(&b"old"[..]));
        assert_eq!(temp_files(dir.path()), Vec::<String>::new());
    }

    #[tokio::test]
    async fn binary_and_large_sessions_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let sessions = handler(dir.path());
        let id = new_id();
        let every_byte: Vec<u8> = (0..=255u8).chain([0, b'\r', b'\n', 0xff]).collect();
        sessions
            .write(&id, Bytes::from(every_byte.clone()))
            .await
            .unwrap();
        assert_eq!(
            sessions.read(&id).await.unwrap().data().unwrap(),
            every_byte
        );

        let big: Vec<u8> = (0..1usize << 20)
            .map(|i| (i % 251) as u8 ^ (i >> 11) as u8)
            .collect();
        sessions.write(&id, Bytes::from(big.clone())).await.unwrap();
        assert_eq!(sessions.read(&id).await.unwrap().data().unwrap(), big);
        sessions.write(&id, Bytes::new()).await.unwrap();
        assert_eq!(
            sessions.read(&id).await.unwrap().data().unwrap(),
            Bytes::new()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn readers_never_see_a_half_written_session() {
        let dir = tempfile::tempdir().unwrap();
        let sessions = Arc::new(handler(dir.path()));
        let id = new_id();
        const SIZE: usize = 256 * 1024;
        sessions
            .write(&id, Bytes::from(vec![0u8; SIZE]))
            .await
            .unwrap();
        let writer = tokio::spawn({
            let (sessions, id) = (sessions.clone(), id.clone());
            async move {
                for fill in 1..=20u8 {
                    sessions
                        .write(&id, Bytes::from(vec![fill; SIZE]))
                        .await
                        .unwrap();
                }
            }
        });
        while !writer.is_finished() {
            let data = sessions.read(&id).await.unwrap().data().unwrap();
            assert_eq!(data.len(), SIZE);
            assert!(data.iter().all(|&b| b == data[0]), "torn read");
        }
        writer.await.unwrap();
        assert_eq!(temp_files(dir.path()), Vec::<String>::new());
    }

    #[tokio::test]
    async fn ping_notices_a_vanished_directory() {
        let root = tempfile::tempdir().unwrap();
        let save_path = root.path().join("sessions");
        let sessions = handler(&save_path);
        sessions.ping().await.unwrap();
        fs::remove_dir(&save_path).unwrap();
        let error = sessions.ping().await.unwrap_err();
        assert!(
            error.to_string().contains(&*save_path.to_string_lossy()),
            "{error}"
        );
    }
}
