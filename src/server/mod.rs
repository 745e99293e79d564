//! The server: where nene listens, how it accepts and drains connections, and
//! the bridge from CGI requests to `http` types and tower services.

mod accept_loop;
mod cgi_request;
mod cgi_response;
mod http_responder;
mod inherited;
mod listen_addr;
mod listener;
mod metrics;
mod open_files;
mod routing_path;
mod settings;
mod upload_tmp_dir;

pub use accept_loop::serve;
pub(crate) use cgi_request::build_http_request_or_params;
pub(crate) use cgi_request::routed;
pub use cgi_request::{BadCgiRequest, build_http_request};
pub use cgi_response::into_cgi_response;
pub use http_responder::HttpResponder;
pub use inherited::{InheritedKind, InheritedSocket, SOCKET_NAME, take_inherited};
pub use listen_addr::{ListenAddr, ListenAddrError};
pub use listener::{ListenError, Listener};
pub use metrics::{ListenQueue, ServerMetrics};
pub use open_files::{
    OpenFileLimit, OpenFileLimitError, raise_open_file_limit, raise_open_file_limit_and_log,
};
pub use settings::ServerSettings;
pub use upload_tmp_dir::{UploadTmpDirError, prepare_upload_tmp_dir};
