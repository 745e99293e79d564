//! The bounds an upload is held to, decided once at start-up from
//! `[server]` settings under PHP's names.

use std::path::PathBuf;

/// PHP's upload bounds (defaults are PHP's, in the settings table).
#[derive(Clone, Debug)]
pub struct UploadSettings {
    /// Where uploaded files are written (`server.upload_tmp_dir`).
    pub tmp_dir: PathBuf,
    /// The largest file accepted (`upload_max_filesize`); above it, 413.
    pub upload_max_filesize: u64,
    /// The most files in one request (`max_file_uploads`); above it, 413.
    pub max_file_uploads: usize,
    /// The most text fields in one request (`max_input_vars`); above it,
    /// 413.
    pub max_input_vars: usize,
}
