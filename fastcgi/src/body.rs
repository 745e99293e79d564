//! A request body as the protocol layer hands it on: in memory when it is
//! small (up to `client_body_buffer_size`), otherwise in a temporary file in
//! `upload_tmp_dir`, written record by record as it arrives — nginx's
//! `client_body_temp_path` and PHP's `upload_tmp_dir` do the same.
//!
//! The file has no name from the moment it exists: `tempfile::tempfile_in`
//! opens it with `O_TMPFILE` (or creates and unlinks it at once where the
//! filesystem lacks that). Only its descriptor refers to it, so however the
//! request ends — answered, aborted by the peer, cut by `receive_timeout`, a
//! handler that panics, or nene killed outright — closing the descriptor
//! frees its blocks, and no crash leaves files behind for a cleaner to find.
//! A drop guard deleting a named file would miss SIGKILL and OOM kills.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use bytes::Bytes;

/// A complete request body.
#[derive(Debug)]
pub enum RequestBody {
    /// A body small enough to be held in memory.
    Memory(Bytes),
    /// A body spilled to an unnamed temporary file, positioned at its start.
    File {
        /// The file; closing it frees it.
        file: File,
        /// Its length in bytes.
        len: u64,
    },
}

impl RequestBody {
    /// The body's length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            RequestBody::Memory(bytes) => bytes.len() as u64,
            RequestBody::File { len, .. } => *len,
        }
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the body went to a file.
    pub fn is_spilled(&self) -> bool {
        matches!(self, RequestBody::File { .. })
    }
}

impl Default for RequestBody {
    fn default() -> Self {
        RequestBody::Memory(Bytes::new())
    }
}

impl From<Bytes> for RequestBody {
    fn from(bytes: Bytes) -> Self {
        RequestBody::Memory(bytes)
    }
}

/// A body being written to its temporary file.
#[derive(Debug)]
pub(crate) struct SpillFile {
    file: File,
    len: u64,
}

impl SpillFile {
    /// An unnamed file in `dir`.
    pub fn create(dir: &Path) -> std::io::Result<Self> {
        Ok(Self {
            file: tempfile::tempfile_in(dir)?,
            len: 0,
        })
    }

    /// Appends `bytes`. Written straight from the connection's task, as
    /// nginx writes its client body temp files from its event loop: a write
    /// lands in the page cache, and a disk too slow for that slows only the
    /// requests that spill. An error (ENOSPC, EFBIG, EIO) fails the request;
    /// the file, whatever part of it was written, is then dropped unread.
    pub fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.file.write_all(bytes)?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// The complete body, rewound for reading.
    pub fn finish(mut self) -> std::io::Result<RequestBody> {
        self.file.seek(SeekFrom::Start(0))?;
        Ok(RequestBody::File {
            file: self.file,
            len: self.len,
        })
    }
}
