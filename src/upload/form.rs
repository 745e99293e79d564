//! The [`UploadForm`] extractor: reads a `multipart/form-data` body as it
//! streams in (from memory or from nene's spill file), keeps the text
//! fields and writes each file to `upload_tmp_dir`, checking PHP's bounds
//! as the bytes arrive so that a refused upload stops being read at once.
//! Parsing is `multer`'s (see Cargo.toml).

use axum::body::Body;
use axum::extract::FromRequest;
use http::Request;
use http::header::CONTENT_TYPE;
use tokio::io::AsyncWriteExt;

use crate::request_context::RequestContext;

use super::error::UploadError;
use super::file::{UploadedFile, neutralise_file_name};
use super::settings::UploadSettings;

/// Text fields are held in memory; a form's text is kilobytes, 1 MiB
/// leaves room for long text areas, and anything larger belongs in a file
/// (which goes to disk).
pub const MAX_TEXT_BYTES: usize = 1024 * 1024;

/// A `multipart/form-data` request's text fields and files, in the order
/// sent. Take it as a handler argument; files not kept with
/// [`UploadedFile::persist`] are deleted when the form is dropped.
#[derive(Debug, Default)]
pub struct UploadForm {
    fields: Vec<(String, String)>,
    files: Vec<UploadedFile>,
}

impl UploadForm {
    /// The value of text field `name` (the first, when it repeats).
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.as_str())
    }

    /// Every text field, in the order sent.
    pub fn fields(&self) -> &[(String, String)] {
        &self.fields
    }

    /// Every file, in the order sent.
    pub fn files(&self) -> &[UploadedFile] {
        &self.files
    }

    /// The first file sent in field `name`.
    pub fn file(&self, name: &str) -> Option<&UploadedFile> {
        self.files.iter().find(|file| file.field == name)
    }

    /// The files, to keep ([`UploadedFile::persist`]) or drop.
    pub fn into_files(self) -> Vec<UploadedFile> {
        self.files
    }

    /// Reads `body`, of content type `content_type`, with `settings`' bounds.
    pub async fn from_body(
        content_type: &str,
        body: Body,
        settings: &UploadSettings,
    ) -> Result<Self, UploadError> {
        let boundary =
            multer::parse_boundary(content_type).map_err(|_| UploadError::NotMultipart)?;
        let mut multipart = multer::Multipart::new(body.into_data_stream(), boundary);
        let mut form = UploadForm::default();
        let mut text_bytes = 0;
        while let Some(mut field) = multipart.next_field().await.map_err(malformed)? {
            let name = field.name().unwrap_or_default().to_string();
            let Some(raw_file_name) = field.file_name() else {
                if form.fields.len() == settings.max_input_vars {
                    return Err(UploadError::TooManyFields(settings.max_input_vars));
                }
                let mut value = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(malformed)? {
                    text_bytes += chunk.len();
                    if text_bytes > MAX_TEXT_BYTES {
                        return Err(UploadError::FieldsTooLarge(MAX_TEXT_BYTES));
                    }
                    value.extend_from_slice(&chunk);
                }
                let value = String::from_utf8(value)
                    .map_err(|_| UploadError::FieldNotText(name.clone()))?;
                form.fields.push((name, value));
                continue;
            };
            if form.files.len() == settings.max_file_uploads {
                return Err(UploadError::TooManyFiles(settings.max_file_uploads));
            }
            let file_name = neutralise_file_name(raw_file_name);
            let content_type = field.content_type().map(|mime| mime.to_string());
            let (file, path) = tempfile::Builder::new()
                .prefix(crate::upload::upload_file_prefix())
                .tempfile_in(&settings.tmp_dir)?
                .into_parts();
            // From here the file is deleted when `path` drops, also when a
            // bound or the client stops the upload half way.
            let mut file = tokio::fs::File::from_std(file);
            let mut size = 0u64;
            while let Some(chunk) = field.chunk().await.map_err(malformed)? {
                size += chunk.len() as u64;
                if size > settings.upload_max_filesize {
                    return Err(UploadError::FileTooLarge {
                        field: name,
                        limit: settings.upload_max_filesize,
                    });
                }
                file.write_all(&chunk).await?;
            }
            // tokio's writes finish in the background: wait for the last.
            file.flush().await?;
            form.files.push(UploadedFile {
                field: name,
                file_name,
                content_type,
                size,
                path,
            });
        }
        Ok(form)
    }
}

fn malformed(error: multer::Error) -> UploadError {
    UploadError::Malformed(error.to_string())
}

/// The bounds come from the [`Constants`](crate::config::Constants) nene puts into every request
/// (PHP's defaults when the application runs outside nene).
impl<S: Send + Sync> FromRequest<S> for UploadForm {
    type Rejection = UploadError;

    async fn from_request(request: Request<Body>, _state: &S) -> Result<Self, Self::Rejection> {
        let settings = RequestContext::of(request.extensions())
            .and_then(|context| context.constants.as_ref())
            .map(|constants| constants.settings().uploads.clone())
            .unwrap_or_else(|| crate::config::Settings::defaults().uploads);
        let content_type = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .filter(|value| {
                value
                    .get(..19)
                    .is_some_and(|start| start.eq_ignore_ascii_case("multipart/form-data"))
            })
            .ok_or(UploadError::NotMultipart)?
            .to_string();
        UploadForm::from_body(&content_type, request.into_body(), &settings).await
    }
}
