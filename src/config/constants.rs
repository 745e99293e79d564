//! The constants an application reads: every setting by its UPPER_SNAKE
//! name (`SESSION_DSN`, `SERVER_LISTEN`, …) and the application's own keys
//! from site.ini (`SITE_TITLE`, …), as NeNe's PHP constants were, plus the
//! typed [`Settings`]. Immutable after start-up; cheap to clone (one `Arc`).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use http::StatusCode;
use http::request::Parts;

use super::settings::Settings;
use super::source::Source;
use crate::request_context::RequestContext;

/// One constant: its text as configured, and where that came from.
#[derive(Clone, Debug)]
pub struct Constant {
    /// The text as configured (secrets included: see `secret`).
    pub value: String,
    /// Where the value came from, for `nene config` and error messages.
    pub source: Source,
    /// The value may hold a password (the DSN): never print it as is.
    pub secret: bool,
}

/// Every constant by name, and the typed settings they were validated into.
#[derive(Clone)]
pub struct Constants(Arc<ConstantsInner>);

struct ConstantsInner {
    settings: Settings,
    by_name: BTreeMap<String, Constant>,
}

impl Constants {
    /// Built by the loader; tests may build their own.
    pub fn new(settings: Settings, by_name: BTreeMap<String, Constant>) -> Self {
        Self(Arc::new(ConstantsInner { settings, by_name }))
    }

    /// nene's own settings, typed (htdocs, server limits, sessions, …).
    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }

    /// The value of constant `name` (`SITE_TITLE`, `SESSION_DSN`, …).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.by_name.get(name).map(|c| c.value.as_str())
    }

    /// Every constant with where it came from, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Constant)> {
        self.0.by_name.iter().map(|(name, c)| (name.as_str(), c))
    }
}

impl std::fmt::Debug for Constants {
    /// Names only: values may hold secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.by_name.keys()).finish()
    }
}

/// Handlers take `Constants` as an argument; the runtime puts them into
/// every request's extensions.
impl<S: Send + Sync> FromRequestParts<S> for Constants {
    type Rejection = (StatusCode, &'static str);

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let missing =
            "constants are missing: the application runs outside nene's front controller\n";
        RequestContext::extract(&parts.extensions, |c| c.constants.clone(), missing)
    }
}
