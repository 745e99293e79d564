//! What nene's own layers hand down with a request: the FastCGI params, the
//! client's address and transport, the constants and the session, as
//! one value in the request's extensions. `http::Extensions` boxes each
//! value and grows its map as values come (six values cost nine allocations
//! and two rehashes a request, benches/README.md); one value is one box, and
//! with the one other that goes in (axum's body limit) the map keeps its
//! first size. The extractors an application uses (`Constants`,
//! `RequestInfo`, `Session`, `UploadForm`) read from here.

use http::{Extensions, StatusCode};

use crate::config::Constants;
use crate::fastcgi::CgiParams;
use crate::request_info::Peer;
use crate::session::Session;

/// Each piece is put in by the layer that makes it.
#[derive(Clone, Default)]
pub(crate) struct RequestContext {
    /// The params as the web server sent them, for the access log's
    /// `%{VAR}e` (server/cgi_request.rs; `nene dev` makes its own).
    pub(crate) params: Option<CgiParams>,
    /// Client and transport (server/cgi_request.rs, or `nene dev`); with
    /// the params, what the `RequestInfo` extractor is made of.
    pub(crate) peer: Option<Peer>,
    /// The application's constants (ops/layer.rs).
    pub(crate) constants: Option<Constants>,
    /// The request's session (session/lifecycle/layer.rs).
    pub(crate) session: Option<Session>,
}

impl RequestContext {
    /// The request's context, if a layer has put one in.
    pub(crate) fn of(extensions: &Extensions) -> Option<&RequestContext> {
        extensions.get::<RequestContext>()
    }

    /// The request's context, put in empty if none is there yet.
    pub(crate) fn of_mut(extensions: &mut Extensions) -> &mut RequestContext {
        extensions.get_or_insert_default::<RequestContext>()
    }

    /// What an extractor takes from the context (`pick`), or its 500 with
    /// `missing` when the application runs outside the layer that puts it in.
    pub(crate) fn extract<T>(
        extensions: &Extensions,
        pick: impl FnOnce(&RequestContext) -> Option<T>,
        missing: &'static str,
    ) -> Result<T, (StatusCode, &'static str)> {
        Self::of(extensions)
            .and_then(pick)
            .ok_or((StatusCode::INTERNAL_SERVER_ERROR, missing))
    }
}
