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

use std::fs::{self, DirBuilder, File};
use std::io::{self, ErrorKind};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::session::SessionSettings;
use crate::session::backend::backoff::Backoff;
use crate::session::backend::dsn::{DsnError, Parser, SessionBackend, SessionDsn};
use crate::session::backend::factory::{BackendKind, Opened, SessionSetupError};
use crate::session::backend::lock::WritesThroughStore;
use crate::session::backend::{
    LiveSession, LockedRead, SessionAdmin, SessionHandler, SessionPage, Stored, read_without_lock,
};
use crate::session::error::SessionError;
use crate::session::id::SessionId;

mod file_io;
mod gc;
mod listing;
mod lock;
mod options;
mod paths;

use file_io::*;
use gc::{collect_garbage, session_directories};
use lock::*;
pub use options::FileOptions;
use paths::SessionFiles;

/// The backend name in logs and errors.
pub(super) const BACKEND: &str = "files";

/// The factory's row for files: no scheme, an empty DSN or `files` names it.
pub(crate) const KIND: BackendKind =
    BackendKind::new(&[], &["'' or files (file sessions)"], no_scheme, open);

/// Never called: with no scheme, the parser picks files before any row's
/// parser is asked.
fn no_scheme(_: &Parser<'_>, _: &str, _: &str) -> Result<SessionBackend, DsnError> {
    Ok(SessionBackend::Files)
}

/// The files backend in `session.save_path`, with the `[session]` settings
/// PHP's files handler has.
fn open(_parsed: &SessionDsn, settings: &SessionSettings) -> Opened {
    let handler =
        FileSessionHandler::new(&settings.save_path, settings.lifetime()).map_err(|source| {
            SessionSetupError::Files {
                path: settings.save_path.clone(),
                source,
            }
        })?;
    Ok(Arc::new(
        handler.with_options(FileOptions::from_settings(settings)),
    ))
}

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
    /// How it stores and locks: the `[session]` settings PHP's files
    /// handler has.
    options: FileOptions,
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
            options: FileOptions::default(),
        })
    }

    /// The same handler with `options` (lock wait, fsync, id format,
    /// size bound, PHP's locking and layout) in place of the defaults.
    pub fn with_options(mut self, options: FileOptions) -> FileSessionHandler {
        self.options = options;
        self
    }

    fn files(&self, id: &SessionId) -> SessionFiles {
        let mut dir = self.dir.clone();
        for character in id.as_str().chars().take(self.options.depth) {
            dir.push(character.to_string());
        }
        let files = SessionFiles::new(&dir, id.as_str());
        if self.options.php_locking {
            files.locking_the_session_file()
        } else {
            files
        }
    }
}

impl FileSessionHandler {
    /// Takes the flock of session `id`, waiting at most `wait` while
    /// another holder has it (one try even when `wait` is zero).
    async fn take_lock(&self, id: &SessionId, wait: Duration) -> Result<FileLock, SessionError> {
        let files = self.files(id);
        let started = tokio::time::Instant::now();
        let deadline = started + wait;
        let mut backoff = Backoff::new();
        // Kept open between attempts so a wait costs one try_lock per round,
        // not an open as well.
        let mut opened: Option<File> = None;
        loop {
            let lock_path = files.lock.clone();
            let attempt = blocking("lock", {
                let files = files.clone();
                let nested = self.options.depth > 0;
                move || {
                    if nested {
                        make_session_directory(&files.dir).map_err(|e| files.error("lock", e))?;
                    }
                    try_lock_file(&lock_path, opened).map_err(|e| files.error("lock", e))
                }
            })
            .await?;
            match attempt {
                Attempt::Acquired(file) => {
                    return Ok(FileLock { file, files });
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
            backoff.sleep(deadline - now).await;
        }
    }
}

#[async_trait]
impl SessionHandler for FileSessionHandler {
    fn name(&self) -> &'static str {
        BACKEND
    }

    /// Always: flock, or with PHP's locking the session file's own.
    fn uses_locking(&self) -> bool {
        true
    }

    fn lock_wait(&self) -> Duration {
        self.options.lock_wait
    }

    /// A flock ends with its holder's process.
    fn lock_expiry(&self) -> Option<Duration> {
        None
    }

    /// flock on the session's lock file (`take_lock`),
    /// then the read.
    async fn lock_and_read(self: Arc<Self>, id: &SessionId, wait: Duration) -> LockedRead {
        let lock = self.take_lock(id, wait).await?;
        let lock = WritesThroughStore::guard(self.clone(), lock);
        match self.read(id).await {
            Ok(stored) => Ok((lock, stored)),
            Err(error) => {
                let _ = lock.release().await;
                Err(error)
            }
        }
    }

    async fn read(&self, id: &SessionId) -> Result<Stored, SessionError> {
        let files = self.files(id);
        let ttl = self.ttl;
        let max_size = self.options.max_size;
        blocking("read", move || {
            match read_fresh(&files.data, ttl, max_size) {
                // With PHP's locking, taking the lock creates the file: an
                // empty one is no session (PHP's own empty session reads
                // the same), so strict mode still refuses an unknown id.
                Ok(Stored::Data(data)) if files.in_place && data.is_empty() => Ok(Stored::Missing),
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

    /// nene's own files are replaced by a rename, so a read without the
    /// lock sees the old file or the new one, whole. With PHP's locking
    /// (`save_path_lock = session_file`) the file is rewritten in place, so the read
    /// takes the lock, as PHP's does.
    async fn read_for_read_only(self: Arc<Self>, id: &SessionId) -> LockedRead {
        if self.files(id).in_place {
            let wait = self.options.lock_wait;
            self.lock_and_read(id, wait).await
        } else {
            read_without_lock(&*self, id).await
        }
    }

    async fn write(&self, id: &SessionId, data: Bytes) -> Result<(), SessionError> {
        let files = self.files(id);
        let fsync = self.options.fsync;
        let nested = self.options.depth > 0;
        blocking("write", move || {
            if nested {
                make_session_directory(&files.dir).map_err(|e| files.error("write", e))?;
            }
            let written = if files.in_place {
                write_in_place(&files, &data, fsync)
            } else {
                write_atomically(&files, &data, fsync)
            };
            written.map_err(|e| files.error("write", e))
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

    /// Counts removed sessions only; stale temp files and unused lock files
    /// are swept too but are housekeeping, not sessions.
    async fn gc(&self) -> Result<u64, SessionError> {
        let dir = self.dir.clone();
        let ttl = self.ttl;
        let id_format = self.options.id_format;
        let depth = self.options.depth;
        blocking("gc", move || {
            let mut removed = 0;
            for leaf in session_directories(&dir, depth) {
                removed += collect_garbage(&leaf, ttl, id_format)?;
            }
            Ok(removed)
        })
        .await
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

#[async_trait]
impl SessionAdmin for FileSessionHandler {
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

    async fn store_copy(&self, live: &LiveSession, data: Bytes) -> Result<(), SessionError> {
        self.write(&live.id, data).await?;
        let files = self.files(&live.id);
        let (ttl, lifetime) = (self.ttl, live.remaining);
        blocking("write", move || {
            listing::expire_after(&files.data, ttl, lifetime).map_err(|e| files.error("write", e))
        })
        .await
    }

    async fn list_sessions(&self, cursor: Option<String>) -> Result<SessionPage, SessionError> {
        let dir = self.dir.clone();
        let ttl = self.ttl;
        let depth = self.options.depth;
        blocking("list", move || {
            listing::list_page(&dir, depth, ttl, cursor.as_deref())
        })
        .await
    }
}

/// Runs file work on the blocking pool: file system calls may stall (slow
/// disks, NFS) and must not stall the runtime's workers.
pub(super) async fn blocking<T, F>(operation: &'static str, work: F) -> Result<T, SessionError>
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::sync::Arc;
    use std::time::Instant;

    use std::fs::OpenOptions;
    use std::os::unix::fs::MetadataExt;
    use std::time::SystemTime;

    use super::gc::*;
    use super::*;
    use crate::session::SessionIdFormat;
    use crate::session::backend::BackendShorthands;

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

    /// A handler in a new private directory, holding one session stored
    /// as `data`.
    async fn one_session(
        data: &'static [u8],
    ) -> (tempfile::TempDir, Arc<FileSessionHandler>, SessionId) {
        let dir = tempfile::tempdir().unwrap();
        let sessions = Arc::new(handler(dir.path()));
        let id = new_session(&sessions, data).await;
        (dir, sessions, id)
    }

    /// A new session id, stored as `data`.
    async fn new_session(sessions: &FileSessionHandler, data: &'static [u8]) -> SessionId {
        let id = new_id();
        sessions.write(&id, Bytes::from_static(data)).await.unwrap();
        id
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
        let (_dir, sessions, id) = one_session(b"{\"user\":42}").await;
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
        let sessions = Arc::new(handler(&save_path));
        assert_eq!(mode(&save_path), 0o700);
        assert_eq!(mode(&root.path().join("var")), 0o700);
        let id = new_session(&sessions, b"secret").await;
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
        let sessions = Arc::new(handler(dir.path()));
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
        let sessions = Arc::new(handler(dir.path()).with_options(FileOptions {
            lock_wait: Duration::from_millis(100),
            ..FileOptions::default()
        }));
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
    async fn an_expired_session_is_gone_before_gc_runs() {
        let (dir, sessions, id) = one_session(b"old").await;
        age(&session_path(dir.path(), &id), TTL + Duration::from_secs(1));
        assert_eq!(sessions.read(&id).await.unwrap(), Stored::Missing);
        assert!(!sessions.exists(&id).await.unwrap());
        // A touch (lazy_write after an empty read) must not revive it.
        sessions.touch(&id).await.unwrap();
        assert_eq!(sessions.read(&id).await.unwrap(), Stored::Missing);
    }

    #[tokio::test]
    async fn touch_restarts_the_expiry_without_rewriting() {
        let (dir, sessions, id) = one_session(b"unchanged").await;
        let path = session_path(dir.path(), &id);
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
        let (dir, sessions, id) = one_session(b"bye").await;
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
        let sessions = Arc::new(handler(path));
        let old = TTL + Duration::from_secs(1);

        let fresh = new_session(&sessions, b"fresh").await;
        sessions
            .lock(&fresh)
            .await
            .unwrap()
            .release()
            .await
            .unwrap();
        let expired = new_session(&sessions, b"expired").await;
        age(&session_path(path, &expired), old);
        let expired_in_use = new_session(&sessions, b"in use").await;
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
    async fn a_lock_held_elsewhere_times_out_after_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let id = new_id();
        // Another nene instance on the same save_path, and another process's
        // plain flock: both must keep this handler out.
        let other_instance = Arc::new(handler(dir.path()));
        let sessions = Arc::new(handler(dir.path()).with_options(FileOptions {
            lock_wait: Duration::from_millis(200),
            ..FileOptions::default()
        }));

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
    async fn a_failed_write_keeps_the_old_session_and_leaves_no_temp_file() {
        let (dir, sessions, id) = one_session(b"old").await;

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
        let sessions = Arc::new(handler(&save_path));
        sessions.ping().await.unwrap();
        fs::remove_dir(&save_path).unwrap();
        let error = sessions.ping().await.unwrap_err();
        assert!(
            error.to_string().contains(&*save_path.to_string_lossy()),
            "{error}"
        );
    }

    #[tokio::test]
    async fn with_phps_nested_layout_sessions_live_in_subdirectories_and_gc_finds_them() {
        let dir = tempfile::tempdir().unwrap();
        let sessions = Arc::new(handler(dir.path()).with_options(FileOptions {
            depth: 2,
            ..FileOptions::default()
        }));
        let id = new_id();
        sessions.write(&id, Bytes::from_static(b"x")).await.unwrap();
        let id_text = id.as_str();
        let nested = dir
            .path()
            .join(&id_text[..1])
            .join(&id_text[1..2])
            .join(format!("sess_{id_text}"));
        assert_eq!(fs::read(&nested).unwrap(), b"x");
        assert_eq!(
            sessions.read(&id).await.unwrap(),
            Stored::Data(Bytes::from_static(b"x"))
        );
        let lock = sessions.lock(&id).await.unwrap();
        lock.release().await.unwrap();
        assert_eq!(sessions.gc().await.unwrap(), 0, "fresh");
        age(&nested, TTL + Duration::from_secs(1));
        assert_eq!(
            sessions.gc().await.unwrap(),
            1,
            "the nested session expired"
        );
        assert!(!nested.exists());
    }
}
