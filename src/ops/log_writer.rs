//! Where the access log and the slow log go: stderr, a file (appended, and
//! reopened on SIGHUP so logrotate can move it), or nowhere.
//!
//! Lines are not written one by one. A request appends its whole line to a
//! shared buffer (a short memcpy under a lock) and a flusher thread writes
//! the buffer in one `write` every [`FLUSH_INTERVAL`], or as soon as it
//! holds [`FLUSH_BYTES`]. Measured on /health through nginx, a `write(2)` to
//! stderr per request cost ~15% of req/s; batched, the access log costs
//! about nothing (see benches/README.md). What it costs: a crash
//! (SIGKILL, abort) loses at most the last [`FLUSH_INTERVAL`] of lines; a
//! clean stop (SIGTERM, SIGINT) and SIGHUP flush everything first.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use super::settings::LogDestination;

/// The longest a written line waits in memory: what a crash can lose.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(100);

/// A buffer this full is written at once rather than at the next tick
/// (a burst of requests: about 500 default-format lines).
pub const FLUSH_BYTES: usize = 64 * 1024;

/// Past this much waiting in memory (the destination blocks: a full disk, a
/// stalled pipe), a request writes the buffer itself, so a stuck log slows
/// requests down instead of growing nene's memory without bound.
const MAX_PENDING_BYTES: usize = 1024 * 1024;

/// An opened log destination, shared by every request that writes to it.
pub enum LogWriter {
    /// Lines go to a destination through the batch buffer.
    Batched(Arc<Batch>),
    /// Lines are dropped.
    Off,
}

/// Where a batch is written.
enum Sink {
    Stderr,
    File { path: PathBuf, file: File },
}

/// The buffer shared by requests and the flusher thread.
pub struct Batch {
    /// Whole lines not yet written, each ending in `\n`.
    pending: Mutex<Vec<u8>>,
    /// Wakes the flusher early (a full buffer) or for the last flush.
    wake: Condvar,
    /// The destination. Taken before `pending` when flushing, so batches
    /// reach it in the order they were filled.
    sink: Mutex<Sink>,
    /// The writer was dropped: the flusher writes what is left and ends.
    closed: AtomicBool,
}

impl LogWriter {
    /// Opens the destination and starts its flusher thread; a file that
    /// cannot be opened is a start-up error naming it.
    pub fn open(destination: &LogDestination) -> std::io::Result<Self> {
        let sink = match destination {
            LogDestination::Off => return Ok(LogWriter::Off),
            LogDestination::Stderr => Sink::Stderr,
            LogDestination::File(path) => Sink::File {
                path: path.clone(),
                file: open_append(path)?,
            },
        };
        let batch = Arc::new(Batch {
            pending: Mutex::new(Vec::with_capacity(FLUSH_BYTES)),
            wake: Condvar::new(),
            sink: Mutex::new(sink),
            closed: AtomicBool::new(false),
        });
        let flusher = batch.clone();
        std::thread::Builder::new()
            .name("nene-log-flush".into())
            .spawn(move || flusher.run_flusher())?;
        Ok(LogWriter::Batched(batch))
    }

    /// Whether the log is off, so callers can skip building the line at all.
    pub fn is_off(&self) -> bool {
        matches!(self, LogWriter::Off)
    }

    /// Queues one line (without its newline); it is written whole, never
    /// split or mixed with another line.
    pub fn write_line(&self, line: &str) {
        let LogWriter::Batched(batch) = self else {
            return;
        };
        let mut pending = lock(&batch.pending);
        pending.extend_from_slice(line.as_bytes());
        pending.push(b'\n');
        let size = pending.len();
        drop(pending);
        if size >= MAX_PENDING_BYTES {
            batch.flush();
        } else if size >= FLUSH_BYTES {
            batch.wake.notify_one();
        }
    }

    /// Writes every queued line now (at shutdown, before a reopen).
    pub fn flush(&self) {
        if let LogWriter::Batched(batch) = self {
            batch.flush();
        }
    }

    /// Writes what is queued to the current file, then opens the file again
    /// under its name (after logrotate moved it).
    pub fn reopen(&self) {
        let LogWriter::Batched(batch) = self else {
            return;
        };
        let mut sink = lock(&batch.sink);
        batch.write_pending(&mut sink);
        if let Sink::File { path, file } = &mut *sink {
            match open_append(path) {
                Ok(reopened) => *file = reopened,
                Err(error) => tracing::warn!("cannot reopen {}: {error}", path.display()),
            }
        }
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        if let LogWriter::Batched(batch) = self {
            batch.flush();
            batch.closed.store(true, Ordering::Release);
            batch.wake.notify_one();
        }
    }
}

impl Batch {
    /// The flusher thread: every tick, or when woken, writes what is queued.
    fn run_flusher(&self) {
        loop {
            {
                let pending = lock(&self.pending);
                if pending.len() < FLUSH_BYTES && !self.closed.load(Ordering::Acquire) {
                    let _ = self.wake.wait_timeout(pending, FLUSH_INTERVAL);
                }
            }
            self.flush();
            if self.closed.load(Ordering::Acquire) {
                return;
            }
        }
    }

    fn flush(&self) {
        let mut sink = lock(&self.sink);
        self.write_pending(&mut sink);
    }

    /// Takes the queued lines and writes them in one call, with the sink
    /// already held so no later batch can overtake this one.
    fn write_pending(&self, sink: &mut Sink) {
        let batch = {
            let mut pending = lock(&self.pending);
            if pending.is_empty() {
                return;
            }
            std::mem::replace(&mut *pending, Vec::with_capacity(FLUSH_BYTES))
        };
        match sink {
            Sink::Stderr => {
                // Holding stderr's lock keeps nene's own log lines (tracing
                // writes to stderr too) out of the middle of the batch.
                let mut stderr = std::io::stderr().lock();
                let _ = stderr.write_all(&batch);
            }
            Sink::File { path, file } => {
                if let Err(error) = file.write_all(&batch) {
                    tracing::warn!("cannot write to {}: {error}", path.display());
                }
            }
        }
    }
}

/// A poisoned lock only means a panic elsewhere while it was held; the
/// buffer is still whole lines, so logging goes on.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_writer(dir: &Path) -> (LogWriter, PathBuf) {
        let path = dir.join("access.log");
        let writer = LogWriter::open(&LogDestination::File(path.clone())).unwrap();
        (writer, path)
    }

    #[test]
    fn lines_reach_the_file_within_the_flush_interval() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, path) = file_writer(dir.path());
        writer.write_line("one");
        writer.write_line("two");
        std::thread::sleep(FLUSH_INTERVAL * 4);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\ntwo\n");
        drop(writer);
    }

    #[test]
    fn flush_and_drop_write_everything_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, path) = file_writer(dir.path());
        writer.write_line("flushed");
        writer.flush();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "flushed\n");
        writer.write_line("dropped");
        drop(writer);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "flushed\ndropped\n"
        );
    }

    #[test]
    fn lines_from_many_threads_stay_whole_and_in_each_threads_order() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, path) = file_writer(dir.path());
        let writer = Arc::new(writer);
        let threads: Vec<_> = (0..8)
            .map(|thread| {
                let writer = writer.clone();
                std::thread::spawn(move || {
                    for n in 0..5000 {
                        writer.write_line(&format!("t{thread} n{n} {}", "x".repeat(n % 300)));
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        Arc::try_unwrap(writer).ok().unwrap().flush();
        let text = std::fs::read_to_string(&path).unwrap();
        let mut next = [0usize; 8];
        for line in text.lines() {
            let mut parts = line.split(' ');
            let thread: usize = parts.next().unwrap()[1..].parse().unwrap();
            let n: usize = parts.next().unwrap()[1..].parse().unwrap();
            assert_eq!(n, next[thread], "line out of order or lost: {line}");
            assert_eq!(parts.next().unwrap_or(""), "x".repeat(n % 300), "{line}");
            next[thread] += 1;
        }
        assert_eq!(next, [5000; 8]);
    }

    #[test]
    fn reopen_writes_queued_lines_to_the_old_file_first() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, path) = file_writer(dir.path());
        writer.write_line("before rotation");
        let rotated = dir.path().join("access.log.1");
        std::fs::rename(&path, &rotated).unwrap();
        writer.reopen();
        writer.write_line("after rotation");
        writer.flush();
        assert_eq!(
            std::fs::read_to_string(&rotated).unwrap(),
            "before rotation\n"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "after rotation\n");
    }
}
