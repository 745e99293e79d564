//! File uploads for applications: a `multipart/form-data` request reaches a
//! handler as an [`UploadForm`] — its text fields, and its files each
//! written to disk in `server.upload_tmp_dir` (name, content type, size,
//! path), as PHP hands them over in `$_POST` and `$_FILES`. PHP's bounds
//! apply under PHP's names: `server.upload_max_filesize`,
//! `server.max_file_uploads`, `server.max_input_vars`; `post_max_size` is
//! `server.max_body_bytes`, checked by the protocol layer before the body is
//! taken.
//!
//! ```no_run
//! use nene::upload::UploadForm;
//!
//! async fn attach(form: UploadForm) -> String {
//!     let title = form.field("title").unwrap_or("untitled");
//!     let sizes: Vec<String> = form
//!         .files()
//!         .iter()
//!         .map(|file| format!("{} ({} bytes)", file.file_name(), file.size()))
//!         .collect();
//!     format!("{title}: {}\n", sizes.join(", "))
//! }
//! # let _: axum::routing::MethodRouter = axum::routing::post(attach);
//! ```

mod error;
mod file;
mod form;
mod leftovers;
mod settings;

pub use error::UploadError;
pub use file::{UploadedFile, neutralise_file_name};
pub use form::UploadForm;
pub(crate) use leftovers::upload_file_prefix;
pub use leftovers::{Swept, sweep_leftover_uploads};
pub use settings::UploadSettings;
