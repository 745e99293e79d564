//! One uploaded file: written to a named temporary file in
//! `upload_tmp_dir`, deleted when the [`UploadedFile`] is dropped unless the
//! handler keeps it with [`UploadedFile::persist`] (PHP deletes
//! `$_FILES[…]['tmp_name']` at the end of the request unless
//! `move_uploaded_file` moved it).

use std::path::Path;

use tempfile::TempPath;

/// A file from a `multipart/form-data` request, on disk.
#[derive(Debug)]
pub struct UploadedFile {
    /// The form field it came in.
    pub(super) field: String,
    /// The name the client gave, neutralised (see [`neutralise_file_name`]).
    pub(super) file_name: String,
    /// The content type the client declared, if any (not checked).
    pub(super) content_type: Option<String>,
    /// Its size in bytes.
    pub(super) size: u64,
    /// Where it is; deleted when this is dropped.
    pub(super) path: TempPath,
}

impl UploadedFile {
    /// The form field it came in.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// The client's name for it, without directories or control
    /// characters; may be empty. Never use it as a path without checking it
    /// against your own rules.
    pub fn file_name(&self) -> &str {
        &self.file_name
    }

    /// The content type the client declared; the client chose it, so it
    /// proves nothing about the content.
    pub fn content_type(&self) -> Option<&str> {
        self.content_type.as_deref()
    }

    /// Its size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Where the file is now, in `upload_tmp_dir` (PHP's `tmp_name`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Moves the file to `to` and keeps it (PHP's `move_uploaded_file`):
    /// renamed when `to` is on the same filesystem, copied otherwise.
    pub async fn persist(self, to: impl AsRef<Path>) -> std::io::Result<()> {
        let to = to.as_ref().to_path_buf();
        let path = self.path;
        tokio::task::spawn_blocking(move || match path.persist(&to) {
            Ok(()) => Ok(()),
            Err(error) if error.error.kind() == std::io::ErrorKind::CrossesDevices => {
                // Copied, then the original deleted by TempPath's drop.
                std::fs::copy(&error.path, &to).map(drop)
            }
            Err(error) => Err(error.error),
        })
        .await
        .map_err(std::io::Error::other)?
    }
}

/// The client's file name made harmless as data: only what follows the last
/// `/` or `\` (a browser on Windows may send `C:\Users\…`), without control
/// characters (CR, LF, NUL, …) or invisible format characters (a
/// right-to-left override shows `x\u{202E}txt.exe` as `xexe.txt`), and `.`
/// or `..` alone become empty — as PHP keeps only the base name.
pub fn neutralise_file_name(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = base
        .chars()
        .filter(|&c| !c.is_control() && !is_format_character(c))
        .collect();
    if clean == "." || clean == ".." {
        String::new()
    } else {
        clean
    }
}

/// Unicode's format characters (General Category Cf, Unicode 15.1): bidi
/// controls and overrides, zero-width characters, the byte-order mark, tag
/// characters. Written out here: the standard library has no general
/// category, and the list is short and changes rarely.
fn is_format_character(c: char) -> bool {
    matches!(
        u32::from(c),
        0x00AD
            | 0x0600..=0x0605
            | 0x061C
            | 0x06DD
            | 0x070F
            | 0x0890..=0x0891
            | 0x08E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_and_control_characters_are_removed() {
        assert_eq!(neutralise_file_name("../../etc/passwd"), "passwd");
        assert_eq!(neutralise_file_name("C:\\Users\\me\\cv.pdf"), "cv.pdf");
        assert_eq!(neutralise_file_name("a\r\nb\0.txt"), "ab.txt");
        assert_eq!(neutralise_file_name("dir/.."), "");
        assert_eq!(neutralise_file_name("photo été.jpg"), "photo été.jpg");
        assert_eq!(neutralise_file_name(""), "");
    }

    #[test]
    fn invisible_format_characters_are_removed() {
        assert_eq!(neutralise_file_name("x\u{202E}txt.exe"), "xtxt.exe");
        assert_eq!(neutralise_file_name("a\u{200B}b\u{FEFF}.pdf"), "ab.pdf");
        assert_eq!(neutralise_file_name("\u{2066}cv\u{2069}.pdf"), "cv.pdf");
        assert_eq!(neutralise_file_name("tag\u{E0041}.txt"), "tag.txt");
        // Letters of right-to-left scripts stay: only the invisible ones go.
        assert_eq!(neutralise_file_name("ملف.txt"), "ملف.txt");
    }
}
