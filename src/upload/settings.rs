//! The bounds an upload is held to, decided once at start-up from
//! `[server]` settings under PHP's names.

use std::path::PathBuf;

/// PHP's upload bounds. Defaults are PHP's.
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

impl Default for UploadSettings {
    fn default() -> Self {
        Self {
            tmp_dir: std::env::temp_dir(),
            upload_max_filesize: 2 * 1024 * 1024,
            max_file_uploads: 20,
            max_input_vars: 1000,
        }
    }
}
