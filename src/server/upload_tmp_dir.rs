//! `server.upload_tmp_dir`, checked at start-up: created (0700) when
//! missing, and a file actually made in it, so that a directory nene cannot
//! write to stops start-up with its name instead of failing the first
//! upload.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// Why `server.upload_tmp_dir` cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("server.upload_tmp_dir {path}: {source}")]
pub struct UploadTmpDirError {
    /// The directory.
    pub path: PathBuf,
    /// What failed: creating it, or making a file in it.
    pub source: std::io::Error,
}

/// Creates `dir` (0700, parents as needed) when it is missing, and checks
/// that a temporary file can be made in it.
pub fn prepare_upload_tmp_dir(dir: &Path) -> Result<(), UploadTmpDirError> {
    let error = |source| UploadTmpDirError {
        path: dir.to_path_buf(),
        source,
    };
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(error)?;
    }
    // Unnamed: nothing is left behind, even if nene stops right here.
    tempfile::tempfile_in(dir).map_err(error)?;
    Ok(())
}
